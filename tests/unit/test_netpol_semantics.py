"""Kubernetes and ambient semantics the lint must get exactly right (issue 16).

Each case states the rule it follows: the API server's defaulting, LabelSelector
evaluation, Istio's ambient data path (HBONE on the pod's 15008, probes from
169.254.7.127, istio-cni's excluded namespaces).
"""

from __future__ import annotations

import yaml

from ambient_tui.netpol import model as m
from ambient_tui.netpol.fixes import apply_fix
from ambient_tui.netpol.lint import ENFORCES, IGNORES, Context, Pod, lint, lint_text
from ambient_tui.netpol.parse import parse_text
from ambient_tui.netpol.templates import allow_dns, allow_hbone, default_deny, render


def np(name: str, spec: dict, ns: str = "demo") -> str:
    return yaml.safe_dump({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                           "metadata": {"name": name, "namespace": ns}, "spec": spec},
                          sort_keys=False)


def rules(findings, rule):
    return [f for f in findings if f.rule == rule]


def join(*texts: str) -> str:
    return "---\n".join(texts)


HBONE = yaml.safe_dump(allow_hbone("demo"))
DNS = yaml.safe_dump(allow_dns("demo"))


# -- Kubernetes ------------------------------------------------------------------------------


def test_policy_types_defaulting_matches_the_api_server():
    # SetDefaults_NetworkPolicySpec: Ingress always; Egress only with egress rules.
    assert m.policy_types({"spec": {"egress": []}}) == {"Ingress"}
    assert m.policy_types({"spec": {"egress": [{}]}}) == {"Ingress", "Egress"}
    assert m.policy_types({"spec": {"policyTypes": [], "egress": [{}]}}) == {"Ingress", "Egress"}
    assert m.policy_types({"spec": {"policyTypes": ["Egress"]}}) == {"Egress"}


def test_empty_egress_list_without_policy_types_is_not_judged_for_dns():
    text = np("e", {"podSelector": {}, "egress": [], "ingress": [{}]})
    assert rules(lint_text(text), "egress-without-dns") == []


def test_label_selector_operators_with_several_values():
    sel = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "b"]},
                                {"key": "tier", "operator": "NotIn", "values": ["db", "cache"]},
                                {"key": "team", "operator": "Exists"},
                                {"key": "legacy", "operator": "DoesNotExist"}]}
    assert m.selector_matches(sel, {"app": "b", "tier": "web", "team": "x"})
    assert not m.selector_matches(sel, {"app": "c", "team": "x"})
    assert not m.selector_matches(sel, {"app": "a", "tier": "cache", "team": "x"})
    assert not m.selector_matches(sel, {"app": "a"})
    assert not m.selector_matches(sel, {"app": "a", "team": "x", "legacy": "1"})


def test_in_with_several_values_is_judged_for_every_value():
    # The deny selects app In (a, b); HBONE is allowed for app=a only: the b pods are blocked.
    deny = np("deny", {"podSelector": {"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["a", "b"]}]}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "169.254.7.127/32"}}]}]})
    only_a = np("a-hbone", {"podSelector": {"matchLabels": {"app": "a"}},
                            "ingress": [{"ports": [{"port": 15008}]}]})
    assert [f.policy for f in rules(lint_text(join(deny, only_a)), "hbone-blocked")] == ["deny"]


def test_end_port_range_allows_dns():
    text = np("e", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"ports": [{"protocol": "UDP", "port": 50, "endPort": 60}]}, {}]})
    assert rules(lint_text(text), "egress-without-dns") == []


def test_named_dns_ports_allow_dns_offline():
    text = np("e", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
        "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": "dns"}, {"protocol": "TCP", "port": "dns-tcp"}]}]})
    assert rules(lint_text(text), "egress-without-dns") == []


def test_other_named_port_is_said_unresolved_offline():
    text = np("e", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"ports": [{"protocol": "UDP", "port": "resolver"}]}]})
    found = rules(lint_text(text), "egress-without-dns")
    assert found and "resolver" in found[0].message and "could not be resolved" in found[0].message


