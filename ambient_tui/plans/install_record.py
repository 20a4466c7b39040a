"""The record, in the cluster, of what this tool installed: a ConfigMap
kube-system/ambient-tui-install, and the label app.kubernetes.io/managed-by=ambient-tui on the
Gateway API CRDs it created (never on ones that were there before).

An uninstall from any machine reads it, so it finds the same things with or without a
journal; the journal stays the audit trail.

ConfigMap data (JSON strings): releases (["ns/name"]), gateway-api-crds ({name: uid} of the
CRDs it created), vpc-cni (the enforcing-mode change: previous values, where), istio-version.
"""

from __future__ import annotations

import json

from ambient_tui.engine.plan import ApiCall, Step

NAMESPACE = "kube-system"
NAME = "ambient-tui-install"
MANAGED_BY = "app.kubernetes.io/managed-by"
TOOL = "ambient-tui"
GATEWAY_API_SUFFIXES = (".gateway.networking.k8s.io", ".gateway.networking.x-k8s.io")
RECORD_STEP_ID = "record-install"
PATH = f"/api/v1/namespaces/{NAMESPACE}/configmaps/{NAME}"


def _core(kube):
    from kubernetes import client

    return client.CoreV1Api(kube.api_client)


def decode(data: dict | None) -> dict:
    out = {}
    for k, v in (data or {}).items():
        try:
            out[k] = json.loads(v)
        except (TypeError, ValueError):
            out[k] = v
    return out


def read(kube) -> dict:
    """The record's fields ({} when there is none). kube: a cluster.client.KubeClient."""
    from ambient_tui.cluster.client import ClusterAccessError

    try:
        cm = kube.get_json(PATH, f"reading configmap {NAMESPACE}/{NAME}")
    except ClusterAccessError as e:
        if e.kind == "not-found":
            return {}
        raise
    return decode(cm.get("data"))


def update(kube, **fields) -> dict:
    """Merge fields into the record (a value None removes the key), creating it when absent."""
    core = _core(kube)
    what = f"writing configmap {NAMESPACE}/{NAME}"
    exists = _exists(kube)
    current = read(kube) if exists else {}
    for k, v in fields.items():
        if v is None:
            current.pop(k, None)
        else:
            current[k] = v
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {MANAGED_BY: TOOL}},
            "data": {k: json.dumps(v, sort_keys=True) for k, v in sorted(current.items())}}
    if exists:
        kube.call(what, core.replace_namespaced_config_map, NAME, NAMESPACE, body, field_manager=TOOL)
    else:
        kube.call(what, core.create_namespaced_config_map, NAMESPACE, body, field_manager=TOOL)
    return current


def delete(kube) -> None:
    from ambient_tui.cluster.client import ClusterAccessError

    try:
        kube.call(f"deleting configmap {NAMESPACE}/{NAME}", _core(kube).delete_namespaced_config_map, NAME, NAMESPACE)
    except ClusterAccessError as e:
        if e.kind != "not-found":
            raise


def record_cni_change(kube, data: dict | None) -> None:
    """The fix step records what it changed (data), the revert clears it (None). A second fix
    keeps the first one's record: that is the value to go back to."""
    if data is not None and read(kube).get("vpc-cni"):
        return
    update(kube, **{"vpc-cni": data})


def _exists(kube) -> bool:
    from ambient_tui.cluster.client import ClusterAccessError

    try:
        kube.get_json(PATH, f"reading configmap {NAMESPACE}/{NAME}")
        return True
    except ClusterAccessError as e:
        if e.kind == "not-found":
            return False
        raise


def gateway_api_crds(kube) -> dict[str, str]:
    """name -> uid of the Gateway API CRDs now."""
    return {c.metadata.name: c.metadata.uid for c in kube.list_crds()
            if c.metadata.name.endswith(GATEWAY_API_SUFFIXES)}


def label_crds(kube, names: list[str]) -> None:
    from kubernetes import client

    ext = client.ApiextensionsV1Api(kube.api_client)
    for n in names:
        kube.call(f"labelling CRD {n}", ext.patch_custom_resource_definition, n,
                  {"metadata": {"labels": {MANAGED_BY: TOOL}}}, field_manager=TOOL)


def record_step(kube_factory, releases: list[str], existing_crds: tuple[str, ...], version: str,
                applies_gateway_api: bool) -> Step:
    """After the CRDs: mark the Gateway API CRDs that were not there before as this tool's,
    and write the record. `existing_crds`: the Gateway API CRDs preflight saw."""
    before = set(existing_crds)

    def func() -> list[str]:
        kube = kube_factory()
        now = gateway_api_crds(kube) if applies_gateway_api else {}
        created = sorted(n for n in now if n not in before)
        label_crds(kube, created)
        rec = read(kube)
        # By uid: a CRD deleted and created again by someone else is not this tool's.
        mine = {**(rec.get("gateway-api-crds") if isinstance(rec.get("gateway-api-crds"), dict) else {}),
                **{n: now[n] for n in created}}
        update(kube, releases=sorted(set(rec.get("releases") or []) | set(releases)),
               **{"gateway-api-crds": mine, "istio-version": version})
        lines = [f"labelled {MANAGED_BY}={TOOL}: {n}" for n in created]
        kept = sorted(before)
        if kept:
            lines.append(f"{len(kept)} Gateway API CRDs that were there before are not marked as this tool's")
        return lines + [f"recorded in configmap {NAMESPACE}/{NAME}: {len(releases)} releases, "
                        f"{len(mine)} Gateway API CRDs created by this tool"]

    return Step(RECORD_STEP_ID, "record what this tool installed (in the cluster)", kind="record", timeout=60,
                api=ApiCall(f"PATCH the Gateway API CRDs it created (label {MANAGED_BY}={TOOL}); "
                            f"write ConfigMap {NAMESPACE}/{NAME}", func))
