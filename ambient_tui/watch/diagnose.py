"""Why a wait is not progressing: watch a component's ReplicaSets/DaemonSet, pods, events and
the nodes, and name the cause within seconds.

`DiagnoseWatcher` keeps those objects current by list+watch (ListWatcher). `classify` is pure:
given the objects it returns the causes for one workload (istiod, istio-cni-node, ztunnel),
each permanent (cannot clear by itself: end the wait) or transient (keep waiting, show it).
`step_watcher` is the runner's hook (engine/runner.py): for a step that waits for workloads
(workloads_for_step) it polls the watcher and reports causes as runner events.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace
from typing import Callable, Iterable

from ambient_tui.engine.events import Cause

from .listwatch import ListWatcher, Loop, RawSource
from .pods import ISTIO_NAMESPACE
from .workloads import ISTIO_WORKLOADS, workloads_for_step

PODS, EVENTS, REPLICASETS, DAEMONSETS, DEPLOYMENTS, NODES = (
    "pods", "events", "replicasets", "daemonsets", "deployments", "nodes")
FARGATE = ("eks.amazonaws.com/compute-type", "fargate")
# A pod Running but not Ready this long is "readiness that never comes" (istiod is Ready in
# seconds once it runs; a slow real cluster takes ~20 s).
NEVER_READY_AFTER = 45.0
NOT_READY_QUIET = 5.0    # ...and not worth a word before this
CRASH_RESTARTS = 3       # a container that crashed this often will not fix itself
CONFIG_ERROR_AFTER = 30.0  # CreateContainerConfigError may clear when istiod writes its configmap
CONFIRM = 1.5            # a permanent cause must hold this long before the wait is ended
# Taints the node lifecycle puts on and takes off by itself: waiting can clear them.
TRANSIENT_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable",
                    "node.kubernetes.io/network-unavailable", "node.kubernetes.io/disk-pressure",
                    "node.kubernetes.io/memory-pressure", "node.kubernetes.io/pid-pressure",
                    "node.cloudprovider.kubernetes.io/uninitialized", "ToBeDeletedByClusterAutoscaler")
# The values key under which each chart takes its pods' scheduling (for `--values COMP=FILE`).
VALUES = {"istiod": ("istiod", ""), "istio-cni-node": ("cni", ""), "ztunnel": ("ztunnel", "")}


class DiagnoseSource(RawSource):
    """Raw list/watch of the objects a diagnosis reads (as KubeSource)."""

    def __init__(self, kubeconfig=None, context=None, api_client=None, connect_timeout=5.0):
        from kubernetes import client

        super().__init__(kubeconfig, context, api_client, connect_timeout)
        self.apps = client.AppsV1Api(self.api_client)

    def _request(self, kind, namespace, **kw):
        if kind == NODES:
            return self.core.list_node(**kw)
        method = {PODS: self.core.list_namespaced_pod, EVENTS: self.core.list_namespaced_event,
                  REPLICASETS: self.apps.list_namespaced_replica_set,
                  DEPLOYMENTS: self.apps.list_namespaced_deployment,
                  DAEMONSETS: self.apps.list_namespaced_daemon_set}[kind]
        return method(namespace, **kw)


class DiagnoseWatcher(ListWatcher):
    """Pods, events, ReplicaSets, Deployments, DaemonSets of a namespace and the nodes."""

    thread_name = "diagnose-watcher"

    def __init__(self, source=None, *, namespace: str = ISTIO_NAMESPACE, kubeconfig=None,
                 context=None, **kw) -> None:
        super().__init__(source, kubeconfig=kubeconfig, context=context, **kw)
        self.namespace = namespace
        self._objs: dict[str, dict[str, dict]] = {k: {} for k in
                                                   (PODS, EVENTS, REPLICASETS, DEPLOYMENTS, DAEMONSETS, NODES)}

    def _default_source(self):
        return DiagnoseSource(self.kubeconfig, self.context)

    def _loops(self) -> list[Loop]:
        return [Loop(key=k, kind=k, namespace=None if k == NODES else self.namespace, scope=k)
                for k in self._objs]

    def _denied_message(self, loop, what, e) -> str:
        return f"{what}: {loop.kind}"

    def _replace(self, loop, items: Iterable[dict]) -> None:
        new = {_key(o): o for o in items}
        with self._lock:
            self._objs[loop.kind] = new
            self._version += 1

    def _apply(self, loop, typ, obj) -> None:
        with self._lock:
            if typ == "DELETED":
                self._objs[loop.kind].pop(_key(obj), None)
            else:
                self._objs[loop.kind][_key(obj)] = obj
            self._version += 1

    def objects(self) -> dict[str, list[dict]]:
        with self._lock:
            return {k: list(v.values()) for k, v in self._objs.items()}

    def causes(self, workload: str, since: float = 0.0, now: float | None = None) -> list[Cause]:
        return classify(workload, self.objects(), since=since, now=now)


def _key(obj: dict) -> str:
    m = obj.get("metadata") or {}
    return f"{m.get('namespace', '')}/{m.get('name', '')}"


# --- classification (pure) -------------------------------------------------------------------

def _ts(text: str | None) -> float:
    if not text:
        return 0.0
    from datetime import datetime
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _owned_by(obj: dict, kind: str, names: set[str]) -> bool:
    return any(r.get("kind") == kind and r.get("name") in names
               for r in (obj.get("metadata") or {}).get("ownerReferences") or [])


def workload_objects(workload: str, objs: dict[str, list[dict]]) -> tuple[list[dict], list[dict], set[str]]:
    """(controllers, pods, names of every object whose events count) of one workload."""
    kind = ISTIO_WORKLOADS.get(workload, DEPLOYMENTS)
    if kind == DAEMONSETS:
        ctrls = [d for d in objs.get(DAEMONSETS, []) if d["metadata"]["name"] == workload]
        pods = [p for p in objs.get(PODS, []) if _owned_by(p, "DaemonSet", {workload})]
    else:
        deps = [d for d in objs.get(DEPLOYMENTS, []) if d["metadata"]["name"] == workload]
        rs = [r for r in objs.get(REPLICASETS, []) if _owned_by(r, "Deployment", {workload})]
        # Only the newest ReplicaSet's pods matter: old ones are being replaced.
        if rs:
            rs = [max(rs, key=lambda r: int((r["metadata"].get("annotations") or {})
                                            .get("deployment.kubernetes.io/revision", 0) or 0))]
        rs_names = {r["metadata"]["name"] for r in rs}
        pods = [p for p in objs.get(PODS, []) if _owned_by(p, "ReplicaSet", rs_names)]
        ctrls = rs + deps
    pods = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    names = {c["metadata"]["name"] for c in ctrls} | {p["metadata"]["name"] for p in pods} | {workload}
    return ctrls, pods, names


def _recent_events(objs, names: set[str], since: float) -> list[dict]:
    out = []
    for e in objs.get(EVENTS, []):
        if (e.get("involvedObject") or {}).get("name") not in names:
            continue
        when = max(_ts(e.get("lastTimestamp")), _ts(e.get("eventTime")),
                   _ts((e.get("series") or {}).get("lastObservedTime")), _ts(e.get("firstTimestamp")))
        if when >= since - 2:
            out.append({**e, "_when": when})
    return sorted(out, key=lambda e: e["_when"])


def scheduling_reasons(message: str) -> list[tuple[int, str]]:
    """The per-node reasons of a FailedScheduling message: "0/3 nodes are available: 3 node(s)
    had untolerated taint {dedicated: gpu}. preemption: ..." -> [(3, "node(s) had ...")]."""
    head = message.split(" preemption:")[0]
    _, _, body = head.partition("are available: ")
    out = []
    for part in re.split(r",\s*(?=\d+ )", body.rstrip(". ")):
        m = re.match(r"(\d+) (.+)", part.strip())
        if m:
            out.append((int(m.group(1)), m.group(2).rstrip(".")))
    return out


