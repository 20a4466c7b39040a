"""ztunnel's tables parsed from recorded output (tests/unit/mesh_recorded/README.md says which
file is a recording and which is hand-written in istioctl's layout), and verify's comparison.

The kwok sandbox has no ztunnel to ask; the orchestration against the real API server and the
real istioctl is in tests/cluster/test_mesh_cluster.py."""

from pathlib import Path

from ambient_tui.mesh.state import PodFacts
from ambient_tui.mesh.verify import (ZWorkload, compare, parse_services, parse_table,
                                     parse_workloads, verify)

RECORDED = Path(__file__).parent / "mesh_recorded"


def test_recorded_workloads_table_parses_every_row_with_its_columns():
    rows = parse_workloads((RECORDED / "ztunnel-workloads.istio-1.24-docs.txt").read_text())
    assert len(rows) == 16
    first = rows[0]
    assert first == ZWorkload("default", "bookinfo-gateway-istio-59dd7c96db-q9k6v", "10.244.1.11",
                              "ambient-worker", "None", "TCP")
    hbone = [r.pod for r in rows if r.protocol == "HBONE"]
    assert len(hbone) == 8 and "details-v1-cf74bb974-5sqkp" in hbone
    # the widest namespace and node names keep their columns apart
    last = rows[-1]
    assert (last.namespace, last.node, last.protocol) == ("local-path-storage", "ambient-control-plane", "TCP")


def test_the_1_31_header_address_column_reads_the_same():
    old = parse_workloads((RECORDED / "ztunnel-workloads.istio-1.24-docs.txt").read_text())
    new = parse_workloads((RECORDED / "ztunnel-workloads.istio-1.31-header.txt").read_text())
    assert old == new


def test_services_table_gives_the_waypoint_per_service():
    rows = parse_services((RECORDED / "ztunnel-services.istio-1.31-layout.txt").read_text())
    by_name = {r.name: r for r in rows}
    assert by_name["reviews"].waypoint == "waypoint" and by_name["reviews"].endpoints == "3/3"
    assert by_name["details"].waypoint == "None"
    assert by_name["kube-dns"].namespace == "kube-system" and by_name["kube-dns"].vip == "10.43.0.10"


def test_warnings_before_the_header_are_ignored_and_no_header_means_no_rows():
    text = "Warning: 2 ztunnel pods found, using ztunnel-6hvcw\n" + \
        (RECORDED / "ztunnel-workloads.istio-1.24-docs.txt").read_text()
    assert len(parse_table(text)) == 16
    assert parse_table("Error: no ztunnel pods found\n") == []


def _pod(name, **kw):
    base = dict(namespace="default", name=name, node="ambient-worker", live=True, ready=True,
                captured=True, opted_out=False, host_network=False)
    base.update(kw)
    return PodFacts(**base)


def test_compare_lists_each_missing_pod_with_its_likely_reason():
    workloads = parse_workloads((RECORDED / "ztunnel-workloads.istio-1.24-docs.txt").read_text())
    pods = [
        _pod("details-v1-cf74bb974-5sqkp"),                         # HBONE: in the mesh
        _pod("bookinfo-gateway-istio-59dd7c96db-q9k6v", opted_out=True),  # TCP row: opted out
        _pod("legacy-0", captured=False, owner="StatefulSet/legacy"),
        _pod("agent-x", host_network=True),
        _pod("lost-1", node="ambient-worker3"),                     # no ztunnel there
        _pod("done-1", live=False),                                 # finished: not counted
        _pod("fresh-1"),                                            # captured, not pushed yet
    ]
    [res] = compare(["default"], pods, {"ambient-worker", "ambient-worker2"}, workloads)
    assert res.pods == 6 and res.in_mesh == 1
    reasons = {m.pod: m.reason for m in res.missing}
    assert reasons["bookinfo-gateway-istio-59dd7c96db-q9k6v"].startswith("opted out")
    assert reasons["legacy-0"].startswith("not captured")
    assert reasons["agent-x"].startswith("host network")
    assert reasons["lost-1"] == "node ambient-worker3 has no ready ztunnel"
    assert reasons["fresh-1"].startswith("captured, but ztunnel does not list it")
    fix = {m.pod: m.fix for m in res.missing}["legacy-0"]
    assert fix == "restart it: kubectl -n default rollout restart statefulset/legacy"


