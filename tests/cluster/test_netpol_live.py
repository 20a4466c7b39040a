"""NetworkPolicies against a live API server: `netpol lint --cluster`, the enrolment gate,
and the editor opened from the main screen (Cluster tree, diff, apply).

Real kube-apiserver with kwok nodes (pods get IPs and Running status from kwok; nothing
enforces policies here, the lint reads them). Each test makes its own namespaces; the
istio-cni ConfigMap lives in a test namespace given with --istio-namespace, so the
install tests' istio-system is untouched.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
import yaml

from ambient_tui.cli import main as cli_main
from ambient_tui.netpol.cluster import NetpolCluster
from ambient_tui.netpol.gate import enrolment_findings
from ambient_tui.netpol.templates import allow_dns, default_deny
from ambient_tui.plans.install import build_install_plan
from ambient_tui.settings import Settings

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def core(kubeconfig):
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))


@pytest.fixture
def names(core):
    """Fresh namespace names for one test (created by make_ns), deleted afterwards."""
    made: list[str] = []
    tag = uuid.uuid4().hex[:6]

    def make_ns(base: str, enrolled: bool = True) -> str:
        name = f"{base}-{tag}"
        labels = {"istio.io/dataplane-mode": "ambient"} if enrolled else {}
        core.create_namespace({"metadata": {"name": name, "labels": labels}})
        made.append(name)
        return name

    yield make_ns
    for n in made:
        core.delete_namespace(n)


def pod(core, ns: str, name: str, labels: dict, *, host_network: bool = False,
        ports: list | None = None) -> None:
    spec = {"containers": [{"name": "c", "image": "nginx", "ports": ports or []}],
            "hostNetwork": host_network}
    core.create_namespaced_pod(ns, {"metadata": {"name": name, "labels": labels}, "spec": spec})


def wait_ips(core, ns: str, count: int) -> None:
    """kwok schedules and starts the pods and gives them IPs; the lint reads those IPs."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        items = core.list_namespaced_pod(ns).items
        if len(items) == count and all(p.status.pod_ip or p.spec.host_network for p in items):
            return
        time.sleep(0.5)
    raise AssertionError(f"pods in {ns} got no IPs from kwok")