def _static_reason(reason: str) -> bool:
    if "untolerated taint" in reason:
        return not any(t in reason for t in TRANSIENT_TAINTS)
    return any(s in reason for s in ("didn't match Pod's node affinity/selector",
                                     "didn't match pod anti-affinity", "didn't match pod affinity",
                                     "node(s) didn't satisfy plugin", "had volume node affinity conflict"))


def _values_hint(workload: str, block: str) -> str:
    comp, prefix = VALUES.get(workload, (workload, ""))
    body = "\n".join(("  " if prefix else "") + line for line in block.splitlines())
    snippet = f"{prefix}:\n{body}" if prefix else body
    return f"set in a values file, then install with --values {comp}=FILE:\n{snippet}"


def _scheduling_cause(workload: str, message: str, pod_spec: dict | None = None,
                      nodes: dict[str, dict] | None = None) -> Cause:
    reasons = scheduling_reasons(message)
    if ISTIO_WORKLOADS.get(workload) == DAEMONSETS:
        # A DaemonSet's pod asks for one node: the others "didn't match" by design.
        reasons = [r for r in reasons if "node affinity/selector" not in r[1]] or reasons
    permanent = bool(reasons) and all(_static_reason(r) for _, r in reasons)
    fix = ""
    # The scheduler names the taint only sometimes ("untolerated taint(s)"): read the nodes.
    taints = [tuple(m.split(": ", 1)) + ("NoSchedule",)
              for m in re.findall(r"untolerated taint\(?s?\)? ?\{([^}]*)\}", message)]
    if not taints and "untolerated taint" in message and nodes:
        from ambient_tui.checks.scheduling import untolerated_taints
        taints = untolerated_taints(pod_spec or {}, list(nodes.values()))
    if taints and not any(t[0] in TRANSIENT_TAINTS for t in taints):
        key, value, effect = (list(taints[0]) + ["", ""])[:3]
        if taints and "{" not in message:
            message = message.replace("untolerated taint(s)", "untolerated taint(s) "
                                      + ", ".join(f"{k}={v}:{e}" for k, v, e in taints))
        fix = _values_hint(workload, f"tolerations:\n- key: {key}\n  operator: Equal\n  value: {value}\n"
                                     f"  effect: {effect or 'NoSchedule'}")
    elif "untolerated taint" in message:
        fix = ("the nodes' taints: kubectl get nodes -o custom-columns=NAME:.metadata.name,"
               "TAINTS:.spec.taints; then add tolerations (" + _values_hint(workload, "tolerations: [...]") + ")")
    elif "node affinity/selector" in message:
        fix = ("no node has the labels the pod asks for: fix nodeSelector/affinity in your values, "
               "or label a node: kubectl label node NODE KEY=VALUE")
    elif "Insufficient" in message:
        fix = "free or add capacity (a bigger node group), or lower the requests in your values"
    return Cause("FailedScheduling", workload, f"Pending: {message}", fix, permanent)


