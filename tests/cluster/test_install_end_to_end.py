"""The headless install end to end on the real control plane: a dropped terminal (SIGHUP, and
a hard kill) and the repair on the next start, the vpc-cni fix as the plan's first phase, bad
inputs that must never start an install, and the istioctl method with enrolment.

Every test starts from and leaves a cluster with no Istio release, istioctl install, Istio or
Gateway API CRD, or Istio namespace (the autouse `clean_slate` fixture): the cluster tier
shares one control plane and runs files in name order. End states are read from the API or
from helm, not from the command's own output.
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

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).parents[2]
MODE = "POD_SECURITY_GROUP_ENFORCING_MODE"
ENROLL_NS = "e2e-enrolled"


def helm_rows(env) -> list[dict]:
    return json.loads(sh(env, "helm", "list", "-A", "-a", "-o", "json").stdout or "[]")


@pytest.fixture
def env(admin_env, tmp_path):
    """The admin environment with a fresh journal directory per test."""
    return {**admin_env, "XDG_STATE_HOME": str(tmp_path / "state")}


@pytest.fixture(autouse=True)
def clean_slate(admin_env, control_plane):
    clean_cluster(admin_env, [ENROLL_NS])
    yield
    clean_cluster(admin_env, [ENROLL_NS])


def cli(env, *args, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ambient_tui.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL)


def install_args(tools, *extra) -> list[str]:
    gw = Path(tools.gateway_api) / "experimental-install.yaml"
    return ["install", "--yes", "--istio-version", "1.31.0", "--charts", str(tools.charts),
            "--gateway-api-file", str(gw), *extra]


def journal_records(env, control_plane) -> list[dict]:
    """Records of this test's journal (one cluster, one fresh state directory per test)."""
    from ambient_tui.engine.journal import Journal

    files = sorted((Path(env["XDG_STATE_HOME"]) / "ambient-tui" / "journal").glob("*.jsonl"))
    assert len(files) <= 1, files
    return Journal.read(files[0]).records if files else []


def all_deployed(env) -> dict[str, str]:
    return {r["name"]: r["status"] for r in helm_rows(env)}


@pytest.fixture
def stall_values(tmp_path) -> Path:
    """istiod values whose pod cannot be scheduled now, so `helm --wait` keeps the release
    pending: on kwok every schedulable pod is Ready within a second, too fast to interrupt."""
    f = tmp_path / "stall-istiod.yaml"
    # No room on any node: a wait that can clear (a node may be added), so the step watcher
    # (watch/diagnose.py) shows it and keeps waiting; a selector no node has would end it.
    f.write_text('resources:\n  requests:\n    cpu: "64"\n')
    return f


def start_install(env, tools, values: Path, out: Path) -> subprocess.Popen:
    # Its own session, like an app started from an SSH login shell.
    with open(out, "w") as fh:
        return subprocess.Popen([sys.executable, "-m", "ambient_tui.cli",
                                 *install_args(tools, "--values", f"istiod={values}")],
                                env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=ROOT, start_new_session=True)


def wait_for_pending_istiod(env, control_plane, proc, out: Path) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert proc.poll() is None, out.read_text()[-3000:]
        started = any(r.get("type") == "step-start" and r.get("step") == "helm-istiod"
                      for r in journal_records(env, control_plane))
        pending = sh(env, "helm", "list", "-A", "--pending", "-q").stdout.split()
        if started and "istiod" in pending:
            return
        time.sleep(0.5)
    raise AssertionError("istiod never showed as pending: " + out.read_text()[-3000:])


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def test_sighup_during_helm_then_next_start_repairs_and_continues(env, tools, control_plane, stall_values,
                                                                  tmp_path):
    out = tmp_path / "first.out"
    proc = start_install(env, tools, stall_values, out)
    wait_for_pending_istiod(env, control_plane, proc, out)
    proc.send_signal(signal.SIGHUP)  # what sshd does to the session when the connection drops
    assert proc.wait(timeout=120) == 1
    first = out.read_text()
    assert "interrupted by SIGHUP during helm-istiod" in first, first[-3000:]
    ends = [r for r in journal_records(env, control_plane) if r.get("type") == "step-end"]
    assert ends[-1]["step"] == "helm-istiod" and ends[-1]["state"] == "cancelled"
    assert ends[-1]["message"] == "interrupted by SIGHUP"
    # helm got SIGTERM from the runner's cancel and recorded the release failed itself
    # ("context canceled"), rather than leaving it pending.
    assert all_deployed(env)["istiod"] == "failed"

    again = cli(env, *install_args(tools))
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-2000:]
    assert "the last run was interrupted: step helm-istiod" in again.stdout
    assert "interrupted by SIGHUP" in again.stdout
    assert "release istio-system/istiod is failed at revision 1 (interrupted step helm-istiod)" in again.stdout
    assert "already done: helm-istio-base" in again.stdout  # continued, not started over
    assert all_deployed(env) == {n: "deployed" for n in ("istio-base", "istiod", "istio-cni", "ztunnel")}


