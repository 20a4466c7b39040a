"""The CRD wait and its annotation bump on the real API server.

The stall itself ("storage is (re)initializing" after a CRD is deleted soon after it was
created) happens now and then, not on demand; here a CRD is held Terminating by an instance
with a finalizer, which shows the bump is accepted on a Terminating CRD and is not mistaken for
a stall (its condition is InstanceDeletionInProgress), and that the wait ends once it is gone.
"""

from __future__ import annotations

import time
import uuid

import pytest

from ambient_tui.cluster import crd_cleanup

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


@pytest.fixture
def apis(kubeconfig):
    from kubernetes import client, config

    c = config.new_client_from_config(str(kubeconfig))
    return client.ApiextensionsV1Api(c), client.CustomObjectsApi(c)


def make_crd(ext, group: str) -> str:
    name = f"widgets.{group}"
    ext.create_custom_resource_definition({
        "metadata": {"name": name},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object",
                                                              "x-kubernetes-preserve-unknown-fields": True}}}]}})
    return name


def wait_established(ext, name: str) -> None:
    for _ in range(60):
        conds = ext.read_custom_resource_definition(name).status.conditions or []
        if any(c.type == "Established" and c.status == "True" for c in conds):
            return
        time.sleep(0.5)
    raise AssertionError(f"{name} never became Established")


def test_a_terminating_crd_takes_the_bump_and_the_wait_ends_when_it_goes(apis):
    ext, custom = apis
    group = f"t{uuid.uuid4().hex[:8]}.example.com"
    name = make_crd(ext, group)
    wait_established(ext, name)
    custom.create_namespaced_custom_object(group, "v1", "default", "widgets", {
        "apiVersion": f"{group}/v1", "kind": "Widget",
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    ext.delete_custom_resource_definition(name)

    crd = ext.read_custom_resource_definition(name)
    assert crd.metadata.deletion_timestamp is not None
    assert crd_cleanup.stalled_message(crd) is None  # held by an instance, not stalled

    crd_cleanup._bump(ext, name, 1)
    annotations = ext.read_custom_resource_definition(name).metadata.annotations
    assert annotations[crd_cleanup.RETRY_ANNOTATION] == "1"

    with pytest.raises(TimeoutError, match=f"still present after 2s: {name}"):
        crd_cleanup.wait_crds_gone(ext, [name], timeout=2)

    custom.patch_namespaced_custom_object(group, "v1", "default", "widgets", "held",
                                          {"metadata": {"finalizers": None}})
    seen = crd_cleanup.wait_crds_gone(ext, [name], timeout=180)
    assert name not in {c.metadata.name for c in ext.list_custom_resource_definition().items}
    assert seen.nudges == {}  # never stalled, so never bumped by the wait
