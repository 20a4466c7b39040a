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


class FakeApiClient:
    """A fake of the kubernetes ApiClient's two request calls (named a fake: a 429 from the real
    API server comes only in a short window after a CRD is created, not on demand). It answers
    the scripted (status, headers, body) in turn and records each request."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []

    def param_serialize(self, method, path, **kw):
        return (method, path, kw["header_params"], kw.get("body"), [])

    def call_api(self, method, url, headers, body, post, _request_timeout=None):
        from types import SimpleNamespace

        self.requests.append((method, url))
        status, hdrs, data = self.answers.pop(0)
        return SimpleNamespace(status=status, reason="x", headers=hdrs, data=data,
                               read=lambda: data, getheaders=lambda: hdrs)


def kube(answers, monkeypatch):
    from ambient_tui.cluster import client as client_mod

    slept = []
    monkeypatch.setattr(client_mod.time, "sleep", slept.append)
    return client_mod.KubeClient(FakeApiClient(answers), "ctx", "https://k"), slept


def test_429_is_retried_after_retry_after_then_answers(monkeypatch):
    busy = (429, {"Retry-After": "1"}, b'{"message": "storage is (re)initializing"}')
    k, slept = kube([busy, (429, {}, b"{}"), (200, {}, b'{"items": [{"metadata": {"name": "a"}}]}')],
                    monkeypatch)
    items = k.list_json("/apis/vpcresources.k8s.aws/v1beta1/securitygrouppolicies", "listing SGPs")
    assert [i.metadata.name for i in items] == ["a"]
    assert slept == [1.0, 1.0] and len(k.api_client.requests) == 3


def test_429_that_persists_becomes_a_clear_error(monkeypatch):
    import pytest

    from ambient_tui.cluster.client import TOO_MANY_REQUESTS_RETRIES, ClusterAccessError

    busy = (429, {"Retry-After": "30"}, b"{}")
    k, slept = kube([busy] * (TOO_MANY_REQUESTS_RETRIES + 1), monkeypatch)
    with pytest.raises(ClusterAccessError) as e:
        k.get_json("/api/v1/nodes", "listing nodes")
    assert "listing nodes: HTTP 429" in e.value.message
    assert slept == [2.0] * TOO_MANY_REQUESTS_RETRIES  # Retry-After is capped at 2 s
