"""Real public NetworkPolicies (tests/unit/netpol_corpus, sources in its SOURCES file).

Every expectation below was judged by hand against Kubernetes' NetworkPolicy rules and
Istio's ambient data path; the comment on each says why it holds. Offline context:
every namespace taken as enrolled, istio-cni's chart defaults (istio-system and
kube-system not captured), CNI unknown (so probe-blocked is a warning).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import yaml

from ambient_tui.netpol.fixes import apply_fix
from ambient_tui.netpol.lint import lint
from ambient_tui.netpol.parse import parse_file, parse_manifests, parse_text

CORPUS = Path(__file__).parent / "netpol_corpus"


def verdicts(*names: str) -> set[tuple[str, str, str]]:
    docs = [d for n in names for d in parse_file(CORPUS / n)]
    return {(f.policy, f.rule, f.severity) for f in lint(docs)}


def test_every_file_is_recorded_in_sources_and_there_are_five_sources():
    listed = {line.split("\t")[0]: line.split("\t")[1] for line in
              (CORPUS / "SOURCES").read_text().splitlines() if line and not line.startswith("#")}
    files = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file()
             and p.name != "SOURCES"}
    assert files == set(listed)
    assert len(set(listed.values())) >= 5
    assert all(len(line.split("\t")) == 4 for line in (CORPUS / "SOURCES").read_text().splitlines()
               if line and not line.startswith("#"))


def test_the_whole_corpus_parses_and_lints_without_error():
    count = 0
    for path in sorted(CORPUS.rglob("*.yaml")):
        docs = parse_file(path)
        count += len(docs)
        lint(docs)
    assert count >= 55


# -- Istio's own chart policies -------------------------------------------------------------


def test_istio_chart_policies_are_clean():
    # istiod, istio-cni and ztunnel run in istio-system, which istio-cni never captures:
    # no HBONE, no rewritten probes there, so ports-only ingress is right. ztunnel's policy
    # opening 15001/15006/15008 is Istio's own, not the guide's mistake: no finding, and
    # certainly no "delete policy 'ztunnel'".
    assert verdicts("istio/istiod.yaml", "istio/istio-cni.yaml", "istio/ztunnel.yaml") == set()


def test_istio_chart_policy_would_be_flagged_in_a_captured_namespace():
    # The same istiod policy in an enrolled app namespace blocks HBONE: the exclusion,
    # not a blind spot, is what keeps the chart clean.
    text = (CORPUS / "istio/istiod.yaml").read_text().replace('"istio-system"', "apps")
    assert {f.rule for f in lint(parse_text(text))} >= {"hbone-blocked"}


# -- Kubernetes' documentation --------------------------------------------------------------


@pytest.mark.parametrize("name,expected", [
    # role=db: ingress only on 6379 from three peers, egress only to 10.0.0.0/24:5978.
    # 15008 is not among the ports (hbone), the probe address is in none of the peers
    # (probe, CNI unknown: warning), and 5978 to a CIDR carries no DNS. The egress goes to
    # an ipBlock, taken as outside the mesh: no egress-hbone finding.
    ("networkpolicy.yaml", {("test-network-policy", "hbone-blocked", "error"),
                            ("test-network-policy", "probe-blocked", "warning"),
                            ("test-network-policy", "egress-without-dns", "warning")}),
    # Egress only: a TCP port range to a CIDR, no UDP 53.
    ("networkpolicy-multiport-egress.yaml", {("multi-port-egress", "egress-without-dns",
                                              "warning")}),
    # Flow-style default deny of both directions: everything is blocked.
    ("network-policy-default-deny-all.yaml", {("default-deny-all", "hbone-blocked", "error"),
                                              ("default-deny-all", "probe-blocked", "warning"),
                                              ("default-deny-all", "egress-without-dns",
                                               "warning")}),
    # egress: [{}] allows all egress (DNS included); ingress: [] denies all ingress.
    ("network-policy-allow-all-egress-deny-all-ingress.yaml", {
        ("allow-egress-deny-ingress", "hbone-blocked", "error"),
        ("allow-egress-deny-ingress", "probe-blocked", "warning")}),
    ("network-policy-default-deny-egress.yaml", {("default-deny-egress", "egress-without-dns",
                                                  "warning")}),
    # From access=true pods on every port: 15008 included, so HBONE works; the probe
    # address is not a pod with that label.
    ("nginx-policy.yaml", {("access-nginx", "probe-blocked", "warning")}),
])
def test_kubernetes_website_examples(name, expected):
    assert verdicts(f"kubernetes-website/{name}") == expected


# -- the network policy recipes -------------------------------------------------------------


@pytest.mark.parametrize("name,expected", [
    # ingress: [] with no policyTypes: Ingress is defaulted, nothing is allowed.
    ("01-deny-all-traffic-to-an-application", {("web-deny-all", "hbone-blocked", "error"),
                                               ("web-deny-all", "probe-blocked", "warning")}),
    # From app=bookstore pods on every port: HBONE from those (meshed) pods is allowed.
    ("02-limit-traffic-to-an-application", {("api-allow", "probe-blocked", "warning")}),
    # ingress: [{}] allows everything.
    ("02a-allow-all-traffic-to-an-application", set()),
    ("03-deny-all-non-whitelisted-traffic-in-the-namespace", {
        ("default-deny-all", "hbone-blocked", "error"),
        ("default-deny-all", "probe-blocked", "warning")}),
    # from podSelector: {} (same namespace, every port): HBONE from the namespace's pods.
    ("04-deny-traffic-from-other-namespaces", {("deny-from-other-namespaces", "probe-blocked",
                                                "warning")}),
    ("05-allow-traffic-from-all-namespaces", {("web-allow-all-namespaces", "probe-blocked",
                                               "warning")}),
    # A namespace chosen by a custom label: offline its enrolment is unknown, so it may send
    # HBONE; no hbone finding.
    ("06-allow-traffic-from-a-namespace", {("web-allow-prod", "probe-blocked", "warning")}),
    ("07-allow-traffic-from-some-pods-in-another-namespace", {
        ("web-allow-all-ns-monitoring", "probe-blocked", "warning")}),
    # from: [] allows every source.
    ("08-allow-external-traffic", set()),
    # Only port 5000, from anywhere: meshed clients arrive on 15008, which is closed.
    ("09-allow-traffic-only-to-a-port", {("api-allow-5000", "hbone-blocked", "error"),
                                         ("api-allow-5000", "probe-blocked", "warning")}),
    ("10-allowing-traffic-with-multiple-selectors", {("redis-allow-services", "probe-blocked",
                                                      "warning")}),
    # Two documents of one name (the page shows a deny, then the deny with DNS): the union
    # allows DNS to kube-dns, and kube-system is not captured, so no HBONE is needed.
    ("11-deny-egress-traffic-from-an-application", set()),
    ("12-deny-all-non-whitelisted-traffic-from-the-namespace", {
        ("default-deny-all-egress", "egress-without-dns", "warning")}),
    # DNS to kube-dns only; kube-system is excluded from capture: nothing meshed is reached.
    ("14-deny-external-egress-traffic", set()),
])
def test_network_policy_recipes(name, expected):
    assert verdicts(f"network-policy-recipes/{name}.yaml") == expected


# -- applications' own policies -------------------------------------------------------------


def test_microservices_demo_as_deployed():
    # The component is applied as a whole. deny-all selects every pod; each service then
    # opens its application port to its callers, never 15008. The broad deny-all carries
    # the finding (one fix covers all pods); the narrower ones are not repeated.
    names = [p.name for p in sorted((CORPUS / "microservices-demo").glob("*.yaml"))]
    assert verdicts(*(f"microservices-demo/{n}" for n in names)) == {
        ("deny-all", "hbone-blocked", "error"), ("deny-all", "probe-blocked", "warning"),
        ("deny-all", "egress-without-dns", "warning")}


def test_microservices_demo_fix_keeps_the_callers():
    # cartservice alone: 7070 from frontend and checkoutservice. The HBONE fix opens 15008
    # from those same two callers, not from anywhere, and warns about L4 port limits.
    docs = parse_file(CORPUS / "microservices-demo/network-policy-cartservice.yaml")
    f = next(f for f in lint(docs) if f.rule == "hbone-blocked")
    new = yaml.safe_load(f.fix.yaml)
    callers = [p["podSelector"]["matchLabels"]["app"] for p in new["spec"]["ingress"][0]["from"]]
    assert callers == ["frontend", "checkoutservice"]
    assert "AuthorizationPolicy" in f.fix.title and "56659" in f.message
    text = (CORPUS / "microservices-demo/network-policy-cartservice.yaml").read_text()
    after = lint(parse_text(apply_fix(text, f.fix)))
    assert "hbone-blocked" not in {x.rule for x in after}


def test_kube_prometheus():
    # Each component allows its metrics port from Prometheus (and a few more); 15008 never.
    # node-exporter runs with hostNetwork: offline that is not known, so it is flagged; the
    # cluster lint skips host-network pods (tests/cluster/test_netpol_live.py).
    found = verdicts(*(f"kube-prometheus/{p.name}" for p in
                       sorted((CORPUS / "kube-prometheus").glob("*.yaml"))))
    blocked = {p for p, rule, _ in found if rule == "hbone-blocked"}
    assert blocked == {"alertmanager-main", "blackbox-exporter", "grafana", "kube-state-metrics",
                       "node-exporter", "prometheus-k8s", "prometheus-operator"}
    # prometheus-adapter's policy is ingress: [{}] (everything, 15008 and probes included).
    assert not {f for f in found if f[0] == "prometheus-adapter"}
    assert all(sev == "warning" for _, rule, sev in found if rule == "probe-blocked")
    assert not {r for _, r, _ in found} - {"hbone-blocked", "probe-blocked"}


def test_argo_cd_policies():
    # Every component opens its own ports; argocd-server opens all ingress. redis-ha-server
    # also restricts egress to its peers on 6379/26379: meshed peers, so 15008 is needed.
    found = verdicts(*(f"argo-cd/{p.name}" for p in sorted((CORPUS / "argo-cd").glob("*.yaml"))))
    assert ("argocd-redis-ha-server-network-policy", "egress-hbone-blocked", "error") in found
    assert not {f for f in found if f[0] == "argocd-server-network-policy"}
    assert {r for _, r, _ in found} == {"hbone-blocked", "probe-blocked", "egress-hbone-blocked"}


def test_argo_cd_install_bundle_is_linted_not_refused():
    # install.yaml: CRDs, RBAC, Deployments ... and 7 NetworkPolicies. Other kinds are
    # counted and skipped with one note; the policies get the same verdicts as the files.
    text = gzip.decompress((CORPUS / "argo-cd/install.yaml.gz").read_bytes()).decode()
    got = parse_manifests(text, "install.yaml")
    assert len(got.policies) == 7
    assert got.skipped["CustomResourceDefinition"] >= 3 and "Deployment" in got.skipped
    assert got.note().startswith("skipped ")
    found = {(f.policy, f.rule) for f in lint(got.policies)}
    assert ("argocd-redis-network-policy", "hbone-blocked") in found
    assert all(f.line > 1 for f in lint(got.policies))  # lines point into the bundle
