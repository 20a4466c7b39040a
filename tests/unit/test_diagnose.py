"""Why a wait is stuck: the classifier (watch/diagnose.py), the scheduling judgements
(checks/scheduling.py), the fault Stage objects, and the runner's step-watcher hook ending a
real process early on a permanent cause."""

from __future__ import annotations

import asyncio
import sys
import time

from ambient_tui import catalog
from ambient_tui.checks import scheduling
from ambient_tui.engine.events import Cause, EventKind
from ambient_tui.engine.plan import Phase, Plan, Step, StepState
from ambient_tui.engine.runner import Runner
from ambient_tui.sandbox import faults
from ambient_tui.watch import diagnose

NOW = 1_800_000_000.0
ISO = "2027-01-15T08:00:00Z"


def node(name, labels=None, taints=None, cpu="4", memory="16Gi", ready="True"):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or []},
            "status": {"allocatable": {"cpu": cpu, "memory": memory},
                       "conditions": [{"type": "Ready", "status": ready}]}}


def istiod_objs(pod_status, pod_spec=None, events=(), nodes=()):
    rs = {"metadata": {"name": "istiod-abc", "namespace": "istio-system",
                       "annotations": {"deployment.kubernetes.io/revision": "1"},
                       "ownerReferences": [{"kind": "Deployment", "name": "istiod"}]}, "status": {}}
    pod = {"metadata": {"name": "istiod-abc-x1", "namespace": "istio-system",
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "istiod-abc"}]},
           "spec": pod_spec or {}, "status": pod_status}
    return {"deployments": [{"metadata": {"name": "istiod", "namespace": "istio-system"}}],
            "replicasets": [rs], "pods": [pod], "events": list(events), "daemonsets": [],
            "nodes": list(nodes)}


SCHED_MSG = ("0/3 nodes are available: 3 node(s) had untolerated taint {dedicated: gpu}. "
             "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")


def test_untolerated_taint_on_every_node_is_permanent_with_a_tolerations_snippet():
    objs = istiod_objs({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": SCHED_MSG}]})
    [c] = diagnose.classify("istiod", objs, now=NOW)
    assert c.kind == "FailedScheduling" and c.permanent
    assert "untolerated taint {dedicated: gpu}" in c.summary
    assert "--values istiod=FILE" in c.fix and "key: dedicated" in c.fix and c.fix.splitlines()[1] == "tolerations:"


def test_insufficient_cpu_and_not_ready_taints_keep_waiting():
    msg = ("0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint "
           "{node.kubernetes.io/not-ready: }. preemption: ...")
    assert diagnose.scheduling_reasons(msg) == [
        (1, "Insufficient cpu"), (2, "node(s) had untolerated taint {node.kubernetes.io/not-ready: }")]
    objs = istiod_objs({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg}]})
    [c] = diagnose.classify("istiod", objs, now=NOW)
    assert not c.permanent


def test_pod_security_refusal_from_daemonset_events_names_the_label_to_set():
    ds = {"metadata": {"name": "istio-cni-node", "namespace": "istio-system"},
          "spec": {"template": {"spec": {}}}, "status": {"desiredNumberScheduled": 3}}
    ev = {"involvedObject": {"kind": "DaemonSet", "name": "istio-cni-node"}, "reason": "FailedCreate",
          "lastTimestamp": ISO, "message": 'Error creating: pods "istio-cni-node-abcde" is forbidden: '
          'violates PodSecurity "restricted:latest": privileged (container "install-cni" must not set '
          'securityContext.privileged=true)'}
    objs = {"daemonsets": [ds], "pods": [], "events": [ev], "nodes": [node(f"n{i}") for i in range(3)]}
    [c] = diagnose.classify("istio-cni-node", objs, now=NOW)
    assert c.kind == "PodSecurity" and c.permanent
    assert "pod-security.kubernetes.io/enforce=privileged" in c.fix
    # An event older than the wait does not count: a fixed namespace's old refusal is history.
    assert diagnose.classify("istio-cni-node", objs, since=NOW + 3600, now=NOW + 3600) == []


