"""Structural checks for networking.k8s.io/v1 NetworkPolicy.

Catches what the API server would refuse (or silently drop) before a round trip,
and works offline. The server-side dry-run remains the final word.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

API_VERSION = "networking.k8s.io/v1"

TOP_KEYS = {"apiVersion", "kind", "metadata", "spec", "status"}
META_KEYS = {
    "name", "namespace", "labels", "annotations", "generateName", "uid", "resourceVersion",
    "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
    "managedFields", "ownerReferences", "finalizers", "selfLink",
}
SPEC_KEYS = {"podSelector", "policyTypes", "ingress", "egress"}
INGRESS_KEYS = {"from", "ports"}
EGRESS_KEYS = {"to", "ports"}
PEER_KEYS = {"podSelector", "namespaceSelector", "ipBlock"}
PORT_KEYS = {"protocol", "port", "endPort"}
SELECTOR_KEYS = {"matchLabels", "matchExpressions"}
EXPR_KEYS = {"key", "operator", "values"}
OPERATORS = {"In", "NotIn", "Exists", "DoesNotExist"}
PROTOCOLS = {"TCP", "UDP", "SCTP"}
POLICY_TYPES = {"Ingress", "Egress"}

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# IANA service name: what a named port must look like.
PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PLACEHOLDER = re.compile(r"<[^<>]+>")

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class SchemaIssue:
    path: Path
    message: str


def _placeholder(value: Any) -> bool:
    return isinstance(value, str) and bool(PLACEHOLDER.search(value))


class _Checker:
    def __init__(self) -> None:
        self.issues: list[SchemaIssue] = []

    def add(self, path: Path, message: str) -> None:
        self.issues.append(SchemaIssue(path, message))

    def keys(self, obj: dict, allowed: set[str], path: Path, what: str) -> None:
        for key in obj:
            if key not in allowed:
                self.add(path + (str(key),), f"unknown field {key!r} in {what}; "
                         f"allowed: {', '.join(sorted(allowed))}")

    def mapping(self, value: Any, path: Path, what: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, dict):
            self.add(path, f"{what} must be a mapping, got {type(value).__name__}")
            return False
        return True

    def sequence(self, value: Any, path: Path, what: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, list):
            self.add(path, f"{what} must be a list, got {type(value).__name__}")
            return False
        return True

    def string_map(self, value: Any, path: Path, what: str) -> None:
        if not self.mapping(value, path, what):
            return
        for k, v in value.items():
            if not isinstance(k, str):
                self.add(path, f"{what} keys must be strings, got {k!r}")
            if not isinstance(v, str):
                # An unquoted `true` or `8080` becomes a bool/int and the server refuses it.
                self.add(path + (str(k),), f"{what} value for {k!r} must be a string; "
                         f"quote it ({v!r} was read as {type(v).__name__})")
            elif _placeholder(v):
                self.add(path + (str(k),), f"{v!r} looks like a placeholder from the guide; "
                         "replace it with a real value")

    def selector(self, value: Any, path: Path, what: str) -> None:
        if not self.mapping(value, path, what):
            return
        self.keys(value, SELECTOR_KEYS, path, what)
        self.string_map(value.get("matchLabels"), path + ("matchLabels",), f"{what}.matchLabels")
        exprs = value.get("matchExpressions")
        if self.sequence(exprs, path + ("matchExpressions",), f"{what}.matchExpressions"):
            for i, expr in enumerate(exprs):
                p = path + ("matchExpressions", i)
                if not self.mapping(expr, p, "a match expression"):
                    continue
                self.keys(expr, EXPR_KEYS, p, "a match expression")
                if not isinstance(expr.get("key"), str):
                    self.add(p, "match expression needs a string 'key'")
                op = expr.get("operator")
                if op not in OPERATORS:
                    self.add(p + ("operator",), f"operator must be one of "
                             f"{', '.join(sorted(OPERATORS))}, got {op!r}")
                values = expr.get("values")
                if op in ("In", "NotIn") and not (isinstance(values, list) and values):
                    self.add(p, f"operator {op} needs a non-empty 'values' list")
                if op in ("Exists", "DoesNotExist") and values:
                    self.add(p + ("values",), f"operator {op} takes no 'values'")

    def ports(self, value: Any, path: Path) -> None:
        if not self.sequence(value, path, "ports"):
            return
        for i, port in enumerate(value):
            p = path + (i,)
            if not self.mapping(port, p, "a port entry"):
                if port is None:
                    self.add(p, "empty port entry")
                continue
            self.keys(port, PORT_KEYS, p, "a port entry")
            proto = port.get("protocol", "TCP")
            if proto not in PROTOCOLS:
                self.add(p + ("protocol",), f"protocol must be TCP, UDP or SCTP, got {proto!r}")
            number = port.get("port")
            if number is None:
                pass  # no port means every port of that protocol
            elif isinstance(number, bool) or not isinstance(number, (int, str)):
                self.add(p + ("port",), f"port must be a number or a port name, got {number!r}")
            elif isinstance(number, int):
                if not 1 <= number <= 65535:
                    self.add(p + ("port",), f"port {number} is outside 1-65535")
            elif _placeholder(number):
                self.add(p + ("port",), f"{number!r} looks like a placeholder from the guide; "
                         "put the real port number here")
            elif number.isdigit():
                self.add(p + ("port",), f"port {number!r} is quoted; write it as a number")
            elif not (PORT_NAME.match(number) and len(number) <= 15):
                self.add(p + ("port",), f"{number!r} is neither a port number nor a valid port name")
            end = port.get("endPort")
            if end is not None:
                if not isinstance(end, int) or isinstance(end, bool):
                    self.add(p + ("endPort",), f"endPort must be a number, got {end!r}")
                elif not isinstance(number, int):
                    self.add(p + ("endPort",), "endPort needs a numeric port")
                elif end < number:
                    self.add(p + ("endPort",), f"endPort {end} is below port {number}")

    def peers(self, value: Any, path: Path, what: str) -> None:
        if not self.sequence(value, path, what):
            return
        for i, peer in enumerate(value):
            p = path + (i,)
            if not self.mapping(peer, p, "a peer"):
                if peer is None:
                    self.add(p, "empty peer; remove the '-' or give a selector")
                continue
            self.keys(peer, PEER_KEYS, p, "a peer")
            if not peer:
                self.add(p, "a peer needs podSelector, namespaceSelector or ipBlock")
            if "ipBlock" in peer and ("podSelector" in peer or "namespaceSelector" in peer):
                self.add(p + ("ipBlock",), "ipBlock cannot be combined with podSelector "
                         "or namespaceSelector in the same peer")
            self.selector(peer.get("podSelector"), p + ("podSelector",), "podSelector")
            self.selector(peer.get("namespaceSelector"), p + ("namespaceSelector",),
                          "namespaceSelector")
            block = peer.get("ipBlock")
            if self.mapping(block, p + ("ipBlock",), "ipBlock"):
                self.keys(block, {"cidr", "except"}, p + ("ipBlock",), "ipBlock")
                cidr = block.get("cidr")
                net = _network(cidr)
                if net is None:
                    self.add(p + ("ipBlock", "cidr"), f"cidr {cidr!r} is not a valid CIDR")
                excepts = block.get("except") or []
                if self.sequence(excepts, p + ("ipBlock", "except"), "except"):
                    for j, ex in enumerate(excepts):
                        exn = _network(ex)
                        if exn is None:
                            self.add(p + ("ipBlock", "except", j), f"{ex!r} is not a valid CIDR")
                        elif net is not None and (exn.version != net.version
                                                  or not exn.subnet_of(net)):  # type: ignore[arg-type]
                            self.add(p + ("ipBlock", "except", j),
                                     f"except {ex} is not inside cidr {cidr}")

    def check(self, doc: dict[str, Any]) -> list[SchemaIssue]:
        api = doc.get("apiVersion")
        if api != API_VERSION:
            hint = " (extensions/v1beta1 was removed in Kubernetes 1.16)" if api else ""
            self.add(("apiVersion",), f"apiVersion must be {API_VERSION}, got {api!r}{hint}")
        self.keys(doc, TOP_KEYS, (), "a NetworkPolicy")
        meta = doc.get("metadata")
        if meta is None:
            self.add(("metadata",), "metadata with a name is required")
        elif self.mapping(meta, ("metadata",), "metadata"):
            self.keys(meta, META_KEYS, ("metadata",), "metadata")
            name = meta.get("name")
            if name is None and not meta.get("generateName"):
                self.add(("metadata",), "metadata.name is required")
            elif name is not None and not (isinstance(name, str) and DNS_SUBDOMAIN.match(name)
                                           and len(name) <= 253):
                self.add(("metadata", "name"), f"name {name!r} is not a valid DNS subdomain "
                         "(lowercase letters, digits, '-' and '.')")
            ns = meta.get("namespace")
            if ns is not None:
                if _placeholder(ns):
                    self.add(("metadata", "namespace"), f"{ns!r} looks like a placeholder from "
                             "the guide; put the application's namespace here")
                elif not (isinstance(ns, str) and DNS_LABEL.match(ns) and len(ns) <= 63):
                    self.add(("metadata", "namespace"), f"namespace {ns!r} is not a valid name")
            self.string_map(meta.get("labels"), ("metadata", "labels"), "metadata.labels")
            self.string_map(meta.get("annotations"), ("metadata", "annotations"),
                            "metadata.annotations")
        spec = doc.get("spec")
        if spec is None:
            self.add(("spec",), "spec is required (use podSelector: {} to select every pod)")
            return self.issues
        if not self.mapping(spec, ("spec",), "spec"):
            return self.issues
        self.keys(spec, SPEC_KEYS, ("spec",), "spec")
        if "podSelector" in spec and spec["podSelector"] is not None:
            self.selector(spec["podSelector"], ("spec", "podSelector"), "spec.podSelector")
        types = spec.get("policyTypes")
        if self.sequence(types, ("spec", "policyTypes"), "policyTypes"):
            for i, t in enumerate(types):
                if t not in POLICY_TYPES:
                    self.add(("spec", "policyTypes", i),
                             f"policyTypes entries must be Ingress or Egress, got {t!r}")
        for section, peer_key, allowed in (("ingress", "from", INGRESS_KEYS),
                                           ("egress", "to", EGRESS_KEYS)):
            rules = spec.get(section)
            if not self.sequence(rules, ("spec", section), section):
                continue
            for i, rule in enumerate(rules):
                p = ("spec", section, i)
                if rule is None:
                    continue  # `- {}` style: allow all, legal
                if not self.mapping(rule, p, f"an {section} rule"):
                    continue
                self.keys(rule, allowed, p, f"an {section} rule")
                self.peers(rule.get(peer_key), p + (peer_key,), peer_key)
                self.ports(rule.get("ports"), p + ("ports",))
        return self.issues


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not isinstance(value, str) or "/" not in value:
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def validate(doc: dict[str, Any]) -> list[SchemaIssue]:
    """Every structural problem in one NetworkPolicy document (empty list when fine)."""
    return _Checker().check(doc)
