"""Helm release decoding (recorded real release Secrets) and the release-Secret watcher.

The Secrets in test_watch_helm_fixtures/ were written by the real helm binary against the
real control plane (see the README there). The watcher's Kubernetes source is replaced by
FakeSecretSource, a named fake serving those recorded Secrets as list/watch responses.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import queue
import time
from pathlib import Path

import pytest

from ambient_tui.watch.helm_releases import (HelmReleaseWatcher, ReleaseDecodeError,
                                             decode_payload, decode_release_secret, fix_for,
                                             manifest_resources, rollback_argv, uninstall_argv)
from ambient_tui.watch.pod_detail import wait_until
from ambient_tui.watch.pods import RECONNECTING, WATCHING, ApiError, ConnectionLost

FIXTURES = Path(__file__).parent / "test_watch_helm_fixtures"


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / f"sh.helm.release.v1.{name}.json").read_text())


ALL = ["tiny.v1", "tiny.v2", "tiny.v3", "stuck.v1"]


# --- decoding -------------------------------------------------------------------------------

def test_decode_recorded_secrets_matches_what_helm_did():
    got = {n: decode_release_secret(recorded(n)) for n in ALL}
    # What record.py ran and `helm list -a` / `helm history` printed at the time.
    assert [(r.name, r.revision, r.status, r.chart, r.app_version) for r in got.values()] == [
        ("tiny", 1, "superseded", "tiny-0.1.0", "1.0"),
        ("tiny", 2, "deployed", "tiny-0.2.0", "1.1"),
        ("tiny", 3, "failed", "tiny-0.3.0", "1.2"),
        ("stuck", 1, "pending-install", "stuck-0.1.0", "9.9"),
    ]
    assert all(r.namespace == "rec" for r in got.values())
    assert got["tiny.v1"].description == "Install complete"
    assert "Not_A_Valid_Name" in got["tiny.v3"].description
    assert got["tiny.v3"].resources == ("ConfigMap/Not_A_Valid_Name", "ConfigMap/tiny-config")
    assert got["stuck.v1"].resources == ("Service/stuck-lb",)
    # last_deployed is an RFC 3339 time with nanoseconds; kept as epoch seconds.
    raw = decode_payload(recorded("tiny.v2")["data"]["release"])
    assert raw["info"]["last_deployed"].startswith("20")
    assert got["tiny.v2"].updated is not None and got["tiny.v2"].updated > 1.7e9
    assert got["tiny.v3"].needs_attention and got["stuck.v1"].needs_attention
    assert not got["tiny.v2"].needs_attention


def test_decode_layers_base64_gzip_json():
    rel = {"name": "x", "namespace": "n", "version": 7, "info": {"status": "deployed"},
           "chart": {"metadata": {"name": "c", "version": "1.2.3", "appVersion": "9"}}}
    helm_b64 = base64.b64encode(gzip.compress(json.dumps(rel).encode()))
    api_data = base64.b64encode(helm_b64).decode()
    assert decode_payload(api_data)["version"] == 7
    # Helm 2-era and some tools store it without gzip; JSON straight after base64 decodes too.
    plain = base64.b64encode(base64.b64encode(json.dumps(rel).encode())).decode()
    r = decode_release_secret({"metadata": {"name": "s", "namespace": "n"}, "data": {"release": plain}})
    assert (r.name, r.revision, r.chart, r.app_version) == ("x", 7, "c-1.2.3", "9")


@pytest.mark.parametrize("payload", [
    "!!!not base64!!!",
    base64.b64encode(base64.b64encode(b"\x1f\x8bnot really gzip")).decode(),
    base64.b64encode(base64.b64encode(gzip.compress(b"{not json"))).decode(),
    base64.b64encode(base64.b64encode(b"[1, 2]")).decode(),
])
def test_bad_payloads_raise_decode_error(payload):
    with pytest.raises(ReleaseDecodeError):
        decode_payload(payload)


def test_secret_without_payload_is_a_decode_error():
    with pytest.raises(ReleaseDecodeError, match="no data.release"):
        decode_release_secret({"metadata": {"name": "sh.helm.release.v1.a.v1"}, "data": {}})


def test_manifest_resources():
    manifest = ("---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                "  name: one\n  labels:\n    name: not-this\n---\napiVersion: apps/v1\nkind: Deployment\n"
                "metadata:\n  namespace: x\n  name: \"two\"\nspec:\n  template:\n    metadata:\n"
                "      name: inner\n---\n# empty\n")
    assert manifest_resources(manifest) == ("ConfigMap/one", "Deployment/two")


# --- fixes -----------------------------------------------------------------------------------

def test_fix_failed_upgrade_rolls_back_to_deployed_revision():
    hist = [decode_release_secret(recorded(n)) for n in ("tiny.v3", "tiny.v1", "tiny.v2")]
    fix = fix_for(hist)
    assert fix is not None and fix.action == "rollback" and fix.revision == 2
    assert fix.argv == ["helm", "rollback", "tiny", "2", "-n", "rec", "--wait"]
    assert "failed at revision 3" in fix.why


def test_fix_pending_install_without_deployed_revision_is_uninstall():
    fix = fix_for([decode_release_secret(recorded("stuck.v1"))])
    assert fix is not None and fix.action == "uninstall"
    assert fix.argv == uninstall_argv("stuck", "rec") == ["helm", "uninstall", "stuck", "-n", "rec", "--wait"]
    assert "re-run the install" in fix.why


def test_no_fix_for_a_healthy_release():
    assert fix_for([decode_release_secret(recorded(n)) for n in ("tiny.v1", "tiny.v2")]) is None
    assert fix_for([]) is None
    assert rollback_argv("a", 3, "ns") == ["helm", "rollback", "a", "3", "-n", "ns", "--wait"]


# --- the watcher -----------------------------------------------------------------------------

class FakeSecretSource:
    """A named fake of KubeSecretSource: list returns the test's Secrets; watch yields the
    events (or raises the exceptions) the test puts on a queue; "END" ends a watch cleanly."""

    def __init__(self, items=(), missing=(), list_error=None):
        self.items = {(i["metadata"].get("namespace", "rec"), i["metadata"]["name"]): i for i in items}
        self.events: queue.Queue = queue.Queue()
        self.missing = set(missing)
        self.list_error = list_error
        self.lists = 0
        self.closed = False

    def list(self, namespace):
        self.lists += 1
        if self.list_error is not None:  # stays until the test clears it
            raise self.list_error
        return [copy.deepcopy(v) for k, v in self.items.items() if namespace is None or k[0] == namespace], "10"

    def watch(self, namespace, resource_version, timeout):
        while not self.closed:
            try:
                ev = self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            if ev == "END":
                return
            if isinstance(ev, Exception):
                raise ev
            yield ev

    def namespace_exists(self, namespace):
        return namespace not in self.missing

    def close(self):
        self.closed = True


def with_ns(secret, ns="rec"):
    s = copy.deepcopy(secret)
    s["metadata"]["namespace"] = ns
    return s


@pytest.fixture
def make_watcher():
    made = []

    def make(source, namespaces=("rec",)):
        w = HelmReleaseWatcher(source, namespaces=namespaces, backoff=(0.01, 0.05), missing_retry=0.05)
        made.append(w)
        return w.start()
    yield make
    for w in made:
        w.stop()


def test_watcher_lists_newest_revision_per_release_and_history(make_watcher):
    src = FakeSecretSource([with_ns(recorded(n)) for n in ALL])
    w = make_watcher(src)
    assert wait_until(lambda: w.state == WATCHING and len(w.snapshot().releases) == 2, 5)
    snap = w.snapshot()
    assert {k: (r.revision, r.status) for k, r in snap.releases.items()} == {
        ("rec", "tiny"): (3, "failed"), ("rec", "stuck"): (1, "pending-install")}
    assert [r.revision for r in w.history("rec", "tiny")] == [3, 2, 1]
    assert snap.scope == ("rec",)


def test_watcher_applies_watch_events_and_relists_on_410(make_watcher):
    src = FakeSecretSource([with_ns(recorded("tiny.v1"))])
    w = make_watcher(src)
    assert wait_until(lambda: w.state == WATCHING and ("rec", "tiny") in w.snapshot().releases, 5)
    v = w.version
    # helm upgrade: a new revision Secret is ADDED, then the old one MODIFIED (superseded).
    src.events.put({"type": "ADDED", "object": with_ns(recorded("tiny.v2"))})
    assert wait_until(lambda: w.snapshot().releases[("rec", "tiny")].revision == 2, 5)
    assert w.version > v
    # A BOOKMARK carries no object change.
    v = w.version
    src.events.put({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "99"}}})
    src.events.put({"type": "DELETED", "object": with_ns(recorded("tiny.v2"))})
    assert wait_until(lambda: w.snapshot().releases[("rec", "tiny")].revision == 1, 5)
    # 410 Gone: relist; what the list says replaces everything (no ghost of `tiny`).
    src.items = {("rec", "sh.helm.release.v1.stuck.v1"): with_ns(recorded("stuck.v1"))}
    lists = src.lists
    src.events.put({"type": "ERROR", "object": {"code": 410, "reason": "Expired"}})
    assert wait_until(lambda: set(w.snapshot().releases) == {("rec", "stuck")}, 5)
    assert src.lists == lists + 1


def test_watcher_reconnects_after_connection_loss(make_watcher):
    src = FakeSecretSource([with_ns(recorded("tiny.v2"))])
    w = make_watcher(src)
    assert wait_until(lambda: w.state == WATCHING, 5)
    src.list_error = ConnectionLost("connection refused")
    src.events.put(ConnectionLost("watch stream broke"))
    assert wait_until(lambda: w.state == RECONNECTING, 5)
    assert "watch stream broke" in w.snapshot().last_error or "connection refused" in w.snapshot().last_error
    # rows stay (last known) while reconnecting
    assert ("rec", "tiny") in w.snapshot().releases
    src.list_error = None
    assert wait_until(lambda: w.state == WATCHING, 5)


def test_watcher_forbidden_and_missing_namespace_are_messages(make_watcher):
    src = FakeSecretSource([], missing={"nope"},
                           list_error=ApiError(403, 'secrets is forbidden: User "restricted" cannot list resource "secrets"'))
    w = make_watcher(src, namespaces=("rec", "nope"))
    assert wait_until(lambda: len(w.snapshot().messages) == 2, 5)
    msgs = w.snapshot().messages
    assert msgs["nope"] == "namespace nope not found"
    assert msgs["rec"].startswith("forbidden: needs list and watch secrets in namespace rec")
    assert 'User "restricted"' in msgs["rec"]
    assert w.snapshot().releases == {}


def test_watcher_reports_an_undecodable_secret_and_keeps_the_rest(make_watcher):
    bad = with_ns(recorded("tiny.v1"))
    bad["metadata"]["name"] = "sh.helm.release.v1.broken.v1"
    bad["data"]["release"] = base64.b64encode(b"garbage").decode()
    src = FakeSecretSource([bad, with_ns(recorded("stuck.v1"))])
    w = make_watcher(src)
    assert wait_until(lambda: w.state == WATCHING and w.snapshot().releases, 5)
    snap = w.snapshot()
    assert set(snap.releases) == {("rec", "stuck")}
    assert any("cannot decode rec/sh.helm.release.v1.broken.v1" in m for m in snap.messages.values())


@pytest.mark.parametrize("error", [ConnectionLost("connection refused"),
                                   ApiError(404, "the server could not find the requested resource"),
                                   ApiError(403, "forbidden while the authorizer starts")])
def test_outage_keeps_the_last_list_marked_stale(make_watcher, error):
    """An API outage (connection refused, or a restarting server answering 404/403 for a
    moment) must not empty the list: the last one stays, with stale_since set (issue 15)."""
    src = FakeSecretSource([with_ns(recorded("tiny.v2"))])
    w = make_watcher(src)
    assert wait_until(lambda: w.state == WATCHING and w.snapshot().releases, 5)
    assert w.snapshot().stale_since is None
    src.list_error = error
    src.events.put(ConnectionLost("watch stream broke"))
    assert wait_until(lambda: w.snapshot().stale_since is not None, 5)
    time.sleep(0.3)  # several failed relists later
    snap = w.snapshot()
    assert ("rec", "tiny") in snap.releases and snap.stale_since is not None and snap.state == RECONNECTING
    src.list_error = None
    assert wait_until(lambda: w.state == WATCHING and w.snapshot().stale_since is None, 5)
    assert ("rec", "tiny") in w.snapshot().releases


def test_a_404_that_names_the_namespace_is_missing_a_bare_404_is_an_outage():
    from ambient_tui.watch.helm_releases import _names

    gone = json.dumps({"kind": "Status", "reason": "NotFound", "code": 404,
                       "message": 'namespaces "istio-system" not found',
                       "details": {"name": "istio-system", "kind": "namespaces"}})
    starting = json.dumps({"kind": "Status", "reason": "NotFound", "code": 404,
                           "message": "the server could not find the requested resource", "details": {}})
    assert _names(gone, "istio-system") and not _names(starting, "istio-system")
    assert not _names("404 page not found", "istio-system") and not _names(None, "istio-system")