def test_quota_and_limitrange_refusals_from_the_replicaset_condition():
    for message, kind in (('pods "istiod-abc-x" is forbidden: exceeded quota: pod-quota, requested: '
                           'pods=1, used: pods=0, limited: pods=0', "ResourceQuota"),
                          ('pods "istiod-abc-x" is forbidden: maximum cpu usage per Container is 200m, '
                           'but limit is 500m', "LimitRange")):
        objs = istiod_objs({})
        objs["pods"] = []
        objs["replicasets"][0]["status"] = {"conditions": [
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": message}]}
        [c] = diagnose.classify("istiod", objs, now=NOW)
        assert (c.kind, c.permanent) == (kind, True)


def test_a_missing_service_account_or_an_unknown_refusal_keeps_the_wait():
    """The ServiceAccount is applied with the Deployment and admission reads a cache: istiod's
    ReplicaSet briefly reports it missing, and the controller retries (seen with istioctl
    install on the sandbox). Neither that nor a refusal this module does not know ends a wait."""
    for message in ('pods "istiod-abc-x" is forbidden: error looking up service account '
                    'istio-system/istiod: serviceaccount "istiod" not found',
                    'pods "istiod-abc-x" is forbidden: something new the API server says'):
        objs = istiod_objs({})
        objs["pods"] = []
        objs["replicasets"][0]["status"] = {"conditions": [
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": message}]}
        [c] = diagnose.classify("istiod", objs, now=NOW)
        assert (c.kind, c.permanent) == ("FailedCreate", False), message
        assert c.fix  # a next step is always said


def test_image_not_found_is_permanent_and_names_image_and_registry():
    objs = istiod_objs({"phase": "Pending", "containerStatuses": [
        {"name": "discovery", "image": "registry.istio.io/testing/pilot:latest-distroless", "ready": False,
         "state": {"waiting": {"reason": "ImagePullBackOff",
                               "message": "Back-off pulling image: manifest unknown: not found"}}}]})
    [c] = diagnose.classify("istiod", objs, now=NOW)
    assert c.permanent and "registry.istio.io/testing/pilot:latest-distroless" in c.summary
    assert "from registry.istio.io" in c.summary
    # Still pulling (no "not found"): keep waiting.
    objs["pods"][0]["status"]["containerStatuses"][0]["state"]["waiting"] = {"reason": "ErrImagePull",
                                                                            "message": "i/o timeout"}
    assert not diagnose.classify("istiod", objs, now=NOW)[0].permanent


def test_crash_loop_carries_the_termination_message():
    objs = istiod_objs({"phase": "Running", "containerStatuses": [
        {"name": "discovery", "image": "docker.io/istio/pilot:1.31.0", "ready": False, "restartCount": 5,
         "state": {"waiting": {"reason": "CrashLoopBackOff"}},
         "lastState": {"terminated": {"exitCode": 1, "message": "cannot load mesh config"}}}]})
    causes = diagnose.classify("istiod", objs, now=NOW)
    assert causes[0].kind == "CrashLoopBackOff" and causes[0].permanent
    assert "cannot load mesh config" in causes[0].summary and "--previous" in causes[0].fix


def test_never_ready_turns_permanent_only_after_the_grace():
    status = {"phase": "Running", "containerStatuses": [
        {"name": "discovery", "ready": False, "state": {"running": {"startedAt": "2027-01-15T08:00:00Z"}}}]}
    started = diagnose._ts(ISO)
    objs = istiod_objs(status)
    assert diagnose.classify("istiod", objs, now=started + 2) == []  # starting up
    early = diagnose.classify("istiod", objs, now=started + 15)
    late = diagnose.classify("istiod", objs, now=started + diagnose.NEVER_READY_AFTER + 1)
    assert early[0].kind == "NotReady" and not early[0].permanent
    assert late[0].permanent


def test_a_daemonset_pod_bound_to_fargate_is_permanent_with_an_affinity_snippet():
    fg = node("fargate-1", labels={"eks.amazonaws.com/compute-type": "fargate"})
    ds = {"metadata": {"name": "ztunnel", "namespace": "istio-system"},
          "spec": {"template": {"spec": {}}}, "status": {"desiredNumberScheduled": 2}}
    pod = {"metadata": {"name": "ztunnel-q", "namespace": "istio-system",
                        "ownerReferences": [{"kind": "DaemonSet", "name": "ztunnel"}]},
           "spec": {"nodeName": "fargate-1"}, "status": {"phase": "Pending"}}
    [c] = diagnose.classify("ztunnel", {"daemonsets": [ds], "pods": [pod], "events": [],
                                        "nodes": [fg, node("n1")]}, now=NOW)
    assert c.kind == "Fargate" and c.permanent and "NotIn" in c.fix and "--values ztunnel=FILE" in c.fix


def test_node_refusals_and_daemonset_gap():
    tainted = node("n1", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    assert scheduling.node_refusals({}, tainted) == ["untolerated taint dedicated=gpu:NoSchedule"]
    tol = {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}
    assert scheduling.node_refusals(tol, tainted) == []
    assert scheduling.node_refusals({"nodeSelector": {"pool": "mesh"}}, node("n2")) == [
        "nodeSelector pool=mesh not on the node"]
    big = {"containers": [{"resources": {"requests": {"cpu": "500m", "memory": "2Gi"}}}]}
    assert scheduling.node_refusals(big, node("n3", cpu="4"), requested={"cpu": 3.8}) == [
        "insufficient CPU (asks 500m, 200m free)"]
    ds = {"metadata": {"name": "ztunnel"}, "spec": {"template": {"spec": {}}},
          "status": {"desiredNumberScheduled": 1}}
    gap = diagnose._daemonset_gap("ztunnel", ds, {"n1": tainted, "n2": node("n2")})
    assert gap is not None and not gap.permanent and "skips n1 (untolerated taint" in gap.summary


def test_judge_placement_fails_a_deployment_no_node_takes():
    w = scheduling.Workload("istiod", "Deployment", "istiod", "istio-system", 1, {})
    nodes = [node(f"n{i}", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]) for i in range(3)]
    [(status, line, fix)] = scheduling.judge_placement([w], nodes, {})
    assert status == "fail" and "no node can run it" in line and "key: dedicated" in fix


def test_image_findings_flag_retired_registries_dev_images_and_moving_tags():
    cat = catalog.load().images
    found = scheduling.image_findings(["registry.istio.io/testing/pilot:latest-distroless",
                                       "gcr.io/istio-release/ztunnel:1.30.0", "docker.io/istio/pilot:1.31.0"],
                                      cat)
    text = " ".join(t for _, t in found)
    assert ("fail", "gcr.io/istio-release/ztunnel:1.30.0: gcr.io/istio-release is retired (December 2026; "
            "brownouts autumn 2026, the last on 8-9 December 2026)") in found
    assert "development image" in text and "tag latest-distroless moves" in text
    assert "docker.io/istio/pilot:1.31.0" not in text


def test_template_argv_keeps_chart_and_values_and_drops_the_wait():
    argv = ["helm", "upgrade", "--install", "istiod", "/c/istiod", "--namespace", "istio-system",
            "--set", "profile=ambient", "--values", "v.yaml", "--wait", "--timeout", "10m"]
    assert scheduling.template_argv(argv) == ["helm", "template", "istiod", "/c/istiod", "--namespace",
                                              "istio-system", "--set", "profile=ambient", "--values", "v.yaml"]


def test_fault_stages_select_by_label_and_win_over_the_defaults():
    st = faults.fault_stage("image-pull", "app=istiod")
    exprs = st["spec"]["selector"]["matchExpressions"]
    assert exprs[0] == {"key": '.metadata.labels["app"]', "operator": "In", "values": ["istiod"]}
    assert st["spec"]["weight"] > 0 and "ImagePullBackOff" in st["spec"]["next"]["statusTemplate"]
    assert faults._selector_of(st) == "app=istiod"
    names = [s["metadata"]["name"] for s in faults.default_stages()]
    assert names == ["node-initialize", "node-heartbeat", "pod-ready", "pod-complete", "pod-delete"]


def test_runner_ends_a_step_early_on_a_permanent_cause_and_journals_it():
    async def watcher(step, report):
        await asyncio.sleep(0.2)
        report(Cause("Test", "istiod", "still pulling", permanent=False))
        await asyncio.sleep(0.2)
        report(Cause("FailedScheduling", "istiod", "Pending: 3 node(s) had untolerated taint",
                     fix="add tolerations", permanent=True))
        await asyncio.sleep(60)

    step = Step("helm-istiod", "wait", argv=[sys.executable, "-c", "import time; time.sleep(60)"], timeout=120, watches=("istiod",))
    runner = Runner(Plan("t", [Phase("p", "p", [step])]), step_watcher=watcher)
    events = []
    runner.subscribe(events.append)
    t0 = time.monotonic()
    ok = asyncio.run(runner.run())
    assert not ok and time.monotonic() - t0 < 10
    assert step.state is StepState.FAILED
    kinds = [e.kind for e in events]
    assert kinds.count(EventKind.CAUSE) == 2
    failed = [e for e in events if e.kind is EventKind.FAILED][0]
    assert failed.message == "istiod: Pending: 3 node(s) had untolerated taint; next: add tolerations"


def test_a_pod_row_says_why_it_is_not_ready():
    from ambient_tui.watch.rows import pod_row

    pod = {"metadata": {"name": "istiod-1", "namespace": "istio-system"}, "spec": {},
           "status": {"phase": "Pending", "conditions": [
               {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": SCHED_MSG}]}}
    row = pod_row(pod)
    assert row.reason == "0/3 nodes are available: 3 node(s) had untolerated taint {dedicated: gpu}"
    assert row.cells(NOW)[3] == "Pending: " + row.reason
    ready = {"metadata": {"name": "ok"}, "spec": {}, "status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True"}]}}
    assert pod_row(ready).reason == "" and pod_row(ready).cells(NOW)[3] == "Running"


def test_a_daemonset_is_judged_against_fargate_nodes():
    fg = node("fargate-1", labels={"eks.amazonaws.com/compute-type": "fargate"},
              taints=[{"key": "eks.amazonaws.com/compute-type", "value": "fargate", "effect": "NoSchedule"}])
    tolerate_all = {"tolerations": [{"operator": "Exists"}]}
    w = scheduling.Workload("istio-cni", "DaemonSet", "istio-cni-node", "istio-system", 1, tolerate_all)
    [(status, line, fix)] = scheduling.judge_placement([w], [fg, node("n1")], {})
    assert status == "fail" and "Fargate node(s) fargate-1" in line and "--values cni=FILE" in fix
    kept_off = {**tolerate_all, "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate"]}]}]}}}}
    w.pod = kept_off
    [(status, line, _)] = scheduling.judge_placement([w], [fg, node("n1")], {})
    assert status == "warn" and "runs on 1 of 2 nodes" in line and "kept off" in line


