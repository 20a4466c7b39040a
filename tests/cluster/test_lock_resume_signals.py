"""A second operator, a dropped SSH session in the TUI, and resume against a cluster that changed,
on the real control plane with real helm.

- the cluster lock (a coordination.k8s.io Lease): two installs at once as real processes; an
  expired lease taken over and journaled; renewal keeps it past its duration; `unlock` and
  `install --force-unlock` refuse an empty, blank, wrong-case or prefix answer;
- SIGHUP to the real TUI process in a pseudo-terminal (not Pilot) during the istiod step: no
  helm process is left, the journal shows the step interrupted, the lock is free, and the
  restart finishes the install;
- resume trusts the cluster: after an uninstall `install --resume` really installs, and on a
  cluster that lost its state it runs helm-istio-base again and says why.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from istio_cleanup import clean_cluster, sh  # same folder
from test_install_end_to_end import (ENROLL_NS, ROOT, clean_slate, cli, env, helm_rows,  # noqa: F401
                                     install_args, stall_values, start_install, wait_for_pending_istiod)

pytestmark = pytest.mark.cluster
sys.path.insert(0, str(ROOT / "bench"))
from _pty import PtyApp  # noqa: E402

FOUR = ("istio-base", "istiod", "istio-cni", "ztunnel")


@pytest.fixture(autouse=True)
def no_lease(admin_env):
    """Every test starts and ends with no lock lease (a failed test must not lock the next)."""
    sh(admin_env, "kubectl", "delete", "lease", "-n", "kube-system", "ambient-tui-lock", "--ignore-not-found")
    yield
    sh(admin_env, "kubectl", "delete", "lease", "-n", "kube-system", "ambient-tui-lock", "--ignore-not-found")


def lease_json(env) -> dict | None:
    p = sh(env, "kubectl", "get", "lease", "-n", "kube-system", "ambient-tui-lock", "-o", "json", check=False)
    return json.loads(p.stdout) if p.returncode == 0 else None


def context_of(env) -> str:
    return sh(env, "kubectl", "config", "current-context").stdout.strip()


def install_journal(env) -> list[dict]:
    """The install's journal (named after the kube context)."""
    from ambient_tui.engine.journal import Journal, journal_path

    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = env["XDG_STATE_HOME"]
    try:
        return Journal.read(journal_path(context_of(env))).records
    finally:
        if old is None:
            os.environ.pop("XDG_STATE_HOME", None)
        else:
            os.environ["XDG_STATE_HOME"] = old


def deployed(env) -> dict[str, str]:
    return {r["name"]: r["status"] for r in helm_rows(env)}


def kube(env):
    from ambient_tui.cluster.client import load_client

    return load_client(env["KUBECONFIG"].split(os.pathsep)[0], context_of(env))


# -- the lock --------------------------------------------------------------------------------

@pytest.fixture
def gate(admin_env, tmp_path):
    """istiod values whose pod waits until the test opens the gate: the first install then
    holds the lock for as long as the test needs, and finishes once the gate opens.

    The wait must be one that can clear by itself, or preflight refuses the install (the
    `scheduling` check fails a nodeSelector no node has) and the step watcher ends the wait
    (a selector no node has is a permanent cause). So istiod asks for more CPU than filler
    pods bound to every node leave free: "Insufficient cpu" is a preflight warning and a wait
    that keeps going. Deleting the fillers opens the gate."""
    nodes = sh(admin_env, "kubectl", "get", "nodes", "-o", "name").stdout.split()
    for i, node in enumerate(nodes):
        filler = {"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": f"{FILLER}-{i}", "namespace": "default", "labels": {"app": FILLER}},
                  "spec": {"nodeName": node.split("/", 1)[1], "tolerations": [{"operator": "Exists"}],
                           "containers": [{"name": "filler", "image": "registry.k8s.io/pause:3.10",
                                           "resources": {"requests": {"cpu": "3500m"}}}]}}
        spec = tmp_path / f"filler-{i}.json"
        spec.write_text(json.dumps(filler))
        sh(admin_env, "kubectl", "apply", "-f", str(spec))
    first = tmp_path / "first-istiod.yaml"
    first.write_text('resources:\n  requests:\n    cpu: "1"\nenv:\n  AMBIENT_TUI_TEST_RUN: "first"\n')
    second = tmp_path / "second-istiod.yaml"
    second.write_text('resources:\n  requests:\n    cpu: "1"\nenv:\n  AMBIENT_TUI_TEST_RUN: "second"\n')
    yield nodes, first, second
    open_gate(admin_env)