def _admission_cause(workload: str, message: str, ns: str) -> Cause:
    # Each refused pod has a new name: without it, one refusal is one cause.
    msg = re.sub(r'[Pp]ods? "[^"]*" is (forbidden|invalid)', r"pods are \1", message.replace("Error creating: ", ""))
    if "PodSecurity" in msg:
        return Cause("PodSecurity", workload, f"admission refused the pods: {msg}",
                     f"istio-system needs Pod Security `privileged` (istio-cni is privileged): "
                     f"kubectl label namespace {ns} pod-security.kubernetes.io/enforce=privileged --overwrite",
                     True)
    if "exceeded quota" in msg:
        return Cause("ResourceQuota", workload, f"quota refused the pods: {msg}",
                     f"raise or remove the quota: kubectl describe resourcequota -n {ns}", True)
    if "LimitRange" in msg or "must be less than or equal to" in msg or "per Container" in msg:
        return Cause("LimitRange", workload, f"LimitRange refused the pods: {msg}",
                     f"raise the LimitRange's max (kubectl describe limitrange -n {ns}), or lower the "
                     "requests in your values (" + _values_hint(workload, "resources:\n  requests:\n    cpu: 100m") + ")",
                     True)
    if "webhook" in msg:
        return Cause("Webhook", workload, f"an admission webhook refused the pods: {msg}",
                     "see the webhook named above: kubectl get validatingwebhookconfigurations,"
                     "mutatingwebhookconfigurations", True)
    if "error looking up service account" in msg:
        # The ServiceAccount comes with (or just after) the workload and the API server's
        # ServiceAccount admission reads a cache: the controller retries, so this is a wait.
        return Cause("FailedCreate", workload, f"pods are not created yet: {msg}",
                     f"the ServiceAccount should appear soon: kubectl get serviceaccount -n {ns}", False)
    # Not a refusal this module knows to be final: shown, and the wait goes on.
    return Cause("FailedCreate", workload, f"pods are not created: {msg}",
                 f"kubectl describe replicaset,daemonset -n {ns}", False)


