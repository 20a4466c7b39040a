"""SIGHUP/SIGTERM during a step (the SSH session dropped): the step's process group is ended,
the journal says why, and no later step starts."""

import asyncio
import os
import signal

import pytest

from ambient_tui.engine import Phase, Plan, Step, StepState
from ambient_tui.engine.events import EventKind
from ambient_tui.engine.journal import Journal
from ambient_tui.engine.runner import Runner


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (killed, not yet reaped by init) is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.asyncio
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
async def test_signal_cancels_the_running_step_and_journals_it(tmp_path, sig):
    pidfile = tmp_path / "child.pid"
    later = tmp_path / "later-ran"
    plan = Plan("t", [
        Phase("a", "A", [Step("long", "long", argv=["sh", "-c", f"sleep 300 & echo $! > {pidfile}; echo up; wait"])]),
        Phase("b", "B", [Step("later", "later", argv=["touch", str(later)])]),
    ])
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    runner = Runner(plan, journal=journal)

    def on_event(ev):
        if ev.kind is EventKind.OUTPUT and ev.line == "up":
            os.kill(os.getpid(), sig)  # what the terminal (or a kill) does to the app
    runner.subscribe(on_event)
    ok = await runner.run_interruptible()
    journal.close()
    assert ok is False
    assert runner.interrupted == f"interrupted by {sig.name}"
    assert plan.step("long").state is StepState.CANCELLED
    assert plan.step("later").state is StepState.PENDING and not later.exists()
    child = int(pidfile.read_text())
    for _ in range(50):  # the kernel delivers SIGKILL to the group asynchronously
        if not _alive(child):
            break
        await asyncio.sleep(0.1)
    assert not _alive(child)  # the step's child went with its group
    ends = [r for r in Journal.read(path).records if r["type"] == "step-end"]
    assert [(r["step"], r["state"], r["message"]) for r in ends] == [
        ("long", "cancelled", f"interrupted by {sig.name}")]
    # The handler is removed afterwards (remove_signal_handler says whether one was there).
    assert asyncio.get_running_loop().remove_signal_handler(sig) is False


@pytest.mark.asyncio
async def test_without_a_signal_the_run_is_unchanged():
    plan = Plan("t", [Phase("a", "A", [Step("ok", "ok", argv=["true"])])])
    runner = Runner(plan)
    assert await runner.run_interruptible() is True and runner.interrupted is None
