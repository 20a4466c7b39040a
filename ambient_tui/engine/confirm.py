"""Typed confirmation for destructive steps: what the person must type, and whether they did.

The phrase is never empty: a kubeconfig may name its context and cluster "" (or blanks), and an
empty answer must never match an empty name. Then the API server host is asked for instead,
and as a last resort a fixed sentence. The match is exact: no trimming, no case folding, no
prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

# When nothing about the cluster has a usable name (no name, no server): still never empty.
LAST_RESORT = "delete this cluster's Istio"


@dataclass(frozen=True)
class Target:
    """What a destructive run acts on, as the kubeconfig names it."""

    cluster: str = ""
    context: str = ""
    server: str = ""  # the API server URL, e.g. https://ABC.gr7.eu-west-1.eks.amazonaws.com


def server_host(server: str) -> str:
    """The host of an API server URL ("https://10.0.0.1:6443" -> "10.0.0.1")."""
    server = (server or "").strip()
    if not server:
        return ""
    try:
        host = urlsplit(server if "//" in server else f"//{server}").hostname or ""
    except ValueError:
        host = ""
    return host


def confirmation_phrase(target: Target | str) -> str:
    """The phrase to type: the cluster name, else the context name, else the API server host,
    else LAST_RESORT. Always non-empty and without surrounding blanks."""
    if isinstance(target, str):
        target = Target(cluster=target)
    for name in (target.cluster, target.context, server_host(target.server)):
        if isinstance(name, str) and name.strip():
            return name.strip()
    return LAST_RESORT


def phrase_kind(target: Target | str, phrase: str) -> str:
    """Words for what the phrase is, for the prompt ("the cluster name", "the API server host")."""
    if isinstance(target, str):
        target = Target(cluster=target)
    if phrase == (target.cluster or "").strip():
        return "the cluster name"
    if phrase == (target.context or "").strip():
        return "the context name"
    if phrase == server_host(target.server):
        return "the API server host (the cluster has no name)"
    return "this sentence (the cluster has no name and no server)"


def confirmed(typed: str | None, phrase: str) -> bool:
    """True only for the exact phrase. An empty or blank phrase never confirms anything."""
    if not isinstance(typed, str) or not isinstance(phrase, str) or not phrase.strip():
        return False
    return typed == phrase