def _registry(image: str) -> str:
    first = image.split("/")[0]
    return first if ("." in first or ":" in first) and "/" in image else "docker.io"


def _container_cause(workload: str, pod: dict, cs: dict, events: list[dict], now: float) -> Cause | None:
    name = pod["metadata"]["name"]
    waiting = (cs.get("state") or {}).get("waiting") or {}
    reason, message = waiting.get("reason", ""), waiting.get("message", "")
    image = cs.get("image", "")
    pod_events = [e for e in events if (e.get("involvedObject") or {}).get("name") == name]
    if reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName"):
        texts = " ".join([message] + [e.get("message", "") for e in pod_events])
        missing = any(s in texts for s in ("not found", "NotFound", "manifest unknown",
                                           "does not exist", "InvalidImageName"))
        return Cause(reason, workload, f"{name} cannot pull {image} from {_registry(image)}: "
                     f"{message or reason}",
                     "check the image exists: hub and tag come from global.hub/global.tag "
                     "(the release's official images: docker.io/istio, gcr.io/istio-release is retired)",
                     missing or reason == "InvalidImageName")
    if reason == "CrashLoopBackOff":
        last = (cs.get("lastState") or {}).get("terminated") or {}
        restarts = int(cs.get("restartCount") or 0)
        detail = last.get("message", "")
        return Cause("CrashLoopBackOff", workload,
                     f"{name} container {cs.get('name')} crash-loops (restarts {restarts}, exit "
                     f"{last.get('exitCode', '?')}{': ' + detail if detail else ''})",
                     f"read its logs: kubectl logs -n {pod['metadata'].get('namespace')} {name} "
                     f"-c {cs.get('name')} --previous",
                     restarts >= CRASH_RESTARTS, detail,
                     ref=f"{pod['metadata'].get('namespace')}/{name}/{cs.get('name')}")
    if reason == "CreateContainerConfigError":
        started = _ts(pod.get("status", {}).get("startTime")) or now
        return Cause(reason, workload, f"{name}: {message or reason}",
                     "create the Secret/ConfigMap it names, or fix the reference in your values",
                     now - started > CONFIG_ERROR_AFTER)
    return None


def _never_ready(workload: str, pod: dict, events: list[dict], now: float) -> Cause | None:
    st = pod.get("status") or {}
    if st.get("phase") != "Running":
        return None
    css = st.get("containerStatuses") or []
    if not css or all(c.get("ready") for c in css):
        return None
    if not all((c.get("state") or {}).get("running") for c in css):
        return None
    started = min(_ts(((c.get("state") or {}).get("running") or {}).get("startedAt")) or now for c in css)
    name = pod["metadata"]["name"]
    probe = [e.get("message", "") for e in events
             if (e.get("involvedObject") or {}).get("name") == name and e.get("reason") == "Unhealthy"]
    waited = now - started
    if waited < NOT_READY_QUIET:
        return None  # starting up: every pod is unready for a moment
    return Cause("NotReady", workload,
                 f"{name} runs but is not Ready after {waited:.0f}s"
                 + (f": {probe[-1]}" if probe else ""),
                 f"see why its readiness probe fails: kubectl describe pod -n "
                 f"{pod['metadata'].get('namespace')} {name}; kubectl logs -n "
                 f"{pod['metadata'].get('namespace')} {name}",
                 waited > NEVER_READY_AFTER)


