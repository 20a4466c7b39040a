"""The runner's side of surviving a second operator and a dropped terminal, with local processes:
a step's child that started a session of its own still dies on cancel; a process an earlier run
recorded (step-pid) blocks the next run while it lives, and only the same process counts; the
typed confirmation of `unlock`; reading a Lease's holder and its expiry."""

import asyncio
import os
import subprocess
import sys
import time

import pytest

from ambient_tui.cluster import lease
from ambient_tui.commands.unlock import confirmed, phrase_for
from ambient_tui.engine.confirm import LAST_RESORT
from ambient_tui.engine import Phase, Plan, Step, StepState
from ambient_tui.engine import procs
from ambient_tui.engine.events import EventKind
from ambient_tui.engine.journal import Journal
from ambient_tui.engine.runner import LeftoverProcess, Runner, live_recorded

ESCAPE = ("import subprocess, sys, time\n"
          "p = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
          "print(p.pid, flush=True)\n"
          "time.sleep(300)\n")


def _gone(pid: int, wait: float = 5.0) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not procs.alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.asyncio
async def test_cancel_kills_a_child_that_started_its_own_session(tmp_path):
    plan = Plan("t", [Phase("a", "A", [Step("escape", "escape", argv=[sys.executable, "-c", ESCAPE], timeout=20)])])
    runner = Runner(plan, journal=Journal(tmp_path / "j.jsonl"))
    seen: list[int] = []

    def on_event(ev):
        if ev.kind is EventKind.OUTPUT and ev.line.strip().isdigit():
            seen.append(int(ev.line))
            runner.interrupt("interrupted by SIGHUP")
    runner.subscribe(on_event)
    assert await runner.run() is False
    runner.journal.close()
    assert seen, "the step never printed its child's pid"
    child = seen[0]
    try:
        assert os.getpgid(child) != os.getpgid(os.getpid())  # really outside the step's group
    except ProcessLookupError:
        pass
    assert _gone(child), "the child in its own session outlived the cancel"
    assert plan.step("escape").state is StepState.CANCELLED
    recs = Journal.read(tmp_path / "j.jsonl").records
    pids = [r for r in recs if r["type"] == "step-pid"]
    assert len(pids) == 1 and pids[0]["step"] == "escape" and pids[0]["pid_start"] > 0


def _record(path, run, pid, argv):
    j = Journal(path, run_id=run)
    j.write({"type": "step-start", "step": "helm-istiod", "state": "running", "dry_run": False,
             "argv": argv})
    j.write({"type": "step-pid", "step": "helm-istiod", "pid": pid,
             "pid_start": procs.start_time(pid), "argv": argv})
    j.close()


@pytest.mark.asyncio
async def test_a_live_process_of_an_earlier_run_blocks_the_next_run(tmp_path):
    path = tmp_path / "j.jsonl"
    orphan = subprocess.Popen(["sleep", "300"], start_new_session=True)  # stands in for helm
    try:
        _record(path, "old-run", orphan.pid, ["sleep", "300"])
        later = tmp_path / "ran"
        plan = Plan("t", [Phase("a", "A", [Step("touch", "touch", argv=["touch", str(later)])])])
        runner = Runner(plan, journal=Journal(path))
        with pytest.raises(LeftoverProcess) as e:
            await runner.run()
        assert f"(pid {orphan.pid})" in str(e.value) and "helm-istiod" in str(e.value)
        assert "nothing was changed" in str(e.value) and not later.exists()
        assert plan.step("touch").state is StepState.PENDING
        # Once it has ended, the same run goes ahead.
        orphan.kill()
        orphan.wait()
        assert await runner.run() is True and later.exists()
        runner.journal.close()
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


def test_a_reused_pid_or_another_command_is_not_the_recorded_process(tmp_path):
    path = tmp_path / "j.jsonl"
    other = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        # Same pid, but the journal says it ran helm: a reused pid, not our orphan.
        _record(path, "old", other.pid, ["helm", "upgrade", "--install", "istiod"])
        assert live_recorded(Journal.read(path)) == []
        # Same pid and command, but another start time: also not ours.
        j = Journal(path, run_id="older")
        j.write({"type": "step-pid", "step": "s", "pid": other.pid, "pid_start": 1, "argv": ["sleep", "300"]})
        j.close()
        assert live_recorded(Journal.read(path)) == []
        # Our own run's processes never block it.
        _record(path, "mine", other.pid, ["sleep", "300"])
        assert live_recorded(Journal.read(path), own_run="mine") == []
        assert [p for _s, p, _a in live_recorded(Journal.read(path))] == [other.pid]
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("typed", ["", " ", "\t", "prod", "PROD-EU", "prod-eu ", " prod-eu", "prod-e"])
def test_unlock_confirmation_refuses_empty_blank_prefix_and_wrong_case(typed):
    assert not confirmed(typed, "prod-eu")


def test_unlock_confirmation_phrase_is_never_empty():
    assert confirmed("prod-eu", "prod-eu")
    assert phrase_for("", "https://10.1.2.3:6443") == "10.1.2.3"
    assert phrase_for("  ", "") == LAST_RESORT  # engine/confirm.py: the one rule for every typed confirmation
    assert not confirmed("", phrase_for("", ""))


def _lease(identity, renewed, duration=30):
    return {"metadata": {"resourceVersion": "7", "annotations": {
        "ambient-tui.io/user": "ana", "ambient-tui.io/host": "bastion", "ambient-tui.io/pid": "4242",
        "ambient-tui.io/command": "install", "ambient-tui.io/started": "2026-12-04T19:00:00Z"}},
        "spec": {"holderIdentity": identity, "leaseDurationSeconds": duration,
                 "renewTime": lease.micro_time(renewed), "acquireTime": lease.micro_time(renewed - 60)}}


def test_lease_holder_names_who_and_since_and_expires_from_the_renew_time():
    now = time.time()
    h = lease.holder_of(_lease("ana@bastion/4242/x", now - 10))
    assert (h.user, h.host, h.pid, h.command) == ("ana", "bastion", 4242, "install")
    assert not h.expired(now) and h.expired(now + 21)
    line = str(lease.LockHeld(h, now))
    assert "ana@bastion pid 4242 (install) since 2026-12-04T19:00:00Z" in line and "\n" not in line
    assert lease.holder_of({"metadata": {}, "spec": {"leaseDurationSeconds": 30}}) is None  # released
    assert lease.holder_of(None) is None
