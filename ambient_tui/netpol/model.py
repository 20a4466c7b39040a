"""NetworkPolicy semantics the lint needs: selectors, effective policy types, ports, peers.

Tolerant of malformed input: the schema check reports shape problems, this module
just reads what it can so one typo does not hide every other finding.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any, Iterable, Mapping

HBONE_PORT = 15008
# Ports that only exist inside an enrolled pod's network namespace (ztunnel's
# capture/redirect targets); a rule listing only these is not an application rule.
AMBIENT_POD_PORTS = {15001, 15006, 15008, 15053, 15080}
UNKNOWN_PORT = 15441
ZTUNNEL_INBOUND_PLAINTEXT = 15006
PROBE_SOURCES = ("169.254.7.127/32", "fd16:9254:7127:1337:ffff:ffff:ffff:ffff/128")
ZTUNNEL_LABELS = {"app": "ztunnel", "app.kubernetes.io/name": "ztunnel"}


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def spec(doc: Mapping[str, Any]) -> dict:
    return as_dict(doc.get("spec"))


def policy_types(doc: Mapping[str, Any]) -> set[str]:
    """Types in force, defaulted as the API server does when policyTypes is absent or empty:
    Ingress always, Egress only when there is at least one egress rule (`egress: []` adds none)."""
    s = spec(doc)
    types = s.get("policyTypes")
    if isinstance(types, list) and types:
        return {t for t in types if t in ("Ingress", "Egress")}
    result = {"Ingress"}
    if as_list(s.get("egress")):
        result.add("Egress")
    return result


def selector_matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics; a missing/empty selector matches everything.
    Every expression must hold; In/NotIn take the whole values list."""
    sel = as_dict(selector)
    for key, value in as_dict(sel.get("matchLabels")).items():
        if labels.get(str(key)) != str(value):
            return False
    for expr in as_list(sel.get("matchExpressions")):
        expr = as_dict(expr)
        key, op = str(expr.get("key")), expr.get("operator")
        values = {str(v) for v in as_list(expr.get("values"))}
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False  # the API server refuses it; it selects nothing
    return True


REPRESENTATIVE_LIMIT = 16  # stand-in pods per selector, offline (In with many values multiplies)


def representative_pods(selector: Any) -> list[dict[str, str]]:
    """Label sets standing in for the pods `selector` selects, offline.

    One per combination of `In` values (up to REPRESENTATIVE_LIMIT): a policy that selects
    only `app In (b)` must be judged for the b pods too, not for the first value alone.
    """
    sel = as_dict(selector)
    base = {str(k): str(v) for k, v in as_dict(sel.get("matchLabels")).items()}
    sets = [base]
    for expr in as_list(sel.get("matchExpressions")):
        expr = as_dict(expr)
        key = str(expr.get("key"))
        op = expr.get("operator")
        values = [str(v) for v in as_list(expr.get("values"))]
        if op == "In" and values:
            grown = []
            for labels in sets:
                if key in labels:
                    grown.append(labels)
                    continue
                for v in values:
                    grown.append({**labels, key: v})
            sets = grown[:REPRESENTATIVE_LIMIT]
        elif op == "Exists":
            for labels in sets:
                labels.setdefault(key, "any")
        elif op == "NotIn":
            for labels in sets:
                if key in labels and labels[key] in values:
                    labels[key] = "other"
    return [s for s in sets if selector_matches(selector, s)] or sets[:1]


def representative_labels(selector: Any) -> dict[str, str]:
    return representative_pods(selector)[0]


def selector_text(selector: Any) -> str:
    sel = as_dict(selector)
    parts = [f"{k}={v}" for k, v in as_dict(sel.get("matchLabels")).items()]
    for expr in as_list(sel.get("matchExpressions")):
        expr = as_dict(expr)
        vals = ",".join(str(v) for v in as_list(expr.get("values")))
        parts.append(f"{expr.get('key')} {expr.get('operator')} ({vals})" if vals
                     else f"{expr.get('key')} {expr.get('operator')}")
    return ", ".join(parts) if parts else "every pod"


def is_ztunnel_selector(selector: Any) -> bool:
    labels = as_dict(as_dict(selector).get("matchLabels"))
    return any(labels.get(k) == v for k, v in ZTUNNEL_LABELS.items())


# Offline, a named port is judged by its name: these are kube-dns/CoreDNS's container ports.
DNS_PORT_NAMES = {"dns": "UDP", "dns-tcp": "TCP", "domain": "UDP", "dns-udp": "UDP"}

