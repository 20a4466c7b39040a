"""The mesh after a real install on the real control plane (kube-apiserver 1.34, kwok nodes,
the real helm charts installed by `ambient-tui install`): `mesh --json` against the API,
enrolment blocked by a live deny-all policy and forced, unenrolment with its typed
confirmation, opt-out, waypoints (the Gateway object; what kwok does about its Deployment),
verify with the real istioctl, the journal export, and enrol/unenrol through the Mesh pane.

What kwok cannot do, and how the tests say so: its pods run no process, so istio-cni never
annotates a pod (a test sets ambient.istio.io/redirection=enabled itself on one pod, as
istio-cni would, and says so), istiod never programs a waypoint Gateway or makes its
Deployment, and no ztunnel answers `istioctl ztunnel-config`: verify must report that ztunnel
could not be asked and must not pass.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from istio_cleanup import clean_cluster, sh  # same folder

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).parents[2]
APPS, WEB = "mesh-apps", "mesh-web"


def cli(env, *args, stdin: str | None = None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ambient_tui.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, input=stdin if stdin is not None else "")


def core(kubeconfig):
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))


def ns_labels(kubeconfig, ns) -> dict:
    return core(kubeconfig).read_namespace(ns).metadata.labels or {}


def make_namespace(kubeconfig, name, pods=()):
    from kubernetes.client.rest import ApiException

    api = core(kubeconfig)
    deadline = time.monotonic() + 120
    while True:
        try:
            api.create_namespace({"metadata": {"name": name}})
            break
        except ApiException as e:  # 409 while an old one terminates
            if e.status != 409 or time.monotonic() > deadline:
                raise
            time.sleep(1)
    for p in pods:
        api.create_namespaced_pod(name, p)


def pod(name, annotations=None, host_network=False):
    return {"metadata": {"name": name, "labels": {"app": name}, "annotations": annotations or {}},
            "spec": {"hostNetwork": host_network, "containers": [{"name": "c", "image": "nginx"}]}}


@pytest.fixture(scope="module")
def mesh_env(admin_env, control_plane, kubeconfig, tools, tmp_path_factory):
    """Istio installed by the product's own headless install, and two app namespaces."""
    env = {**admin_env, "XDG_STATE_HOME": str(tmp_path_factory.mktemp("mesh-state"))}
    clean_cluster(admin_env, [APPS, WEB])
    gw = Path(tools.gateway_api) / "experimental-install.yaml"
    p = cli(env, "install", "--yes", "--istio-version", "1.31.0", "--charts", str(tools.charts),
            "--gateway-api-file", str(gw), timeout=1200)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    # One pod as istio-cni would have left it (kwok runs no istio-cni), one on the host network,
    # one without the annotation (as a pod started before istio-cni).
    make_namespace(kubeconfig, APPS, [pod("captured", {"ambient.istio.io/redirection": "enabled"}),
                                      pod("hostnet", host_network=True), pod("early")])
    make_namespace(kubeconfig, WEB, [pod("front")])
    yield env
    clean_cluster(admin_env, [APPS, WEB])


