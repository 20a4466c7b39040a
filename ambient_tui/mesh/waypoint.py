"""Waypoints as steps: the Gateway `istioctl waypoint apply` makes, applied through the API.

`istioctl waypoint apply -n NS [--enroll-namespace]` creates a Gateway named "waypoint" of
class istio-waypoint with one HBONE listener on 15008 (and, with --enroll-namespace, labels
the namespace istio.io/use-waypoint=waypoint). istiod then makes the waypoint's Deployment
and Service and marks the Gateway Programmed. Without a running istiod (as on the kwok
sandbox, whose istiod pod runs no process) the Gateway exists and nothing makes the
Deployment: `list` shows it as not ready and says why.
"""

from __future__ import annotations

from ambient_tui.engine.plan import ApiCall, Step
from ambient_tui.mesh import api
from ambient_tui.mesh.enroll import plan_of
from ambient_tui.mesh.state import (GATEWAY_NAME_LABEL, USE_WAYPOINT_LABEL, WAYPOINT_CLASS,
                                    Waypoint, waypoints)

DEFAULT_NAME = "waypoint"
GATEWAY_API = "/apis/gateway.networking.k8s.io/v1"
FOR_CHOICES = ("service", "workload", "all", "none")


def gateway(ns: str, name: str = DEFAULT_NAME, for_: str = "service") -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "namespace": ns, "labels": {"istio.io/waypoint-for": for_}},
            "spec": {"gatewayClassName": WAYPOINT_CLASS,
                     "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]}}


def gateway_path(ns: str, name: str) -> str:
    return f"{GATEWAY_API}/namespaces/{ns}/gateways/{name}"


def apply_steps(kube, ns: str, name: str = DEFAULT_NAME, enroll_namespace: bool = False,
                for_: str = "service") -> list[Step]:
    body = gateway(ns, name, for_)

    def run() -> list[str]:
        api.apply(kube, gateway_path(ns, name), f"Gateway {ns}/{name}", body)
        return [f"gateway.gateway.networking.k8s.io/{name} applied in {ns} "
                f"(class {WAYPOINT_CLASS}, for {for_})"]

    steps = [Step(f"waypoint-apply-{ns}-{name}", f"Apply waypoint {ns}/{name}",
                  api=ApiCall(f"APPLY gateway.networking.k8s.io/v1 Gateway {ns}/{name} "
                              f"gatewayClassName={WAYPOINT_CLASS} listener mesh:15008/HBONE "
                              f"(as `istioctl waypoint apply -n {ns} --name {name}`)", run),
                  timeout=30)]
    if enroll_namespace:
        from ambient_tui.mesh.enroll import _label_step
        steps.append(_label_step(kube, f"use-waypoint-{ns}", f"Use waypoint {name} for namespace {ns}",
                                 api.namespace_path(ns), f"Namespace {ns}", {USE_WAYPOINT_LABEL: name}))
    return steps


def delete_steps(kube, ns: str, name: str = DEFAULT_NAME, unlabel: bool = True) -> list[Step]:
    def run() -> list[str]:
        gone = api.delete(kube, gateway_path(ns, name), f"Gateway {ns}/{name}")
        return [f"Gateway {ns}/{name} " + ("deleted" if gone else "was already gone")]

    steps = [Step(f"waypoint-delete-{ns}-{name}", f"Delete waypoint {ns}/{name}",
                  api=ApiCall(f"DELETE gateway.networking.k8s.io/v1 Gateway {ns}/{name} "
                              "(istiod removes its Deployment and Service)", run), timeout=30)]
    if unlabel:
        from ambient_tui.mesh.enroll import _label_step
        steps.append(_label_step(kube, f"unuse-waypoint-{ns}", f"Stop using waypoint {name} in {ns}",
                                 api.namespace_path(ns), f"Namespace {ns}", {USE_WAYPOINT_LABEL: None}))
    return steps


def apply_plan(kube, ns: str, name: str = DEFAULT_NAME, enroll_namespace: bool = False, for_: str = "service"):
    return plan_of(f"Waypoint {ns}/{name}", apply_steps(kube, ns, name, enroll_namespace, for_), kube.context)


def delete_plan(kube, ns: str, name: str = DEFAULT_NAME, unlabel: bool = True):
    return plan_of(f"Remove waypoint {ns}/{name}", delete_steps(kube, ns, name, unlabel), kube.context)


def list_waypoints(kube, namespace: str | None = None) -> list[Waypoint]:
    """Every Gateway of class istio-waypoint (in one namespace, or all) with its readiness."""
    where = f"/namespaces/{namespace}" if namespace else ""
    gws = kube.list_json(f"{GATEWAY_API}{where}/gateways", "listing Gateways")
    deps = kube.list_json(f"/apis/apps/v1{where}/deployments", "listing waypoint Deployments",
                          query=[("labelSelector", GATEWAY_NAME_LABEL)]) if gws else []
    found = waypoints(gws, deps)
    return [found[k] for k in sorted(found)]


def namespace_uses(kube, ns: str) -> str:
    """The namespace's istio.io/use-waypoint label ('' when unset)."""
    obj = kube.get_namespace(ns)
    return ((obj or {}).get("metadata", {}).get("labels") or {}).get(USE_WAYPOINT_LABEL, "") if obj else ""
