"""Pod row data, formatted like `kubectl get pods` (STATUS, READY, RESTARTS, AGE columns)."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field

AMBIENT_LABEL = "istio.io/dataplane-mode"

# Display order: node last, so at 80 columns only it scrolls off to the right.
COLUMNS = ("namespace", "name", "ready", "status", "restarts", "age", "ambient", "node")


def parse_time(ts: str | None) -> float | None:
    """RFC 3339 timestamp from the API ('2026-01-02T03:04:05Z') to epoch seconds."""
    if not ts:
        return None
    try:
        return float(calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery duration.HumanDuration, which kubectl uses for AGE, except that a
    negative duration is "0s", never kubectl's `<invalid>`: it only means the server's clock
    is ahead of ours (see server_clock.py), and the word is wider than the AGE column."""
    s = int(seconds)
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def format_age(created: float | None, now: float) -> str:
    return "<unknown>" if created is None else human_duration(now - created)


def _terminated_reason(t: dict, prefix: str = "") -> str:
    if t.get("reason"):
        return prefix + t["reason"]
    if t.get("signal"):
        return f"{prefix}Signal:{t['signal']}"
    return f"{prefix}ExitCode:{t.get('exitCode', 0)}"


def pod_status(pod: dict) -> str:
    """The STATUS column of `kubectl get pods` (printPod in kubernetes/pkg/printers)."""
    meta, spec, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    reason = st.get("reason") or st.get("phase") or "Unknown"
    init_specs = spec.get("initContainers") or []
    sidecars = {c.get("name") for c in init_specs if c.get("restartPolicy") == "Always"}
    initializing = False
    init_statuses = st.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode", 0) == 0 and not term.get("signal"):
            continue
        if cs.get("name") in sidecars and cs.get("started") and "running" in state:
            continue
        if term:
            reason = _terminated_reason(term, "Init:")
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs) or len(init_statuses)}"
        initializing = True
        break
    if not initializing:
        has_running = False
        for cs in reversed(st.get("containerStatuses") or []):
            state = cs.get("state") or {}
            wait, term = state.get("waiting"), state.get("terminated")
            if wait and wait.get("reason"):
                reason = wait["reason"]
            elif term:
                reason = _terminated_reason(term)
            elif "running" in state and cs.get("ready"):
                has_running = True
        if reason == "Completed" and has_running:
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in st.get("conditions") or [])
            reason = "Running" if ready else "NotReady"
    if meta.get("deletionTimestamp"):
        reason = "Unknown" if st.get("reason") == "NodeLost" else "Terminating"
    return reason