def wait_pods_running(kubeconfig, ns, n, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = core(kubeconfig).list_namespaced_pod(ns).items
        if len(items) == n and all(p.status.phase == "Running" for p in items):
            return items
        time.sleep(0.5)
    raise AssertionError(f"pods of {ns} not Running")


def test_mesh_json_matches_the_api(mesh_env, kubeconfig):
    wait_pods_running(kubeconfig, APPS, 3)
    p = cli(mesh_env, "mesh", "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    api = core(kubeconfig)
    by_ns = {n["name"]: n for n in data["namespaces"]}
    assert set(by_ns) == {n.metadata.name for n in api.list_namespace().items}
    apps = by_ns[APPS]
    assert (apps["mode"], apps["pods"], apps["captured"], apps["netpol_errors"]) == ("-", 3, 1, 0)
    assert by_ns["istio-system"]["mode"] == "excluded"
    nodes = {n["name"]: n for n in data["nodes"]}
    assert set(nodes) == {n.metadata.name for n in api.list_node().items}
    ztunnels = {p.spec.node_name: p.metadata.name
                for p in api.list_namespaced_pod("istio-system", label_selector="app=ztunnel").items}
    assert {n: v["ztunnel"] for n, v in nodes.items()} == ztunnels
    assert all(v["ztunnel_ready"] and v["cni_ready"] and v["in_mesh"] for v in nodes.values())
    human = cli(mesh_env, "mesh")
    assert human.returncode == 0 and APPS in human.stdout and "ZTUNNEL" in human.stdout


def test_enrolment_blocked_by_a_live_deny_all_then_forced_then_unenrolled(mesh_env, kubeconfig):
    from kubernetes import client, config

    net = client.NetworkingV1Api(config.new_client_from_config(str(kubeconfig)))
    net.create_namespaced_network_policy(WEB, {"metadata": {"name": "deny-all"},
                                               "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
    try:
        p = cli(mesh_env, "enroll", WEB)
        assert p.returncode == 1, p.stdout + p.stderr
        # netpol/gate.py's finding: the rule, the policy, and the fix
        assert "blocked: enrolling mesh-web would break the mesh there" in p.stdout, p.stdout + p.stderr
        assert "hbone-blocked [deny-all]" in p.stdout and "--force" in p.stderr
        assert "istio.io/dataplane-mode" not in ns_labels(kubeconfig, WEB)

        p = cli(mesh_env, "enroll", WEB, "--force")
        assert p.returncode == 0, p.stdout + p.stderr
        assert "warning (forced)" in p.stdout and "PATCH v1 Namespace mesh-web labels" in p.stdout
        assert ns_labels(kubeconfig, WEB)["istio.io/dataplane-mode"] == "ambient"
        assert "already enrolled" in cli(mesh_env, "enroll", WEB, "--force").stdout
    finally:
        net.delete_namespaced_network_policy("deny-all", WEB)

    p = cli(mesh_env, "unenroll", WEB, stdin="mesh-wbe\n")  # a typo: nothing changes
    assert p.returncode == 1 and "not confirmed" in p.stderr
    assert ns_labels(kubeconfig, WEB)["istio.io/dataplane-mode"] == "ambient"
    p = cli(mesh_env, "unenroll", WEB, stdin=f"{WEB}\n")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "istio.io/dataplane-mode" not in ns_labels(kubeconfig, WEB)

    # The journal export shows exactly these API calls with their results.
    p = cli(mesh_env, "journal", "--format", "json")
    assert p.returncode == 0, p.stderr
    last = json.loads(p.stdout)
    step = last["plans"][0]["steps"][0]
    assert step["command"] == "PATCH v1 Namespace mesh-web labels istio.io/dataplane-mode-"
    assert step["state"] == "succeeded" and step["started"] and step["ended"]
    md = cli(mesh_env, "journal").stdout
    assert "# What ran:" in md and "Unenrol mesh-web" in md


def test_a_user_without_rights_gets_one_line_and_nothing_changes(mesh_env, restricted_kubeconfig, kubeconfig):
    """The sandbox's restricted user may work in its own namespace only: enrolling another is
    refused by the API server (403), said in one line, and the namespace keeps its labels."""
    p = cli(mesh_env, "enroll", APPS, "--kubeconfig", str(restricted_kubeconfig))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "forbidden" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "istio.io/dataplane-mode" not in ns_labels(kubeconfig, APPS)
    p = cli(mesh_env, "mesh", "--kubeconfig", str(restricted_kubeconfig))
    assert p.returncode == 1 and "forbidden" in p.stderr and "Traceback" not in p.stderr


def test_bad_inputs_are_one_line_and_exit_2(mesh_env):
    for args, text in ((("enroll", "No_Such"), "not a namespace name"),
                       (("enroll", "does-not-exist"), "does not exist"),
                       (("enroll", "kube-system"), "never captured"),
                       (("opt-out", "-n", APPS, "nope"), "no pod nope"),
                       (("journal", "--run", "no-such-run"), "no run")):
        p = cli(mesh_env, *args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert text in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_opt_out_labels_the_pod(mesh_env, kubeconfig):
    p = cli(mesh_env, "opt-out", "-n", APPS, "early")
    assert p.returncode == 0, p.stdout + p.stderr
    labels = core(kubeconfig).read_namespaced_pod("early", APPS).metadata.labels
    assert labels["istio.io/dataplane-mode"] == "none"


def test_waypoint_apply_list_delete_on_kwok(mesh_env, kubeconfig):
    from kubernetes import client, config

    api_client = config.new_client_from_config(str(kubeconfig))
    custom = client.CustomObjectsApi(api_client)
    p = cli(mesh_env, "waypoint", "apply", "-n", APPS, "--enroll-namespace")
    assert p.returncode == 0, p.stdout + p.stderr
    gw = custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", APPS, "gateways", "waypoint")
    assert gw["spec"]["gatewayClassName"] == "istio-waypoint"
    [listener] = gw["spec"]["listeners"]
    assert (listener["name"], listener["port"], listener["protocol"]) == ("mesh", 15008, "HBONE")
    assert gw["metadata"]["labels"]["istio.io/waypoint-for"] == "service"
    assert not any(c.get("type") == "Programmed" and c.get("status") == "True"
                   for c in (gw.get("status") or {}).get("conditions") or [])
    assert ns_labels(kubeconfig, APPS)["istio.io/use-waypoint"] == "waypoint"
    # kwok: istiod's pod runs no process, so nothing programs the Gateway or makes its
    # Deployment. Give a real controller time to act, then check that none did.
    time.sleep(5)
    deps = client.AppsV1Api(api_client).list_namespaced_deployment(APPS).items
    assert deps == []
    listed = json.loads(cli(mesh_env, "waypoint", "list", "--json").stdout)
    assert [(w["namespace"], w["name"], w["ready"], w["has_deployment"]) for w in listed] == \
        [(APPS, "waypoint", False, False)]
    assert listed[0]["state"].startswith("no Deployment yet")
    mesh = json.loads(cli(mesh_env, "mesh", "--json").stdout)
    apps = next(n for n in mesh["namespaces"] if n["name"] == APPS)
    assert apps["waypoint"] == "waypoint" and apps["waypoint_state"].startswith("no Deployment yet")

    p = cli(mesh_env, "waypoint", "delete", "-n", APPS, stdin="wrong\n")
    assert p.returncode == 1
    custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", APPS, "gateways", "waypoint")
    p = cli(mesh_env, "waypoint", "delete", "-n", APPS, stdin=f"{APPS}\n")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "istio.io/use-waypoint" not in ns_labels(kubeconfig, APPS)
    assert json.loads(cli(mesh_env, "waypoint", "list", "--json").stdout) == []


def test_verify_with_the_real_istioctl_says_ztunnel_could_not_be_asked_and_fails(mesh_env, kubeconfig):
    assert cli(mesh_env, "enroll", APPS).returncode == 0
    try:
        p = cli(mesh_env, "verify", timeout=180)
        assert p.returncode == 1, p.stdout + p.stderr
        assert "ztunnel could not be asked" in p.stdout and "NOT VERIFIED" in p.stdout
        assert "verified: every pod" not in p.stdout
        j = json.loads(cli(mesh_env, "verify", "-n", APPS, "--json", timeout=180).stdout)
        assert j["proven"] is False and j["ztunnel_asked"] is False and j["ztunnel_error"]
        [res] = j["namespaces"]
        reasons = {m["pod"]: m["reason"] for m in res["missing"]}
        assert reasons["hostnet"].startswith("host network")
        assert reasons["early"].startswith("opted out") or reasons["early"].startswith("not captured")
        assert "captured" not in reasons  # nothing the API says against it: unproven, not missing
        assert res["in_mesh"] == 0
    finally:
        cli(mesh_env, "unenroll", APPS, "--yes")


def _dump(kubeconfig, ns, protocols: dict[str, str]) -> dict:
    """A ztunnel config dump (the shape ztunnel serves on localhost:15000/config_dump) listing
    the API's pods of `ns` with the given protocols; written by the test, since kwok runs no
    ztunnel. The real istioctl reads it (`--file`)."""
    items = []
    for p in core(kubeconfig).list_namespaced_pod(ns).items:
        if p.metadata.name in protocols:
            items.append({"uid": f"Kubernetes//Pod/{ns}/{p.metadata.name}", "workloadIps": [p.status.pod_ip or "10.244.0.9"],
                          "protocol": protocols[p.metadata.name], "name": p.metadata.name, "namespace": ns,
                          "serviceAccount": "default", "workloadName": p.metadata.name, "workloadType": "pod",
                          "clusterId": "Kubernetes", "trustDomain": "cluster.local", "node": p.spec.node_name,
                          "status": "Healthy"})
    return {"workloads": items, "services": [], "policies": [], "certificates": []}


def test_verify_reads_a_saved_ztunnel_dump_with_the_real_istioctl(mesh_env, kubeconfig, tmp_path):
    assert cli(mesh_env, "enroll", APPS).returncode == 0
    assert cli(mesh_env, "opt-out", "-n", APPS, "early").returncode == 0  # idempotent
    try:
        good = tmp_path / "good.json"
        good.write_text(json.dumps(_dump(kubeconfig, APPS, {"captured": "HBONE", "hostnet": "TCP"})))
        p = cli(mesh_env, "verify", "-n", APPS, "--ztunnel-dump", str(good))
        # captured is in the mesh; hostnet (host network) and early (opted out) are out on purpose
        assert p.returncode == 0, p.stdout + p.stderr
        assert "mesh-apps: 1/3 pods in the mesh (HBONE)" in p.stdout and "(on purpose)" in p.stdout
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(_dump(kubeconfig, APPS, {"captured": "TCP"})))
        j = json.loads(cli(mesh_env, "verify", "-n", APPS, "--ztunnel-dump", str(bad), "--json").stdout)
        assert j["proven"] is False and j["ztunnel_asked"] is True
        reasons = {m["pod"]: m["reason"] for m in j["namespaces"][0]["missing"]}
        assert reasons["captured"].startswith("captured, but ztunnel does not list it with HBONE")
        assert cli(mesh_env, "verify", "--ztunnel-dump", str(tmp_path / "none.json")).returncode == 2
    finally:
        cli(mesh_env, "unenroll", APPS, "--yes")


def test_sample_check_on_kwok_fails_at_the_connection_and_removes_everything(mesh_env, kubeconfig):
    from kubernetes.client.rest import ApiException

    p = cli(mesh_env, "verify", "--sample", timeout=400)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "sample check NOT passed" in p.stdout and "may be left" not in p.stdout
    with pytest.raises(ApiException) as e:
        core(kubeconfig).read_namespace("ambient-tui-sample")
    assert e.value.status == 404
    run = json.loads(cli(mesh_env, "journal", "--format", "json").stdout)
    assert [s["state"] for s in run["plans"][-1]["steps"]] == ["succeeded"]  # the removal
    check = run["plans"][-2]["steps"]
    states = {s["step"]: s["state"] for s in check}
    # created, Ready (kwok marks them), then the connection cannot be made: no pass
    assert states["sample-create"] == "succeeded" and states["sample-ready"] == "succeeded"
    assert states["sample-connect"] == "failed" and "sample-hbone" not in states
    assert check[2]["command"].startswith("kubectl ") and " exec -n ambient-tui-sample client -- /agnhost connect" \
        in check[2]["command"]


def test_enrol_and_unenrol_through_the_mesh_pane(mesh_env, kubeconfig, tmp_path, monkeypatch):
    from screens.app import AmbientApp
    from screens.mesh import MeshPane, MeshPlanDialog, VerifyScreen

    from ambient_tui.engine.plan import Phase, Plan, Step
    from ambient_tui.engine.runner import Runner

    monkeypatch.setenv("XDG_STATE_HOME", mesh_env["XDG_STATE_HOME"])
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    plan = Plan("idle", [Phase("p", "p", [Step("noop", "nothing", argv=["true"])])])
    app = AmbientApp(plan, Runner(plan), context="sandbox", keymap_path=tmp_path / "none.yaml",
                     kubeconfig=str(kubeconfig))

    async def until(pred, timeout=60.0, what=""):
        deadline = time.monotonic() + timeout
        while True:
            try:
                if pred():
                    return
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out: {what}")
            await asyncio.sleep(0.1)

    async def go():
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("5")
            await until(lambda: bool(app.screen.query(MeshPane)), what="the mesh pane")
            pane = app.screen.query_one(MeshPane)
            await until(lambda: any(r[0] == WEB for r in pane.table_rows()), what="the namespace row")
            await until(lambda: pane.state.nodes and all(n.ztunnel_ready for n in pane.state.nodes),
                        what="ztunnel ready on every node (from the watch)")
            names = [r[0] for r in pane.table_rows()]
            for _ in range(names.index(WEB) - names.index(pane.selected.name)):
                await pilot.press("down")
            assert pane.selected.name == WEB
            await pilot.press("e")
            await until(lambda: isinstance(app.screen, MeshPlanDialog), what="the plan dialog")
            dialog = app.screen
            assert dialog.confirm == ""  # no blocking policy in mesh-web any more
            await pilot.press("enter")
            await until(lambda: dialog.state in ("succeeded", "failed"), what="the enrolment")
            assert dialog.state == "succeeded", dialog.output
            await pilot.press("escape")
            await until(lambda: dict((r[0], r[1]) for r in pane.table_rows())[WEB] == "ambient",
                        what="the watch to show mesh-web enrolled")
            assert ns_labels(kubeconfig, WEB)["istio.io/dataplane-mode"] == "ambient"

            # v: verify with the real istioctl; kwok has no ztunnel to ask, and the dialog says so
            await pilot.press("v")
            await until(lambda: isinstance(app.screen, VerifyScreen), what="the verify dialog")
            verify_screen = app.screen
            await until(lambda: any("result:" in l or "could not run" in l for l in verify_screen.lines),
                        timeout=180, what="verify to finish")
            text = "\n".join(verify_screen.lines)
            assert "ztunnel could not be asked" in text and "result: not proven" in text, text
            await pilot.press("escape")
            await until(lambda: not isinstance(app.screen, VerifyScreen), what="the dialog to close")

            await pilot.press("u")
            await until(lambda: isinstance(app.screen, MeshPlanDialog), what="the unenrol dialog")
            dialog = app.screen
            await pilot.press(*WEB, "enter")
            await until(lambda: dialog.state in ("succeeded", "failed"), what="the unenrolment")
            assert dialog.state == "succeeded", dialog.output
            await pilot.press("escape")
            await until(lambda: dict((r[0], r[1]) for r in pane.table_rows())[WEB] == "-",
                        what="the watch to show mesh-web out of the mesh")
            assert "istio.io/dataplane-mode" not in ns_labels(kubeconfig, WEB)

    asyncio.run(go())
    from ambient_tui.cli import current_context
    from ambient_tui.engine.journal import Journal, journal_path
    ends = [r for r in Journal.read(journal_path(current_context(str(kubeconfig)))).records
            if r["type"] == "step-end"]
    assert [(r["step"], r["state"]) for r in ends[-2:]] == [(f"enroll-{WEB}", "succeeded"),
                                                            (f"unenroll-{WEB}", "succeeded")]
