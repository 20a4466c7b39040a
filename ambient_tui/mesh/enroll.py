"""Enrolment as plan steps: label a namespace ambient, remove the label, opt a pod out.

Every change is a Step with an ApiCall (the exact PATCH in words), so the Runner shows it
before it runs and journals it. Enrolment first lints the namespace's live NetworkPolicies
with the ambient lint (ambient_tui.netpol.lint): a policy that restricts ingress without
allowing HBONE (15008) or the kubelet probe source breaks every pod the moment it joins the
mesh, so such a finding stops the enrolment unless forced.
"""

from __future__ import annotations


from ambient_tui.engine.plan import ApiCall, Phase, Plan, Step
from ambient_tui.mesh import api
from ambient_tui.mesh.state import DATAPLANE_LABEL

# The lint rules that break traffic once a namespace is captured (not the advisory ones).
BLOCKING_RULES = ("hbone-blocked", "probe-blocked")
POLICIES = "/apis/networking.k8s.io/v1/networkpolicies"


class EnrolmentBlocked(Exception):
    """A live NetworkPolicy would cut the namespace's pods off once enrolled."""


# --- the NetworkPolicy check -----------------------------------------------------------------

def lint_policies(policies: list[dict], namespace: str) -> list:
    """Blocking lint findings for `namespace` judged as enrolled, from its live policies."""
    from ambient_tui.netpol.lint import ERROR, lint
    from ambient_tui.netpol.parse import from_object

    docs = []
    for p in policies:
        p = dict(p)
        p.setdefault("apiVersion", "networking.k8s.io/v1")
        p.setdefault("kind", "NetworkPolicy")
        docs.append(from_object(p))
    if not docs:
        return []
    return [f for f in lint(docs, enrolled=True, namespace=namespace)
            if f.severity == ERROR and f.rule in BLOCKING_RULES]


def blocking_findings(kube, namespace: str) -> list:
    policies = kube.list_json(f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies",
                              f"listing NetworkPolicies in {namespace}")
    return lint_policies(policies, namespace)


def findings_by_namespace(kube, namespaces: list[str]) -> dict[str, list]:
    """One list of every policy, linted per namespace (2,000 namespaces: one request)."""
    by_ns: dict[str, list[dict]] = {}
    for p in kube.list_json(POLICIES, "listing NetworkPolicies"):
        by_ns.setdefault((p.get("metadata") or {}).get("namespace", ""), []).append(p)
    return {ns: lint_policies(by_ns.get(ns, []), ns) for ns in namespaces}


def enrolment_gate(kube, namespaces: list[str]) -> list[str]:
    """Problems that stop the enrolment unless forced (one line each); [] to go on. The same
    gate as the install plan's enrol phase (netpol/gate.py): live policies, pods and CNI."""
    from ambient_tui.netpol.cluster import ClusterError, NetpolCluster
    from ambient_tui.netpol.gate import describe, enrolment_findings

    live = NetpolCluster(api_client=kube.api_client)
    problems = []
    for ns in namespaces:
        try:
            findings = enrolment_findings(live, ns)
        except ClusterError as e:  # unreadable is not judged safe
            problems.append(f"{ns}: cannot read its NetworkPolicies to check them: {e}")
            continue
        if findings:
            problems.append(describe(ns, findings).replace("--force-enroll", "--force"))
    return problems


def change_lock(kube, what: str, journal=None):
    """The cluster lock (cluster/lease.py) every mesh change (enrol, unenrol, opt-out, waypoint
    apply/delete) runs under, so a second operator's install or change is refused; the Runner
    takes it in a thread before the first step and releases it after the last."""
    from ambient_tui.cluster.lease import ClusterLock

    return ClusterLock(kube, what, journal)


# --- steps --------------------------------------------------------------------------------

def _label_step(kube, step_id: str, title: str, path: str, what: str,
                labels: dict[str, str | None]) -> Step:
    shown = ", ".join(f"{k}={v}" if v is not None else f"{k}-" for k, v in labels.items())

    def run() -> list[str]:
        obj = api.set_labels(kube, path, what, labels)
        now = (obj.get("metadata") or {}).get("labels") or {}
        return [f"{what}: labels now " + ", ".join(f"{k}={now[k]}" for k in labels if k in now)
                if any(k in now for k in labels) else f"{what}: {shown}"]

    return Step(step_id, title, api=ApiCall(f"PATCH v1 {what} labels {shown}", run), timeout=30)


def enroll_step(kube, ns: str) -> Step:
    return _label_step(kube, f"enroll-{ns}", f"Enrol namespace {ns} in ambient mode",
                       api.namespace_path(ns), f"Namespace {ns}", {DATAPLANE_LABEL: "ambient"})


def unenroll_step(kube, ns: str) -> Step:
    return _label_step(kube, f"unenroll-{ns}", f"Unenrol namespace {ns} (its pods leave the mesh)",
                       api.namespace_path(ns), f"Namespace {ns}", {DATAPLANE_LABEL: None})


def opt_out_step(kube, ns: str, pod: str) -> Step:
    return _label_step(kube, f"opt-out-{ns}-{pod}", f"Opt pod {ns}/{pod} out of the mesh",
                       f"/api/v1/namespaces/{ns}/pods/{pod}", f"Pod {ns}/{pod}",
                       {DATAPLANE_LABEL: "none"})


def plan_of(title: str, steps: list[Step], context: str = "") -> Plan:
    return Plan(title, [Phase("mesh", title, steps)], meta={"context": context, "kind": "mesh"})


def enroll_plan(kube, namespaces: list[str]) -> Plan:
    return plan_of(f"Enrol {', '.join(namespaces)}", [enroll_step(kube, ns) for ns in namespaces],
                   kube.context)


def unenroll_plan(kube, namespaces: list[str]) -> Plan:
    return plan_of(f"Unenrol {', '.join(namespaces)}", [unenroll_step(kube, ns) for ns in namespaces],
                   kube.context)


def opt_out_plan(kube, ns: str, pods: list[str]) -> Plan:
    return plan_of(f"Opt out of the mesh: {ns}/{', '.join(pods)}",
                   [opt_out_step(kube, ns, p) for p in pods], kube.context)


async def run_plan_async(kube, plan: Plan, journal=None, on_event=None) -> bool:
    """Run a mesh plan with the engine's Runner (journaled) inside the change guard."""
    from ambient_tui.engine.runner import Runner

    runner = Runner(plan, journal=journal, lock=change_lock(kube, plan.title, journal))
    if on_event:
        runner.subscribe(on_event)
    return await runner.run()


def run_plan(kube, plan: Plan, journal=None, on_event=None) -> bool:
    import asyncio

    return asyncio.run(run_plan_async(kube, plan, journal, on_event))
