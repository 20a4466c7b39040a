"""When the install goes wrong, the cause comes in seconds: each fault made with the same
`ambient-tui sandbox fault` command a person uses, on the real control plane (real scheduler,
Pod Security admission, quota, LimitRange; kwok Stages for what a kubelet reports).

Each test: preflight names the cause where it can be predicted; the headless install (--force
past preflight) fails fast with that cause and a next step, because the step watcher ends
helm's or kubectl's wait (helm keeps its own --timeout 10m; nothing here shortens it: the
subprocess timeout of 300 s is half of it); after the fault is removed (or fixed as the tool
said), the next run finishes. Every test starts from and leaves a clean cluster and no fault.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from istio_cleanup import clean_cluster, sh  # same folder

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).parents[2]


def cli(env, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ambient_tui.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL)


@pytest.fixture
def env(admin_env, tmp_path):
    return {**admin_env, "XDG_STATE_HOME": str(tmp_path / "state")}


@pytest.fixture
def fault(env, control_plane):
    """fault(NAME, selector=None): made through the CLI; every fault cleared afterwards."""
    sd = str(control_plane.state_dir)

    def add(name: str, selector: str | None = None) -> str:
        p = cli(env, "sandbox", "fault", "add", name, "--state-dir", sd,
                *(["--selector", selector] if selector else []))
        assert p.returncode == 0, p.stderr
        return p.stdout

    def clear() -> str:
        p = cli(env, "sandbox", "fault", "clear", "--state-dir", sd)
        assert p.returncode == 0, p.stderr
        return p.stdout
    add.clear = clear
    clean_cluster(env)
    yield add
    clear()
    clean_cluster(env)


def install(env, tools, *extra, timeout=300) -> tuple[subprocess.CompletedProcess, float]:
    gw = Path(tools.gateway_api) / "experimental-install.yaml"
    t0 = time.monotonic()
    p = cli(env, "install", "--yes", "--istio-version", "1.31.0", "--charts", str(tools.charts),
            "--gateway-api-file", str(gw), *extra, timeout=timeout)
    return p, time.monotonic() - t0


def check_line(out: str, check_id: str) -> str:
    return next((line for line in out.splitlines() if f" {check_id} " in line[:30]), "")


def failed_line(out: str, step: str) -> str:
    """The step's failure line with its indented continuation (a values snippet)."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"✘ {step} failed"):
            more = []
            for nxt in lines[i + 1:]:
                if not nxt.startswith("    "):
                    break
                more.append(nxt.strip())
            return "\n".join([line, *more])
    return ""


def assert_fast_failure(p, step: str, *words: str) -> str:
    assert p.returncode == 1, p.stdout[-3000:] + p.stderr[-2000:]
    line = failed_line(p.stdout, step)
    assert line, p.stdout[-3000:]
    for w in words:
        assert w in line, line
    assert "next:" in line, line  # what to do next comes with the cause
    assert "context deadline exceeded" not in p.stdout  # helm did not time out: the wait was ended
    return line


def journal_end(env, step: str) -> dict:
    from ambient_tui.engine.journal import Journal

    [f] = sorted((Path(env["XDG_STATE_HOME"]) / "ambient-tui" / "journal").glob("*.jsonl"))
    ends = [r for r in Journal.read(f).records if r.get("type") == "step-end" and r.get("step") == step]
    return ends[-1]


