"""PodWatcher against the real local API server (etcd + kube-apiserver + kwok nodes).

- pods of a Deployment appear and turn Running (kwok) in the watcher;
- the kube-apiserver process is stopped and started mid-watch, a pod is deleted while the
  watcher is disconnected: afterwards the rows equal the API's list (no ghosts, no
  duplicates). The API server is always restarted, even when an assertion fails, so the
  session-scoped control plane stays healthy for the other files;
- the restricted user's forbidden namespace and a missing namespace are messages.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from ambient_tui.watch.pods import RECONNECTING, WATCHING, PodWatcher

pytestmark = pytest.mark.cluster


def wait_for(cond, timeout=60.0, what="condition", step=0.1):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = cond()
            if last:
                return last
        except Exception as e:  # the API may be down for a moment
            last = e
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture
def core(kubeconfig):
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))


@pytest.fixture
def namespace(kubeconfig, core):
    from kubernetes import client, config

    name = f"podwatch-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name,
                                        "labels": {"istio.io/dataplane-mode": "ambient"}}})
    apps = client.AppsV1Api(config.new_client_from_config(str(kubeconfig)))
    apps.create_namespaced_deployment(name, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
    yield name
    core.delete_namespace(name)


def api_pods(core, ns) -> dict:
    pods = core.list_namespaced_pod(ns, _request_timeout=10).items
    return {(p.metadata.namespace, p.metadata.name): p for p in pods}


def api_ready(control_plane) -> bool:
    try:
        return control_plane.api().request("GET", "/readyz", timeout=2)[0] == 200
    except Exception:
        return False


def stop_apiserver(control_plane):
    """Stop the kube-apiserver process group; return its argument list for the restart."""
    proc = control_plane._procs["kube-apiserver"]
    args = list(proc.args)
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except Exception:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    return args


def etcd_delete(control_plane, key: str) -> int:
    """Delete one key through etcd's JSON gateway (/v3/kv/deleterange); returns how many."""
    import base64
    import json
    import urllib.request

    port = control_plane.info["ports"]["etcd"]
    body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v3/kv/deleterange", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return int(json.loads(r.read()).get("deleted", 0))


def start_apiserver(control_plane, args):
    control_plane._spawn("kube-apiserver", args)
    wait_for(lambda: api_ready(control_plane), 90, "kube-apiserver /readyz after restart", 0.2)


def test_pods_appear_running_and_survive_apiserver_restart(control_plane, kubeconfig, core, namespace):
    w = PodWatcher(namespaces={namespace}, kubeconfig=str(kubeconfig), backoff=(2.0, 2.0),
                   watch_timeout=60).start()
    args = None
    try:
        # Pods come from the Deployment and turn Running on kwok nodes; enrolled by namespace.
        wait_for(lambda: (lambda rows: len(rows) == 3 and all(r.status == "Running" and r.ready == "1/1"
                                                             for r in rows.values()))(w.snapshot().rows),
                 90, "3 Running pods in the watcher")
        rows = w.snapshot().rows
        assert all(r.ambient == "enrolled" and r.node for r in rows.values())
        assert w.state == WATCHING

        # Stop the API server mid-watch: the watcher says so.
        victim = sorted(rows)[0]
        args = stop_apiserver(control_plane)
        wait_for(lambda: w.state == RECONNECTING, 30, "reconnecting state")
        assert w.snapshot().last_error
        assert victim in w.snapshot().rows  # last known rows are kept meanwhile
        relists = w.relists

        # Delete a pod while the server is down (straight from etcd): no watch will ever
        # deliver that DELETED event; only the relist after the restart removes the ghost.
        assert etcd_delete(control_plane, f"/registry/pods/{namespace}/{victim[1]}") == 1
        start_apiserver(control_plane, args)
        args = None
        assert victim not in api_pods(core, namespace)

        def settled():
            snap = w.snapshot()
            api = api_pods(core, namespace)
            return (snap.state == WATCHING and set(snap.rows) == set(api)
                    and all(snap.rows[k].status == "Running" for k in api) and len(api) == 3)
        wait_for(settled, 60, "watcher rows == API list after the restart")
        assert w.relists > relists
        snap = w.snapshot()
        assert victim not in snap.rows
        assert len(snap.rows) == len(set(snap.rows)) == 3
    finally:
        if args is not None:  # an assertion failed while the server was down: bring it back
            start_apiserver(control_plane, args)
        w.stop()
    assert api_ready(control_plane)


def test_forbidden_and_missing_namespaces_are_messages(kubeconfig, restricted_kubeconfig):
    w = PodWatcher(namespaces={"restricted", "kube-system"}, kubeconfig=str(restricted_kubeconfig),
                   backoff=(0.5, 2.0)).start()
    try:
        snap = wait_for(lambda: (lambda s: "kube-system" in s.messages and s)(w.snapshot()),
                        30, "forbidden message")
        assert "forbidden" in snap.messages["kube-system"]
        assert not any(k[0] == "kube-system" for k in snap.rows)
        wait_for(lambda: w.state == WATCHING, 30, "the allowed namespace is watched")
        time.sleep(0.5)  # the watch is now blocked reading its stream
        t0 = time.monotonic()
        w.stop()
        assert time.monotonic() - t0 < 3, "stop() must interrupt a blocked watch"
        assert w.state == "stopped" and not any(t.is_alive() for t in w._threads)
    finally:
        w.stop()

    w = PodWatcher(namespaces={f"nope-{uuid.uuid4().hex[:6]}"}, kubeconfig=str(kubeconfig)).start()
    try:
        snap = wait_for(lambda: (lambda s: s.messages and s)(w.snapshot()), 30, "missing message")
        assert list(snap.messages.values())[0].endswith("not found")
        assert snap.rows == {}
    finally:
        w.stop()
