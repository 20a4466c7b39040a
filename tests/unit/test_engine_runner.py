"""The runner against real local processes: ordering, cancel, retry, skip, resume, timeouts."""

import asyncio
import os
import sys
import time

import pytest

from ambient_tui.engine import Phase, Plan, Step, StepState
from ambient_tui.engine.events import EventKind
from ambient_tui.engine.journal import Journal
from ambient_tui.engine.runner import Runner



def record(runner):
    events = []
    runner.subscribe(events.append)
    return events


def plan_of(*steps, phases=None):
    return Plan("test", phases or [Phase("p", "P", list(steps))])


@pytest.mark.asyncio
async def test_steps_run_in_order_and_stream_output(tmp_path):
    marker = tmp_path / "order"
    plan = Plan("t", [
        Phase("a", "A", [Step("one", "one", argv=["sh", "-c", f"echo one >> {marker}; echo line-1; echo line-2"])]),
        Phase("b", "B", [Step("two", "two", argv=["sh", "-c", f"echo two >> {marker}"])]),
    ])
    r = Runner(plan)
    events = record(r)
    assert await r.run() is True
    assert marker.read_text().split() == ["one", "two"]
    kinds = [(e.kind, e.step_id) for e in events if e.kind is not EventKind.OUTPUT]
    assert kinds == [(EventKind.STARTED, "one"), (EventKind.FINISHED, "one"),
                     (EventKind.STARTED, "two"), (EventKind.FINISHED, "two")]
    assert [e.line for e in events if e.kind is EventKind.OUTPUT] == ["line-1", "line-2"]


@pytest.mark.asyncio
async def test_failure_stops_the_plan_and_later_steps_stay_pending():
    plan = plan_of(Step("bad", "bad", argv=["sh", "-c", "exit 3"]), Step("after", "after", argv=["true"]))
    r = Runner(plan)
    events = record(r)
    assert await r.run() is False
    assert plan.step("bad").state is StepState.FAILED
    assert plan.step("after").state is StepState.PENDING
    failed = [e for e in events if e.kind is EventKind.FAILED]
    assert failed[0].exit_code == 3 and "exit code 3" in failed[0].message


@pytest.mark.asyncio
async def test_warn_only_failure_is_a_warning_and_the_plan_goes_on():
    plan = plan_of(Step("soft", "soft", argv=["false"], warn_only=True), Step("next", "next", argv=["true"]))
    assert await Runner(plan).run() is True
    assert plan.step("soft").state is StepState.WARNED


@pytest.mark.asyncio
async def test_grouped_steps_run_concurrently(tmp_path):
    plan = plan_of(Step("a", "a", argv=["sleep", "1"], group="g"), Step("b", "b", argv=["sleep", "1"], group="g"))
    t0 = time.monotonic()
    assert await Runner(plan).run()
    assert time.monotonic() - t0 < 1.8  # two 1 s sleeps together, not one after another


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[1].split()[0] != "Z"


@pytest.mark.asyncio
async def test_cancel_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    # The shell starts a child that ignores SIGTERM, as a stuck helm plugin might.
    script = f"sh -c 'trap \"\" TERM; echo $$ > {pidfile}; sleep 60' & wait"
    plan = plan_of(Step("long", "long", argv=["sh", "-c", script]))
    r = Runner(plan)
    task = asyncio.ensure_future(r.run())
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.05)
    child = int(pidfile.read_text())
    assert _alive(child)
    r.cancel()
    assert await asyncio.wait_for(task, 10) is False
    assert plan.step("long").state is StepState.CANCELLED
    await asyncio.sleep(0.2)
    assert not _alive(child)


@pytest.mark.asyncio
async def test_timeout_fails_the_step_and_kills_it():
    plan = plan_of(Step("slow", "slow", argv=["sleep", "30"], timeout=0.5))
    r = Runner(plan)
    events = record(r)
    t0 = time.monotonic()
    assert await r.run() is False
    assert time.monotonic() - t0 < 5
    assert plan.step("slow").state is StepState.FAILED
    assert "timed out after 0.5s" in events[-1].message


@pytest.mark.asyncio
async def test_retry_after_a_fix(tmp_path):
    flag = tmp_path / "ok"
    plan = plan_of(Step("s", "s", argv=["test", "-e", str(flag)]))
    r = Runner(plan)
    assert await r.run() is False
    flag.write_text("")
    assert await r.retry("s") is StepState.SUCCEEDED


@pytest.mark.asyncio
async def test_skip_records_its_reason_in_the_journal(tmp_path):
    j = Journal(tmp_path / "j.jsonl")
    plan = plan_of(Step("a", "a", argv=["false"]), Step("b", "b", argv=["true"]))
    r = Runner(plan, journal=j)
    r.skip("a", "istio-base already installed by the platform team")
    assert await r.run() is True
    skips = [rec for rec in Journal.read(j.path).records if rec["type"] == "step-skip"]
    assert skips[0]["reason"] == "istio-base already installed by the platform team"


@pytest.mark.asyncio
async def test_resume_continues_after_the_last_succeeded_step(tmp_path):
    counter = tmp_path / "runs"

    def make_plan(fail_second: bool):
        return plan_of(
            Step("first", "first", argv=["sh", "-c", f"echo x >> {counter}"]),
            Step("second", "second", argv=["false" if fail_second else "true"]),
            Step("third", "third", argv=["true"]))

    jpath = tmp_path / "cluster.jsonl"
    assert await Runner(make_plan(True), journal=Journal(jpath)).run() is False
    plan = make_plan(False)
    r = Runner(plan, journal=Journal(jpath))
    assert await r.run(resume=True) is True
    assert counter.read_text().count("x") == 1  # the first step did not run again
    assert [s.state for s in plan.steps] == [StepState.SUCCEEDED] * 3


@pytest.mark.asyncio
async def test_dry_run_runs_nothing(tmp_path):
    target = tmp_path / "created"
    plan = plan_of(Step("touch", "touch", argv=["touch", str(target)]))
    r = Runner(plan, dry_run=True)
    events = record(r)
    assert await r.run() is True
    assert not target.exists()
    assert any("dry-run: would run touch" in e.line for e in events)
    r.dry_run = False
    assert await r.run() is True and target.exists()


@pytest.mark.asyncio
async def test_missing_binary_says_how_to_install():
    plan = plan_of(Step("h", "h", argv=["helm-that-does-not-exist", "version"]))
    r = Runner(plan)
    events = record(r)
    assert await r.run() is False
    assert "not found on PATH" in events[-1].message


@pytest.mark.asyncio
async def test_api_step_runs_in_a_thread_and_its_error_is_kept():
    from ambient_tui.engine import ApiCall

    def boom():
        raise PermissionError("daemonsets.apps is forbidden")

    plan = plan_of(Step("ok", "ok", api=ApiCall("GET /version", lambda: ["v1.34.4"])),
                   Step("bad", "bad", api=ApiCall("PATCH aws-node", boom)))
    r = Runner(plan)
    events = record(r)
    assert await r.run() is False
    assert any(e.line == "v1.34.4" for e in events)
    assert "forbidden" in events[-1].message


def test_a_step_needs_exactly_one_action():
    with pytest.raises(ValueError):
        Step("x", "x")
    with pytest.raises(TypeError):
        Step("x", "x", argv=["helm", 3])
