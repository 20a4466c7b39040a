"""Ambient-aware lint for NetworkPolicies.

NetworkPolicies are additive: a pod's allowed traffic is the union of every policy
that selects it. So HBONE/probe/DNS findings judge that union, never one object
alone: a default-deny next to an allow-HBONE policy is fine.

What is known about the cluster comes in a Context: enrolment, live pods (labels,
host network, IPs, named ports), namespaces' labels, the namespaces istio-cni leaves
alone, and whether the CNI enforces policies on the probe address. Offline, the
context holds the chart defaults and says "unknown" where it must.

Facts behind each rule: docs istio-ambient-facts.md ("Where the guide is wrong",
"Ports and labels"); rationale in docs/netpol.md.
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Container, Iterable, Mapping, Sequence

from . import model as m
from . import templates
from .fixes import Fix, append_fix, delete_fix, replace_fix
from .index import SelectorIndex
from .parse import PolicyDoc, gc_paused, parse_text
from .schema import validate

ERROR = "error"
WARNING = "warning"

RULES = {
    "schema": (ERROR, "the document is not a valid networking.k8s.io/v1 NetworkPolicy"),
    "hbone-blocked": (ERROR, "ingress is restricted but TCP 15008 (HBONE) is not allowed"),
    "egress-hbone-blocked": (ERROR, "egress to meshed pods is allowed on application ports "
                                    "but not on TCP 15008 (HBONE)"),
    "probe-blocked": (ERROR, "ingress is restricted but kubelet probes (169.254.7.127) are not "
                             "allowed (a warning when the CNI's enforcement is unknown)"),
    "meaningless-port": (WARNING, "a port or target that has no meaning in ambient mode"),
    "selector-matches-nothing": (WARNING, "a selector matches no pod in the cluster"),
    "egress-without-dns": (WARNING, "egress is restricted but DNS is not allowed"),
    "named-port-unresolved": (WARNING, "a named port that no selected pod declares"),
}

# istio-cni's chart leaves these alone (values excludeNamespaces: kube-system; istio-cni
# never captures its own namespace): their pods get neither HBONE nor rewritten probes.
DEFAULT_EXCLUDED = frozenset({"istio-system", "kube-system"})
ENFORCES, IGNORES, UNKNOWN = "enforces", "ignores", "unknown"

L4_NOTE = ("Once 15008 is open, ztunnel delivers mesh traffic to any port of the pod: port "
           "limits in NetworkPolicies no longer hold at L4 for meshed clients "
           "(istio/istio#56659). Keep them with an AuthorizationPolicy (to.operation.ports).")


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
            "namespace": self.namespace,
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
    host_network: bool = False
    ips: tuple[str, ...] = ()
    # Named container ports: name -> {(protocol, number)}.
    ports: dict[str, set[tuple[str, int]]] = field(default_factory=dict)
    stand_in: bool = False


@dataclass
class Context:
    """What is known about the cluster the policies are (or will be) in."""

    enrolled: bool | Container[str] = True
    pods: Mapping[str, Iterable[Pod | Mapping[str, Any]]] | None = None
    namespaces: Mapping[str, Mapping[str, str]] | None = None  # name -> labels (connected)
    excluded: frozenset[str] = DEFAULT_EXCLUDED
    cni: str = UNKNOWN
    cni_reason: str = "the CNI is not known offline"


def pod_from(p: Pod | Mapping[str, Any]) -> Pod:
    if isinstance(p, Pod):
        return p
    ports: dict[str, set[tuple[str, int]]] = {}
    for name, entries in (p.get("ports") or {}).items():
        ports[str(name)] = {(str(a), int(b)) for a, b in entries}
    return Pod(str(p.get("name", "?")), dict(p.get("labels") or {}),
               bool(p.get("host_network")), tuple(p.get("ips") or ()), ports)


def _ns(doc: PolicyDoc, default: str) -> str:
    ns = doc.extra.get("_ns")
    if ns is None:
        ns = doc.extra["_ns"] = doc.namespace or ""
    return ns or default


def _unique_name(base: str, taken: set[str]) -> str:
    name, n = base[:253], 2
    while name in taken:
        name = f"{base[:245]}-{n}"
        n += 1
    return name


def _selector(doc: PolicyDoc) -> dict:
    sel = doc.extra.get("_selector")
    if sel is None:  # asked thousands of times per bundle: read once per document
        sel = doc.extra["_selector"] = m.as_dict(m.spec(doc.data).get("podSelector"))
    return sel


def _types(doc: PolicyDoc) -> set[str]:
    types = doc.extra.get("_types")
    if types is None:
        types = doc.extra["_types"] = m.policy_types(doc.data)
    return types


def _families(pods: Iterable[Pod]) -> set[int]:
    out = set()
    for p in pods:
        for ip in p.ips:
            try:
                out.add(ipaddress.ip_address(ip).version)
            except ValueError:
                pass
    return out


class _Linter:
    def __init__(self, docs: Sequence[PolicyDoc], cluster: Sequence[PolicyDoc], ctx: Context,
                 namespace: str) -> None:
        self.ctx = ctx
        self.default_ns = namespace
        self.pods = {ns: [pod_from(p) for p in ps] for ns, ps in (ctx.pods or {}).items()}
        self.findings: list[Finding] = []
        self.docs = list(docs)
        self.invalid: set[int] = set()
        for doc in self.docs:
            issues = validate(doc.data)
            for issue in issues:
                self.add(doc, "schema", doc.line_of(*issue.path), issue.message, None)
            if issues:
                self.invalid.add(id(doc))
        given = {(_ns(d, namespace), d.name) for d in self.docs}
        # A file's copy replaces the cluster's copy of the same policy; a document the API
        # server would refuse is in no union.
        self.universe = [d for d in self.docs if id(d) not in self.invalid] + [
            c for c in cluster if (_ns(c, namespace), c.name) not in given]
        self.index = {t: SelectorIndex() for t in ("Ingress", "Egress")}
        self.names: dict[str, set[str]] = {}
        for d in self.universe:
            ns = _ns(d, namespace)
            self.names.setdefault(ns, set()).add(d.name)
            for t in _types(d):
                self.index[t].add(ns, _selector(d), d)
        self._union: dict[tuple, list] = {}

    def add(self, doc: PolicyDoc, rule: str, line: int, message: str, fix: Fix | None,
            severity: str | None = None) -> None:
        self.findings.append(Finding(rule, severity or RULES[rule][0], doc.name, message, line,
                                     doc.file, doc.namespace, doc.document, fix))

    # -- who is meshed ----------------------------------------------------------------------

    def ns_enrolled(self, ns: str) -> bool:
        e = self.ctx.enrolled
        return e if isinstance(e, bool) else ns in e

    def ns_meshed(self, ns: str) -> bool:
        return ns not in self.ctx.excluded and self.ns_enrolled(ns)

    def pod_meshed(self, ns: str, pod: Pod) -> bool:
        if pod.host_network or ns in self.ctx.excluded:
            return False  # neither NetworkPolicy capture nor ambient applies to host network
        mode = pod.labels.get("istio.io/dataplane-mode")
        if mode == "none":
            return False
        return mode == "ambient" or self.ns_enrolled(ns)

    def peer_namespaces(self, peer: Mapping[str, Any], ns: str) -> set[str] | None:
        """Namespaces a peer reaches; None when unknown (offline, a label selector)."""
        if "namespaceSelector" not in peer:
            return {ns}
        sel = peer.get("namespaceSelector")
        if self.ctx.namespaces is not None:
            return {n for n, labels in self.ctx.namespaces.items()
                    if m.selector_matches(sel, {**labels, "kubernetes.io/metadata.name": n})}
        return m.namespace_names(sel)

    def peer_may_be_meshed(self, peer: Any, ns: str) -> bool:
        """Could pods behind this peer be in the mesh (send or receive HBONE)?"""
        p = m.as_dict(peer)
        if "ipBlock" in p:
            return False  # meant for addresses outside the cluster; see docs/netpol.md
        if m.is_ztunnel_selector(p.get("podSelector")):
            return False
        names = self.peer_namespaces(p, ns)
        if names is None:
            e = self.ctx.enrolled
            return e is True or (not isinstance(e, bool) and any(
                n not in self.ctx.excluded for n in e))  # type: ignore[union-attr]
        return any(self.ns_meshed(n) for n in names)

    def peer_carries_hbone(self, peer: Any, ns: str) -> bool:
        p = m.as_dict(peer)
        if "ipBlock" in p:
            return m.peer_may_be_pod(p)  # pod IPs may fall in a CIDR; link-local ones do not
        return self.peer_may_be_meshed(p, ns)

    # -- the union of policies selecting one pod ------------------------------------------

    def selecting(self, ns: str, labels: Mapping[str, str], ptype: str) -> list[PolicyDoc]:
        key = (ns, ptype, frozenset(labels.items()))
        found = self._union.get(key)
        if found is None:
            found = [d for d in self.index[ptype].candidates(ns, labels)
                     if m.selector_matches(_selector(d), labels)]
            self._union[key] = found
        return found

    def union_rules(self, ns: str, pod: Pod, ptype: str) -> list[tuple[PolicyDoc, dict]]:
        section = "ingress" if ptype == "Ingress" else "egress"
        return [(d, r) for d in self.selecting(ns, pod.labels, ptype)
                for r in m.rules(d.data, section)]

    def targets(self, doc: PolicyDoc) -> list[Pod]:
        """Meshed pods the policy restricts: the cluster's when known, else stand-ins."""
        key = ("targets", id(doc))
        found = self._union.get(key)
        if found is None:
            found = self._union[key] = self._targets(doc)
        return found

    def _targets(self, doc: PolicyDoc) -> list[Pod]:
        ns = _ns(doc, self.default_ns)
        if ns in self.pods:
            real = [p for p in self.pods[ns] if m.selector_matches(_selector(doc), p.labels)]
            if real:
                return [p for p in real if self.pod_meshed(ns, p)]
        stand_ins = [Pod("(any pod matching the selector)", labels, stand_in=True)
                     for labels in m.representative_pods(_selector(doc))]
        return [p for p in stand_ins if self.pod_meshed(ns, p)]

    def all_targets(self, doc: PolicyDoc) -> list[Pod]:
        """Pods the policy applies to at all (host network excluded), meshed or not."""
        ns = _ns(doc, self.default_ns)
        if ns in self.pods:
            real = [p for p in self.pods[ns] if m.selector_matches(_selector(doc), p.labels)]
            if real:
                return [p for p in real if not p.host_network]
        return [Pod("(any pod matching the selector)", labels, stand_in=True)
                for labels in m.representative_pods(_selector(doc))]

    # -- rules -----------------------------------------------------------------------------

    def run(self) -> list[Finding]:
        valid = [d for d in self.docs if id(d) not in self.invalid]
        for doc in self.docs:
            self.meaningless(doc)
        for doc in valid:
            self.matches_nothing(doc)
            self.unresolved_ports(doc)
        self.ingress_union(valid)
        self.egress_union(valid)
        self.egress_hbone(valid)
        self.findings.sort(key=lambda f: (f.file, f.document, f.line, f.rule))
        return self.findings

    def _where(self, doc: PolicyDoc, section: str) -> int:
        spec = m.spec(doc.data)
        path = ("spec", section) if section in spec else (
            ("spec", "policyTypes") if "policyTypes" in spec else ("spec",))
        return doc.line_of(*path)

    def _who(self, doc: PolicyDoc, pods: list[Pod]) -> str:
        ns = _ns(doc, self.default_ns) or "(namespace not set)"
        who = f"pods selected by {m.selector_text(_selector(doc))} in namespace {ns}"
        real = [p for p in pods if not p.stand_in]
        if real:
            names = ", ".join(p.name for p in real[:3]) + (" ..." if len(real) > 3 else "")
            who += f" ({len(real)} pod(s): {names})"
        return who

    def ingress_union(self, docs: list[PolicyDoc]) -> None:
        hbone_gaps, probe_gaps = [], []
        for doc in docs:
            ns = _ns(doc, self.default_ns)
            if "Ingress" not in _types(doc):
                continue
            pods = self.targets(doc)
            no_hbone, no_probe, useless, sources = [], [], set(), []
            for pod in pods:
                hbone_ok, why, pod_sources, probe_ok = self._ingress_verdict(ns, pod)
                if not hbone_ok:
                    no_hbone.append(pod)
                    useless.update(why)
                    sources = pod_sources
                if not probe_ok:
                    no_probe.append(pod)
            if no_hbone:
                hbone_gaps.append((doc, no_hbone, (useless, sources)))
            if no_probe:
                probe_gaps.append((doc, no_probe, sources))
        hbone_docs = {id(d) for d, _, _ in hbone_gaps}
        probe_docs = {id(d) for d, _, _ in probe_gaps}
        for doc, pods, (useless, sources) in self._dedupe(hbone_gaps):
            msg = (f"Ingress to {self._who(doc, pods)} is restricted, and no policy selecting "
                   "them allows TCP 15008 from a meshed source. In ambient mode meshed clients "
                   "reach a pod through HBONE on port 15008 of the pod itself, so mesh traffic "
                   "to these pods is dropped.")
            if useless:
                msg += (" The 15008 rule allowing only " + " and ".join(sorted(useless)) +
                        " does not help: HBONE arrives from the client pod's own address, and "
                        "pods in istio-system/kube-system and ztunnel pods send none.")
            fix = self._hbone_fix(doc, sources, probes=id(doc) in probe_docs)
            self.add(doc, "hbone-blocked", self._where(doc, "ingress"), msg + " " + L4_NOTE, fix)
        if self.ctx.cni == IGNORES:
            return
        severity = ERROR if self.ctx.cni == ENFORCES else WARNING
        for doc, pods, sources in self._dedupe(probe_gaps):
            fams = _families(pods)
            need = " and ".join(src for src, fam in zip(m.PROBE_SOURCES, (4, 6))
                                if not fams or fam in fams) if fams else \
                "169.254.7.127/32 (IPv6 fd16:9254:7127:1337:ffff:ffff:ffff:ffff/128)"
            msg = (f"Ingress to {self._who(doc, pods)} is restricted, and no policy selecting "
                   f"them allows {need}. ztunnel rewrites kubelet health probes to come from "
                   "that address; where the CNI enforces policies on it, readiness/liveness "
                   f"probes fail and the pods never become Ready ({self.ctx.cni_reason}).")
            # The same fix as hbone-blocked's when both are missing: one policy clears both.
            fix = self._hbone_fix(doc, sources, probes=True, hbone=id(doc) in hbone_docs)
            self.add(doc, "probe-blocked", self._where(doc, "ingress"), msg, fix, severity)

    def _ingress_verdict(self, ns: str, pod: Pod) -> tuple[bool, set[str], list | None, bool]:
        """(HBONE allowed, why the 15008 rules do not count, sources to keep, probes allowed)
        for one pod; memoised per label set for stand-ins (a real pod's ports and IPs count)."""
        key = ("ingress", ns, frozenset(pod.labels.items())) if pod.stand_in else ("pod", id(pod))
        found = self._union.get(key)
        if found is not None:
            return found
        rules = [r for _, r in self.union_rules(ns, pod, "Ingress")]
        hbone = [r for r in rules if m.rule_allows_port(r, "TCP", m.HBONE_PORT, pod.ports)]
        useful = any(not m.peers(r, "from") or any(
            self.peer_carries_hbone(p, ns) for p in m.peers(r, "from")) for r in hbone)
        why: set[str] = set()
        sources: list | None = None
        if not useful:
            for r in hbone:
                why.update(self._why_useless(r, ns))
            sources = self._sources(rules, ns)
        found = (useful, why, sources, self._probe_allowed(rules, [pod]))
        self._union[key] = found
        return found

    def _why_useless(self, rule: dict, ns: str) -> set[str]:
        out = set()
        for peer in m.peers(rule, "from"):
            p = m.as_dict(peer)
            if m.is_ztunnel_selector(p.get("podSelector")):
                out.add("app=ztunnel pods")
            elif "ipBlock" in p:
                out.add(f"{m.as_dict(p['ipBlock']).get('cidr')}")
            else:
                names = self.peer_namespaces(p, ns)
                out.add("namespace(s) " + ", ".join(sorted(names)) if names else
                        "namespaces that are not in the mesh")
        return out

    def _sources(self, rules: list[dict], ns: str) -> list | None:
        """The sources the pod's rules already allow, to open 15008 from the same ones.
        None: from anywhere (a rule has no `from`, or nothing is allowed yet)."""
        peers: list = []
        for r in rules:
            if m.rule_only_ambient_ports(r):
                continue
            ps = m.peers(r, "from")
            if not ps:
                return None
            for p in ps:
                if self.peer_carries_hbone(p, ns) and p not in peers:
                    peers.append(copy.deepcopy(p))
        return peers or None

    def _probe_allowed(self, rules: list[dict], pods: list[Pod]) -> bool:
        fams = _families(pods)
        needed = [src for src, fam in zip(m.PROBE_SOURCES, (4, 6)) if fam in fams]
        usable = [r for r in rules if not m.rule_only_ambient_ports(r)]
        if not needed:  # offline, or no IPs: either family's source will do
            return any(m.rule_allows_address(r, "from", m.PROBE_SOURCES) for r in usable)
        return all(any(m.rule_allows_address(r, "from", [src]) for r in usable) for src in needed)

    def _hbone_fix(self, doc: PolicyDoc, sources: list | None, probes: bool,
                   hbone: bool = True) -> Fix:
        ns = _ns(doc, self.default_ns)
        base = "allow-ambient-hbone" if hbone else "allow-kubelet-probes"
        if _selector(doc):
            base = f"{doc.name}-{'ambient' if hbone else 'probes'}"
        name = _unique_name(base, self.names.setdefault(ns, set()))
        new = templates.allow_hbone(doc.namespace, None, name=name, probes=probes, hbone=hbone)
        new["spec"]["podSelector"] = copy.deepcopy(_selector(doc))
        if hbone and sources:
            new["spec"]["ingress"][0]["from"] = sources
        what = " and ".join(w for w, on in (("TCP 15008", hbone), ("probe sources", probes)) if on)
        frm = " from the sources the pods already allow" if hbone and sources else ""
        title = f"add policy {name!r} allowing {what}{frm} to the same pods"
        if hbone:
            title += "; 15008 bypasses port limits at L4, keep them in an AuthorizationPolicy"
        return append_fix(new, title)

    def _dedupe(self, entries: list[tuple[PolicyDoc, list[Pod], Any]]) -> list:
        """Skip a narrower policy when a broader one with the same gap is reported already."""
        index = SelectorIndex()
        order = {}
        for i, (doc, _, _) in enumerate(entries):
            index.add(_ns(doc, self.default_ns), _selector(doc), doc)
            order[id(doc)] = i
        kept = []
        for i, (doc, pods, extra) in enumerate(entries):
            ns = _ns(doc, self.default_ns)
            rep = m.representative_labels(_selector(doc))
            covered = False
            for other in index.candidates(ns, rep):
                if other is doc or not m.selector_matches(_selector(other), rep):
                    continue
                mutual = m.selector_matches(_selector(doc), m.representative_labels(_selector(other)))
                if not mutual or order[id(other)] < i:
                    covered = True
                    break
            if not covered:
                kept.append((doc, pods, extra))
        return kept

    def egress_union(self, docs: list[PolicyDoc]) -> None:
        entries = []
        for doc in docs:
            ns = _ns(doc, self.default_ns)
            if "Egress" not in _types(doc):
                continue
            missing, unresolved = [], set()
            for pod in self.all_targets(doc):
                rules = [r for _, r in self.union_rules(ns, pod, "Egress")]
                if not any(self._allows_dns(r) for r in rules):
                    missing.append(pod)
                    for r in rules:
                        unresolved.update(n for n in m.named_ports(r) if n not in m.DNS_PORT_NAMES)
            if missing:
                entries.append((doc, missing, unresolved))
        for doc, pods, unresolved in self._dedupe(entries):
            ns = _ns(doc, self.default_ns) or "(namespace not set)"
            name = _unique_name(f"{doc.name}-dns" if _selector(doc) else "allow-dns",
                                self.names.setdefault(ns, set()))
            new = templates.allow_dns(doc.namespace, None, name=name)
            new["spec"]["podSelector"] = copy.deepcopy(_selector(doc))
            msg = (f"Egress from pods selected by {m.selector_text(_selector(doc))} in namespace "
                   f"{ns} is restricted, and no policy selecting them allows DNS (UDP 53). "
                   "Name lookups fail, so every connection by service name fails too.")
            if unresolved:
                msg += (" Named port(s) " + ", ".join(sorted(unresolved)) + " could not be "
                        "resolved to 53 (offline they are judged by name: dns, dns-tcp).")
            self.add(doc, "egress-without-dns", self._where(doc, "egress"), msg,
                     append_fix(new, f"add policy {name!r} allowing DNS to kube-dns"))

    def _dns_names(self) -> dict[str, set[tuple[str, int]]]:
        names = {n: {(proto, 53)} for n, proto in m.DNS_PORT_NAMES.items()}
        for pods in self.pods.values():
            for p in pods:
                for n, entries in p.ports.items():
                    names.setdefault(n, set()).update(entries)
        return names

    def _allows_dns(self, rule: Mapping[str, Any]) -> bool:
        ports = [m.as_dict(p) for p in m.as_list(rule.get("ports"))]
        names = self._dns_names()
        # A rule naming UDP 53 (a number, a range or a DNS port name) was written for DNS,
        # whatever resolver it targets.
        if any(p.get("port") is not None and m.port_covers(p, "UDP", 53, names) for p in ports):
            return True
        if ports and not any(p.get("port") is None and m.port_covers(p, "UDP", 53) for p in ports):
            return False
        return _peers_reach_dns(rule)

    def egress_hbone(self, docs: list[PolicyDoc]) -> None:
        """A meshed client connects to a meshed server's pod on 15008: egress allowed to
        meshed pods on application ports must also allow 15008 to them."""
        entries = []
        for doc in docs:
            ns = _ns(doc, self.default_ns)
            if "Egress" not in _types(doc):
                continue
            gaps: list[dict] = []
            seen: set[int] = set()
            targets = self.targets(doc)
            for pod in targets:
                for r in self._egress_gaps(ns, pod):
                    if id(r) not in seen:
                        seen.add(id(r))
                        gaps.append(r)
            if gaps:
                entries.append((doc, targets, gaps))
        for doc, pods, gaps in self._dedupe(entries):
            ns = _ns(doc, self.default_ns)
            peers: list | None = []
            for r in gaps:
                ps = m.peers(r, "to")
                if not ps:
                    peers = None
                    break
                for p in ps:
                    if p not in peers and self.peer_may_be_meshed(p, ns):
                        peers.append(copy.deepcopy(p))
            name = _unique_name(f"{doc.name}-hbone-egress", self.names.setdefault(ns, set()))
            new = templates.allow_hbone_egress(doc.namespace, name=name, to=peers or None)
            new["spec"]["podSelector"] = copy.deepcopy(_selector(doc))
            where = "the same destinations" if peers else "any destination"
            msg = (f"Egress from {self._who(doc, pods)} is allowed to meshed pods on "
                   "application ports, but no policy selecting them allows TCP 15008 to those "
                   "pods. A meshed client's ztunnel connects to the server pod's port 15008 "
                   "(HBONE), so these connections are dropped. " + L4_NOTE)
            self.add(doc, "egress-hbone-blocked", self._where(doc, "egress"), msg,
                     append_fix(new, f"add policy {name!r} allowing TCP 15008 to {where}"))

    def _egress_gaps(self, ns: str, pod: Pod) -> list[dict]:
        """Egress rules of the pod's union that reach meshed pods without 15008 to them
        (memoised per label set: policies selecting the same pods share the answer)."""
        key = ("egress-gaps", ns, frozenset(pod.labels.items()))
        found = self._union.get(key)
        if found is not None:
            return found
        rules = [r for _, r in self.union_rules(ns, pod, "Egress")]
        hbone = [r for r in rules if m.rule_allows_port(r, "TCP", m.HBONE_PORT)]
        hbone_ids = {id(r) for r in hbone}
        found = [r for r in rules if id(r) not in hbone_ids and self._to_meshed(r, ns)
                 and not any(_covers_peers(h, r) for h in hbone)]
        self._union[key] = found
        return found

    def _to_meshed(self, rule: dict, ns: str) -> bool:
        if m.rule_only_ambient_ports(rule) or _only_dns(rule):
            return False
        ps = m.peers(rule, "to")
        if not ps:
            return self.ns_meshed(ns) or self.ctx.enrolled is True or bool(
                self.ctx.namespaces and any(self.ns_meshed(n) for n in self.ctx.namespaces))
        return any(self.peer_may_be_meshed(p, ns) for p in ps)

    def meaningless(self, doc: PolicyDoc) -> None:
        spec = m.spec(doc.data)
        ns = _ns(doc, self.default_ns)
        # Istio's own chart policies (istiod, istio-cni, ztunnel) live in the excluded
        # namespaces: there a ztunnel selector and the in-pod ports are what the charts mean.
        excluded = ns in self.ctx.excluded
        if m.is_ztunnel_selector(spec.get("podSelector")) and not excluded:
            self.add(doc, "meaningless-port", doc.line_of("spec", "podSelector"),
                     "This policy selects app=ztunnel pods outside the Istio namespace. ztunnel "
                     "carries mesh traffic inside each application pod's network namespace, so "
                     "rules on ztunnel pods do not govern that traffic. Istio 1.29+ charts ship "
                     "ztunnel's own policy (global.networkPolicy.enabled=true).",
                     delete_fix(doc, f"delete policy {doc.name!r}"))
        meshed = self.ns_meshed(ns)
        for section, peer_key in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(m.as_list(spec.get(section))):
                rule = m.as_dict(rule)
                for j, port in enumerate(m.as_list(rule.get("ports"))):
                    number = m.as_dict(port).get("port")
                    if number not in (m.UNKNOWN_PORT, 15006, 15001):
                        continue  # (the line lookup below is only paid for a finding)
                    line = doc.line_of("spec", section, i, "ports", j)
                    if number == m.UNKNOWN_PORT:
                        self.add(doc, "meaningless-port", line,
                                 "Port 15441 does not exist in Istio or ztunnel; ztunnel-to-"
                                 "ztunnel traffic is HBONE on 15008 into the destination pod.",
                                 self._drop_port_fix(doc, section, i, j))
                    elif section == "egress" and number == m.ZTUNNEL_INBOUND_PLAINTEXT:
                        self.add(doc, "meaningless-port", line,
                                 "15006 is ztunnel's inbound plaintext port inside the "
                                 "destination pod; it is not a destination to open egress to.",
                                 self._drop_port_fix(doc, section, i, j))
                    elif section == "ingress" and meshed and number in (15006, 15001):
                        self.add(doc, "meaningless-port", line,
                                 f"{number} is a port ztunnel redirects to inside the pod "
                                 "(15006 inbound plaintext, 15001 outbound); policies see the "
                                 "original port, so opening it allows nothing useful. Meshed "
                                 "clients need 15008.",
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

    def unresolved_ports(self, doc: PolicyDoc) -> None:
        """Connected only: a named ingress port that no selected pod declares allows nothing."""
        ns = _ns(doc, self.default_ns)
        if ns not in self.pods:
            return
        pods = [p for p in self.pods[ns] if m.selector_matches(_selector(doc), p.labels)]
        if not pods:
            return
        declared = {n for p in pods for n in p.ports}
        for i, rule in enumerate(m.rules(doc.data, "ingress")):
            for name in m.named_ports(rule):
                if name not in declared:
                    self.add(doc, "named-port-unresolved", doc.line_of("spec", "ingress", i, "ports"),
                             f"Named port {name!r} matches no container port of the "
                             f"{len(pods)} selected pod(s) in {ns}; this rule allows nothing on it.",
                             None)

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


def _only_dns(rule: Mapping[str, Any]) -> bool:
    ports = [m.as_dict(p) for p in m.as_list(rule.get("ports"))]
    return bool(ports) and all(
        p.get("port") == 53 or p.get("port") in m.DNS_PORT_NAMES for p in ports)


def _covers_peers(hbone_rule: Mapping[str, Any], rule: Mapping[str, Any]) -> bool:
    """Does a rule that allows 15008 reach every destination `rule` names?"""
    hs = m.peers(hbone_rule, "to")
    if not hs:
        return True
    if any(m.as_dict(h) == {"namespaceSelector": {}} for h in hs):
        return all("ipBlock" not in m.as_dict(p) for p in m.peers(rule, "to")) and bool(
            m.peers(rule, "to"))
    ps = m.peers(rule, "to")
    return bool(ps) and all(p in hs for p in ps)


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
         pods: Mapping[str, Iterable[Pod | Mapping[str, Any]]] | None = None,
         cluster_policies: Sequence[PolicyDoc] = (), namespace: str = "",
         context: Context | None = None) -> list[Finding]:
    """Findings for `docs`.

    enrolled: True/False for every namespace, or the set of enrolled namespace names.
    pods: namespace -> pods (Pod or {"name", "labels", ...}); enables selector-matches-nothing
          and judges the union per real pod.
    cluster_policies: the cluster's policies, part of the union (findings only on `docs`).
    namespace: what a document without metadata.namespace is applied to.
    context: everything known about the cluster (overrides enrolled and pods).
    """
    ctx = context or Context(enrolled=enrolled, pods=pods)
    with gc_paused():
        return _Linter(docs, cluster_policies, ctx, namespace).run()


def lint_text(text: str, file: str = "<text>", **kwargs: Any) -> list[Finding]:
    """Parse then lint; ParseError propagates."""
    return lint(parse_text(text, file), **kwargs)


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == ERROR for f in findings)
