"""Catalogue rows and the install plan per version, read from assets/istio-releases.yaml."""

import datetime as dt

import pytest

from ambient_tui import catalog
from ambient_tui.plans.install import build_install_plan
from ambient_tui.settings import Settings


@pytest.fixture(scope="module")
def cat():
    return catalog.load()


def test_every_minor_from_1_24_to_1_31_is_described(cat):
    assert [r.minor for r in cat.releases] == [f"1.{m}" for m in range(24, 32)]
    for r in cat.releases:
        assert r.kubernetes[0] < r.kubernetes[1] or len(r.kubernetes) == 2
        assert r.gateway_api.version.startswith("v1.")
        assert r.quirks["verify_install_removed"] is True


@pytest.mark.parametrize("minor,k8s,gw,server_side,eol", [
    ("1.24", ("1.28", "1.31"), "v1.2.0", False, dt.date(2025, 6, 24)),
    ("1.28", ("1.29", "1.34"), "v1.4.0", True, dt.date(2026, 7, 31)),
    ("1.29", ("1.31", "1.35"), "v1.4.1", True, dt.date(2026, 10, 12)),
    ("1.30", ("1.32", "1.36"), "v1.5.1", True, None),
])
def test_rows_match_the_facts(cat, minor, k8s, gw, server_side, eol):
    r = cat.release(minor)
    assert r.kubernetes == k8s
    assert (r.gateway_api.version, r.gateway_api.server_side) == (gw, server_side)
    assert r.eol == eol


def test_kubernetes_support_and_quirks(cat):
    r130 = cat.release("1.30.0")
    assert r130.supports_kubernetes("v1.34.4") and not r130.supports_kubernetes("1.31.9")
    assert r130.helm4_supported and not cat.release("1.29").helm4_supported
    assert cat.release("1.28").has_branch_eni_probe_fix("1.28.7")
    assert not cat.release("1.28").has_branch_eni_probe_fix("1.28.6")
    assert not cat.release("1.24").has_branch_eni_probe_fix("1.24.6")


def test_default_is_the_newest_supported_release(cat):
    rel, version = cat.resolve(None, today=dt.date(2026, 11, 25))
    assert rel.minor == "1.31" and version == rel.latest
    # After 1.31 reached an EOL it would still be chosen only if nothing else lives.
    assert cat.resolve("1.30")[1] == "1.30.0"


def test_unknown_version_lists_the_known_ones(cat):
    with pytest.raises(catalog.UnknownVersion, match="known: 1.24.6"):
        cat.release("1.9.0")
    with pytest.raises(catalog.UnknownVersion):
        cat.release("banana")


def commands(plan):
    return [s.command for s in plan.steps]


def test_1_24_uses_gateway_api_v1_2_0_and_has_no_verify_install():
    plan = build_install_plan(Settings(istio_version="1.24.0"))
    text = "\n".join(commands(plan))
    assert "download/v1.2.0/standard-install.yaml" in text
    assert "--server-side" not in plan.step("gateway-api-crds").argv
    assert "verify-install" not in text


def test_1_30_applies_v1_5_1_server_side():
    argv = build_install_plan(Settings(istio_version="1.30.0")).step("gateway-api-crds").argv
    assert "--server-side" in argv
    assert argv[-1].endswith("/v1.5.1/experimental-install.yaml")


@pytest.mark.parametrize("version", ["1.30.0", "1.30", "1.31.1", None])
@pytest.mark.parametrize("source", ["blob", "oci"])
def test_no_plan_for_1_30_and_later_uses_the_retired_bucket(version, source):
    plan = build_install_plan(Settings(istio_version=version, chart_source=source, gateway=True))
    assert not any("istio-release.storage.googleapis.com" in c for c in commands(plan))


def test_helm_order_and_flags():
    plan = build_install_plan(Settings(istio_version="1.31.1", gateway=True, values={"istiod": "/v/istiod.yaml"}))
    ids = [s.id for s in plan.steps]
    assert ids[:6] == ["helm-istio-base", "gateway-api-crds", "helm-istiod", "helm-istio-cni",
                       "helm-ztunnel", "helm-istio-ingress"]
    istiod = plan.step("helm-istiod").argv
    assert istiod[:4] == ["helm", "upgrade", "--install", "istiod"]
    assert "profile=ambient" in istiod and "--wait" in istiod and istiod[istiod.index("--values") + 1] == "/v/istiod.yaml"
    assert plan.step("helm-istio-cni").group == plan.step("helm-ztunnel").group == "node-agents"
    assert {plan.step(f"verify-{n}").group for n in ("istiod", "istio-cni", "ztunnel")} == {"verify"}
    # The node agents' rollouts are waited for by the Verify phase's watch, not helm's 2 s poll.
    for agent, workload in (("istio-cni", "istio-cni-node"), ("ztunnel", "ztunnel")):
        step = plan.step(f"helm-{agent}")
        assert "--wait" not in step.argv and "Verify phase waits" in step.note
        verify = plan.step(f"verify-{agent}").argv
        assert verify[:4] == ["kubectl", "rollout", "status", f"daemonset/{workload}"]
        assert verify[-1] == "--timeout=10m"
    assert [p.id for p in plan.phases].index("data-plane") < [p.id for p in plan.phases].index("verify")
    gw = plan.step("helm-istio-ingress").argv
    assert "--wait" not in gw and gw[gw.index("--namespace") + 1] == "istio-ingress"
    assert "--create-namespace" in plan.step("helm-istio-base").argv


def test_oci_and_local_chart_sources(tmp_path):
    oci = build_install_plan(Settings(chart_source="oci")).step("helm-ztunnel").argv
    assert oci[4] == "oci://ghcr.io/istio/release/charts/ztunnel" and "--repo" not in oci
    (tmp_path / "istio-control" / "istio-discovery").mkdir(parents=True)
    local = build_install_plan(Settings(chart_source=str(tmp_path))).step("helm-istiod").argv
    assert local[4] == str(tmp_path / "istio-control" / "istio-discovery")
    assert "--version" not in local


def test_istioctl_method_and_enrolment():
    from ambient_tui.plans.install import ClusterFacts, GatewayApiAction

    keep = ClusterFacts(gateway_api=GatewayApiAction("keep", "v1.5.1", "standard", previous="v1.5.1"))
    plan = build_install_plan(Settings(method="istioctl", enroll=["shop", "pay"]), facts=keep)
    assert plan.step("istioctl-install").argv == ["istioctl", "install", "--set", "profile=ambient", "--skip-confirmation"]
    assert "gateway-api-crds" not in [s.id for s in plan.steps]
    assert plan.step("enroll-shop").argv[-2:] == ["istio.io/dataplane-mode=ambient", "--overwrite"]
    assert [s.id for s in plan.steps if s.id.startswith("ztunnel-workloads-")] == [
        "ztunnel-workloads-shop", "ztunnel-workloads-pay"]
    assert plan.step("ztunnel-workloads-pay").warn_only
    assert plan.step("ztunnel-workloads-pay").argv[-2:] == ["--workload-namespace", "pay"]
