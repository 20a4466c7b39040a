"""Uninstall plan from a discovery snapshot: order, argv, the Gateway API CRD guard, verification."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ambient_tui.commands import uninstall as cmd
from ambient_tui.plans import uninstall as u
from ambient_tui.plans.uninstall import Discovery, Obj, Options, Release


def full() -> Discovery:
    return Discovery(
        cluster="demo",
        releases=[Release("istio-base", "istio-system", "base", "1.31.0"),
                  Release("istiod", "istio-system", "istiod", "1.31.0",
                          resources=(Obj("Deployment", "istiod", "istio-system", "apps/v1"),
                                     Obj("ClusterRole", "istiod-clusterrole", "", "rbac.authorization.k8s.io/v1"))),
                  Release("ztunnel", "istio-system", "ztunnel", "1.31.0"),
                  Release("istio-ingress", "istio-ingress", "gateway", "1.31.0"),
                  Release("istio-cni", "istio-system", "cni", "1.31.0")],
        istio_crds=["authorizationpolicies.security.istio.io", "gateways.networking.istio.io"],
        gateway_api_crds=["gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io"],
        gateway_api_owned=["gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io"],
        enrolled_namespaces={"shop": ["istio.io/dataplane-mode", "istio.io/use-waypoint"],
                             "web": ["istio.io/dataplane-mode"]},
        opted_out_pods=[Obj("Pod", "legacy", "shop")],
        waypoints=[Obj("Gateway", "waypoint", "shop", "gateway.networking.k8s.io/v1")],
        netpols=[Obj("NetworkPolicy", "allow-ambient-hbone", "shop", "networking.k8s.io/v1")],
        istio_namespace_exists=True)


def ids(plan) -> list[str]:
    return [s.id for s in plan.steps]


def test_full_plan_is_in_reverse_order_with_exact_argv():
    plan = u.build_uninstall_plan(full(), Options(purge_crds=True))
    assert [p.id for p in plan.phases] == ["unenrol", "waypoints", "releases", "istio-crds",
                                          "gateway-api-crds", "netpols", "namespace"]
    assert ids(plan)[:3] == ["unenrol-shop", "unenrol-web", "waypoint-shop-waypoint"]
    helm = [s.argv[2] for s in plan.steps if s.argv and s.argv[:2] == ["helm", "uninstall"]]
    assert helm == ["istio-ingress", "ztunnel", "istio-cni", "istiod", "istio-base"]
    assert plan.step("unenrol-shop").argv == ["kubectl", "label", "namespace", "shop",
                                              "istio.io/dataplane-mode-", "istio.io/use-waypoint-"]
    assert plan.step("helm-uninstall-istio-ingress").argv[:5] == [
        "helm", "uninstall", "istio-ingress", "--namespace", "istio-ingress"]
    assert plan.step("purge-istio-crds").argv == [
        "kubectl", "delete", "customresourcedefinition", "authorizationpolicies.security.istio.io",
        "gateways.networking.istio.io", "--ignore-not-found", "--wait=false"]
    assert ids(plan)[ids(plan).index("purge-istio-crds") + 1] == "wait-istio-crds"
    assert "CustomResourceDefinition until gone" in plan.step("wait-istio-crds").command
    assert plan.step("netpol-shop-allow-ambient-hbone").argv[:5] == [
        "kubectl", "delete", "networkpolicy", "allow-ambient-hbone", "-n"]
    assert ids(plan)[-1] == "namespace-istio-system"


def test_partial_install_only_base_and_istiod():
    d = Discovery(cluster="demo", releases=[Release("istiod", "istio-system", "istiod"),
                                            Release("istio-base", "istio-system", "base")],
                  istio_crds=["x.istio.io"], istio_namespace_exists=True)
    plan = u.build_uninstall_plan(d)
    assert ids(plan) == ["helm-uninstall-istiod", "helm-uninstall-istio-base", "namespace-istio-system"]


def test_keep_labels_and_no_purge():
    plan = u.build_uninstall_plan(full(), Options(keep_namespace_labels=True))
    assert not any(i.startswith("unenrol") for i in ids(plan))
    assert "purge-istio-crds" not in ids(plan) and "delete-gateway-api-crds" not in ids(plan)
    kept = "\n".join(u.kept_list(full(), Options(keep_namespace_labels=True)))
    assert "Istio CRDs kept" in kept and "shop" in kept


def test_gateway_api_guard_in_use():
    d = full()
    d.gateway_api_users = [Obj("HTTPRoute", "shop-route", "shop")]
    remove, why = u.gateway_api_decision(d, Options(purge_crds=True))
    assert not remove and "HTTPRoute shop/shop-route" in why and "still use" in why
    assert "delete-gateway-api-crds" not in ids(u.build_uninstall_plan(d, Options(purge_crds=True)))
    assert why in u.kept_list(d, Options(purge_crds=True))


def test_gateway_api_guard_not_ours():
    d = full()
    d.gateway_api_owned = []
    remove, why = u.gateway_api_decision(d, Options(purge_crds=True))
    assert not remove and "did not install" in why


def test_gateway_api_removed_when_ours_and_unused():
    plan = u.build_uninstall_plan(full(), Options(purge_crds=True))
    assert plan.step("delete-gateway-api-crds").argv[3:5] == full().gateway_api_crds


def test_only_the_gateway_api_crds_this_tool_created_are_deleted():
    d = full()
    d.gateway_api_owned = ["httproutes.gateway.networking.k8s.io"]
    plan = u.build_uninstall_plan(d, Options(purge_crds=True))
    assert "gateways.gateway.networking.k8s.io" not in plan.step("delete-gateway-api-crds").argv
    assert "CustomResourceDefinition gateways.gateway.networking.k8s.io" not in u.deletion_list(
        d, Options(purge_crds=True))


def test_deletion_list_names_everything():
    lines = u.deletion_list(full(), Options(purge_crds=True))
    text = "\n".join(lines)
    for want in ("Namespace shop", "Gateway shop/waypoint", "HelmRelease istio-system/istiod",
                 "Deployment istio-system/istiod", "ClusterRole istiod-clusterrole",
                 "CustomResourceDefinition authorizationpolicies.security.istio.io",
                 "CustomResourceDefinition httproutes.gateway.networking.k8s.io",
                 "NetworkPolicy shop/allow-ambient-hbone", "Namespace istio-system"):
        assert want in text, want
    assert "Pod shop/legacy" not in text


def test_permissions_cover_every_delete():
    perms = {str(p) for p in u.required_permissions(full(), Options(purge_crds=True))}
    assert "delete deployments.apps istiod in namespace istio-system" in perms
    assert "delete clusterroles.rbac.authorization.k8s.io istiod-clusterrole (cluster-wide)" in perms
    assert "patch namespaces shop (cluster-wide)" in perms
    assert "delete namespaces istio-system (cluster-wide)" in perms
    assert "delete networkpolicies.networking.k8s.io allow-ambient-hbone in namespace shop" in perms
    assert u.resource_of(Obj("NetworkPolicy", "x", "", "networking.k8s.io/v1")) == ("networking.k8s.io", "networkpolicies")
    assert u.resource_of(Obj("ValidatingWebhookConfiguration", "x", "", "admissionregistration.k8s.io/v1"))[1] \
        == "validatingwebhookconfigurations"
    assert u.resource_of(Obj("ServiceAccount", "x", "ns", "v1")) == ("", "serviceaccounts")


def test_verify_reports_leftovers_with_commands():
    after = Discovery(releases=[Release("istiod", "istio-system", "istiod")], istio_crds=["a.istio.io"],
                      istio_namespace_exists=True)
    left = u.verify(full(), after, Options(purge_crds=True))
    assert [l.what for l in left] == ["HelmRelease istio-system/istiod", "Namespace istio-system",
                                      "CustomResourceDefinition a.istio.io"]
    assert left[0].command == "helm uninstall istiod -n istio-system"
    assert u.verify(full(), Discovery(istio_crds=["a.istio.io"]), Options()) == []


def test_istio_release_detection():
    assert u.split_chart("istiod-1.31.0") == ("istiod", "1.31.0")
    assert u.is_istio_release({"name": "istio-base", "namespace": "x", "chart": "base-1.31.0"})
    assert u.is_istio_release({"name": "my-gw", "namespace": "istio-ingress", "chart": "gateway-1.31.0"})
    assert not u.is_istio_release({"name": "base", "namespace": "default", "chart": "base-2.0.0"})


def test_manifest_objects_drop_kept():
    m = """---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: a.istio.io, annotations: {helm.sh/resource-policy: keep}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: istiod}