def test_an_old_pod_on_fargate_is_not_a_cause_once_the_daemonset_keeps_off_fargate():
    fg = node("fargate-1", labels={"eks.amazonaws.com/compute-type": "fargate"})
    keep_off = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate"]}]}]}}}}
    ds = {"metadata": {"name": "ztunnel", "namespace": "istio-system"},
          "spec": {"template": {"spec": keep_off}}, "status": {"desiredNumberScheduled": 1}}
    pod = {"metadata": {"name": "ztunnel-old", "namespace": "istio-system",
                        "ownerReferences": [{"kind": "DaemonSet", "name": "ztunnel"}]},
           "spec": {"nodeName": "fargate-1"}, "status": {"phase": "Pending"}}
    causes = diagnose.classify("ztunnel", {"daemonsets": [ds], "pods": [pod], "events": [],
                                           "nodes": [fg, node("n1")]}, now=NOW)
    assert [c.kind for c in causes] == ["DaemonSetGap"] and not causes[0].permanent


def test_no_room_now_is_a_warning_and_a_transient_cause():
    big = {"containers": [{"resources": {"requests": {"cpu": "64"}}}]}
    w = scheduling.Workload("istiod", "Deployment", "istiod", "istio-system", 1, big)
    [(status, line, _)] = scheduling.judge_placement([w], [node("n1"), node("n2")], {})
    assert status == "warn" and "no node has room for it now" in line
    objs = istiod_objs({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/3 nodes are available: 3 Insufficient cpu. preemption: ..."}]})
    assert not diagnose.classify("istiod", objs, now=NOW)[0].permanent
