"""Before a namespace is enrolled: would its live NetworkPolicies break the mesh there?

The namespace's live policies are linted as if it were enrolled already (live pods,
istio-cni's excluded namespaces, the CNI). An error finding (HBONE blocked either way,
probes blocked where the CNI enforces) stops that enrolment with the finding and its
fix, unless forced. Used by the install plan's enrol phase and by the TUI.
"""

from __future__ import annotations

from typing import Any

from .cluster import ClusterError, NetpolCluster
from .lint import ERROR, Finding, lint
from .live import load

BLOCKING = ("hbone-blocked", "egress-hbone-blocked", "probe-blocked")


class EnrolmentBlocked(Exception):
    """A live policy would drop mesh traffic once the namespace is enrolled."""

    def __init__(self, namespace: str, findings: list[Finding]) -> None:
        self.namespace = namespace
        self.findings = findings
        super().__init__(describe(namespace, findings))


def enrolment_findings(kube: NetpolCluster, namespace: str) -> list[Finding]:
    """Blocking findings for `namespace` if it were enrolled now (empty: safe to enrol).
    ClusterError (403, unreachable) propagates: an unreadable namespace is not judged safe."""
    live = load(kube, [namespace])
    ctx = live.context()
    ctx.enrolled = set(ctx.enrolled) | {namespace}  # type: ignore[arg-type]
    docs = [d for d in live.policies if d.namespace == namespace]
    return [f for f in lint(docs, context=ctx) if f.severity == ERROR and f.rule in BLOCKING]


def describe(namespace: str, findings: list[Finding]) -> str:
    first = findings[0]
    text = (f"enrolling {namespace} would break the mesh there: {len(findings)} blocking "
            f"NetworkPolicy finding(s). {first.rule} [{first.policy}]: {first.message}")
    if first.fix:
        text += f" Fix: {first.fix.title} (`ambient-tui netpol lint --cluster -n {namespace}` " \
                "shows the YAML; the editor applies it)."
    return text + " Or pass --force-enroll to enrol anyway."


def check_step(settings: Any, namespace: str) -> list[str]:
    """The install plan's gate before `enroll-<namespace>` (runs in a thread)."""
    cluster = NetpolCluster(getattr(settings, "kubeconfig", None), getattr(settings, "context", None))
    try:
        blocking = enrolment_findings(cluster, namespace)
    except ClusterError as err:
        raise ClusterError(f"cannot check {namespace}'s NetworkPolicies before enrolling: "
                           f"{err.message}", err.status, err.reason) from None
    if not blocking:
        return [f"{namespace}: no live NetworkPolicy blocks HBONE or probes"]
    if getattr(settings, "force_enroll", False):
        return [f"--force-enroll: enrolling despite: {describe(namespace, blocking)}"]
    raise EnrolmentBlocked(namespace, blocking)
