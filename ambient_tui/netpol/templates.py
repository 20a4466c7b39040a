"""Ambient-correct NetworkPolicy templates (facts: docs istio-ambient-facts.md, "Ports and labels").

Each template is built as data and rendered with yaml.safe_dump, so parameters
can never break the YAML structure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import yaml

from .model import HBONE_PORT, PROBE_SOURCES

MANAGED_BY_KEY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "ambient-tui"
MANAGED_SELECTOR = f"{MANAGED_BY_KEY}={MANAGED_BY_VALUE}"
DEFAULT_CONFIG_PORT = 8888  # Spring Cloud Config's default; the guide leaves it open


def label_managed(doc: dict[str, Any]) -> dict[str, Any]:
    """Mark a policy as created by this tool (the uninstall selects on it). Returns `doc`."""
    meta = doc.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise ValueError("metadata is not a mapping")
    labels = meta.get("labels")
    if not isinstance(labels, dict):
        labels = meta["labels"] = {}
    labels[MANAGED_BY_KEY] = MANAGED_BY_VALUE
    return doc


def is_managed(doc: dict[str, Any]) -> bool:
    labels = ((doc.get("metadata") or {}).get("labels") or {})
    return isinstance(labels, dict) and labels.get(MANAGED_BY_KEY) == MANAGED_BY_VALUE


def _base(name: str, namespace: str | None, selector: dict[str, str] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    doc: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": {"podSelector": {"matchLabels": dict(selector)} if selector else {}},
    }
    return label_managed(doc)


def allow_hbone(namespace: str | None = None, selector: dict[str, str] | None = None,
                name: str = "allow-ambient-hbone", probes: bool = True,
                hbone: bool = True) -> dict[str, Any]:
    """HBONE into the selected pods from anywhere, plus kubelet probes via ztunnel's SNAT address."""
    doc = _base(name, namespace, selector)
    ingress: list[dict[str, Any]] = []
    if hbone:
        ingress.append({"ports": [{"protocol": "TCP", "port": HBONE_PORT}]})
    if probes:
        ingress.append({"from": [{"ipBlock": {"cidr": c}} for c in PROBE_SOURCES]})
    doc["spec"]["policyTypes"] = ["Ingress"]
    doc["spec"]["ingress"] = ingress
    return doc


def allow_dns(namespace: str | None = None, selector: dict[str, str] | None = None,
              name: str = "allow-dns") -> dict[str, Any]:
    doc = _base(name, namespace, selector)
    doc["spec"]["policyTypes"] = ["Egress"]
    doc["spec"]["egress"] = [{
        "to": [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }]
    return doc


def allow_egress_to_config_server(
    namespace: str | None = None, selector: dict[str, str] | None = None,
    to_namespace: str = "config-server", to_selector: dict[str, str] | None = None,
    port: int = DEFAULT_CONFIG_PORT, name: str = "allow-egress-to-config-server",
) -> dict[str, Any]:
    """The guide's 8.3 done right: the namespace is matched by the label Kubernetes sets itself."""
    doc = _base(name, namespace, selector)
    doc["spec"]["policyTypes"] = ["Egress"]
    doc["spec"]["egress"] = [{
        "to": [{
            # kubernetes.io/metadata.name is set on every namespace (1.21+); the guide's
            # `name:` label only exists if someone added it by hand.
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": to_namespace}},
            "podSelector": {"matchLabels": dict(to_selector or {"app": "config-server"})},
        }],
        # 15008: the meshed client's ztunnel reaches a meshed config server through HBONE
        # on the server pod's port 15008, not on the application port.
        "ports": [{"protocol": "TCP", "port": int(port)}, {"protocol": "TCP", "port": HBONE_PORT}],
    }]
    return doc


def allow_hbone_egress(namespace: str | None = None, selector: dict[str, str] | None = None,
                       name: str = "allow-ambient-hbone-egress",
                       to: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Egress TCP 15008 to `to` (the peers the pods already reach), or to anywhere."""
    doc = _base(name, namespace, selector)
    doc["spec"]["policyTypes"] = ["Egress"]
    rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": HBONE_PORT}]}
    if to:
        rule = {"to": to, **rule}
    doc["spec"]["egress"] = [rule]
    return doc


def default_deny(namespace: str | None = None, selector: dict[str, str] | None = None,
                 name: str = "default-deny", egress: bool = True) -> dict[str, Any]:
    doc = _base(name, namespace, selector)
    doc["spec"]["policyTypes"] = ["Ingress", "Egress"] if egress else ["Ingress"]
    return doc


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    build: Callable[..., dict[str, Any]]
    params: tuple[str, ...]


TEMPLATES: dict[str, Template] = {
    t.name: t for t in (
        Template("allow-hbone", "Allow HBONE (TCP 15008) and kubelet probes", allow_hbone,
                 ("namespace", "selector")),
        Template("allow-dns", "Allow DNS egress to kube-dns", allow_dns,
                 ("namespace", "selector")),
        Template("allow-egress-to-config-server", "Allow egress to a config server",
                 allow_egress_to_config_server,
                 ("namespace", "selector", "to_namespace", "to_selector", "port")),
        Template("default-deny", "Default deny (ingress and egress)", default_deny,
                 ("namespace", "selector")),
    )
}


def build(name: str, **params: Any) -> dict[str, Any]:
    """Template by name; unknown parameters for that template are ignored, None means default."""
    try:
        tpl = TEMPLATES[name]
    except KeyError:
        raise KeyError(f"unknown template {name!r}; choose from {', '.join(TEMPLATES)}") from None
    kwargs = {k: v for k, v in params.items() if k in tpl.params and v is not None}
    return tpl.build(**kwargs)


def dump(doc: dict[str, Any] | list[dict[str, Any]]) -> str:
    if isinstance(doc, list):
        return yaml.safe_dump_all(doc, sort_keys=False, explicit_start=True)
    return yaml.safe_dump(doc, sort_keys=False)


def render(name: str, **params: Any) -> str:
    return dump(build(name, **params))


def parse_selector(pairs: list[str] | str | None) -> dict[str, str]:
    """`app=web,tier=fe` or ["app=web", "tier=fe"] -> dict. Raises ValueError naming the bad pair."""
    if not pairs:
        return {}
    if isinstance(pairs, str):
        pairs = [p for p in pairs.split(",")]
    out: dict[str, str] = {}
    for pair in pairs:
        pair = pair.strip()
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"selector {pair!r} is not key=value")
        out[key.strip()] = value.strip()
    return out
