"""Faults the sandbox can show: what goes wrong on real clusters, made on the local control plane.

Two kinds:
- API faults the real scheduler and admission turn into failures by themselves: taints on the
  nodes, a Fargate-shaped node, Pod Security `restricted` on istio-system, a pod quota, a
  LimitRange below istiod's request.
- kwok Stage faults (kwok's Stage API, `kwok.x-k8s.io/v1alpha1 Stage` objects): what a kubelet
  would report: an image that cannot be pulled, a crash loop, a container never Ready, a node
  going NotReady. The first Stage fault switches kwok to reading its stages from the cluster
  (`--enable-crds=Stage`, see ControlPlane.enable_stage_crds) with the sandbox's own default
  stages (`default_stages`), so a fault is one more Stage object, added and removed live.

Every object a fault makes or changes carries FAULT_LABEL (or a known taint/label), so `list`
reads the cluster, not a local file, and `clear` undoes exactly what was done. Clearing a pod
fault deletes the pods it marked: their controllers make new ones, as a kubelet would retry.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import quote

from .control_plane import FAKE_NODE_ANNOTATION, NODES, Api, SandboxError

FAULT_LABEL = "ambient-tui.io/fault"
ISTIO_NS = "istio-system"
STAGES = "/apis/kwok.x-k8s.io/v1alpha1/stages"
TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
FARGATE_NODE = "fargate-ip-10-0-9-90.us-west-2.compute.internal"
FARGATE_LABEL = ("eks.amazonaws.com/compute-type", "fargate")
PSA_LABEL = "pod-security.kubernetes.io/enforce"
# What each Stage fault's pods report (the crash loop's last termination message).
CRASH_MESSAGE = "fault injected by `ambient-tui sandbox fault`: cannot load mesh config"
MISSING_IMAGE_NOTE = "manifest unknown: not found"


class FaultError(SandboxError):
    pass


@dataclass(frozen=True)
class Fault:
    name: str
    help: str
    default_selector: str  # K=V: which pods (pod faults) or nodes (node faults) it hits
    stage: bool = False


FAULTS = {f.name: f for f in [
    Fault("taints", "taint every node dedicated=gpu:NoSchedule (a dedicated node group)", ""),
    Fault("fargate", "add a Fargate node (compute-type=fargate, tainted) that runs no DaemonSet pod", ""),
    Fault("psa-restricted", "Pod Security enforce=restricted on istio-system", ""),
    Fault("pod-quota", "a ResourceQuota of 0 pods in istio-system", ""),
    Fault("limitrange", "a LimitRange in istio-system: at most 200m CPU / 512Mi per container", ""),
    Fault("image-pull", "matching pods report ImagePullBackOff (image not found) [Stage]",
          "app=istiod", stage=True),
    Fault("crash-loop", "matching pods crash-loop with a termination message [Stage]",
          "app=istiod", stage=True),
    Fault("never-ready", "matching pods run but never become Ready [Stage]", "app=istiod", stage=True),
    Fault("node-not-ready", "matching nodes turn NotReady [Stage]",
          f"kubernetes.io/hostname={NODES[0][0]}", stage=True),
]}


def parse_selector(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise FaultError(f"--selector {text!r}: give it as KEY=VALUE, e.g. app=istiod")
    return key, value


# --- the cluster side ------------------------------------------------------------------------

def _ok(code: int, out: dict, what: str, allow: tuple[int, ...] = ()) -> dict:
    if code >= 300 and code not in allow:
        raise FaultError(f"{what}: HTTP {code} {out.get('message', out)}")
    return out


def _patch(api: Api, path: str, body: dict, what: str) -> dict:
    code, out = api.request("PATCH", path, body, content_type="application/merge-patch+json")
    return _ok(code, out, what)


def _nodes(api: Api, selector: str = "") -> list[dict]:
    q = f"?labelSelector={quote(selector)}" if selector else ""
    return _ok(*api.request("GET", f"/api/v1/nodes{q}"), "listing nodes").get("items", [])


def _ensure_namespace(api: Api, ns: str) -> None:
    code, out = api.request("POST", "/api/v1/namespaces",
                            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    _ok(code, out, f"creating namespace {ns}", allow=(409,))


def _set_taints(api: Api, node: dict, taints: list[dict]) -> None:
    name = node["metadata"]["name"]
    _patch(api, f"/api/v1/nodes/{name}", {"spec": {"taints": taints or None}}, f"tainting {name}")


def _add_taints(api: Api, selector: str) -> str:
    nodes = [n for n in _nodes(api, selector) if n["metadata"]["name"] != FARGATE_NODE]
    for n in nodes:
        taints = [t for t in n["spec"].get("taints") or [] if t.get("key") != TAINT["key"]]
        _set_taints(api, n, taints + [TAINT])
    return f"tainted {len(nodes)} node(s) {TAINT['key']}={TAINT['value']}:{TAINT['effect']}"


def _clear_taints(api: Api) -> int:
    n = 0
    for node in _nodes(api):
        taints = node["spec"].get("taints") or []
        if any(t.get("key") == TAINT["key"] and t.get("value") == TAINT["value"] for t in taints):
            _set_taints(api, node, [t for t in taints if t.get("key") != TAINT["key"]])
            n += 1
    return n


def _add_fargate(cp):
    def add(api: Api, selector: str) -> str:
        k, v = FARGATE_LABEL
        fk, fv = FAKE_NODE_ANNOTATION
        cp.enable_stage_crds(default_stages())
        # kwok keeps the node Ready and deletes its pods when asked (as Fargate's own agent
        # would), but a Stage keeps a DaemonSet's pod bound there Pending, never started:
        # Fargate runs no DaemonSet.
        stage = {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage",
                 "metadata": {"name": "fault-fargate", "labels": {FAULT_LABEL: "fargate"}},
                 "spec": {"resourceRef": {"apiGroup": "v1", "kind": "Pod"}, "weight": 10000,
                          "selector": {"matchExpressions": [
                              {"key": ".spec.nodeName", "operator": "In", "values": [FARGATE_NODE]},
                              {"key": ".metadata.ownerReferences.[].kind", "operator": "In",
                               "values": ["DaemonSet"]}, *_NEW_POD]},
                          "next": {"statusTemplate": _FARGATE_PENDING}}}
        _ok(*api.request("POST", STAGES, stage), "creating Stage fault-fargate", allow=(409,))
        alloc = {"cpu": "2", "memory": "4Gi", "pods": "10"}
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": FARGATE_NODE, "annotations": {fk: fv}, "labels": {
                    k: v, FAULT_LABEL: "fargate", "kubernetes.io/hostname": FARGATE_NODE,
                    "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                    "topology.kubernetes.io/zone": "us-west-2a"}},
                "spec": {"taints": [{"key": k, "value": v, "effect": "NoSchedule"}],
                         "providerID": "aws:///us-west-2a/fargate-ip-10-0-9-90"},
                "status": {"allocatable": alloc, "capacity": alloc}}
        _ok(*api.request("POST", "/api/v1/nodes", node), "creating the Fargate node", allow=(409,))
        return (f"added node {FARGATE_NODE} ({k}={v}, tainted {k}={v}:NoSchedule); a DaemonSet's "
                "pod bound there stays Pending (kwok Stage fault-fargate)")
    return add


# What a DaemonSet's pod on a Fargate node shows: bound, never started. The podIP keeps the
# default pod-ready stage from starting it.
_FARGATE_PENDING = """phase: Pending
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
conditions:
- {type: PodScheduled, status: "True"}
"""


def _clear_fargate(api: Api) -> int:
    api.request("DELETE", f"{STAGES}/fault-fargate")
    code, _ = api.request("DELETE", f"/api/v1/nodes/{FARGATE_NODE}")
    if code == 200:
        # Pods bound to it would wait for the pod GC; remove them now.
        _delete_pods(api, "", field=f"spec.nodeName={FARGATE_NODE}", force=True)
    return int(code == 200)


def _add_psa(api: Api, selector: str) -> str:
    _ensure_namespace(api, ISTIO_NS)
    _patch(api, f"/api/v1/namespaces/{ISTIO_NS}", {"metadata": {
        "labels": {PSA_LABEL: "restricted", FAULT_LABEL: "psa-restricted"}}}, "labelling istio-system")
    return f"labelled namespace {ISTIO_NS} {PSA_LABEL}=restricted"


def _clear_psa(api: Api) -> int:
    code, ns = api.request("GET", f"/api/v1/namespaces/{ISTIO_NS}")
    if code != 200 or (ns["metadata"].get("labels") or {}).get(FAULT_LABEL) != "psa-restricted":
        return 0
    _patch(api, f"/api/v1/namespaces/{ISTIO_NS}",
           {"metadata": {"labels": {PSA_LABEL: None, FAULT_LABEL: None}}}, "unlabelling istio-system")
    return 1


def _namespaced(kind_path: str, name: str, spec: dict, kind: str, api_version: str = "v1"):
    def add(api: Api, selector: str) -> str:
        _ensure_namespace(api, ISTIO_NS)
        obj = {"apiVersion": api_version, "kind": kind,
               "metadata": {"name": name, "namespace": ISTIO_NS, "labels": {FAULT_LABEL: name}},
               "spec": spec}
        _ok(*api.request("POST", f"/api/v1/namespaces/{ISTIO_NS}/{kind_path}", obj),
            f"creating {kind} {name}", allow=(409,))
        return f"created {kind} {ISTIO_NS}/{name}"

    def clear(api: Api) -> int:
        code, _ = api.request("DELETE", f"/api/v1/namespaces/{ISTIO_NS}/{kind_path}/{name}")
        return int(code == 200)
    return add, clear


_add_quota, _clear_quota = _namespaced("resourcequotas", "pod-quota", {"hard": {"pods": "0"}},
                                       "ResourceQuota")
_add_limits, _clear_limits = _namespaced("limitranges", "limitrange", {"limits": [
    {"type": "Container", "max": {"cpu": "200m", "memory": "512Mi"}}]}, "LimitRange")


def _delete_pods(api: Api, selector: str, field: str = "", force: bool = False) -> int:
    q = []
    if selector:
        q.append(f"labelSelector={quote(selector)}")
    if field:
        q.append(f"fieldSelector={quote(field)}")
    pods = _ok(*api.request("GET", "/api/v1/pods?" + "&".join(q)), "listing pods").get("items", [])
    for p in pods:
        m = p["metadata"]
        path = f"/api/v1/namespaces/{m['namespace']}/pods/{m['name']}"
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0} if force else None
        api.request("DELETE", path, body)
    return len(pods)


# --- Stage faults --------------------------------------------------------------------------

def _match(selector: str, extra: list[dict]) -> dict:
    key, value = parse_selector(selector)
    return {"matchExpressions": [
        {"key": f'.metadata.labels["{key}"]', "operator": "In", "values": [value]}, *extra]}


_NEW_POD = [{"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
            {"key": ".status.podIP", "operator": "DoesNotExist"}]
# A pod's status as a kubelet leaves it after the sandbox started the pod; `state` goes under
# each container. The podIP makes the default pod-ready stage pass it by.
_POD_STATUS = """{{ $now := Now }}
conditions:
- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Ready, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: false
%s
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: %s
startTime: {{ $now | Quote }}
"""
_CONTAINER = {
    "image-pull": ("Pending", """  restartCount: 0
  state:
    waiting:
      reason: ImagePullBackOff
      message: {{ printf "Back-off pulling image %%q: %s" .image | Quote }}""" % MISSING_IMAGE_NOTE),
    "crash-loop": ("Running", """  restartCount: 5
  started: false
  state:
    waiting:
      reason: CrashLoopBackOff
      message: {{ printf "back-off 5m0s restarting failed container=%%s" .name | Quote }}
  lastState:
    terminated:
      exitCode: 1
      reason: Error
      message: %s
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}""" % json.dumps(CRASH_MESSAGE)),
    "never-ready": ("Running", """  restartCount: 0
  started: true
  state:
    running:
      startedAt: {{ $now | Quote }}"""),
}
_EVENTS = {
    "image-pull": ("Warning", "Failed",
                   f"Failed to pull image: rpc error: code = NotFound desc = {MISSING_IMAGE_NOTE}"),
    "crash-loop": ("Warning", "BackOff", "Back-off restarting failed container"),
    "never-ready": ("Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503"),
}


def fault_stage(name: str, selector: str) -> dict:
    """The Stage object of a Stage fault (pure: unit-tested)."""
    meta = {"name": f"fault-{name}", "labels": {FAULT_LABEL: name}}
    if name == "node-not-ready":
        spec = {"resourceRef": {"apiGroup": "v1", "kind": "Node"},
                "selector": _match(selector, []),
                "weight": 10000,  # beats the heartbeat stage (weight 0) on the nodes it matches
                "delay": {"durationMilliseconds": 2000},
                "next": {"statusTemplate": _NODE_NOT_READY}}
    else:
        phase, container = _CONTAINER[name]
        typ, reason, message = _EVENTS[name]
        spec = {"resourceRef": {"apiGroup": "v1", "kind": "Pod"},
                "selector": _match(selector, _NEW_POD), "weight": 10000,
                "next": {"statusTemplate": _POD_STATUS % (container, phase),
                         "event": {"type": typ, "reason": reason, "message": message}}}
    return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": meta, "spec": spec}


_NODE_NOT_READY = """{{ $now := Now }}
conditions:
- type: Ready
  status: "False"
  reason: KubeletNotReady
  message: "container runtime network not ready (fault injected by ambient-tui sandbox fault)"
  lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $now | Quote }}
