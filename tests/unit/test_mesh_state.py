"""The mesh state from API JSON, its readiness history, and the journal export of what ran."""

import asyncio
import json

from ambient_tui.engine import journal_export as jx
from ambient_tui.engine.journal import Journal
from ambient_tui.engine.plan import ApiCall, Phase, Plan, Step
from ambient_tui.engine.runner import Runner
from ambient_tui.mesh.enroll import lint_policies
from ambient_tui.mesh.state import build_state, namespace_mode, pod_facts, waypoints
from ambient_tui.mesh.watch import ReadinessHistory


def pod(ns, name, node="n1", captured=False, ready=True, labels=None, phase="Running"):
    return {"metadata": {"namespace": ns, "name": name, "labels": labels or {},
                         "annotations": {"ambient.istio.io/redirection": "enabled"} if captured else {}},
            "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_namespace_modes():
    assert namespace_mode("apps", {"istio.io/dataplane-mode": "ambient"}) == "ambient"
    assert namespace_mode("apps", {"istio.io/dataplane-mode": "none"}) == "none"
    assert namespace_mode("apps", {"istio-injection": "enabled"}) == "sidecar"
    assert namespace_mode("apps", {"istio.io/rev": "canary"}) == "sidecar"
    assert namespace_mode("kube-system", {}) == "excluded"
    assert namespace_mode("apps", {}) == "-"


def test_state_counts_captured_pods_nodes_and_waypoints():
    ns = {"apps": {"istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "waypoint"},
          "web": {}, "istio-system": {}}
    pods = [pod("apps", "a", captured=True), pod("apps", "b"), pod("apps", "c", node="n2", captured=True),
            pod("apps", "done", phase="Succeeded"), pod("web", "w"),
            pod("istio-system", "ztunnel-1", labels={"app": "ztunnel"}),
            pod("istio-system", "ztunnel-2", node="n2", ready=False, labels={"app": "ztunnel"}),
            pod("istio-system", "cni-1", labels={"k8s-app": "istio-cni-node"})]
    gws = [{"metadata": {"namespace": "apps", "name": "waypoint", "labels": {"istio.io/waypoint-for": "service"}},
            "spec": {"gatewayClassName": "istio-waypoint"}, "status": {}},
           {"metadata": {"namespace": "web", "name": "ingress"}, "spec": {"gatewayClassName": "istio"}}]
    state = build_state(ns, [pod_facts(p) for p in pods], {"n1": True, "n2": True}, waypoints(gws, []))
    apps = state.namespace("apps")
    assert (apps.mode, apps.pods, apps.captured) == ("ambient", 3, 2)
    assert apps.waypoint == "waypoint" and apps.waypoint_state.startswith("no Deployment yet")
    assert state.namespace("istio-system").mode == "excluded"
    n1, n2 = state.node("n1"), state.node("n2")
    assert (n1.ztunnel, n1.ztunnel_ready, n1.cni_ready, n1.ambient_pods) == ("ztunnel-1", True, True, 2)
    assert (n2.ztunnel_ready, n2.in_mesh, n2.cni, n2.ambient_pods) == (False, False, "", 1)
    assert [w.name for w in state.waypoints] == ["waypoint"]  # the ingress Gateway is not one
    d = state.to_dict()
    assert d["namespaces"][0]["enrolled"] is True and d["nodes"][1]["in_mesh"] is False
    json.dumps(d)


def test_waypoint_ready_needs_programmed_and_a_ready_deployment():
    gw = {"metadata": {"namespace": "apps", "name": "waypoint"}, "spec": {"gatewayClassName": "istio-waypoint"},
          "status": {"conditions": [{"type": "Programmed", "status": "True"}]}}
    dep = {"metadata": {"namespace": "apps", "name": "waypoint",
                        "labels": {"gateway.networking.k8s.io/gateway-name": "waypoint"}},
           "status": {"readyReplicas": 1}}
    assert waypoints([gw], [dep])[("apps", "waypoint")].ready
    assert waypoints([gw], [{**dep, "status": {}}])[("apps", "waypoint")].reason() == "Deployment has no ready replica"


def test_history_adds_a_point_only_when_a_component_changes():
    h = ReadinessHistory(size=4)
    ztunnel = {"app": "ztunnel"}
    for ready in (True, True, False, False, True):
        state = build_state({}, [pod_facts(pod("istio-system", "z", ready=ready, labels=ztunnel))], {"n1": True}, {})
        h.record(state)
    assert h.points()["ztunnel@n1"] == [1.0, 0.0, 1.0]
    h.record(build_state({}, [], {}, {}))  # the node went away
    assert "ztunnel@n1" not in h.points()


def test_lint_blocks_a_default_deny_ingress_and_passes_one_that_allows_hbone():
    deny = {"metadata": {"name": "deny-all", "namespace": "apps"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    assert {f.rule for f in lint_policies([deny], "apps")} >= {"hbone-blocked"}
    allow = {"metadata": {"name": "allow-hbone", "namespace": "apps"},
             "spec": {"podSelector": {}, "policyTypes": ["Ingress"],
                      "ingress": [{"ports": [{"port": 15008, "protocol": "TCP"}]},
                                  {"from": [{"ipBlock": {"cidr": "169.254.7.127/32"}}]}]}}
    assert lint_policies([deny, allow], "apps") == []
    assert lint_policies([], "apps") == []


def test_journal_export_shows_what_ran_with_times_results_and_redacted_tails(tmp_path):
    secret = "AKIA" + "ABCDEFGHIJKLMNOP"
    plan = Plan("Enrol apps", [Phase("mesh", "Enrol apps", [
        Step("echo", "Say hello", argv=["sh", "-c", f"echo hello; echo key {secret}"]),
        Step("label", "Label it", api=ApiCall("PATCH v1 Namespace apps labels istio.io/dataplane-mode=ambient",
                                               lambda: ["labelled"])),
        Step("fail", "Fails", argv=["sh", "-c", "echo boom; exit 3"]),
    ])])
    journal = Journal(tmp_path / "c.jsonl")
    assert asyncio.run(Runner(plan, journal=journal).run()) is False
    journal.close()
    read = Journal.read(tmp_path / "c.jsonl")
    run = jx.select_run(read.records, "last")
    assert run == journal.run_id and jx.select_run(read.records, run[:10]) == run
    assert jx.select_run(read.records, "nope") is None
    plans = jx.ran(read.records, run)
    md = jx.to_markdown(run, "c", plans)
    assert "sh -c 'echo hello; echo key " in md and "succeeded, exit 0" in md
    assert "PATCH v1 Namespace apps labels istio.io/dataplane-mode=ambient" in md
    assert "failed, exit 3" in md and "boom" in md and "exit code 3" in md
    assert secret not in md and "REDACTED" in md
    sh = jx.to_shell(run, "c", plans)
    assert "# API call (run by ambient-tui, no CLI equivalent): PATCH v1 Namespace" in sh
    data = json.loads(jx.to_json(run, "c", plans))
    assert [s["state"] for s in data["plans"][0]["steps"]] == ["succeeded", "succeeded", "failed"]


def test_journal_export_marks_a_step_that_never_ended(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join([
        json.dumps({"ts": 1.0, "run": "r1", "type": "plan", "title": "T", "meta": {}, "steps": ["a"]}),
        json.dumps({"ts": 2.0, "run": "r1", "type": "step-start", "step": "a", "argv": ["helm", "install"]}),
        "{not json",
    ]) + "\n")
    read = Journal.read(path)
    assert read.corrupt
    [plan] = jx.ran(read.records, "r1")
    assert plan.steps[0].state == "interrupted"
    assert "never ended (interrupted)" in jx.to_markdown("r1", "c", [plan])


def test_watcher_merges_lists_and_events_and_lints_only_changed_namespaces(monkeypatch):
    """MeshWatcher's merge (what its list+watch threads call), without threads or a server."""
    from ambient_tui.mesh import enroll
    from ambient_tui.mesh.watch import MeshWatcher
    from ambient_tui.watch.listwatch import Loop

    w = MeshWatcher(source=object())
    loop = {k: Loop(key=k, kind=k, namespace=None, scope=k) for k in
            ("namespaces", "pods", "nodes", "gateways", "deployments", "networkpolicies")}
    w._replace(loop["namespaces"], [{"metadata": {"name": "apps", "labels": {"istio.io/dataplane-mode": "ambient"}}}])
    w._replace(loop["nodes"], [{"metadata": {"name": "n1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}])
    w._replace(loop["pods"], [pod("apps", "a", captured=True), pod("apps", "b")])
    deny = {"metadata": {"name": "deny", "namespace": "apps", "resourceVersion": "1"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    w._replace(loop["networkpolicies"], [deny])
    calls = []
    real = enroll.lint_policies
    monkeypatch.setattr(enroll, "lint_policies", lambda p, ns: calls.append(ns) or real(p, ns))
    snap = w.snapshot()
    apps = snap.state.namespace("apps")
    assert (apps.pods, apps.captured, apps.netpol_errors) == (2, 1, 1)  # HBONE; blocked probes are a warning while the CNI is unknown (issue 16)
    assert w.snapshot() is snap  # no change, no rebuild
    w._apply(loop["pods"], "MODIFIED", pod("apps", "b", captured=True))
    assert w.snapshot().state.namespace("apps").captured == 2
    assert calls == ["apps"]  # the pod event did not lint again
    w._apply(loop["networkpolicies"], "DELETED", deny)
    assert w.snapshot().state.namespace("apps").netpol_errors == 0 and calls == ["apps", "apps"]
    w._apply(loop["pods"], "DELETED", pod("apps", "a"))
    assert w.snapshot().state.namespace("apps").pods == 1
    assert w.pod_names("apps") == ["b"]