def policy(name: str, ns: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def lint_cluster(capsys, kubeconfig, *extra: str) -> tuple[int, dict | str, str]:
    code = cli_main(["netpol", "lint", "--cluster", "--kubeconfig", str(kubeconfig), *extra])
    captured = capsys.readouterr()
    out: dict | str = captured.out
    if "--json" in extra and code != 2:
        out = json.loads(captured.out)
    return code, out, captured.err


def test_cluster_lint_live_pods_host_network_named_ports_excluded(core, kubeconfig, names, capsys):
    app = names("np-app")
    skipped = names("np-skipped")  # enrolled, but in istio-cni's excludeNamespaces
    istio = names("np-istio", enrolled=False)
    core.create_namespaced_config_map(istio, {
        "metadata": {"name": "istio-cni-config"},
        "data": {"EXCLUDE_NAMESPACES": f"kube-system,{skipped}"}})
    pod(core, app, "web-1", {"app": "web"}, ports=[{"name": "http", "containerPort": 8080}])
    pod(core, app, "agent-1", {"app": "agent"}, host_network=True)
    pod(core, skipped, "web-1", {"app": "web"})
    wait_ips(core, app, 2)
    admin = NetpolCluster(str(kubeconfig))
    # web: only the named port "http" (resolves to 8080 on the live pod) and "metrics" (no
    # container declares it): HBONE on 15008 is not allowed.
    admin.apply(policy("web", app, {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [
        {"ports": [{"port": "http"}, {"port": "metrics"}]},
        {"from": [{"ipBlock": {"cidr": "169.254.7.127/32"}}]}]}))
    # agent runs with hostNetwork: neither NetworkPolicy nor ambient capture applies to it.
    admin.apply(policy("agent", app, {"podSelector": {"matchLabels": {"app": "agent"}},
                                      "policyTypes": ["Ingress"]}))
    admin.apply(default_deny(skipped, egress=False))

    code, out, err = lint_cluster(capsys, kubeconfig, "-n", app, "-n", skipped,
                                  "--istio-namespace", istio, "--json")
    assert code == 1, err
    found = {(f["namespace"], f["policy"], f["rule"]) for f in out["findings"]}
    assert (app, "web", "hbone-blocked") in found
    assert (app, "web", "named-port-unresolved") in found  # "metrics"
    unresolved = next(f for f in out["findings"] if f["rule"] == "named-port-unresolved")
    assert "'metrics'" in unresolved["message"] and "'http'" not in unresolved["message"]
    assert not {f for f in found if f[1] == "agent"}  # host network
    assert not {f for f in found if f[0] == skipped}  # excluded from capture, live
    hbone = next(f for f in out["findings"] if f["rule"] == "hbone-blocked")
    assert "web-1" in hbone["message"]  # judged on the live pod
    assert out["policies"] == 3

    # Without the live ConfigMap the chart defaults hold: the skipped namespace is judged.
    code, out, _ = lint_cluster(capsys, kubeconfig, "-n", skipped, "--json")
    assert code == 1 and {f["rule"] for f in out["findings"]} >= {"hbone-blocked"}
    assert any("chart defaults" in n for n in out["notes"])


def test_cluster_lint_restricted_user(restricted_kubeconfig, capsys):
    # All namespaces: the user may not list them; one line, exit 2.
    code, _, err = lint_cluster(capsys, restricted_kubeconfig)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and err.splitlines()[-1] == errors[0]
    assert errors[0].startswith("error: Forbidden: your user may not list namespaces")
    assert errors[0].endswith("name the namespaces you may read with -n NS")
    # Its own namespace works; what it may not read is said, not fatal.
    code, out, err = lint_cluster(capsys, restricted_kubeconfig, "-n", "restricted", "--json")
    assert code in (0, 1), err
    assert isinstance(out, dict) and "findings" in out


def test_enrolment_blocked_by_deny_all_then_allowed_after_the_fix(core, kubeconfig, names, tools,
                                                                  admin_env):
    ns = names("np-gate", enrolled=False)
    pod(core, ns, "shop-1", {"app": "shop"})
    wait_ips(core, ns, 1)
    admin = NetpolCluster(str(kubeconfig))
    admin.apply(default_deny(ns))
    admin.apply(allow_dns(ns))

    # The install plan's own gate step, as the runner would run it (with its env).
    plan = build_install_plan(Settings(enroll=[ns]))
    gate = plan.step(f"netpol-gate-{ns}")
    proc = subprocess.run(gate.argv, env=admin_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "hbone-blocked [default-deny]" in proc.stdout and "fix: add policy" in proc.stdout
    assert "stopped" in proc.stdout and "--force-enroll" in proc.stdout
    labels = core.read_namespace(ns).metadata.labels or {}
    assert "istio.io/dataplane-mode" not in labels  # the gate changed nothing

    # --force-enroll passes the gate (and says what it ignored).
    forced = Settings(enroll=[ns])
    forced.force_enroll = True
    argv = build_install_plan(forced).step(f"netpol-gate-{ns}").argv
    proc = subprocess.run(argv, env=admin_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--force" in proc.stdout

    # Apply the quick fix the gate offered, exactly as given; then the gate lets it through.
    blocking = enrolment_findings(admin, ns)
    fix = next(f.fix for f in blocking if f.rule == "hbone-blocked")
    admin.apply(yaml.safe_load(fix.yaml), namespace=ns)
    assert enrolment_findings(admin, ns) == []
    proc = subprocess.run(gate.argv, env=admin_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "safe to enrol" in proc.stdout
    enrol = plan.step(f"enroll-{ns}")
    argv = [tools.kubectl] + enrol.argv[1:]
    subprocess.run(argv, env=admin_env, check=True, capture_output=True, timeout=60)
    assert core.read_namespace(ns).metadata.labels["istio.io/dataplane-mode"] == "ambient"


@pytest.mark.asyncio
async def test_editor_from_main_screen_tree_diff_apply(core, kubeconfig, names, tmp_path,
                                                       monkeypatch):
    from textual.widgets import Button, Tree

    from ambient_tui.engine.plan import Phase, Plan, Step
    from ambient_tui.engine.runner import Runner
    from screens.app import AmbientApp
    from screens.netpol import ConfirmDialog, NetpolScreen

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    ns = names("np-editor")
    pod(core, ns, "web-1", {"app": "web"})
    admin = NetpolCluster(str(kubeconfig))
    admin.apply(default_deny(ns, egress=False))
    plan = Plan(title="t", phases=[Phase("p", "p", [Step("s", "s", argv=["true"])])])
    app = AmbientApp(plan, Runner(plan), context="sandbox", keymap_path=tmp_path / "none.yaml",
                     kubeconfig=str(kubeconfig), namespace=ns)

    async def wait_for(cond, what: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await pilot.pause(0.1)

    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        await wait_for(lambda: isinstance(app.screen, NetpolScreen), "the editor")
        editor = app.screen
        assert editor.cluster is not None
        await wait_for(lambda: editor._namespaces, "the cluster to be read")
        # The Cluster tree: namespaces with enrolment, and the live policies under them.
        tree = editor.query_one("#policies", Tree)
        cluster_node = next(n for n in tree.root.children if str(n.label) == "Cluster")
        ns_node = next(n for n in cluster_node.children if n.data == ("ns", ns))
        assert "ambient" in str(ns_node.label)
        assert [c.data for c in ns_node.children] == [("cluster", ns, "default-deny")]
        # Findings use the live pod.
        editor.editor.load_text(yaml.safe_dump(default_deny(ns, egress=False)))
        await wait_for(lambda: editor.findings, "findings")
        hbone = next(f for f in editor.findings if f.rule == "hbone-blocked")
        assert "web-1" in hbone.message
        # Apply the quick fix, then diff: the new policy is not in the cluster yet.
        editor.query_one("#findings").highlighted = editor.findings.index(hbone)
        editor.action_quick_fix()
        editor.action_diff()
        await wait_for(lambda: isinstance(app.screen, ConfirmDialog)
                       and app.screen.query("#confirm-body"), "the diff")
        body = app.screen.query_one("#confirm-body").content.code  # the Syntax of the diff
        assert "+kind: NetworkPolicy" in body and "15008" in body
        await pilot.press("escape")
        await wait_for(lambda: app.screen is editor, "the diff to close")
        # Apply: confirmed in the dialog, then the policy is live.
        editor.action_apply_cluster()
        await wait_for(lambda: isinstance(app.screen, ConfirmDialog)
                       and app.screen.query("#apply"), "the apply dialog")
        assert "Server-side apply 2 policy(ies)" in str(app.screen._title)
        app.screen.query_one("#apply", Button).press()
        names_live = lambda: {p["metadata"]["name"] for p in admin.list_policies(ns)}  # noqa: E731
        notes = lambda: [n.message for n in app._notifications]  # noqa: E731
        await wait_for(lambda: len(names_live()) == 2, f"the applied policy {notes()}")
        # A read-only session refuses apply with one line.
        app.read_only = True
        editor.action_apply_cluster()
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmDialog)
