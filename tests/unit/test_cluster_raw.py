"""raw.Obj: parsed API JSON read through the kubernetes models' attribute names."""

from __future__ import annotations

from ambient_tui.cluster.raw import Obj, camel, wrap

DS = {"metadata": {"name": "aws-node", "ownerReferences": [{"kind": "X"}],
                   "labels": {"k8s-app": "aws-node", "app.kubernetes.io/name": "aws-node"}},
      "status": {"desiredNumberScheduled": 3, "numberReady": 2},
      "spec": {"template": {"spec": {"containers": [{"name": "aws-node", "env": [{"name": "A", "value": "1"}]}]}}}}


def test_snake_case_attributes_read_camel_case_keys():
    assert camel("desired_number_scheduled") == "desiredNumberScheduled"
    assert camel("node_info") == "nodeInfo" and camel("name") == "name"
    ds = wrap(DS)
    assert ds.status.desired_number_scheduled == 3 and ds.status.number_ready == 2
    assert ds.metadata.owner_references[0].kind == "X"
    assert ds.spec.template.spec.containers[0].env[0].value == "1"


def test_missing_fields_are_none_like_the_models():
    ds = wrap(DS)
    assert ds.metadata.deletion_timestamp is None
    assert ds.status.updated_number_scheduled is None


def test_maps_keep_their_keys_and_it_is_still_a_dict():
    ds = wrap(DS)
    labels = ds.metadata.labels
    assert labels.get("app.kubernetes.io/name") == "aws-node" and "k8s-app" in labels
    assert isinstance(ds, dict) and ds["spec"]["template"]["spec"]["containers"][0]["name"] == "aws-node"


def test_dict_methods_win_over_fields_of_the_same_name():
    lst = Obj({"items": [1, 2]})
    assert callable(lst.items) and lst["items"] == [1, 2]
