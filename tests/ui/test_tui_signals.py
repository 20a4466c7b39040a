"""SIGHUP, SIGTERM and SIGINT to the real TUI process in a pseudo-terminal (not Pilot), and the
terminal closing under it (what sshd does when the connection drops): the running step's
process group is ended, the step is journaled as interrupted, no later step starts, and the
app exits 1. The plan runs a local shell step (the cluster tier does the same with helm)."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from _pty import PtyApp  # noqa: E402

APP = textwrap.dedent('''
    import sys
    from pathlib import Path
    from ambient_tui.engine import Phase, Plan, Step
    from ambient_tui.engine.journal import Journal
    from ambient_tui.engine.runner import Runner
    from screens.app import AmbientApp
    tmp = Path(sys.argv[1])
    long = f"sleep 300 & echo $! > {tmp}/child.pid; echo up; wait"
    plan = Plan("t", [Phase("a", "A", [Step("long", "long step", argv=["sh", "-c", long])]),
                      Phase("b", "B", [Step("later", "later", argv=["touch", str(tmp / "later")])])])
    app = AmbientApp(plan, Runner(plan, journal=Journal(tmp / "j.jsonl")), context="t",
                     keymap_path=tmp / "none.yaml")
    sys.exit(app.run() or 0)
''')


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("how", ["SIGHUP", "SIGTERM", "SIGINT", "terminal closed"])
def test_a_signal_to_the_tui_cancels_the_step_group_journals_it_and_exits(tmp_path, how):
    script = tmp_path / "app.py"
    script.write_text(APP)
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "TERM": "xterm-256color",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    app = PtyApp([sys.executable, str(script), str(tmp_path)], env, str(ROOT), 100, 30)
    try:
        assert app.wait_for(b"long step", 0, 60), app.text_since(0)[-2000:]
        time.sleep(0.5)
        app.send(b"r")
        pidfile = tmp_path / "child.pid"
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and pidfile.read_text().strip()):
            assert time.monotonic() < deadline and app.alive(), app.text_since(0)[-2000:]
            time.sleep(0.05)
        child = int(pidfile.read_text())
        assert _alive(child)
        if how == "terminal closed":
            os.close(app.master)  # the kernel hangs up the session: SIGHUP, and no terminal left
            reason = "interrupted by SIGHUP"
        else:
            os.kill(app.pid, getattr(signal, how))
            reason = f"interrupted by {how}"
        assert app.proc.wait(timeout=40) == 1
    finally:
        app.stop()
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)  # the step's child went with its group
    recs = [json.loads(line) for line in (tmp_path / "j.jsonl").read_text().splitlines()]
    ends = [(r["step"], r["state"], r["message"]) for r in recs if r["type"] == "step-end"]
    assert ends == [("long", "cancelled", reason)]
    assert not (tmp_path / "later").exists()
