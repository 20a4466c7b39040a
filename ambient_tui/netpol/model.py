"""NetworkPolicy semantics the lint needs: selectors, effective policy types, ports, peers.

Tolerant of malformed input: the schema check reports shape problems, this module
just reads what it can so one typo does not hide every other finding.
"""

from __future__ import annotations

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
    """Types in force: the API's defaulting when policyTypes is absent."""
    s = spec(doc)
    types = s.get("policyTypes")
    if isinstance(types, list) and types:
        return {t for t in types if t in ("Ingress", "Egress")}
    result = {"Ingress"}
    if s.get("egress") is not None:
        result.add("Egress")
    return result


def selector_matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics; a missing/empty selector matches everything."""
    sel = as_dict(selector)
    for key, value in as_dict(sel.get("matchLabels")).items():
        if labels.get(str(key)) != str(value):
            return False
    for expr in as_list(sel.get("matchExpressions")):
        expr = as_dict(expr)
        key, op = str(expr.get("key")), expr.get("operator")
        values = [str(v) for v in as_list(expr.get("values"))]
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def representative_labels(selector: Any) -> dict[str, str]:
    """The smallest label set a pod selected by `selector` must carry.

    Offline there are no pods; we ask which policies select this stand-in pod.
    A policy that selects it selects (nearly) every pod the original selector does.
    """
    sel = as_dict(selector)
    labels = {str(k): str(v) for k, v in as_dict(sel.get("matchLabels")).items()}
    for expr in as_list(sel.get("matchExpressions")):
        expr = as_dict(expr)
        key = str(expr.get("key"))
        values = as_list(expr.get("values"))
        if expr.get("operator") == "In" and values and key not in labels:
            labels[key] = str(values[0])
        elif expr.get("operator") == "Exists" and key not in labels:
            labels[key] = "any"
    return labels


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


def port_covers(entry: Any, protocol: str, number: int) -> bool:
    """Does one `ports` entry allow protocol/number? Named ports are not resolved: no."""
    e = as_dict(entry)
    if e.get("protocol", "TCP") != protocol:
        return False
    port = e.get("port")
    if port is None:
        return True
    if isinstance(port, bool) or not isinstance(port, int):
        return False
    end = e.get("endPort")
    if isinstance(end, int) and not isinstance(end, bool):
        return port <= number <= end
    return port == number


def rule_allows_port(rule: Any, protocol: str, number: int) -> bool:
    ports = as_dict(rule).get("ports")
    if not ports:
        return True  # no ports: every port
    return any(port_covers(p, protocol, number) for p in as_list(ports))


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


def peer_may_be_pod(peer: Any) -> bool:
    """Could traffic from/to other pods match this peer? (Not for ztunnel or link-local peers.)"""
    p = as_dict(peer)
    if peer_is_ztunnel_only(p):
        return False
    block = as_dict(p.get("ipBlock"))
    if block:
        try:
            net = ipaddress.ip_network(str(block.get("cidr")), strict=False)
        except ValueError:
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
    try:
        addr = ipaddress.ip_network(address, strict=False)
        net = ipaddress.ip_network(str(block.get("cidr")), strict=False)
    except ValueError:
        return False
    if addr.version != net.version or not addr.subnet_of(net):  # type: ignore[arg-type]
        return False
    for ex in as_list(block.get("except")):
        try:
            exn = ipaddress.ip_network(str(ex), strict=False)
        except ValueError:
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