def hard_kill_during_istiod(env, tools, control_plane, stall_values, tmp_path) -> None:
    """Start a headless install, and kill it and its helm the moment istiod is pending."""
    out = tmp_path / "first.out"
    proc = start_install(env, tools, stall_values, out)
    wait_for_pending_istiod(env, control_plane, proc, out)
    # The whole session dies at once (kill -9, a reboot): the app cannot catch it, and helm,
    # in its own process group, is killed too. Only processes this test started are signalled.
    helm = children(proc.pid)
    assert helm, "the install has no child process while helm-istiod runs"
    proc.kill()
    proc.wait(timeout=60)
    for pid in helm:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(_running(p) for p in helm):
        time.sleep(0.2)
    rows = {r["name"]: r for r in helm_rows(env)}
    assert rows["istiod"]["status"] == "pending-install", rows
    ends = {r["step"] for r in journal_records(env, control_plane) if r.get("type") == "step-end"}
    assert "helm-istiod" not in ends  # a start without an end: the journal shows the kill


def test_hard_kill_leaves_pending_install_and_next_start_uninstalls_and_retries(env, tools, control_plane,
                                                                                stall_values, tmp_path):
    # pending-install (not pending-upgrade) keeps this test to one and a half installs: kwok
    # nodes on a loaded machine can miss heartbeats, and every --wait is exposed to that.
    # The rollback path (pending-upgrade) is covered by tests/unit/test_repair.py.
    hard_kill_during_istiod(env, tools, control_plane, stall_values, tmp_path)

    again = cli(env, *install_args(tools))
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-2000:]
    assert "step helm-istiod of run" in again.stdout and "started and never ended" in again.stdout
    assert ("release istio-system/istiod is pending-install at revision 1 (interrupted step helm-istiod): "
            "no deployed revision to roll back to: uninstall it, then install again") in again.stdout
    assert "▶ repair: uninstall istiod (pending-install) before retrying" in again.stdout
    assert all_deployed(env) == {n: "deployed" for n in ("istio-base", "istiod", "istio-cni", "ztunnel")}
    history = json.loads(sh(env, "helm", "history", "istiod", "-n", "istio-system", "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1]  # a fresh install after the uninstall


async def wait_until(predicate, timeout: float, what: str) -> None:
    import asyncio

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.mark.asyncio
async def test_tui_after_a_hard_kill_shows_the_interrupted_step_repairs_and_continues(
        env, tools, control_plane, kubeconfig, stall_values, tmp_path, monkeypatch):
    from ambient_tui.checks.model import CheckContext
    from ambient_tui.engine.journal import Journal
    from ambient_tui.engine.plan import StepState
    from ambient_tui.engine.runner import Runner
    from ambient_tui.plans.install_session import InstallSession
    from ambient_tui.settings import Settings
    from screens.app import AmbientApp

    hard_kill_during_istiod(env, tools, control_plane, stall_values, tmp_path)
    journal_file, = (Path(env["XDG_STATE_HOME"]) / "ambient-tui" / "journal").glob("*.jsonl")
    for k, v in env.items():  # the in-process checks (boto3) read the process environment
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    settings = Settings(istio_version="1.31.0", chart_source=str(tools.charts),
                        gateway_api_file=str(Path(tools.gateway_api) / "experimental-install.yaml"))
    # The same install session as `install` decides the plan once preflight has read the cluster.
    session = InstallSession(settings, kubeconfig=str(kubeconfig), env=env)
    plan = session.initial_plan()
    runner = Runner(plan, journal=Journal(journal_file), env=env)  # the same cluster journal
    app = AmbientApp(plan, runner, context=journal_file.stem, istio_version="1.31.0",
                     keymap_path=tmp_path / "none.yaml", kubeconfig=str(kubeconfig), install_session=session,
                     check_context_factory=lambda: CheckContext(settings, kubeconfig=str(kubeconfig),
                                                                env=env))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_until(lambda: plan.phases[0].id == "repair", 300, "the repair phase")
        await pilot.pause(0.3)
        assert [s.id for s in plan.phases[0].steps] == ["repair-istiod"]
        notes = screen.buffers.lines("repair-istiod")
        assert any("step helm-istiod of run" in n and "started and never ended" in n for n in notes), notes
        assert any("istio-system/istiod is pending-install" in n for n in notes), notes
        # The interrupted run continues: what it finished stays done; nothing has run yet.
        assert plan.step("helm-istio-base").state is StepState.SUCCEEDED
        assert plan.step("repair-istiod").state is StepState.PENDING
        assert all_deployed(env)["istiod"] == "pending-install"

        await pilot.press("r")  # the existing-istio failure is what the repair covers: no warning
        await wait_until(lambda: screen._worker is not None, 10, "the run to start")
        await wait_until(lambda: not screen.running, 1500, "the plan to finish")
        states = {s.id: s.state.value for s in plan.steps}
        assert all(s.state.done for s in plan.steps), states
        await pilot.press("q")
    assert all_deployed(env) == {n: "deployed" for n in ("istio-base", "istiod", "istio-cni", "ztunnel")}
    history = json.loads(sh(env, "helm", "history", "istiod", "-n", "istio-system", "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1]  # uninstalled, then a fresh install


# -- the vpc-cni fix as the first phase ------------------------------------------------------

@pytest.fixture
def strict_sg(control_plane):
    control_plane.set_aws_node_env(ENABLE_POD_ENI="true", **{MODE: "strict"})
    control_plane.api().request(
        "DELETE", "/apis/vpcresources.k8s.aws/v1beta1/namespaces/default/securitygrouppolicies/sgp-e2e")
    control_plane.create_security_group_policy("default", "sgp-e2e", ["sg-0123456789abcdef0"], {"app": "payments"})
    yield control_plane
    control_plane.set_aws_node_env(ENABLE_POD_ENI="false", **{MODE: "standard"})
    control_plane.api().request(
        "DELETE", "/apis/vpcresources.k8s.aws/v1beta1/namespaces/default/securitygrouppolicies/sgp-e2e")


def test_strict_mode_blocks_install_then_fix_patches_aws_node_and_installs(env, tools, control_plane, strict_sg):
    # Without AWS configuration the add-on cannot be seen, so the fix takes the self-managed
    # path: the DaemonSet env. 1.28.6 has no branch-ENI probe fix, so strict mode is a failure
    # (the charts are the built 1.31.0 ones: the only charts on loopback).
    no_aws = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    args = install_args(tools)
    args[args.index("1.31.0")] = "1.28.6"
    refused = cli(no_aws, *args)
    assert refused.returncode == 1 and "vpc-cni" in refused.stderr and "pass --fix" in refused.stderr
    assert helm_rows(env) == [] and strict_sg.aws_node_env()[MODE] == "strict"

    p = cli(no_aws, *args, "--fix")
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert strict_sg.aws_node_env()[MODE] == "standard"  # read back through the API
    assert p.stdout.index("▶ aws-node: POD_SECURITY_GROUP_ENFORCING_MODE=standard") < p.stdout.index("▶ helm: istio-base")
    starts = [r["step"] for r in journal_records(env, control_plane) if r.get("type") == "step-start"]
    assert starts[:3] == ["fix-sg-enforcing-mode", "list-pods-to-restart", "helm-istio-base"]
    assert all_deployed(env) == {n: "deployed" for n in ("istio-base", "istiod", "istio-cni", "ztunnel")}


# -- bad inputs: a clear message, a non-zero exit, nothing installed -------------------------

def test_kubernetes_version_out_of_range_is_refused(env, tools):
    args = install_args(tools)
    args[args.index("1.31.0")] = "1.27.9"  # Kubernetes 1.29-1.33; the control plane is 1.34
    p = cli(env, *args)
    assert p.returncode == 1 and "kubernetes-version" in p.stderr and "nothing was installed" in p.stderr
    assert "server v1.34.4; Istio 1.27.9 supports Kubernetes 1.29-1.33" in p.stdout
    assert "choose an Istio release that supports v1.34.4: 1.28, 1.29, 1.30, 1.31" in p.stdout
    assert helm_rows(env) == []


def test_helm_too_old_is_refused(env, tools, tmp_path):
    stub_dir = tmp_path / "stub-bin"
    stub_dir.mkdir()
    stub = stub_dir / "helm"  # a stub helm that only prints an old version
    stub.write_text("#!/bin/sh\necho v3.5.4\n")
    stub.chmod(0o755)
    p = cli({**env, "PATH": f"{stub_dir}:{env['PATH']}"}, *install_args(tools))
    assert p.returncode == 1 and "helm" in p.stderr and "nothing was installed" in p.stderr
    assert f"helm 3.5.4 at {stub}; helm >= 3.6 is needed" in p.stdout
    assert "fix: install helm >= 3.6" in p.stdout
    assert helm_rows(env) == []  # the real helm


def test_istioctl_minor_mismatch_refuses_the_istioctl_method(env, tools):
    p = cli(env, "install", "--yes", "--method", "istioctl", "--istio-version", "1.30.0",
            "--gateway-api-file", str(Path(tools.gateway_api) / "experimental-install.yaml"))
    assert p.returncode == 1 and "istioctl" in p.stderr and "nothing was installed" in p.stderr
    assert "istioctl 1.31.0" in p.stdout and "the minor versions differ" in p.stdout
    assert "ISTIO_VERSION=1.30.0" in p.stdout  # what to do next
    assert helm_rows(env) == []
    assert sh(env, "kubectl", "get", "namespace", "istio-system", check=False).returncode != 0


# -- the istioctl method, with enrolment -----------------------------------------------------

def test_istioctl_method_installs_and_enrols(env, tools, control_plane, kubeconfig):
    from ambient_tui.cluster.client import load_client

    sh(env, "kubectl", "create", "namespace", ENROLL_NS)
    p = cli(env, "install", "--yes", "--method", "istioctl", "--istio-version", "1.31.0", "--enroll", ENROLL_NS,
            "--gateway-api-file", str(Path(tools.gateway_api) / "experimental-install.yaml"), timeout=1200)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    kube = load_client(str(kubeconfig))
    ns = kube.get_namespace(ENROLL_NS)
    assert (ns.metadata.labels or {}).get("istio.io/dataplane-mode") == "ambient"
    for kind, name in (("deployment", "istiod"), ("daemonset", "ztunnel"), ("daemonset", "istio-cni-node")):
        assert sh(env, "kubectl", "get", kind, name, "-n", "istio-system", check=False).returncode == 0, name
    recs = journal_records(env, control_plane)
    starts = {r["step"]: r for r in recs if r.get("type") == "step-start"}
    ends = {r["step"]: r for r in recs if r.get("type") == "step-end"}
    assert starts["istioctl-install"]["argv"][-4:] == ["install", "--set", "profile=ambient", "--skip-confirmation"]
    # The post-check is issued for real; on kwok no ztunnel answers, so it may only warn.
    step = f"ztunnel-workloads-{ENROLL_NS}"
    assert starts[step]["argv"][-4:] == ["ztunnel-config", "workloads", "--workload-namespace", ENROLL_NS]
    assert ends[step]["state"] in ("succeeded", "warned")
