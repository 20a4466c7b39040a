"""`sandbox up` on a sandbox with one dead component starts that one again (issue 15, item 9).

Its own control plane (not the session one: a component is killed here), the real processes,
and the real `sandbox up` command."""

from __future__ import annotations

import os
import signal
import time

import pytest

from ambient_tui.cli import main
from ambient_tui.sandbox.control_plane import ControlPlane, SandboxError

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]


def test_up_restarts_only_the_dead_component(tmp_path, capsys):
    state = tmp_path / "sb"
    cp = ControlPlane(state_dir=state, name="restart-test", with_aws=False)
    try:
        cp.start(timeout=180)
        before = cp.status().running
        victim = before["kube-scheduler"]
        os.killpg(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while cp.status().running["kube-scheduler"] is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not cp.status().up and cp.status().running["kube-scheduler"] is None

        assert main(["sandbox", "up", "--state-dir", str(state), "--name", "restart-test",
                     "--no-aws", "--no-build", "--timeout", "180"]) == 0
        out = capsys.readouterr().out
        assert "is up again" in out and "(restarted: kube-scheduler)" in out, out
        after = ControlPlane(state_dir=state, name="restart-test").status()
        assert after.up
        assert after.running["kube-scheduler"] != victim
        for comp in ("etcd", "kube-apiserver", "kube-controller-manager", "kwok"):
            assert after.running[comp] == before[comp], comp  # untouched
        code, _ = cp.api().request("GET", "/readyz", timeout=5)
        assert code == 200
    finally:
        ControlPlane(state_dir=state, name="restart-test").stop(quiet=True)


def test_restart_dead_refuses_when_nothing_runs(tmp_path):
    cp = ControlPlane(state_dir=tmp_path / "none", name="nothing")
    assert cp.restart_dead() == []  # no state at all: nothing to restart
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "state.json").write_text('{"ports": {"etcd": 1}}')
    (tmp_path / "none" / "pids").mkdir()
    with pytest.raises(SandboxError, match="nothing of the sandbox"):
        ControlPlane(state_dir=tmp_path / "none", name="nothing").restart_dead()