FILLER = "ambient-tui-lock-gate-filler"


def open_gate(env) -> None:
    sh(env, "kubectl", "delete", "pod", "-n", "default", "-l", f"app={FILLER}", "--ignore-not-found",
       "--grace-period=0", "--force", check=False)


def test_two_installs_at_once_the_second_refuses_and_the_first_finishes_untouched(env, tools, gate, tmp_path):
    _, first_values, second_values = gate
    out = tmp_path / "first.out"
    first = start_install(env, tools, first_values, out)
    try:
        wait_for_pending_istiod(env, None, first, out)
        second = cli(env, *install_args(tools, "--values", f"istiod={second_values}"), timeout=300)
        assert second.returncode == 1, second.stdout[-3000:] + second.stderr[-2000:]
        line = next((l for l in second.stderr.splitlines() if "locked by another ambient-tui run" in l), None)
        assert line, second.stdout[-3000:] + second.stderr[-2000:]
        assert f"pid {first.pid} (install) since 20" in line, line
        assert "▶" not in second.stdout  # not one step ran
        # The first run's lease names it and keeps being renewed.
        assert f"/{first.pid}/" in lease_json(env)["spec"]["holderIdentity"]
        open_gate(env)  # istiod has room now
        assert first.wait(timeout=900) == 0, out.read_text()[-4000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    text = out.read_text()
    assert "installed Istio 1.31.0 (ambient)" in text
    assert deployed(env) == {n: "deployed" for n in FOUR}
    history = json.loads(sh(env, "helm", "history", "istiod", "-n", "istio-system", "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1]  # nobody uninstalled and reinstalled it
    values = json.loads(sh(env, "helm", "get", "values", "istiod", "-n", "istio-system", "-o", "json").stdout)
    assert values["env"] == {"AMBIENT_TUI_TEST_RUN": "first"}  # the first run's values, intact
    assert not (lease_json(env) or {}).get("spec", {}).get("holderIdentity")  # released at the end


def test_an_expired_lease_is_taken_over_and_journaled_and_a_live_one_is_not(env, tmp_path):
    from ambient_tui.cluster import lease
    from ambient_tui.engine.journal import Journal

    k = kube(env)
    dead = lease.ClusterLock(k, "install", duration=2).acquire()
    dead._stop.set()  # it stops renewing, as a run killed with SIGKILL on another machine
    dead._thread.join(5)
    journal = Journal(tmp_path / "j.jsonl")
    taker = lease.ClusterLock(k, "install", journal=journal)
    with pytest.raises(lease.LockHeld) as e:
        taker.acquire()  # not expired yet (and its pid, ours, is alive): refused
    assert "locked by another ambient-tui run" in str(e.value)
    time.sleep(2.5)
    taker.acquire()
    try:
        assert lease_json(env)["spec"]["holderIdentity"] == taker.identity
        assert lease_json(env)["spec"]["leaseTransitions"] >= 1
        assert dead.renew() is False and "taken by" in dead.lost
    finally:
        taker.release()
        journal.close()
    rec, = [r for r in Journal.read(tmp_path / "j.jsonl").records if r["type"] == "lock"]
    assert rec["action"] == "takeover" and rec["previous"]["identity"] == dead.identity
    assert "took over the expired lock of" in rec["message"]
    assert not lease_json(env)["spec"].get("holderIdentity")


def test_renewal_keeps_the_lock_alive_past_its_duration(env):
    from ambient_tui.cluster import lease

    k = kube(env)
    held = lease.ClusterLock(k, "install", duration=3).acquire()
    try:
        time.sleep(7.5)  # two and a half durations
        other = lease.ClusterLock(k, "uninstall")
        with pytest.raises(lease.LockHeld):
            other.acquire()
        h = lease.current_holder(k)
        assert h.identity == held.identity and time.time() - h.renewed < 3
    finally:
        held.release()
    other.acquire()  # released: free for the next run at once
    other.release()


def _unlock(env, answer: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ambient_tui.cli", *args], env=env, input=answer,
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_force_unlock_refuses_a_wrong_answer_and_journals_the_right_one(env, tools):
    from ambient_tui.cluster import lease

    k = kube(env)
    ctx = context_of(env)
    held = lease.ClusterLock(k, "install").acquire()
    try:
        for answer in ("\n", "   \n", ctx.upper() + "\n", ctx[:-3] + "\n", ""):
            p = _unlock(env, answer, "unlock")
            assert p.returncode == 1, (answer, p.stdout, p.stderr)
            assert "aborted, the lock is kept" in p.stderr
            assert lease_json(env)["spec"]["holderIdentity"] == held.identity
        p = _unlock(env, "\n", *install_args(tools), "--force-unlock")
        assert p.returncode == 1 and "aborted, the lock is kept" in p.stderr
        assert "preflight" not in p.stdout and deployed(env) == {}  # refused before anything
        p = _unlock(env, ctx + "\n", "unlock")
        assert p.returncode == 0, p.stdout + p.stderr
        assert f"held by {held.user}@{held.host} pid {held.pid} (install)" in p.stdout
        assert not lease_json(env)["spec"].get("holderIdentity")
        assert held.renew() is False and "released by someone else" in held.lost
    finally:
        held.release()
    rec, = [r for r in install_journal(env) if r["type"] == "lock"]
    assert rec["action"] == "force-unlock" and rec["previous"]["identity"] == held.identity


# -- SIGHUP to the real TUI ------------------------------------------------------------------

def _ours(env) -> list[int]:
    """Processes started from this test's environment (its unique state directory) that run helm."""
    mark = f"XDG_STATE_HOME={env['XDG_STATE_HOME']}".encode()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if mark not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{d}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"helm":
            out.append(int(d))
    return out


def test_sighup_to_the_tui_in_a_pty_cancels_helm_journals_releases_and_restart_finishes(
        env, tools, stall_values, tmp_path):
    tui_env = {**env, "XDG_CONFIG_HOME": str(tmp_path / "config"), "TERM": "xterm-256color"}
    gw = Path(tools.gateway_api) / "experimental-install.yaml"
    argv = [sys.executable, "-m", "ambient_tui.cli", "--istio-version", "1.31.0", "--charts", str(tools.charts),
            "--gateway-api-file", str(gw), "--values", f"istiod={stall_values}"]
    app = PtyApp(argv, tui_env, str(ROOT), cols=120, rows=40)
    try:
        assert app.wait_for(b"istiod", 0, 120), app.text_since(0)[-2000:]
        time.sleep(1.0)
        deadline = time.monotonic() + 600
        pressed = 0.0
        while True:
            recs = install_journal(env)
            started = any(r.get("type") == "step-start" and r.get("step") == "helm-istiod" for r in recs)
            if started and "istiod" in sh(env, "helm", "list", "-A", "--pending", "-q").stdout.split():
                break
            assert app.alive(), app.text_since(0)[-3000:]
            assert time.monotonic() < deadline, "helm-istiod never started from the TUI"
            if not any(r.get("type") == "plan" for r in recs) and time.monotonic() - pressed > 15:
                app.send(b"r")  # again after 15 s: the first r may only acknowledge preflight warnings
                pressed = time.monotonic()
            time.sleep(0.5)
        helm = _ours(env)
        assert helm, "no helm process while helm-istiod runs"
        assert (lease_json(env) or {}).get("spec", {}).get("holderIdentity"), (  # the TUI's run holds the lock
            [r for r in install_journal(env) if r.get("type") in ("lock", "plan", "run-start")],
            app.text_since(0)[-3000:])
        os.kill(app.pid, signal.SIGHUP)  # what the kernel does when sshd closes the pty
        app.proc.wait(timeout=60)
        assert app.proc.returncode == 1, (app.proc.returncode, app.text_since(0)[-3000:])
    finally:
        app.stop()
    deadline = time.monotonic() + 10
    while _ours(env) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _ours(env) == []  # helm went with the step, nothing orphaned
    recs = install_journal(env)
    ends = [r for r in recs if r.get("type") == "step-end" and r.get("step") == "helm-istiod"]
    assert ends and ends[-1]["state"] == "cancelled" and ends[-1]["message"] == "interrupted by SIGHUP"
    pids = [r["pid"] for r in recs if r.get("type") == "step-pid" and r.get("step") == "helm-istiod"]
    assert pids and all(not os.path.exists(f"/proc/{p}") or _zombie(p) for p in pids)
    assert not (lease_json(env) or {}).get("spec", {}).get("holderIdentity")  # released

    again = cli(env, *install_args(tools))
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-2000:]
    assert "interrupted by SIGHUP" in again.stdout
    assert "continuing the interrupted run; already done: helm-istio-base" in again.stdout, \
        [l for l in again.stdout.splitlines() if l.startswith("!")]
    assert deployed(env) == {n: "deployed" for n in FOUR}


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# -- resume trusts the cluster -----------------------------------------------------------------

def test_install_uninstall_then_resume_really_installs(env, tools):
    first = cli(env, *install_args(tools))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    gone = cli(env, "uninstall", "--yes")
    assert gone.returncode == 0, gone.stdout[-3000:] + gone.stderr[-2000:]
    assert deployed(env) == {}
    assert any(r.get("type") == "uninstall" for r in install_journal(env))  # the install's file too
    again = cli(env, *install_args(tools, "--resume"))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    assert "already done" not in again.stdout
    assert "▶ helm: istio-base" in again.stdout
    assert deployed(env) == {n: "deployed" for n in FOUR}  # really installed, not a false success


def test_resume_on_a_cluster_that_lost_its_state_runs_base_again_and_says_why(env, admin_env, tools):
    first = cli(env, *install_args(tools))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    clean_cluster(admin_env, [ENROLL_NS])  # the releases, their secrets, istio-system and the CRDs go
    again = cli(env, *install_args(tools, "--resume"))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    assert "! run again helm-istio-base: release istio-base is not in the cluster any more" in again.stdout
    assert "Gateway API CRDs missing" in again.stdout
    assert "▶ helm: istio-base" in again.stdout
    assert deployed(env) == {n: "deployed" for n in FOUR}
    reasons = [r for r in install_journal(env) if r.get("type") == "resume"]
    assert {r["step"] for r in reasons if not r["skip"]} >= {"helm-istio-base", "gateway-api-crds"}


@pytest.mark.asyncio
async def test_the_tui_names_another_holder_in_its_header_and_refuses_to_run(env, tmp_path, monkeypatch):
    import asyncio

    from ambient_tui.cluster import lease
    from ambient_tui.engine import Phase, Plan, Step, StepState
    from ambient_tui.engine.journal import Journal
    from ambient_tui.engine.runner import Runner
    from screens import app as app_mod

    monkeypatch.setattr(app_mod, "LOCK_POLL", 0.5)
    k = kube(env)
    other = lease.ClusterLock(k, "uninstall").acquire()  # a teammate's run
    marker = tmp_path / "ran"
    plan = Plan("t", [Phase("a", "A", [Step("touch", "touch", argv=["touch", str(marker)])])])
    runner = Runner(plan, journal=Journal(tmp_path / "j.jsonl"))
    app = app_mod.AmbientApp(plan, runner, context="t", keymap_path=tmp_path / "none.yaml",
                             lock_client=lambda: k)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(100):
                if app.lock_holder:
                    break
                await asyncio.sleep(0.1)
            assert f"LOCKED by {other.user}@{other.host} (uninstall)" in app.sub_title
            await pilot.press("r")
            for _ in range(100):
                if not app.screen.running:
                    break
                await asyncio.sleep(0.1)
            await pilot.pause(0.3)
            assert not marker.exists() and plan.step("touch").state is StepState.PENDING
            assert isinstance(app.screen._worker.error, lease.LockHeld)
            # Released by its holder: the header clears and the run goes ahead, holding the lock.
            other.release()
            for _ in range(100):
                if not app.lock_holder:
                    break
                await asyncio.sleep(0.1)
            assert "LOCKED" not in app.sub_title
            await pilot.press("r")
            for _ in range(100):
                if marker.exists() and not app.screen.running:
                    break
                await asyncio.sleep(0.1)
            assert plan.step("touch").state is StepState.SUCCEEDED
            assert not lease.current_holder(k)  # released after the run
            await pilot.press("q")
    finally:
        other.release()
        runner.journal.close()
