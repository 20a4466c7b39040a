"""Ambient-aware lint for NetworkPolicies.

NetworkPolicies are additive: a pod's allowed traffic is the union of every policy
that selects it. So HBONE/probe/DNS findings judge that union, never one object
alone: a default-deny next to an allow-HBONE policy is fine.

Facts behind each rule: docs istio-ambient-facts.md ("Where the guide is wrong",
"Ports and labels"); rationale in docs/netpol.md.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from typing import Any, Container, Iterable, Mapping, Sequence

from . import model as m
from . import templates
from .fixes import Fix, append_fix, delete_fix, replace_fix
from .parse import PolicyDoc, parse_text
from .schema import validate

ERROR = "error"
WARNING = "warning"

RULES = {
    "schema": (ERROR, "the document is not a valid networking.k8s.io/v1 NetworkPolicy"),
    "hbone-blocked": (ERROR, "ingress is restricted but TCP 15008 (HBONE) is not allowed"),
    "probe-blocked": (ERROR, "ingress is restricted but kubelet probes (169.254.7.127) are not allowed"),
    "meaningless-port": (WARNING, "a port or target that has no meaning in ambient mode"),
    "selector-matches-nothing": (WARNING, "a selector matches no pod in the cluster"),
    "egress-without-dns": (WARNING, "egress is restricted but DNS is not allowed"),
}


@dataclass
class Finding:
    rule: str
    severity: str
    policy: str
    message: str
    line: int
    file: str = "<text>"
    namespace: str | None = None
    document: int = 1
    fix: Fix | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "policy": self.policy,
            "rule": self.rule,
            "severity": self.severity,
            "line": self.line,
            "message": self.message,
            "fix": self.fix.to_json() if self.fix else None,
        }


@dataclass
class Pod:
    name: str
    labels: dict[str, str] = field(default_factory=dict)


PodsArg = Mapping[str, Iterable[Pod | Mapping[str, Any]]] | None


def _pods(raw: Iterable[Pod | Mapping[str, Any]]) -> list[Pod]:
    out = []
    for p in raw:
        if isinstance(p, Pod):
            out.append(p)
        else:
            out.append(Pod(str(p.get("name", "?")), dict(p.get("labels") or {})))
    return out


def _enrolled(enrolled: bool | Container[str], ns: str) -> bool:
    if isinstance(enrolled, bool):
        return enrolled
    return ns in enrolled


def _ns(doc: PolicyDoc, default: str) -> str:
    return doc.namespace or default


def _unique_name(base: str, taken: set[str]) -> str:
    name, n = base, 2
    while name in taken:
        name = f"{base}-{n}"
        n += 1
    return name


def _selector(doc: PolicyDoc) -> dict[str, str] | dict:
    return m.as_dict(m.spec(doc.data).get("podSelector"))


class _Linter:
    def __init__(self, docs: Sequence[PolicyDoc], cluster: Sequence[PolicyDoc],
                 enrolled: bool | Container[str], pods: PodsArg, namespace: str) -> None:
        self.docs = list(docs)
        self.enrolled = enrolled
        self.default_ns = namespace
        self.pods = {ns: _pods(ps) for ns, ps in (pods or {}).items()}
        given = {(_ns(d, namespace), d.name) for d in self.docs}
        # A file's copy replaces the cluster's copy of the same policy.
        self.universe = self.docs + [c for c in cluster if (_ns(c, namespace), c.name) not in given]
        self.findings: list[Finding] = []
        self.names: dict[str, set[str]] = {}
        for d in self.universe:
            self.names.setdefault(_ns(d, namespace), set()).add(d.name)

    def add(self, doc: PolicyDoc, rule: str, line: int, message: str, fix: Fix | None) -> None:
        severity = RULES[rule][0]
        self.findings.append(Finding(rule, severity, doc.name, message, line, doc.file,
                                     doc.namespace, doc.document, fix))

    # -- the union of policies selecting one pod ------------------------------------------

    def selecting(self, ns: str, labels: Mapping[str, str], ptype: str) -> list[PolicyDoc]:
        return [d for d in self.universe
                if _ns(d, self.default_ns) == ns and ptype in m.policy_types(d.data)
                and m.selector_matches(_selector(d), labels)]

    def targets(self, doc: PolicyDoc) -> list[Pod]:
        """Pods the policy restricts: the cluster's when known, else one stand-in pod."""
        ns = _ns(doc, self.default_ns)
        if ns in self.pods:
            real = [p for p in self.pods[ns] if m.selector_matches(_selector(doc), p.labels)]
            if real:
                return real
        return [Pod("(any pod matching the selector)", m.representative_labels(_selector(doc)))]

    # -- rules -----------------------------------------------------------------------------

    def run(self) -> list[Finding]:
        for doc in self.docs:
            self.schema(doc)
            self.meaningless(doc)
            self.matches_nothing(doc)
        self.ingress_union()
        self.egress_union()
        self.findings.sort(key=lambda f: (f.file, f.document, f.line, f.rule))
        return self.findings

    def schema(self, doc: PolicyDoc) -> None:
        for issue in validate(doc.data):
            self.add(doc, "schema", doc.line_of(*issue.path), issue.message, None)

    def _hbone_fix(self, doc: PolicyDoc, hbone: bool, probes: bool) -> Fix:
        ns = _ns(doc, self.default_ns)
        base = "allow-ambient-hbone" if hbone else "allow-kubelet-probes"
        if _selector(doc):
            base = f"{doc.name}-{'ambient' if hbone else 'probes'}"
        name = _unique_name(base[:253], self.names.get(ns, set()))
        new = templates.allow_hbone(doc.namespace, None, name=name, probes=probes, hbone=hbone)
        new["spec"]["podSelector"] = copy.deepcopy(_selector(doc))
        what = " and ".join(w for w, on in (("TCP 15008", hbone), ("probe sources", probes)) if on)
        return append_fix(new, f"add policy {name!r} allowing {what} to the same pods")

    def ingress_union(self) -> None:
        failing: dict[str, list[tuple[PolicyDoc, list[Pod], bool]]] = {"hbone": [], "probe": []}
        for doc in self.docs:
            ns = _ns(doc, self.default_ns)
            if "Ingress" not in m.policy_types(doc.data) or not _enrolled(self.enrolled, ns):
                continue
            no_hbone, no_probe, ztunnel_only = [], [], False
            for pod in self.targets(doc):
                rules = [r for d in self.selecting(ns, pod.labels, "Ingress")
                         for r in m.rules(d.data, "ingress")]
                hbone = [r for r in rules if m.rule_allows_port(r, "TCP", m.HBONE_PORT)]
                # 15008 from ztunnel pods or the probe address only carries no HBONE.
                useful = [r for r in hbone if m.rule_reaches_pods(r, "from")]
                ztunnel_only = ztunnel_only or (not useful and any(
                    m.rule_peers_all_ztunnel(r, "from") for r in hbone))
                if not useful:
                    no_hbone.append(pod)
                if not any(m.rule_allows_address(r, "from", m.PROBE_SOURCES)
                           and not m.rule_only_ambient_ports(r) for r in rules):
                    no_probe.append(pod)
            if no_hbone:
                failing["hbone"].append((doc, no_hbone, ztunnel_only))
            if no_probe:
                failing["probe"].append((doc, no_probe, False))
        for kind, entries in failing.items():
            for doc, pods, ztunnel_only in self._dedupe(entries):
                self._report_ingress(kind, doc, pods, ztunnel_only, failing)

    def _dedupe(self, entries: list[tuple[PolicyDoc, list[Pod], bool]]):
        """Skip a narrower policy when a broader one with the same gap is reported already."""
        kept = []
        for i, (doc, pods, z) in enumerate(entries):
            rep = m.representative_labels(_selector(doc))
            covered = False
            for j, (other, _, _) in enumerate(entries):
                if other is doc or _ns(other, self.default_ns) != _ns(doc, self.default_ns):
                    continue
                if m.selector_matches(_selector(other), rep):
                    mutual = m.selector_matches(_selector(doc),
                                                m.representative_labels(_selector(other)))
                    if not mutual or j < i:
                        covered = True
                        break
            if not covered:
                kept.append((doc, pods, z))
        return kept

    def _report_ingress(self, kind: str, doc: PolicyDoc, pods: list[Pod], ztunnel_only: bool,
                        failing: dict) -> None:
        ns = _ns(doc, self.default_ns) or "(namespace not set)"
        spec = m.spec(doc.data)
        path = ("spec", "ingress") if "ingress" in spec else (
            ("spec", "policyTypes") if "policyTypes" in spec else ("spec",))
        line = doc.line_of(*path)
        who = f"pods selected by {m.selector_text(_selector(doc))!s} in namespace {ns}"
        if pods and not pods[0].name.startswith("("):
            names = ", ".join(p.name for p in pods[:3]) + (" ..." if len(pods) > 3 else "")
            who += f" ({len(pods)} pod(s): {names})"
        probe_missing = any(d is doc for d, _, _ in failing["probe"])
        hbone_missing = any(d is doc for d, _, _ in failing["hbone"])
        if kind == "hbone":
            msg = (f"Ingress to {who} is restricted, and no policy selecting them allows TCP 15008. "
                   "In ambient mode meshed clients reach a pod through HBONE on port 15008 of the "
                   "pod itself, so mesh traffic to these pods is dropped.")
            if ztunnel_only:
                msg += (" The rule that allows 15008 only from app=ztunnel pods does not help: "
                        "ztunnel runs inside each pod's network namespace and HBONE arrives from "
                        "the client pod's address.")
            fix = self._hbone_fix(doc, hbone=True, probes=probe_missing)
            self.add(doc, "hbone-blocked", line, msg, fix)
        else:
            msg = (f"Ingress to {who} is restricted, and no policy selecting them allows "
                   "169.254.7.127/32 (IPv6 fd16:9254:7127:1337:ffff:ffff:ffff:ffff/128). "
                   "ztunnel rewrites kubelet health probes to come from that address, so "
                   "readiness/liveness probes fail and the pods never become Ready.")
            fix = self._hbone_fix(doc, hbone=hbone_missing, probes=True)
            self.add(doc, "probe-blocked", line, msg, fix)

    def egress_union(self) -> None:
        entries = []
        for doc in self.docs:
            ns = _ns(doc, self.default_ns)
            if "Egress" not in m.policy_types(doc.data):
                continue
            missing = []
            for pod in self.targets(doc):
                rules = [r for d in self.selecting(ns, pod.labels, "Egress")
                         for r in m.rules(d.data, "egress")]
                if not any(_allows_dns(r) for r in rules):
                    missing.append(pod)
            if missing:
                entries.append((doc, missing, False))
        for doc, pods, _ in self._dedupe(entries):
            ns = _ns(doc, self.default_ns) or "(namespace not set)"
            spec = m.spec(doc.data)
            path = ("spec", "egress") if "egress" in spec else (
                ("spec", "policyTypes") if "policyTypes" in spec else ("spec",))
            name = _unique_name(f"{doc.name}-dns" if _selector(doc) else "allow-dns",
                                self.names.get(ns, set()))
            new = templates.allow_dns(doc.namespace, None, name=name)
            new["spec"]["podSelector"] = copy.deepcopy(_selector(doc))
            msg = (f"Egress from pods selected by {m.selector_text(_selector(doc))} in namespace "
                   f"{ns} is restricted, and no policy selecting them allows DNS (UDP 53). "
                   "Name lookups fail, so every connection by service name fails too.")
            self.add(doc, "egress-without-dns", doc.line_of(*path), msg,
                     append_fix(new, f"add policy {name!r} allowing DNS to kube-dns"))

    def meaningless(self, doc: PolicyDoc) -> None:
        spec = m.spec(doc.data)
        if m.is_ztunnel_selector(spec.get("podSelector")):
            self.add(doc, "meaningless-port", doc.line_of("spec", "podSelector"),
                     "This policy selects the ztunnel pods. In ambient (in-pod) mode ztunnel "
                     "carries mesh traffic inside each application pod's network namespace, so "
                     "rules on the ztunnel pods do not govern that traffic; restricting them can "
                     "cut ztunnel off from istiod. Istio 1.29+ charts ship their own policies "
                     "(global.networkPolicy.enabled=true).",
                     delete_fix(doc, f"delete policy {doc.name!r}"))
        for section, peer_key in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(m.as_list(spec.get(section))):
                rule = m.as_dict(rule)
                for j, port in enumerate(m.as_list(rule.get("ports"))):
                    number = m.as_dict(port).get("port")
                    if number == m.UNKNOWN_PORT:
                        self.add(doc, "meaningless-port",
                                 doc.line_of("spec", section, i, "ports", j),
                                 "Port 15441 does not exist in Istio or ztunnel; ztunnel-to-"
                                 "ztunnel traffic is HBONE on 15008 into the destination pod.",
                                 self._drop_port_fix(doc, section, i, j))
                    elif section == "egress" and number == m.ZTUNNEL_INBOUND_PLAINTEXT:
                        self.add(doc, "meaningless-port",
                                 doc.line_of("spec", section, i, "ports", j),
                                 "15006 is ztunnel's inbound plaintext port inside the "
                                 "destination pod; it is not a destination to open egress to.",
                                 self._drop_port_fix(doc, section, i, j))
                for k, peer in enumerate(m.as_list(rule.get(peer_key))):
                    if m.peer_is_ztunnel_only(peer):
                        self.add(doc, "meaningless-port",
                                 doc.line_of("spec", section, i, peer_key, k),
                                 f"This {section} rule is aimed at app=ztunnel pods. ztunnel "
                                 "redirects traffic inside each application pod (in-pod mode), "
                                 "so mesh traffic never comes from or goes to a ztunnel pod's "
                                 "address; this peer matches nothing useful.",
                                 self._drop_peer_fix(doc, section, peer_key, i, k))

    def _drop_port_fix(self, doc: PolicyDoc, section: str, i: int, j: int) -> Fix:
        data = copy.deepcopy(doc.data)
        rules = data["spec"][section]
        ports = rules[i]["ports"]
        port = ports[j].get("port")
        del ports[j]
        if not ports:
            # An empty ports list means "every port": drop the rule instead of widening it.
            del rules[i]
            return replace_fix(doc, data, f"remove the {section} rule for port {port}")
        return replace_fix(doc, data, f"remove port {port} from the {section} rule")

    def _drop_peer_fix(self, doc: PolicyDoc, section: str, key: str, i: int, k: int) -> Fix:
        data = copy.deepcopy(doc.data)
        rules = data["spec"][section]
        peers = rules[i][key]
        del peers[k]
        if peers:
            return replace_fix(doc, data, f"remove the app=ztunnel peer from the {section} rule")
        if section == "ingress" and m.rule_only_ambient_ports(rules[i]) and all(
                m.as_dict(p).get("port") == m.HBONE_PORT for p in rules[i]["ports"]):
            # HBONE comes from the client pods themselves: allow 15008 from any source.
            del rules[i][key]
            return replace_fix(doc, data, "allow TCP 15008 from any source instead of app=ztunnel")
        del rules[i]
        return replace_fix(doc, data, f"remove the {section} rule aimed at app=ztunnel")

    def matches_nothing(self, doc: PolicyDoc) -> None:
        ns = _ns(doc, self.default_ns)
        if ns not in self.pods:
            return  # only judged against a cluster's pods
        pods = self.pods[ns]
        checks: list[tuple[tuple, Any, str]] = [(("spec", "podSelector"),
                                                 m.spec(doc.data).get("podSelector"), "podSelector")]
        for section, key in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(m.as_list(m.spec(doc.data).get(section))):
                for k, peer in enumerate(m.peers(rule, key)):
                    peer = m.as_dict(peer)
                    # Peers with a namespaceSelector look at other namespaces: not judged here.
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        checks.append(((("spec", section, i, key, k, "podSelector")),
                                       peer["podSelector"], f"{section} peer podSelector"))
        for path, selector, what in checks:
            if any(m.selector_matches(selector, p.labels) for p in pods):
                continue
            if m.is_ztunnel_selector(selector):
                continue  # meaningless-port already explains this one
            fix = self._closest_label_fix(doc, path, selector, pods)
            self.add(doc, "selector-matches-nothing", doc.line_of(*path),
                     f"The {what} ({m.selector_text(selector)}) matches none of the "
                     f"{len(pods)} pod(s) in namespace {ns}; check the labels "
                     "(kubectl get pods --show-labels).", fix)

    def _closest_label_fix(self, doc: PolicyDoc, path: tuple, selector: Any,
                           pods: list[Pod]) -> Fix | None:
        """Offer a typo fix when one matchLabels value is close to a label the pods carry."""
        labels = m.as_dict(m.as_dict(selector).get("matchLabels"))
        for key, value in labels.items():
            seen = sorted({p.labels[key] for p in pods if key in p.labels})
            close = difflib.get_close_matches(str(value), seen, n=1, cutoff=0.6)
            if not close:
                continue
            trial = dict(labels)
            trial[key] = close[0]
            if not any(m.selector_matches({**m.as_dict(selector), "matchLabels": trial}, p.labels)
                       for p in pods):
                continue
            data = copy.deepcopy(doc.data)
            node: Any = data
            for step in path:
                node = node[step]
            node["matchLabels"][key] = close[0]
            return replace_fix(doc, data, f"use {key}={close[0]} (a label the pods carry)")
        return None


