"""The guide's sample check (section 7): a client and a server in a scratch namespace that is
enrolled, a connection from one to the other, ztunnel's view of both with HBONE, then the
namespace removed, whatever happened.

Each part is a Step run by the Runner and journaled; the clean-up is its own plan that runs
even when the check failed. Nothing here can pass without a real connection and ztunnel's own
view: on the kwok sandbox (pods run no process, `kubectl exec` has nothing to exec in) the
connect step fails with kubectl's reason and the clean-up still removes everything.
"""

from __future__ import annotations

import time

from ambient_tui.engine.plan import ApiCall, Step
from ambient_tui.mesh import api
from ambient_tui.mesh.enroll import plan_of
from ambient_tui.mesh.state import DATAPLANE_LABEL, pod_ready

NAMESPACE = "ambient-tui-sample"
IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.53"
READY_TIMEOUT = 120.0


def _pod(name: str, args: list[str], port: int | None = None) -> dict:
    c = {"name": name, "image": IMAGE, "args": args}
    if port:
        c["ports"] = [{"containerPort": port}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [c], "terminationGracePeriodSeconds": 1}}


def _service() -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "server"},
            "spec": {"selector": {"app": "server"}, "ports": [{"port": 8080, "targetPort": 8080}]}}


def check_plan(kube, kubectl_args: list[str], ns: str = NAMESPACE, ztunnel=None):
    """Create, enrol, connect, look in ztunnel. `ztunnel()` returns (rows or None, error)."""

    def create() -> list[str]:
        api.send(kube, "POST", "/api/v1/namespaces", f"Namespace {ns}",
                 {"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": ns, "labels": {DATAPLANE_LABEL: "ambient"}}})
        for obj in (_pod("server", ["netexec", "--http-port=8080"], 8080), _pod("client", ["pause"])):
            api.send(kube, "POST", f"/api/v1/namespaces/{ns}/pods", f"Pod {ns}/{obj['metadata']['name']}", obj)
        api.send(kube, "POST", f"/api/v1/namespaces/{ns}/services", f"Service {ns}/server", _service())
        return [f"namespace {ns} (enrolled), pods server and client, service server:8080 created"]

    def ready() -> list[str]:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            pods = {p["metadata"]["name"]: p for p in kube.list_pods(ns)}
            if {"server", "client"} <= set(pods) and all(pod_ready(pods[n]) for n in ("server", "client")):
                return ["server and client are Ready"]
            if time.monotonic() > deadline:
                raise TimeoutError(f"server and client not Ready within {READY_TIMEOUT:g}s")
            time.sleep(1)

    def hbone() -> list[str]:
        rows, error = ztunnel()
        if rows is None:
            raise RuntimeError(f"ztunnel could not be asked: {error}")
        seen = {r.pod: r.protocol for r in rows if r.namespace == ns}
        bad = {n: seen.get(n, "not listed") for n in ("server", "client") if seen.get(n, "").upper() != "HBONE"}
        if bad:
            raise RuntimeError("not in the mesh per ztunnel: " + ", ".join(f"{k} ({v})" for k, v in bad.items()))
        return ["ztunnel lists server and client with HBONE"]

    steps = [
        Step("sample-create", f"Create {ns} (enrolled) with a server and a client",
             api=ApiCall(f"POST v1 Namespace {ns} labels {DATAPLANE_LABEL}=ambient; POST Pods server, client "
                         f"({IMAGE}); POST Service server:8080", create), timeout=30),
        Step("sample-ready", "Wait for server and client to be Ready",
             api=ApiCall(f"GET v1 Pods in {ns} until server and client are Ready", ready),
             timeout=READY_TIMEOUT + 10),
        Step("sample-connect", "Connect from the client to the server",
             argv=["kubectl", *kubectl_args, "exec", "-n", ns, "client", "--", "/agnhost", "connect",
                   "server:8080", "--timeout=5s"], timeout=60),
        Step("sample-hbone", "Confirm in ztunnel's view that both use HBONE",
             api=ApiCall("istioctl ztunnel-config workloads: server and client with PROTOCOL HBONE", hbone),
             timeout=90),
    ]
    return plan_of(f"Sample check in {ns}", steps, kube.context)


def cleanup_plan(kube, ns: str = NAMESPACE):
    def remove() -> list[str]:
        gone = api.delete(kube, f"/api/v1/namespaces/{ns}", f"Namespace {ns}")
        deadline = time.monotonic() + 120
        while kube.get_namespace(ns) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"namespace {ns} still terminating after 120s")
            time.sleep(1)
        return [f"namespace {ns} " + ("deleted" if gone else "was already gone")]

    return plan_of(f"Remove the sample {ns}", [
        Step("sample-remove", f"Delete namespace {ns} and everything in it",
             api=ApiCall(f"DELETE v1 Namespace {ns} (waits until it is gone)", remove), timeout=130)], kube.context)