def _node_cause(workload: str, pod: dict, nodes: dict[str, dict], template: dict | None = None) -> Cause | None:
    node_name = (pod.get("spec") or {}).get("nodeName")
    node = nodes.get(node_name) if node_name else None
    if node is None or (pod.get("status") or {}).get("containerStatuses"):
        return None
    labels = node["metadata"].get("labels") or {}
    if labels.get(FARGATE[0]) == FARGATE[1]:
        from ambient_tui.checks.scheduling import FARGATE_PLACED, node_refusals
        if template is not None and FARGATE_PLACED not in node_refusals(template, node, daemonset=True):
            return None  # the DaemonSet now keeps off Fargate: its controller removes this pod
        comp = VALUES.get(workload, (workload, ""))[0]
        return Cause("Fargate", workload,
                     f"{pod['metadata']['name']} is bound to Fargate node {node_name}: Fargate runs no "
                     "DaemonSets, so pods there cannot join the mesh",
                     _values_hint(workload, "affinity:\n  nodeAffinity:\n    requiredDuringScheduling"
                                  "IgnoredDuringExecution:\n      nodeSelectorTerms:\n      - matchExpressions:\n"
                                  f"        - key: {FARGATE[0]}\n          operator: NotIn\n"
                                  f"          values: [{FARGATE[1]}]")
                     + f"\n(the Verify phase then counts only the nodes the {comp} DaemonSet runs on)",
                     True)
    ready = {c.get("type"): c for c in (node.get("status") or {}).get("conditions") or []}.get("Ready", {})
    if ready.get("status") != "True":
        return Cause("NodeNotReady", workload,
                     f"{pod['metadata']['name']} waits on node {node_name}, which is NotReady"
                     f"{': ' + ready['message'] if ready.get('message') else ''}",
                     f"kubectl describe node {node_name}", False)
    return None