def assert_finishes(env, tools, *extra) -> None:
    p, _ = install(env, tools, *extra, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    rows = {r["name"]: r["status"] for r in json.loads(sh(env, "helm", "list", "-A", "-a", "-o", "json").stdout)}
    assert rows and set(rows.values()) == {"deployed"}, rows
    for kind, name in (("deployment", "istiod"), ("daemonset", "istio-cni-node"), ("daemonset", "ztunnel")):
        sh(env, "kubectl", "rollout", "status", f"{kind}/{name}", "-n", "istio-system", "--timeout=120s")


def test_taints_on_every_node(env, tools, fault):
    assert "tainted 3 node(s)" in fault("taints")
    p, took = install(env, tools)
    # Preflight predicts it and stops the install before anything changes.
    assert p.returncode == 1 and "preflight failed" in p.stderr
    line = check_line(p.stdout, "scheduling")
    assert "fail" in line and "istiod: no node can run it" in line and "dedicated=gpu:NoSchedule" in line
    assert "nothing was installed" in p.stderr
    p, took = install(env, tools, "--force")
    line = assert_fast_failure(p, "helm-istiod", "untolerated taint", "tolerations:")
    assert "! helm-istiod: istiod: Pending: 0/3 nodes are available" in p.stdout  # shown while waiting
    end = journal_end(env, "helm-istiod")
    assert end["state"] == "failed" and "untolerated taint" in end["message"]
    # `status` says the same, in text and JSON.
    st = cli(env, "status", "--json")
    causes = json.loads(st.stdout)["workloads"]["istiod"]["causes"]
    assert causes and "untolerated taint(s) dedicated=gpu:NoSchedule" in causes[0]["cause"], st.stdout
    assert "why: Pending: 0/3 nodes are available" in cli(env, "status").stdout
    fault.clear()
    assert_finishes(env, tools, "--resume")


def test_a_nodeselector_no_node_has(env, tools, fault, tmp_path):
    values = tmp_path / "istiod.yaml"
    values.write_text('nodeSelector:\n  pool: mesh-only\n')
    p, _ = install(env, tools, "--values", f"istiod={values}", "--force")
    assert "nodeSelector pool=mesh-only not on the node" in check_line(p.stdout, "scheduling")
    assert_fast_failure(p, "helm-istiod", "didn't match Pod's node affinity/selector", "kubectl label node")
    assert_finishes(env, tools)  # without the bad value


def test_psa_restricted_on_istio_system(env, tools, fault):
    fault("psa-restricted")
    p, _ = install(env, tools, "--force")
    line = check_line(p.stdout, "pod-security")
    assert "fail" in line and "istio-system enforces restricted" in line
    assert p.returncode == 1
    assert "PodSecurity" in p.stdout and "pod-security.kubernetes.io/enforce=privileged" in p.stdout
    failed = [ln for ln in p.stdout.splitlines() if ln.startswith("✘ ") and "PodSecurity" in ln]
    assert failed and "next:" in failed[0], p.stdout[-3000:]
    fault.clear()
    assert_finishes(env, tools, "--resume")


def test_a_pod_quota(env, tools, fault):
    fault("pod-quota")
    p, _ = install(env, tools, "--force")
    line = check_line(p.stdout, "quota-limits")
    assert "fail" in line and "pod-quota leaves 0 pods" in line
    assert_fast_failure(p, "helm-istiod", "exceeded quota", "resourcequota")
    fault.clear()
    assert_finishes(env, tools, "--resume")


def test_a_limitrange_below_istiods_request(env, tools, fault):
    fault("limitrange")
    p, _ = install(env, tools, "--force")
    line = check_line(p.stdout, "quota-limits")
    assert "fail" in line and "allows at most 200m cpu per container; istiod/discovery asks 500m" in line
    assert_fast_failure(p, "helm-istiod", "LimitRange")
    fault.clear()
    assert_finishes(env, tools, "--resume")


def test_one_fargate_node(env, tools, fault, tmp_path):
    fault("fargate")
    p, _ = install(env, tools, "--force")
    line = check_line(p.stdout, "fargate")
    assert "fail" in line and "fargate-ip-10-0-9-90" in line and "cannot join the mesh" in line
    assert p.returncode == 1
    failed = [ln for ln in p.stdout.splitlines() if ln.startswith("✘ verify-") and "Fargate" in ln]
    assert failed and "NotIn" in p.stdout, p.stdout[-3000:]
    # The fix the tool gave: keep the node agents off Fargate; the Verify phase then counts only
    # the nodes the DaemonSets run on. The Fargate node stays.
    affinity = tmp_path / "no-fargate.yaml"
    affinity.write_text("affinity:\n  nodeAffinity:\n    requiredDuringSchedulingIgnoredDuringExecution:\n"
                        "      nodeSelectorTerms:\n      - matchExpressions:\n"
                        "        - key: eks.amazonaws.com/compute-type\n          operator: NotIn\n"
                        "          values: [fargate]\n")
    assert_finishes(env, tools, "--values", f"cni={affinity}", "--values", f"ztunnel={affinity}")


@pytest.mark.parametrize("name, words", [
    ("image-pull", ("cannot pull docker.io/istio/pilot:1.31.0-distroless from docker.io", "not found")),
    ("crash-loop", ("crash-loops", "cannot load mesh config", "--previous")),
    ("never-ready", ("runs but is not Ready", "Readiness probe failed")),
])
def test_stage_faults(env, tools, fault, name, words):
    assert "kwok Stage" in fault(name)  # app=istiod by default
    p, _ = install(env, tools, "--force")
    assert_fast_failure(p, "helm-istiod", *words)
    if name == "crash-loop":  # kwok serves no logs: the tool says so instead of hanging
        assert "last log lines: not available" in p.stdout
    assert journal_end(env, "helm-istiod")["state"] == "failed"
    fault.clear()  # and its pods go: their ReplicaSet makes healthy ones
    assert_finishes(env, tools, "--resume")


def test_fault_command_bad_input(env, control_plane):
    p = cli(env, "sandbox", "fault", "add", "no-such-fault", "--state-dir", str(control_plane.state_dir))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "unknown fault" in p.stderr
    p = cli(env, "sandbox", "fault", "list", "--state-dir", str(control_plane.state_dir) + "-absent")
    assert p.returncode == 1 and "is not running" in p.stderr and p.stderr.count("\n") == 1
    p = cli(env, "sandbox", "fault", "list", "--state-dir", str(control_plane.state_dir))
    assert p.returncode == 0 and "image-pull" in p.stdout and "ACTIVE" not in p.stdout
