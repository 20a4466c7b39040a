"""Every lint rule: a case that fires and a near-miss that does not."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from ambient_tui.netpol.fixes import apply_fix
from ambient_tui.netpol.lint import Pod, lint, lint_text
from ambient_tui.netpol.parse import from_object, parse_text
from ambient_tui.netpol.templates import allow_dns, allow_hbone, default_deny


def np(name: str, spec: dict, ns: str = "demo") -> str:
    return yaml.safe_dump({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                           "metadata": {"name": name, "namespace": ns}, "spec": spec},
                          sort_keys=False)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def docs(*texts: str) -> str:
    return "---\n".join(texts)


def rules(findings, rule=None):
    return [f for f in findings if rule is None or f.rule == rule]


DENY_INGRESS = np("deny-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]})
HBONE_ONLY = np("hbone", {"podSelector": {}, "policyTypes": ["Ingress"],
                          "ingress": [{"ports": [{"protocol": "TCP", "port": 15008}]}]})
PROBES_ONLY = np("probes", {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [
    {"from": [{"ipBlock": {"cidr": "169.254.7.127/32"}}]}]})


# -- hbone-blocked ------------------------------------------------------------------------


def test_hbone_blocked_fires_on_default_deny_alone():
    found = rules(lint_text(DENY_INGRESS), "hbone-blocked")
    assert len(found) == 1
    f = found[0]
    assert (f.severity, f.policy) == ("error", "deny-ingress")
    assert f.line == line_of(DENY_INGRESS, "policyTypes:")
    assert "15008" in f.message and f.fix is not None


def test_hbone_blocked_near_miss_default_deny_beside_allow_hbone_object():
    # Additive policies: the union allows HBONE and probes, so the deny is fine.
    text = docs(DENY_INGRESS, yaml.safe_dump(allow_hbone("demo")))
    assert rules(lint_text(text), "hbone-blocked") == []
    assert rules(lint_text(text), "probe-blocked") == []


def test_hbone_blocked_near_miss_when_not_enrolled():
    assert rules(lint_text(DENY_INGRESS, enrolled=False)) == []
    assert rules(lint_text(DENY_INGRESS, enrolled={"other"})) == []
    assert rules(lint_text(DENY_INGRESS, enrolled={"demo"}), "hbone-blocked")


def test_hbone_from_ztunnel_pods_only_does_not_count():
    text = np("guide", {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{
        "from": [{"podSelector": {"matchLabels": {"app": "ztunnel"}}}],
        "ports": [{"protocol": "TCP", "port": 15008}]}]})
    f = rules(lint_text(text), "hbone-blocked")
    assert f and "app=ztunnel" in f[0].message


def test_hbone_allowed_for_narrower_pods_only_still_fires_for_the_rest():
    web_hbone = np("web-hbone", {"podSelector": {"matchLabels": {"app": "web"}},
                                 "policyTypes": ["Ingress"],
                                 "ingress": [{"ports": [{"port": 15008}]}]})
    found = rules(lint_text(docs(DENY_INGRESS, web_hbone, PROBES_ONLY)), "hbone-blocked")
    assert [f.policy for f in found] == ["deny-ingress"]


def test_hbone_allowed_only_from_probe_address_does_not_count():
    # PROBES_ONLY has no ports, so it "allows 15008" -- but only from 169.254.7.127.
    assert rules(lint_text(docs(DENY_INGRESS, PROBES_ONLY)), "hbone-blocked")


def test_hbone_port_range_counts():
    ranged = np("range", {"podSelector": {}, "policyTypes": ["Ingress"],
                          "ingress": [{"ports": [{"port": 15000, "endPort": 15010}]}]})
    assert rules(lint_text(docs(DENY_INGRESS, ranged, PROBES_ONLY)), "hbone-blocked") == []


def test_narrower_restriction_is_not_reported_twice():
    web = np("allow-web", {"podSelector": {"matchLabels": {"app": "web"}},
                           "ingress": [{"ports": [{"port": 8080}]}]})
    found = rules(lint_text(docs(DENY_INGRESS, web)), "hbone-blocked")
    assert [f.policy for f in found] == ["deny-ingress"]


def test_union_uses_cluster_policies():
    cluster = [from_object(allow_hbone("demo"))]
    assert rules(lint(parse_text(DENY_INGRESS), cluster_policies=cluster), "hbone-blocked") == []


def test_union_spans_files():
    given = parse_text(DENY_INGRESS, "a.yaml") + parse_text(yaml.safe_dump(allow_hbone("demo")),
                                                            "b.yaml")
    assert rules(lint(given), "hbone-blocked") == []


def test_other_namespace_allow_does_not_count():
    text = docs(DENY_INGRESS, yaml.safe_dump(allow_hbone("elsewhere")))
    assert rules(lint_text(text), "hbone-blocked")


# -- probe-blocked -------------------------------------------------------------------------


def test_probe_blocked_fires_when_only_hbone_allowed():
    found = lint_text(docs(DENY_INGRESS, HBONE_ONLY))
    assert rules(found, "hbone-blocked") == []
    probe = rules(found, "probe-blocked")
    assert len(probe) == 1 and "169.254.7.127" in probe[0].message


def test_probe_blocked_near_miss_with_ipv4_probe_source():
    assert rules(lint_text(docs(DENY_INGRESS, HBONE_ONLY, PROBES_ONLY)), "probe-blocked") == []


def test_probe_blocked_near_miss_with_ipv6_probe_source():
    v6 = np("probes6", {"podSelector": {}, "ingress": [
        {"from": [{"ipBlock": {"cidr": "fd16:9254:7127:1337:ffff:ffff:ffff:ffff/128"}}]}]})
    assert rules(lint_text(docs(DENY_INGRESS, HBONE_ONLY, v6)), "probe-blocked") == []


def test_probe_blocked_fires_when_except_removes_the_address():
    wide = np("wide", {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {
        "cidr": "169.254.0.0/16", "except": ["169.254.7.0/24"]}}]}]})
    assert rules(lint_text(docs(DENY_INGRESS, HBONE_ONLY, wide)), "probe-blocked")


def test_allow_all_ingress_rule_allows_everything():
    allow_all = np("all", {"podSelector": {}, "ingress": [{}]})
    assert rules(lint_text(docs(DENY_INGRESS, allow_all))) == []


# -- meaningless-port ----------------------------------------------------------------------


def test_meaningless_port_15441():
    text = np("x", {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [
        {"ports": [{"port": 15441}, {"port": 15008}]},
        {"from": [{"ipBlock": {"cidr": "169.254.7.127/32"}}]}]})
    found = rules(lint_text(text), "meaningless-port")
    assert len(found) == 1 and "15441" in found[0].message
    assert found[0].severity == "warning" and found[0].line == line_of(text, "15441")


def test_meaningless_port_near_miss_15443():
    text = np("x", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"ports": [{"port": 15443}, {"port": 53, "protocol": "UDP"}]}]})
    # (egress-hbone-blocked does fire: 15443 to anywhere, meshed pods included, without 15008)
    assert rules(lint_text(text), "meaningless-port") == []


def test_meaningless_egress_to_15006():
    egress = np("e", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"ports": [{"port": 15006}]}, {"ports": [{"port": 53, "protocol": "UDP"}]}]})
    assert [f.rule for f in lint_text(egress)] == ["meaningless-port"]


@pytest.mark.parametrize("port", [15006, 15001])
def test_ingress_on_in_pod_ports_is_meaningless_in_a_meshed_namespace(port):
    # ztunnel redirects to 15006/15001 inside the pod, after the policy has seen the
    # original port: opening them on ingress allows nothing a client sends.
    ingress = np("i", {"podSelector": {}, "ingress": [{"ports": [{"port": port}]}]})
    found = rules(lint_text(docs(ingress, HBONE_ONLY, PROBES_ONLY)), "meaningless-port")
    assert len(found) == 1 and str(port) in found[0].message
    # ...but not in istio-system, where Istio's own ztunnel chart policy opens them.
    in_istio = np("i", {"podSelector": {}, "ingress": [{"ports": [{"port": port}]}]},
                  ns="istio-system")
    assert rules(lint_text(in_istio), "meaningless-port") == []


def test_meaningless_rules_aimed_at_ztunnel_pods():
    # In istio-system a policy selecting ztunnel is Istio's own chart policy: no finding.
    text = np("z", {"podSelector": {"matchLabels": {"app": "ztunnel"}},
                    "policyTypes": ["Ingress"], "ingress": [{}]}, ns="istio-system")
    assert rules(lint_text(text), "meaningless-port") == []
    elsewhere = np("z", {"podSelector": {"matchLabels": {"app": "ztunnel"}},
                         "policyTypes": ["Ingress"], "ingress": [{}]}, ns="demo")
    found = rules(lint_text(elsewhere), "meaningless-port")
    assert len(found) == 1 and found[0].fix.kind == "delete"
    peer = np("p", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"podSelector": {"matchLabels": {"app": "ztunnel"}}}], "ports": [{"port": 53}]}]})
    found = rules(lint_text(peer), "meaningless-port")
    assert len(found) == 1 and found[0].fix.kind == "replace"


def test_meaningless_near_miss_other_app_label():
    text = np("w", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"podSelector": {"matchLabels": {"app": "web"}}}]},
        {"ports": [{"port": 53, "protocol": "UDP"}]}]})
    assert lint_text(text) == []


# -- selector-matches-nothing -------------------------------------------------------------


WEB = np("web", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
                 "ingress": [{}]})


def test_selector_matches_nothing_fires_with_cluster_pods():
    pods = {"demo": [Pod("api-1", {"app": "api"})]}
    found = rules(lint_text(WEB, pods=pods), "selector-matches-nothing")
    assert len(found) == 1 and found[0].line == line_of(WEB, "podSelector:")


def test_selector_matches_nothing_near_miss_pod_exists():
    pods = {"demo": [{"name": "web-1", "labels": {"app": "web"}}]}
    assert rules(lint_text(WEB, pods=pods), "selector-matches-nothing") == []


def test_selector_matches_nothing_only_when_pods_known():
    assert rules(lint_text(WEB), "selector-matches-nothing") == []
    assert rules(lint_text(WEB, pods={"other": []}), "selector-matches-nothing") == []


def test_selector_typo_gets_a_fix():
    typo = WEB.replace("app: web", "app: wbe")
    pods = {"demo": [Pod("web-1", {"app": "web"})]}
    found = rules(lint_text(typo, pods=pods), "selector-matches-nothing")
    assert found[0].fix is not None
    fixed = apply_fix(typo, found[0].fix)
    assert rules(lint_text(fixed, pods=pods), "selector-matches-nothing") == []


# -- egress-without-dns -------------------------------------------------------------------


CONFIG = np("cfg", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
    "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "cfg"}}}],
    "ports": [{"port": 8888}]}]})


def test_egress_without_dns_fires():
    found = rules(lint_text(CONFIG), "egress-without-dns")
    assert len(found) == 1 and found[0].severity == "warning"


def test_egress_without_dns_near_miss_with_dns_policy():
    # (egress-hbone-blocked also fires here: 8888 to a meshed namespace without 15008)
    assert rules(lint_text(docs(CONFIG, yaml.safe_dump(allow_dns("demo")))),
                 "egress-without-dns") == []


def test_egress_without_dns_tcp_only_is_not_enough():
    tcp = np("dns-tcp", {"podSelector": {}, "policyTypes": ["Egress"],
                         "egress": [{"ports": [{"port": 53, "protocol": "TCP"}]}]})
    assert rules(lint_text(docs(CONFIG, tcp)), "egress-without-dns")


def test_egress_without_dns_near_miss_all_egress_allowed():
    assert lint_text(np("open", {"podSelector": {}, "policyTypes": ["Egress"],
                                 "egress": [{}]})) == []


def test_ingress_only_policy_is_not_judged_for_dns():
    assert rules(lint_text(docs(DENY_INGRESS, HBONE_ONLY, PROBES_ONLY))) == []


# -- quick fixes ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    DENY_INGRESS,
    yaml.safe_dump(default_deny("demo", {"app": "web"})),
    docs(DENY_INGRESS, HBONE_ONLY),
    CONFIG,
])
def test_every_fix_clears_its_finding(text):
    findings = lint_text(text)
    assert findings
    for _ in range(6):  # fix one at a time, as the editor does
        fixable = [f for f in lint_text(text) if f.fix]
        if not fixable:
            break
        text = apply_fix(text, fixable[0].fix)
    assert [f for f in lint_text(text)] == []


def test_guide_example_fixes_keep_other_documents(tmp_path):
    guide = textwrap.dedent("""\
        # my comment stays
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: keep, namespace: demo}
        spec: {podSelector: {}, policyTypes: [Egress], egress: [{}]}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata:
          name: allow-ztunnel-to-ztunnel
          namespace: demo
        spec:
          podSelector:
            matchLabels:
              app: ztunnel
          policyTypes: [Egress]
          egress:
          - ports:
            - port: 15441
        """)
    f = [f for f in lint_text(guide) if f.fix and f.fix.kind == "delete"][0]
    out = apply_fix(guide, f.fix)
    assert out.startswith("# my comment stays\n")
    assert "allow-ztunnel-to-ztunnel" not in out
    assert [d.name for d in parse_text(out)] == ["keep"]


def test_removing_last_port_removes_rule_instead_of_opening_all_ports():
    text = np("e", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 15441}]},
        {"ports": [{"port": 53, "protocol": "UDP"}]}]})
    f = rules(lint_text(text), "meaningless-port")[0]
    spec = parse_text(apply_fix(text, f.fix))[0].data["spec"]
    assert spec["egress"] == [{"ports": [{"port": 53, "protocol": "UDP"}]}]


def test_findings_json_shape():
    f = lint_text(DENY_INGRESS, file="x.yaml")[0]
    data = f.to_json()
    assert set(data) == {"file", "policy", "namespace", "rule", "severity", "line", "message",
                         "fix"}
    assert data["file"] == "x.yaml" and data["fix"]["kind"] == "append"
