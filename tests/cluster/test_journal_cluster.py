"""Issue 15 against the real sandbox: a state path that cannot hold the journal stops the
install before anything changes; bad input is refused before the preflight; `pods -A` with no
terminal prints a table of the real pods instead of waiting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]
ROOT = Path(__file__).parents[2]


def cli(env, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "ambient_tui.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=ROOT)


def releases(env, tools) -> list[str]:
    out = subprocess.run([tools.helm, "list", "-A", "-a", "-o", "json"], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return sorted(r["name"] for r in json.loads(out))


@pytest.mark.parametrize("shape", ["file-as-state-dir", "dir-as-journal"])
def test_unusable_state_path_stops_install_before_any_change(admin_env, tools, control_plane, tmp_path, shape,
                                                             monkeypatch):
    from ambient_tui.engine.journal import journal_path

    state = tmp_path / "state"
    if shape == "file-as-state-dir":
        state.write_text("")
    else:  # a directory where the journal file should be
        monkeypatch.setenv("XDG_STATE_HOME", str(state))
        journal_path(control_plane.admin_context).mkdir(parents=True)
    env = {**admin_env, "XDG_STATE_HOME": str(state)}
    gw = Path(tools.gateway_api) / "experimental-install.yaml"
    p = cli(env, "install", "--yes", "--istio-version", "1.31.0", "--charts", str(tools.charts),
            "--gateway-api-file", str(gw))
    assert p.returncode == 2, p.stdout[-3000:] + p.stderr[-3000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("ambient-tui: nothing was changed: ") and "set XDG_STATE_HOME" in last, p.stderr
    assert "Traceback" not in p.stderr
    assert "▶" not in p.stdout  # no step started
    if shape == "file-as-state-dir":
        # The state dir also holds the pinned target's kubeconfig: checked before the preflight,
        # so this is the one line, not a cluster-access failure.
        assert "preflight for" not in p.stdout and "cluster-access" not in p.stdout + p.stderr, p.stdout
    assert releases(admin_env, tools) == []


def test_bad_namespace_is_refused_before_the_preflight(admin_env, tmp_path):
    env = {**admin_env, "XDG_STATE_HOME": str(tmp_path)}
    p = cli(env, "install", "--dry-run", "--enroll", "BAD NS")
    assert p.returncode == 2 and p.stdout == "", p.stdout + p.stderr
    assert p.stderr.strip().splitlines() == [
        "ambient-tui: --enroll 'BAD NS': not a valid namespace name (lower-case letters, digits and '-', "
        "starting and ending with a letter or digit, at most 63 characters)"]


def test_pods_without_a_terminal_prints_the_real_pods(admin_env, control_plane):
    p = cli(admin_env, "pods", "-A", timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAMESPACE", "NAME", "READY"]
    assert any(l.split()[0] == "kube-system" and l.split()[1].startswith("aws-node") for l in lines[1:]), p.stdout


def test_full_disk_real_tmpfs_stops_install_before_any_change(admin_env, tools, tmp_path):
    """XDG_STATE_HOME on a 64k tmpfs filled to the last byte (a private mount namespace; the
    tier runs as root): one line naming the full disk, exit 2, nothing installed."""
    import os
    import shutil

    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.fail("needs root and unshare(1) to mount a small tmpfs")
    mnt = tmp_path / "state"
    mnt.mkdir()
    gw = Path(tools.gateway_api) / "experimental-install.yaml"
    install = " ".join([sys.executable, "-m", "ambient_tui.cli", "install", "--yes", "--istio-version",
                        "1.31.0", "--charts", str(tools.charts), "--gateway-api-file", str(gw)])
    script = (f"mount -t tmpfs -o size=64k tmpfs {mnt} && "
              f"(dd if=/dev/zero of={mnt}/filler bs=1k 2>/dev/null; true) && exec {install}")
    p = subprocess.run(["unshare", "--mount", "--", "sh", "-c", script], env={**admin_env, "XDG_STATE_HOME": str(mnt)},
                       capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, cwd=ROOT)
    assert p.returncode == 2, p.stdout[-3000:] + p.stderr[-3000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("ambient-tui: nothing was changed: the disk holding the journal") and "is full" in last
    assert "set XDG_STATE_HOME" in last, last
    assert "Traceback" not in p.stderr and "▶" not in p.stdout
    # Checked before the preflight (which writes the pinned target there first).
    assert "preflight for" not in p.stdout and "cluster-access" not in p.stdout + p.stderr, p.stdout
    assert releases(admin_env, tools) == []