"""


def default_stages() -> list[dict]:
    """The sandbox's everyday stages once kwok reads Stage objects: nodes Ready with heartbeats,
    pods Running and Ready, Job pods completing, deleted pods gone (what kwok's built-in
    defaults do, written for the fields this project's workloads use)."""
    node_conditions = """{{ $now := Now }}
conditions:
{{ range NodeConditions }}
- type: {{ .type | Quote }}
  status: {{ .status | Quote }}
  reason: {{ .reason | Quote }}
  message: {{ .message | Quote }}
  lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $now | Quote }}
{{ end }}
"""
    ready = """{{ $now := Now }}
conditions:
{{ range list "Initialized" "Ready" "ContainersReady" "PodScheduled" }}
- {type: {{ . }}, status: "True", lastTransitionTime: {{ $now | Quote }}}
{{ end }}
containerStatuses:
{{ range .spec.containers }}
- {name: {{ .name | Quote }}, image: {{ .image | Quote }}, ready: true, started: true, restartCount: 0, state: {running: {startedAt: {{ $now | Quote }}}}}
{{ end }}
initContainerStatuses:
{{ range .spec.initContainers }}
{{ if eq ( or .restartPolicy "" ) "Always" }}
- {name: {{ .name | Quote }}, image: {{ .image | Quote }}, ready: true, started: true, restartCount: 0, state: {running: {startedAt: {{ $now | Quote }}}}}
{{ else }}
- {name: {{ .name | Quote }}, image: {{ .image | Quote }}, ready: true, restartCount: 0, state: {terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}}}
{{ end }}
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: Running
startTime: {{ $now | Quote }}
"""
    complete = """{{ $now := Now }}
containerStatuses:
{{ range .spec.containers }}
- {name: {{ .name | Quote }}, image: {{ .image | Quote }}, ready: false, started: false, restartCount: 0, state: {terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}}}
{{ end }}
phase: Succeeded
"""
    not_ready = '.status.conditions.[] | select( .type == "Ready" ) | .status'
    alive = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}

    def stage(name: str, kind: str, exprs: list[dict], nxt: dict, **extra) -> dict:
        return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage",
                "metadata": {"name": name, "labels": {"ambient-tui.io/sandbox": "default"}},
                "spec": {"resourceRef": {"apiGroup": "v1", "kind": kind},
                         "selector": {"matchExpressions": exprs}, "next": nxt, **extra}}
    return [
        stage("node-initialize", "Node", [{"key": not_ready, "operator": "NotIn", "values": ["True"]}],
              {"statusTemplate": node_conditions + "phase: Running\n"}),
        stage("node-heartbeat", "Node", [{"key": ".status.phase", "operator": "In", "values": ["Running"]},
                                         {"key": not_ready, "operator": "In", "values": ["True"]}],
              {"statusTemplate": node_conditions},
              delay={"durationMilliseconds": 20000, "jitterDurationMilliseconds": 25000},
              immediateNextStage=True),
        stage("pod-ready", "Pod", list(_NEW_POD), {"statusTemplate": ready}),
        stage("pod-complete", "Pod", [alive, {"key": ".status.phase", "operator": "In", "values": ["Running"]},
                                      {"key": ".metadata.ownerReferences.[].kind", "operator": "In",
                                       "values": ["Job"]}], {"statusTemplate": complete}),
        stage("pod-delete", "Pod", [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
              {"finalizers": {"empty": True}, "delete": True}),
    ]


def _add_stage(cp, name: str):
    def add(api: Api, selector: str) -> str:
        cp.enable_stage_crds(default_stages())
        stage = fault_stage(name, selector)
        code, out = api.request("POST", STAGES, stage)
        if code == 409:
            _ok(*api.request("PUT", f"{STAGES}/{stage['metadata']['name']}",
                             {**stage, "metadata": {**stage["metadata"],
                                                    "resourceVersion": _rv(api, stage)}}),
                f"updating Stage {stage['metadata']['name']}")
        else:
            _ok(code, out, f"creating Stage {stage['metadata']['name']}")
        if name == "node-not-ready":
            # kwok plays a node's next stage on its next change: make one now.
            for n in _nodes(api, selector):
                _patch(api, f"/api/v1/nodes/{n['metadata']['name']}",
                       {"metadata": {"annotations": {"ambient-tui.io/fault-at": str(time.time())}}},
                       "touching the node")
        what = "nodes" if name == "node-not-ready" else "new pods"
        return f"kwok Stage fault-{name}: {what} matching {selector} ({FAULTS[name].help})"
    return add


def _stage_mode(api: Api) -> bool:
    return api.request("GET", STAGES + "?limit=1")[0] == 200


def _rv(api: Api, stage: dict) -> str:
    return _ok(*api.request("GET", f"{STAGES}/{stage['metadata']['name']}"), "reading Stage")[
        "metadata"]["resourceVersion"]


def _clear_stage(name: str):
    def clear(api: Api) -> int:
        code, st = api.request("GET", f"{STAGES}/fault-{name}")
        if code != 200:
            return 0
        selector = _selector_of(st)
        api.request("DELETE", f"{STAGES}/fault-{name}")
        if name == "node-not-ready":
            # The heartbeat stage only refreshes Ready nodes; initialize brings these back.
            for n in _nodes(api, selector):
                _patch(api, f"/api/v1/nodes/{n['metadata']['name']}/status",
                       {"status": {"conditions": None}}, "resetting node conditions")
        elif selector:
            _delete_pods(api, selector)  # their controllers make new ones, now healthy
        return 1
    return clear


def _selector_of(stage: dict) -> str:
    for e in stage["spec"]["selector"].get("matchExpressions", []):
        key = e.get("key", "")
        prefix = '.metadata.labels["'
        if key.startswith(prefix):
            return f'{key[len(prefix):-2]}={e["values"][0]}'
    return ""


# --- the commands' side ----------------------------------------------------------------------

def _handlers(cp) -> dict[str, tuple[Callable[[Api, str], str], Callable[[Api], int]]]:
    h = {"taints": (_add_taints, _clear_taints), "fargate": (_add_fargate(cp), _clear_fargate),
         "psa-restricted": (_add_psa, _clear_psa), "pod-quota": (_add_quota, _clear_quota),
         "limitrange": (_add_limits, _clear_limits)}
    for f in FAULTS.values():
        if f.stage:
            h[f.name] = (_add_stage(cp, f.name), _clear_stage(f.name))
    return h


def add(cp, name: str, selector: str | None = None) -> str:
    """Make fault `name` on the running sandbox `cp`; returns what was done in one line."""
    if name not in FAULTS:
        raise FaultError(f"unknown fault {name!r}; `ambient-tui sandbox fault list` shows them: "
                         + ", ".join(FAULTS))
    selector = selector or FAULTS[name].default_selector
    if selector:
        parse_selector(selector)
    return _handlers(cp)[name][0](cp.api(), selector)


def clear(cp, name: str | None = None) -> list[str]:
    """Undo fault `name` (every fault when None); returns the names that were active."""
    if name is not None and name not in FAULTS:
        raise FaultError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
    api = cp.api()
    done = []
    for n, (_, undo) in _handlers(cp).items():
        if name in (None, n):
            if FAULTS[n].stage and not _stage_mode(api):
                continue  # no Stage objects can exist
            if undo(api):
                done.append(n)
    return done


def active(cp) -> dict[str, str]:
    """Active faults -> what they hit, read from the cluster."""
    api = cp.api()
    out: dict[str, str] = {}
    tainted = [n["metadata"]["name"] for n in _nodes(api)
               if any(t.get("key") == TAINT["key"] for t in n["spec"].get("taints") or [])]
    if tainted:
        out["taints"] = f"{len(tainted)} node(s)"
    if api.request("GET", f"/api/v1/nodes/{FARGATE_NODE}")[0] == 200:
        out["fargate"] = FARGATE_NODE
    code, ns = api.request("GET", f"/api/v1/namespaces/{ISTIO_NS}")
    if code == 200 and (ns["metadata"].get("labels") or {}).get(FAULT_LABEL) == "psa-restricted":
        out["psa-restricted"] = ISTIO_NS
    for n, path in (("pod-quota", "resourcequotas"), ("limitrange", "limitranges")):
        if api.request("GET", f"/api/v1/namespaces/{ISTIO_NS}/{path}/{n}")[0] == 200:
            out[n] = ISTIO_NS
    if _stage_mode(api):
        code, stages = api.request("GET", f"{STAGES}?labelSelector={quote(FAULT_LABEL)}")
        for st in stages.get("items", []) if code == 200 else []:
            out[st["metadata"]["labels"][FAULT_LABEL]] = _selector_of(st)
    return out