def pod_ready(pod: dict) -> str:
    spec, st = pod.get("spec") or {}, pod.get("status") or {}
    sidecars = {c.get("name") for c in spec.get("initContainers") or []
                if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + len(sidecars)
    ready = sum(1 for c in st.get("containerStatuses") or [] if c.get("ready"))
    ready += sum(1 for c in st.get("initContainerStatuses") or []
                 if c.get("name") in sidecars and c.get("ready"))
    return f"{ready}/{total}"


def pod_restarts(pod: dict) -> int:
    st = pod.get("status") or {}
    return sum(int(c.get("restartCount") or 0)
               for c in (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or []))


def ambient_mode(pod_labels: dict, namespace_labels: dict | None) -> str:
    """enrolled (namespace label), opted-out (pod label =none) or none."""
    if (pod_labels or {}).get(AMBIENT_LABEL) == "none":
        return "opted-out"
    if (namespace_labels or {}).get(AMBIENT_LABEL) == "ambient":
        return "enrolled"
    if (pod_labels or {}).get(AMBIENT_LABEL) == "ambient":
        return "enrolled"  # a pod can enrol itself
    return "none"


@dataclass(frozen=True)
class PodRow:
    namespace: str
    name: str
    ready: str
    status: str
    restarts: int
    created: float | None
    node: str
    ambient: str
    labels: dict = field(default_factory=dict, compare=False, hash=False)
    uid: str = ""
    reason: str = ""  # why a pod is not Ready (pod_reason), "" when it is

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def cells(self, now: float) -> tuple[str, ...]:
        """Display strings in COLUMNS order."""
        status = f"{self.status}: {self.reason}" if self.reason else self.status
        return (self.namespace, self.name, self.ready, status, str(self.restarts),
                format_age(self.created, now), self.ambient, self.node or "<none>")

    def with_ambient(self, namespace_labels: dict | None) -> "PodRow":
        mode = ambient_mode(self.labels, namespace_labels)
        if mode == self.ambient:
            return self
        return PodRow(self.namespace, self.name, self.ready, self.status, self.restarts,
                      self.created, self.node, mode, self.labels, self.uid, self.reason)


def pod_row(pod: dict, namespace_labels: dict | None = None) -> PodRow:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    labels = dict(meta.get("labels") or {})
    return PodRow(namespace=meta.get("namespace", ""), name=meta.get("name", ""),
                  ready=pod_ready(pod), status=pod_status(pod), restarts=pod_restarts(pod),
                  created=parse_time(meta.get("creationTimestamp")),
                  node=spec.get("nodeName") or "", ambient=ambient_mode(labels, namespace_labels),
                  labels=labels, uid=meta.get("uid", ""), reason=pod_reason(pod))


def pod_reason(pod: dict) -> str:
    """Why a pod is not Ready, short: the scheduler's verdict, a waiting container's message,
    a readiness that does not come; "" for a Ready or finished pod."""
    st = pod.get("status") or {}
    if st.get("phase") in ("Succeeded", "Failed") or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return ""
    conds = {c.get("type"): c for c in st.get("conditions") or []}
    if conds.get("Ready", {}).get("status") == "True":
        return ""
    sched = conds.get("PodScheduled", {})
    if sched.get("status") == "False" and sched.get("message"):
        return sched["message"].split(" preemption:")[0].rstrip(". ")[:120]
    for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        wait = (cs.get("state") or {}).get("waiting") or {}
        if wait.get("message"):
            return wait["message"][:120]
        last = ((cs.get("lastState") or {}).get("terminated") or {}).get("message")
        if last:
            return f"last exit: {last[:100]}"
    css = st.get("containerStatuses") or []
    if css and all((c.get("state") or {}).get("running") for c in css):
        return "running, readiness probe not passing"
    if (pod.get("spec") or {}).get("nodeName") and not css:
        return "bound to a node that has not started it"
    return ""


# --- filters ---------------------------------------------------------------------------------

def parse_selector(text: str) -> list[tuple[str, str, str]] | None:
    """'app=web,tier!=db,team,!legacy' -> [(op, key, value)], or None if it is not a selector."""
    text = text.strip()
    if not text or " " in text or not any(c in text for c in "=!"):
        return None
    out = []
    for part in text.split(","):
        if not part:
            return None
        if "!=" in part:
            k, v = part.split("!=", 1)
            out.append(("!=", k, v))
        elif "==" in part:
            k, v = part.split("==", 1)
            out.append(("=", k, v))
        elif "=" in part:
            k, v = part.split("=", 1)
            out.append(("=", k, v))
        elif part.startswith("!"):
            out.append(("!", part[1:], ""))
        else:
            out.append(("exists", part, ""))
        if not out[-1][1]:
            return None
    return out


def row_matches(row: PodRow, text: str) -> bool:
    """Text filter (substring of namespace/name/status/node/ambient) or a k=v label selector."""
    text = text.strip()
    if not text:
        return True
    sel = parse_selector(text)
    if sel is not None:
        for op, k, v in sel:
            have = row.labels.get(k)
            if op == "=" and have != v:
                return False
            if op == "!=" and have == v:
                return False
            if op == "exists" and k not in row.labels:
                return False
            if op == "!" and k in row.labels:
                return False
        return True
    t = text.lower()
    return any(t in s.lower() for s in (row.namespace, row.name, row.status, row.node, row.ambient))