"""
    deleted, kept = u.manifest_objects(m)
    assert [o.name for o in deleted] == ["istiod"] and [o.name for o in kept] == ["a.istio.io"]


def test_journal_knows_who_installed_gateway_api(tmp_path: Path):
    path = tmp_path / "j.jsonl"
    assert not u.tool_installed_gateway_api(path)
    path.write_text(json.dumps({"type": "step-end", "step": "gateway-api-crds", "state": "skipped"}) + "\n")
    assert not u.tool_installed_gateway_api(path)  # a dry run does not count
    with path.open("a") as fh:
        fh.write(json.dumps({"type": "step-end", "step": "gateway-api-crds", "state": "succeeded"}) + "\n")
    assert u.tool_installed_gateway_api(path)


def test_resume_reads_only_the_last_uninstall_run(tmp_path: Path):
    path = tmp_path / "j.jsonl"
    recs = [{"type": "plan", "run": "r1", "title": "Uninstall Istio ambient from x"},
            {"type": "step-end", "run": "r1", "step": "helm-uninstall-istiod", "state": "succeeded"},
            {"type": "plan", "run": "r2", "title": "Uninstall Istio ambient from x"},
            {"type": "step-end", "run": "r2", "step": "unenrol-shop", "state": "succeeded"},
            {"type": "step-end", "run": "r2", "step": "waypoint-shop-waypoint", "state": "skipped"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert cmd._last_uninstall_run(path).step_states() == {"unenrol-shop": "succeeded"}


def test_register_flags():
    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["uninstall", "--yes", "--dry-run", "--purge-crds", "--keep-namespace-labels",
                              "--revert-cni", "--resume"])
    assert args.yes and args.dry_run and args.purge_crds and args.keep_namespace_labels
    assert args.revert_cni and args.resume and args.func is cmd.run