def classify(workload: str, objs: dict[str, list[dict]], since: float = 0.0,
             now: float | None = None) -> list[Cause]:
    """Causes of one workload not becoming Ready, permanent ones first (pure: unit-tested)."""
    now = time.time() if now is None else now
    ctrls, pods, names = workload_objects(workload, objs)
    ns = next((c["metadata"].get("namespace") for c in ctrls), ISTIO_NAMESPACE)
    events = _recent_events(objs, names, since)
    nodes = {n["metadata"]["name"]: n for n in objs.get(NODES, [])}
    causes: dict[str, Cause] = {}
    # A DaemonSet's current pod template: what it places now, not what old pods were made from.
    template = next((((c.get("spec") or {}).get("template") or {}).get("spec") for c in ctrls
                     if ISTIO_WORKLOADS.get(workload) == DAEMONSETS), None)

    def add(c: Cause | None) -> None:
        if c is not None and c.summary not in causes:
            causes[c.summary] = c

    # Admission: the controller could not create pods (ReplicaSet condition or events).
    for c in ctrls:
        for cond in (c.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
                add(_admission_cause(workload, cond.get("message", ""), ns))
    for e in events:
        if e.get("reason") == "FailedCreate":
            add(_admission_cause(workload, e.get("message", ""), ns))
    for pod in pods:
        st = pod.get("status") or {}
        sched = next((c for c in st.get("conditions") or [] if c.get("type") == "PodScheduled"), {})
        if sched.get("status") == "False" and sched.get("reason") == "Unschedulable":
            add(_scheduling_cause(workload, sched.get("message", ""), pod.get("spec"), nodes))
            continue
        add(_node_cause(workload, pod, nodes, template))
        for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
            add(_container_cause(workload, pod, cs, events, now))
        add(_never_ready(workload, pod, events, now))
    # Pending pods with no condition yet, but the scheduler's event says why.
    if not any(c.kind == "FailedScheduling" for c in causes.values()):
        sched_events = [e for e in events if e.get("reason") == "FailedScheduling"
                        and (e.get("involvedObject") or {}).get("name") in {p["metadata"]["name"] for p in pods
                                                                          if not p["spec"].get("nodeName")}]
        if sched_events:
            add(_scheduling_cause(workload, sched_events[-1].get("message", ""), pods[0].get("spec"), nodes))
    if ISTIO_WORKLOADS.get(workload) == DAEMONSETS:
        for d in ctrls:
            add(_daemonset_gap(workload, d, nodes))
    return sorted(causes.values(), key=lambda c: not c.permanent)


def _daemonset_gap(workload: str, ds: dict, nodes: dict[str, dict]) -> Cause | None:
    desired = int((ds.get("status") or {}).get("desiredNumberScheduled") or 0)
    if not nodes or desired >= len(nodes):
        return None
    from ambient_tui.checks.scheduling import node_refusals
    tmpl = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    skipped = {n: why for n, why in ((name, node_refusals(tmpl, node, daemonset=True))
                                     for name, node in nodes.items()) if why}
    names = ", ".join(f"{n} ({'; '.join(w)})" for n, w in list(skipped.items())[:3])
    return Cause("DaemonSetGap", workload,
                 f"runs on {desired} of {len(nodes)} nodes" + (f"; skips {names}" if names else ""),
                 "pods on the skipped nodes will not be in the mesh: tolerate their taints or "
                 "keep ambient workloads off them", False)


# --- the runner hook ----------------------------------------------------------------------------

def step_watcher(kubeconfig: str | None = None, context: str | None = None,
                 namespace: str = ISTIO_NAMESPACE, poll: float = 0.5,
                 watcher_factory: Callable[[], DiagnoseWatcher] | None = None):
    """The runner's `step_watcher`: `await watch(step, report)` reports causes for the
    workloads the step waits for until the runner cancels it. One watcher serves every step
    (started on the first step that waits for something)."""
    state: dict = {}

    def watcher() -> DiagnoseWatcher:
        if "w" not in state:
            make = watcher_factory or (lambda: DiagnoseWatcher(namespace=namespace, kubeconfig=kubeconfig,
                                                               context=context))
            state["w"] = make().start()
        return state["w"]

    async def watch(step, report: Callable[[Cause], None]) -> None:
        names = workloads_for_step(step)
        argv = step.argv or []
        if not names or (argv[:1] == ["helm"] and "--wait" not in argv):
            return  # a helm step without --wait waits for nothing; the Verify phase does
        w = watcher()
        since = time.time()
        seen: dict[str, float] = {}  # cause summary -> first seen (monotonic)
        reported: set[tuple[str, bool]] = set()
        while True:
            await asyncio.sleep(poll)
            now_m = time.monotonic()
            for name in names:
                try:
                    causes = w.causes(name, since=since)
                except Exception:  # noqa: BLE001 - an odd object must not end the watching
                    continue
                for c in causes:
                    key = _stable(c.summary)
                    first = seen.setdefault(key, now_m)
                    permanent = c.permanent and now_m - first >= CONFIRM
                    if (key, permanent) in reported:
                        continue
                    if c.permanent and not permanent:
                        c = replace(c, permanent=False)  # shown now; ends the wait once confirmed
                        if (key, False) in reported:
                            continue
                    reported.add((key, c.permanent))
                    if c.kind == "CrashLoopBackOff" and c.ref:
                        c = replace(c, detail="\n".join(x for x in (c.detail, await asyncio.to_thread(
                            last_log_lines, w, c.ref)) if x))
                    report(c)

    watch.stop = lambda: state.pop("w").stop() if "w" in state else None  # type: ignore[attr-defined]
    return watch


def last_log_lines(w: DiagnoseWatcher, ref: str, n: int = 5) -> str:
    """The crashed container's last log lines (its previous run), or why there are none."""
    ns, pod, container = ref.split("/", 2)
    try:
        text = w.source.core.read_namespaced_pod_log(pod, ns, container=container, previous=True,
                                                     tail_lines=n, _request_timeout=(3, 5))
    except Exception as e:  # noqa: BLE001 - no kubelet (kwok), gone pod: say so
        reason = getattr(e, "reason", None) or type(e).__name__
        return f"last log lines: not available ({str(reason)[:120]})"
    lines = [ln for ln in (text or "").splitlines() if ln.strip()][-n:]
    return "last log lines:\n" + "\n".join(lines) if lines else "last log lines: (empty)"


def _stable(summary: str) -> str:
    """A cause's identity without its counters (seconds waited, restarts)."""
    return re.sub(r"\d+s\b|restarts \d+", "#", summary)


def read_objects(kube, namespace: str = ISTIO_NAMESPACE) -> dict[str, list[dict]]:
    """One read of what `classify` needs, through a KubeClient (for `status`)."""
    paths = {PODS: f"/api/v1/namespaces/{namespace}/pods",
             EVENTS: f"/api/v1/namespaces/{namespace}/events",
             REPLICASETS: f"/apis/apps/v1/namespaces/{namespace}/replicasets",
             DEPLOYMENTS: f"/apis/apps/v1/namespaces/{namespace}/deployments",
             DAEMONSETS: f"/apis/apps/v1/namespaces/{namespace}/daemonsets", NODES: "/api/v1/nodes"}
    return {k: kube.list_json(p, f"listing {k}") for k, p in paths.items()}
