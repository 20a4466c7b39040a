"""Parsers for helm list, istioctl precheck and ztunnel-config output; the check runner."""

import asyncio
import json
import time

from ambient_tui.checks import parsers
from ambient_tui.checks.model import Check, Skip
from ambient_tui.checks.runner import run_checks_async, start_order
from ambient_tui.aws.eks import addon_config, cluster_from_context
from ambient_tui.plans.install_session import already_installed
from ambient_tui.settings import Settings

HELM_LIST = json.dumps([
    {"name": "istio-base", "namespace": "istio-system", "revision": "1", "updated": "x",
     "status": "deployed", "chart": "base-1.31.0", "app_version": "1.31.0"},
    {"name": "istiod", "namespace": "istio-system", "revision": "2", "updated": "x",
     "status": "pending-upgrade", "chart": "istiod-1.31.0", "app_version": "1.31.0"},
    {"name": "other", "namespace": "default", "revision": "1", "updated": "x",
     "status": "deployed", "chart": "nginx-ingress-4.10.1", "app_version": "1.10"},
])

# Recorded `istioctl ztunnel-config workloads` output (Istio 1.24+ column layout).
ZTUNNEL = """\
NAMESPACE          POD NAME                                ADDRESS      NODE                  WAYPOINT PROTOCOL
default            bookinfo-gateway-istio-59dd7c96db-q9k6v 10.244.1.11  ambient-worker        None     TCP
default            details-v1-cf74bb974-5sqkp              10.244.1.5   ambient-worker        None     HBONE
default            productpage-v1-87d54dd59-fn6vw          10.244.1.10  ambient-worker        None     HBONE
istio-system       istiod-795d55fc6d-vqtjx                 10.244.2.4   ambient-worker2       None     TCP
"""

PRECHECK = """\
Warning [IST0103] (Pod default/legacy-0) The pod default/legacy-0 is missing the Istio proxy.
Error [IST0145] (Gateway istio-ingress/gw) Conflict with gateways istio-ingress/gw2
Info [IST0102] (Namespace default) The namespace is not enabled for Istio injection.
"""


def test_helm_list():
    rows = parsers.parse_helm_list(HELM_LIST)
    assert rows[0]["chart"] == "base" and rows[0]["chart_version"] == "1.31.0"
    assert rows[2]["chart"] == "nginx-ingress" and rows[2]["chart_version"] == "4.10.1"
    assert [r["name"] for r in parsers.istio_releases(rows)] == ["istio-base", "istiod"]
    assert parsers.parse_helm_list("") == [] and parsers.parse_helm_list("[]") == []


def test_ztunnel_workloads_hbone():
    rows = parsers.parse_ztunnel_workloads(ZTUNNEL)
    assert len(rows) == 4 and rows[1]["POD NAME"] == "details-v1-cf74bb974-5sqkp"
    assert [r["POD NAME"][:7] for r in parsers.hbone_workloads(rows, "default")] == ["details", "product"]


def test_precheck():
    f = parsers.parse_precheck(PRECHECK + "✔ No issues found when checking the cluster.\n")
    assert [x["level"] for x in f] == ["warning", "error", "info"]
    assert f[1] == {"level": "error", "code": "IST0145", "resource": "Gateway istio-ingress/gw",
                    "message": "Conflict with gateways istio-ingress/gw2"}
    assert parsers.parse_precheck("✔ No issues found") == []


def test_quantity():
    assert parsers.parse_quantity("500m") == 0.5
    assert parsers.parse_quantity("16Gi") == 16 * 2**30
    assert parsers.parse_quantity("4") == 4.0


def test_cluster_from_context():
    r = cluster_from_context("arn:aws:eks:us-west-2:123456789012:cluster/prod")
    assert (r.name, r.region) == ("prod", "us-west-2")
    kc = {"contexts": [{"name": "me", "context": {"user": "u"}}],
          "users": [{"name": "u", "user": {"exec": {"args": ["eks", "get-token", "--cluster-name", "c1",
                                                             "--region", "eu-west-1"]}}}]}
    r = cluster_from_context("me", kc)
    assert (r.name, r.region) == ("c1", "eu-west-1")
    assert cluster_from_context("kind-kind", {}) is None


def test_addon_config_json_and_yaml():
    assert addon_config({"configurationValues": '{"env": {"A": "1"}}'}) == {"env": {"A": "1"}}
    assert addon_config({"configurationValues": "enableNetworkPolicy: 'true'\n"}) == {"enableNetworkPolicy": "true"}
    assert addon_config(None) == {}


def test_already_installed():
    rows = [{"name": n, "status": "deployed", "chart_version": "1.31.0"}
            for n in ("istio-base", "istiod", "istio-cni", "ztunnel")]
    assert already_installed(Settings(), rows, "1.31.0")
    assert already_installed(Settings(), rows, "1.31.1") is None
    assert already_installed(Settings(gateway=True), rows, "1.31.0") is None
    assert already_installed(Settings(values={"istiod": "f"}), rows, "1.31.0") is None
    rows[1]["status"] = "pending-upgrade"
    assert already_installed(Settings(), rows, "1.31.0") is None


def test_checks_run_concurrently_with_own_timeouts():
    def slow(ctx):
        time.sleep(0.5)
        return Check("slow", "slow", "pass")

    def hang(ctx):
        time.sleep(3)
        return Check("hang", "hang", "pass")

    def skip(ctx):
        raise Skip("not here")

    def boom(ctx):
        raise RuntimeError("bad")

    specs = [("slow", "slow", slow, 5), ("slow2", "slow", slow, 5), ("hang", "hang", hang, 0.3),
             ("skip", "skip", skip, 5), ("boom", "boom", boom, 5)]
    seen = []
    t0 = time.monotonic()
    out = asyncio.run(run_checks_async(object(), specs, on_result=lambda c: seen.append(c.id)))
    took = time.monotonic() - t0
    assert took < 1.5  # concurrent, and the hung check did not hold up the others
    by = {c.id: c for c in out}
    assert by["hang"].status == "fail" and by["hang"].detail == "timed out after 0.3s"
    assert by["skip"].status == "skip" and by["boom"].status == "fail" and "bad" in by["boom"].detail
    assert by["slow"].status == "pass" and seen[-1] in ("slow", "slow2")
    assert set(by["slow"].to_dict()) >= {"id", "title", "status", "detail", "fix"}


def test_checks_waiting_on_helm_or_istioctl_start_first():
    from ambient_tui.checks.core import ALL

    ids = [ALL[i][0] for i in start_order(ALL)]
    assert ids[:4] == ["helm", "istioctl", "existing-istio", "istioctl-precheck"]
    assert ids[4:] == [c[0] for c in ALL if c[0] not in ids[:4]]  # the rest keep their order