def test_named_port_resolves_against_live_container_ports():
    # HBONE via a named port only counts when the pod declares that name for 15008.
    text = join(np("deny", {"podSelector": {}, "ingress": [
        {"ports": [{"port": "hbone"}]},
        {"from": [{"ipBlock": {"cidr": "169.254.7.127/32"}}]}]}))
    plain = {"demo": [Pod("web-1", {"app": "web"}, ips=("10.0.0.5",))]}
    declared = {"demo": [Pod("web-1", {"app": "web"}, ips=("10.0.0.5",),
                             ports={"hbone": {("TCP", 15008)}})]}
    assert rules(lint_text(text, context=Context(enrolled={"demo"}, pods=plain)), "hbone-blocked")
    found = lint_text(text, context=Context(enrolled={"demo"}, pods=declared))
    assert rules(found, "hbone-blocked") == []
    unresolved = rules(lint_text(text, context=Context(enrolled={"demo"}, pods=plain)),
                       "named-port-unresolved")
    assert unresolved and "'hbone'" in unresolved[0].message


def test_ip_block_except_removes_the_probe_address():
    text = join(HBONE.replace("169.254.7.127/32", "169.254.0.0/16\n      except: [169.254.7.0/24]")
                .replace("- ipBlock:\n      cidr: fd16", "- ipBlock:\n      cidr: fd17"),
                np("deny", {"podSelector": {}, "policyTypes": ["Ingress"]}))
    assert rules(lint_text(text), "probe-blocked")


def test_namespace_selector_combined_with_pod_selector_is_one_peer():
    # {namespaceSelector: cfg, podSelector: app=config} is ONE peer (AND); the egress HBONE
    # fix must keep both halves.
    deny = yaml.safe_dump(default_deny("demo"))
    cfg = render("allow-egress-to-config-server", namespace="demo").replace(
        "    - protocol: TCP\n      port: 15008\n", "")
    found = rules(lint_text(join(deny, DNS, HBONE, cfg)), "egress-hbone-blocked")
    assert len(found) == 1
    new = yaml.safe_load(found[0].fix.yaml)
    peer = new["spec"]["egress"][0]["to"][0]
    assert set(peer) == {"namespaceSelector", "podSelector"}
    assert peer["podSelector"] == {"matchLabels": {"app": "config-server"}}


def test_probe_source_family_follows_the_pods_ips():
    v6_only = np("probes6", {"podSelector": {}, "ingress": [
        {"from": [{"ipBlock": {"cidr": m.PROBE_SOURCES[1]}}]}, {"ports": [{"port": 15008}]}]})
    v4_pods = {"demo": [Pod("a", {}, ips=("10.1.2.3",))]}
    v6_pods = {"demo": [Pod("a", {}, ips=("fd00::5",))]}
    assert rules(lint_text(v6_only), "probe-blocked") == []  # offline: either family
    found = rules(lint_text(v6_only, context=Context(enrolled={"demo"}, pods=v4_pods)),
                  "probe-blocked")
    assert found and "169.254.7.127/32" in found[0].message
    assert rules(lint_text(v6_only, context=Context(enrolled={"demo"}, pods=v6_pods)),
                 "probe-blocked") == []


# -- ambient -------------------------------------------------------------------------------


def test_egress_hbone_rule_catches_the_default_deny_plus_config_server_mistake():
    deny = yaml.safe_dump(default_deny("demo"))
    old_cfg = render("allow-egress-to-config-server", namespace="demo").replace(
        "    - protocol: TCP\n      port: 15008\n", "")
    text = join(deny, HBONE, DNS, old_cfg)
    found = rules(lint_text(text), "egress-hbone-blocked")
    assert len(found) == 1 and "15008" in found[0].message and "56659" in found[0].message
    fixed = apply_fix(text, found[0].fix)
    assert rules(lint_text(fixed), "egress-hbone-blocked") == []
    # The template as shipped now opens 15008 too.
    good = join(deny, HBONE, DNS, render("allow-egress-to-config-server", namespace="demo"))
    assert lint_text(good) == []


def test_egress_to_non_meshed_destinations_needs_no_hbone():
    cfg = render("allow-egress-to-config-server", namespace="demo", to_namespace="legacy").replace(
        "    - protocol: TCP\n      port: 15008\n", "")
    ctx = Context(enrolled={"demo"})
    assert rules(lint_text(join(cfg, DNS), context=ctx), "egress-hbone-blocked") == []
    ctx = Context(enrolled={"demo", "legacy"})
    assert rules(lint_text(join(cfg, DNS), context=ctx), "egress-hbone-blocked")