# Named container ports of the pods a rule is about: name -> {(protocol, number)}.
PortNames = Mapping[str, set[tuple[str, int]]]


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def port_covers(entry: Any, protocol: str, number: int, names: PortNames | None = None) -> bool:
    """Does one `ports` entry allow protocol/number? `endPort` makes it a range; a named
    port counts when `names` (the pods' container ports) resolves it to that number."""
    e = as_dict(entry)
    if e.get("protocol", "TCP") != protocol:
        return False
    port = e.get("port")
    if port is None:
        return True
    if isinstance(port, str):
        return bool(names) and (protocol, number) in names.get(port, set())
    start = _number(port)
    if start is None:
        return False
    end = _number(e.get("endPort"))
    if end is not None:
        return start <= number <= end
    return start == number


def rule_allows_port(rule: Any, protocol: str, number: int, names: PortNames | None = None) -> bool:
    ports = as_dict(rule).get("ports")
    if not ports:
        return True  # no ports: every port
    return any(port_covers(p, protocol, number, names) for p in as_list(ports))


def named_ports(rule: Any) -> list[str]:
    return [p["port"] for p in (as_dict(x) for x in as_list(as_dict(rule).get("ports")))
            if isinstance(p.get("port"), str)]


def in_pod_ports(rule: Any) -> list[int]:
    """15006/15001 in a rule: ztunnel's in-pod redirect targets, never a policy's port."""
    return [p for p in (_number(as_dict(x).get("port")) for x in as_list(as_dict(rule).get("ports")))
            if p in (15006, 15001)]


def namespace_names(selector: Any) -> set[str] | None:
    """The namespace names a namespaceSelector pins by kubernetes.io/metadata.name, or None."""
    sel = as_dict(selector)
    names: set[str] | None = None
    value = as_dict(sel.get("matchLabels")).get("kubernetes.io/metadata.name")
    if value is not None:
        names = {str(value)}
    for expr in as_list(sel.get("matchExpressions")):
        expr = as_dict(expr)
        if expr.get("key") == "kubernetes.io/metadata.name" and expr.get("operator") == "In":
            vals = {str(v) for v in as_list(expr.get("values"))}
            names = vals if names is None else names & vals
    return names


def rule_only_ambient_ports(rule: Any) -> bool:
    ports = as_list(as_dict(rule).get("ports"))
    if not ports:
        return False
    return all(isinstance(as_dict(p).get("port"), int) and as_dict(p)["port"] in AMBIENT_POD_PORTS
               for p in ports)


def peers(rule: Any, key: str) -> list:
    return as_list(as_dict(rule).get(key))


def peer_is_ztunnel_only(peer: Any) -> bool:
    p = as_dict(peer)
    return "ipBlock" not in p and is_ztunnel_selector(p.get("podSelector"))


def rule_peers_all_ztunnel(rule: Any, key: str) -> bool:
    ps = peers(rule, key)
    return bool(ps) and all(peer_is_ztunnel_only(p) for p in ps)


_NOT_POD_NETS = [ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10",
                                                  PROBE_SOURCES[1])]


@functools.lru_cache(maxsize=4096)
def network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A CIDR or address as a network, parsed once (the same CIDRs recur in every policy)."""
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def peer_may_be_pod(peer: Any) -> bool:
    """Could traffic from/to other pods match this peer? (Not for ztunnel or link-local peers.)"""
    p = as_dict(peer)
    if peer_is_ztunnel_only(p):
        return False
    block = as_dict(p.get("ipBlock"))
    if block:
        net = network(str(block.get("cidr")))
        if net is None:
            return False
        return not any(net.version == n.version and net.subnet_of(n)  # type: ignore[arg-type]
                       for n in _NOT_POD_NETS)
    return True


def rule_reaches_pods(rule: Any, key: str) -> bool:
    ps = peers(rule, key)
    return not ps or any(peer_may_be_pod(p) for p in ps)


def peer_allows_address(peer: Any, address: str) -> bool:
    block = as_dict(as_dict(peer).get("ipBlock"))
    if not block:
        return False
    addr, net = network(address), network(str(block.get("cidr")))
    if addr is None or net is None:
        return False
    if addr.version != net.version or not addr.subnet_of(net):  # type: ignore[arg-type]
        return False
    for ex in as_list(block.get("except")):
        exn = network(str(ex))
        if exn is None:
            continue
        if exn.version == addr.version and addr.subnet_of(exn):  # type: ignore[arg-type]
            return False
    return True


def rule_allows_address(rule: Any, key: str, addresses: Iterable[str]) -> bool:
    ps = peers(rule, key)
    if not ps:
        return True  # no peers: every source/destination
    return any(peer_allows_address(p, a) for p in ps for a in addresses)


def rules(doc: Mapping[str, Any], section: str) -> list:
    """Rules of a section; `- {}` or `-` (null) both mean allow everything."""
    return [r if isinstance(r, dict) else {} for r in as_list(spec(doc).get(section))]