def _allows_dns(rule: Mapping[str, Any]) -> bool:
    ports = [m.as_dict(p) for p in m.as_list(rule.get("ports"))]
    if any(p.get("port") == 53 and m.port_covers(p, "UDP", 53) for p in ports):
        return True  # a rule naming UDP 53 was written for DNS, whatever resolver it targets
    if ports and not any(p.get("port") is None and m.port_covers(p, "UDP", 53) for p in ports):
        return False
    return _peers_reach_dns(rule)


def _peers_reach_dns(rule: Mapping[str, Any]) -> bool:
    peers = m.peers(rule, "to")
    if not peers:
        return True
    for peer in peers:
        peer = m.as_dict(peer)
        if "ipBlock" in peer:
            cidr = str(m.as_dict(peer["ipBlock"]).get("cidr", ""))
            if cidr.endswith("/0"):
                return True
            continue
        if "namespaceSelector" in peer and m.selector_matches(
                peer["namespaceSelector"], {"kubernetes.io/metadata.name": "kube-system"}) and \
                m.selector_matches(peer.get("podSelector"), {"k8s-app": "kube-dns"}):
            return True
    return False


def lint(docs: Sequence[PolicyDoc], *, enrolled: bool | Container[str] = True,
         pods: PodsArg = None, cluster_policies: Sequence[PolicyDoc] = (),
         namespace: str = "") -> list[Finding]:
    """Findings for `docs`.

    enrolled: True/False for every namespace, or the set of enrolled namespace names.
    pods: namespace -> pods (Pod or {"name", "labels"}); enables selector-matches-nothing
          and judges the union per real pod.
    cluster_policies: the cluster's policies, part of the union (findings only on `docs`).
    namespace: what a document without metadata.namespace is applied to.
    """
    return _Linter(docs, cluster_policies, enrolled, pods, namespace).run()


def lint_text(text: str, file: str = "<text>", **kwargs: Any) -> list[Finding]:
    """Parse then lint; ParseError propagates."""
    return lint(parse_text(text, file), **kwargs)


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == ERROR for f in findings)