def test_pods_kept_out_on_purpose_are_listed_but_do_not_fail_the_proof():
    from ambient_tui.mesh.verify import VerifyResult

    workloads = parse_workloads((RECORDED / "ztunnel-workloads.istio-1.24-docs.txt").read_text())
    res = compare(["default"], [_pod("details-v1-cf74bb974-5sqkp"), _pod("agent-x", host_network=True),
                                _pod("legacy-0", opted_out=True)], {"ambient-worker"}, workloads)
    assert [m.expected for m in res[0].missing] == [True, True]
    assert VerifyResult(res, ztunnel_asked=True).proven
    res = compare(["default"], [_pod("legacy-0", captured=False)], {"ambient-worker"}, workloads)
    assert not VerifyResult(res, ztunnel_asked=True).proven
    assert not VerifyResult([], ztunnel_asked=True).proven  # nothing to prove is no proof


def test_without_ztunnel_nothing_is_counted_in_the_mesh():
    pods = [_pod("a"), _pod("b", captured=False)]
    [res] = compare(["default"], pods, {"ambient-worker"}, None)
    assert res.in_mesh == 0
    assert [m.pod for m in res.missing] == ["b"]  # "a" is unproven, not missing


class FakeKube:
    """Named fake of KubeClient's reads for verify's orchestration (the real one is in the
    cluster tier)."""

    context = "rec"

    def __init__(self, pods):
        self.pods = pods

    def list_namespaces(self):
        return [{"metadata": {"name": "default", "labels": {"istio.io/dataplane-mode": "ambient"}}}]

    def list_nodes(self):
        return [{"metadata": {"name": "ambient-worker"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}]

    def list_pods(self, namespace=None):
        return [p for p in self.pods if namespace in (None, p["metadata"]["namespace"])]

    def list_json(self, path, what, **kw):
        return []


def _raw_pod(ns, name, captured=True, **labels):
    ann = {"ambient.istio.io/redirection": "enabled"} if captured else {}
    return {"metadata": {"namespace": ns, "name": name, "labels": labels, "annotations": ann},
            "spec": {"nodeName": "ambient-worker"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


def test_verify_asks_istioctl_for_workloads_then_services_and_proves_only_with_its_answer():
    recorded = {"workloads": (RECORDED / "ztunnel-workloads.istio-1.24-docs.txt").read_text(),
                "services": (RECORDED / "ztunnel-services.istio-1.31-layout.txt").read_text()}
    kube = FakeKube([_raw_pod("default", "details-v1-cf74bb974-5sqkp"),
                     _raw_pod("istio-system", "ztunnel-6hvcw", app="ztunnel")])
    calls = []

    def runner(argv):
        calls.append(argv)
        return 0, recorded[argv[2]]

    result = verify(kube, kubeconfig="/k", runner=runner)
    assert calls[0] == ["istioctl", "ztunnel-config", "workloads", "--kubeconfig", "/k", "--context", "rec"]
    assert calls[1][2] == "services"
    assert result.ztunnel_asked and result.proven
    assert {s.name: s.waypoint for s in result.services}["reviews"] == "waypoint"


def test_verify_says_ztunnel_could_not_be_asked_and_never_passes():
    kube = FakeKube([_raw_pod("default", "details-v1-cf74bb974-5sqkp")])
    result = verify(kube, runner=lambda argv: (1, "Error: failed to get ztunnel pods: no ztunnel pod is ready\n"))
    assert not result.ztunnel_asked and not result.proven
    assert "no ztunnel pod is ready" in result.ztunnel_error
    assert result.to_dict()["proven"] is False


def test_tables_printed_by_the_real_istioctl_1_31_parse():
    rows = parse_workloads((RECORDED / "ztunnel-workloads.istioctl-1.31-from-dump.txt").read_text())
    assert [(r.namespace, r.pod, r.protocol) for r in rows] == [
        ("istio-system", "istiod-6b7f9d8c4-2mzrt", "TCP"), ("shop", "cart-7d4b9c6f5-x2kqp", "HBONE"),
        ("shop", "legacy-batch-5f6d8-q7w2z", "TCP"), ("shop", "payments-0", "HBONE")]
    assert rows[1].node == "ip-10-0-1-17.ec2.internal" and rows[1].address == "10.244.1.21"
    services = parse_services((RECORDED / "ztunnel-services.istioctl-1.31-from-dump.txt").read_text())
    assert [(s.namespace, s.name, s.vip, s.waypoint, s.endpoints) for s in services] == [
        ("istio-system", "istiod", "172.20.0.44", "None", "1/1"), ("shop", "cart", "172.20.14.3", "None", "1/1")]


def test_a_saved_dump_is_read_with_file_instead_of_a_live_ztunnel():
    from ambient_tui.mesh.verify import istioctl_argv

    assert istioctl_argv("workloads", "/k", "ctx", "/tmp/dump.json") == \
        ["istioctl", "ztunnel-config", "workloads", "--file", "/tmp/dump.json"]