def test_excluded_namespaces_are_not_judged_for_hbone_or_probes():
    deny = np("deny", {"podSelector": {}, "policyTypes": ["Ingress"]}, ns="kube-system")
    assert lint_text(deny) == []  # istio-cni's chart excludes kube-system (and istio-system)
    live = Context(enrolled=True, excluded=frozenset({"istio-system", "legacy"}))
    assert lint_text(deny, context=live)  # a live excludeNamespaces without kube-system
    legacy = np("deny", {"podSelector": {}, "policyTypes": ["Ingress"]}, ns="legacy")
    assert lint_text(legacy, context=live) == []


def test_host_network_pods_are_not_judged():
    deny = np("deny", {"podSelector": {"matchLabels": {"app": "agent"}},
                       "policyTypes": ["Ingress", "Egress"]})
    pods = {"demo": [Pod("agent-1", {"app": "agent"}, host_network=True)]}
    assert lint_text(deny, context=Context(enrolled={"demo"}, pods=pods)) == []
    pods = {"demo": [Pod("agent-1", {"app": "agent"})]}
    assert lint_text(deny, context=Context(enrolled={"demo"}, pods=pods))


def test_hbone_only_from_istio_system_does_not_count():
    guide_ns_form = np("from-istio", {"podSelector": {}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "istio-system"}}}],
         "ports": [{"port": 15008}]},
        {"from": [{"ipBlock": {"cidr": "169.254.7.127/32"}}]}]})
    found = rules(lint_text(guide_ns_form), "hbone-blocked")
    assert found and "istio-system" in found[0].message


def test_probe_severity_follows_the_cni():
    deny = join(np("deny", {"podSelector": {}, "policyTypes": ["Ingress"]}),
                np("hb", {"podSelector": {}, "ingress": [{"ports": [{"port": 15008}]}]}))
    offline = rules(lint_text(deny), "probe-blocked")
    assert [f.severity for f in offline] == ["warning"]
    enforcing = rules(lint_text(deny, context=Context(cni=ENFORCES, cni_reason="Calico")),
                      "probe-blocked")
    assert [f.severity for f in enforcing] == ["error"] and "Calico" in enforcing[0].message
    assert rules(lint_text(deny, context=Context(cni=IGNORES)), "probe-blocked") == []


def test_hbone_fix_keeps_the_sources_and_explains_l4():
    text = np("web", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
         "ports": [{"port": 8080}]},
        {"from": [{"ipBlock": {"cidr": "169.254.7.127/32"}}]}]})
    f = rules(lint_text(text), "hbone-blocked")[0]
    new = yaml.safe_load(f.fix.yaml)
    assert new["spec"]["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"app": "frontend"}}}]
    assert "56659" in f.message and "AuthorizationPolicy" in f.message
    assert "AuthorizationPolicy" in f.fix.title
    fixed = apply_fix(text, f.fix)
    assert rules(lint_text(fixed), "hbone-blocked") == []


def test_schema_failures_get_no_union_findings():
    bad = np("bad", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                     "ingress": [{"ports": [{"port": "<your-port>"}]}]})
    found = lint_text(bad)
    assert {f.rule for f in found} == {"schema"}
    # ...and a refused document does not make another one's union look fine.
    refused_allow = HBONE.replace("port: 15008", "port: 70000")
    deny = np("deny", {"podSelector": {}, "policyTypes": ["Ingress"]})
    assert rules(lint_text(join(deny, refused_allow)), "hbone-blocked")


def test_dedupe_and_union_scale_with_many_namespaces():
    # Not a timing: the index must return the same verdicts as a full scan would.
    texts = [np(f"deny-{i}", {"podSelector": {"matchLabels": {"app": f"a{i}"}},
                              "policyTypes": ["Ingress"]}, ns=f"ns{i % 7}") for i in range(60)]
    texts += [np(f"allow-{i}", {"podSelector": {"matchLabels": {"app": f"a{i}"}},
                                "ingress": [{"ports": [{"port": 15008}]}]}, ns=f"ns{i % 7}")
              for i in range(0, 60, 2)]
    found = rules(lint(parse_text(join(*texts))), "hbone-blocked")
    assert sorted(f.policy for f in found) == sorted(f"deny-{i}" for i in range(1, 60, 2))
