"""Parsers for tool output the checks read: helm list, istioctl precheck, ztunnel-config."""

from __future__ import annotations

import json
import re

ISTIO_CHARTS = {"base", "istiod", "cni", "ztunnel", "gateway", "ambient"}


def parse_helm_list(text: str) -> list[dict]:
    """`helm list -A -o json` -> [{name, namespace, status, chart, chart_version, app_version}]."""
    text = (text or "").strip()
    if not text:
        return []
    rows = json.loads(text)
    out = []
    for r in rows or []:
        chart = r.get("chart", "")
        m = re.match(r"^(.*)-(v?\d+\.\d+\.\d+.*)$", chart)
        name, ver = (m.group(1), m.group(2)) if m else (chart, "")
        out.append({"name": r.get("name", ""), "namespace": r.get("namespace", ""),
                    "status": r.get("status", ""), "chart": name, "chart_version": ver,
                    "app_version": r.get("app_version", ""), "revision": str(r.get("revision", ""))})
    return out


def istio_releases(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["chart"] in ISTIO_CHARTS]


# `istioctl x precheck` prints e.g.
#   Error [IST0145] (Gateway default/gw) Conflict with gateways ...
#   Warning [IST0103] (Pod default/x) The pod is missing the Istio proxy.
#   ✔ No issues found when checking the cluster. Istio is safe to install or upgrade!
PRECHECK_LINE = re.compile(r"^(Error|Warning|Info)\s+\[(IST\d+)\]\s*(?:\(([^)]*)\))?\s*(.*)$")
# istioctl colours the level word even when its output is a pipe.
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text or "")


def parse_precheck(text: str) -> list[dict]:
    findings = []
    for line in strip_ansi(text).splitlines():
        m = PRECHECK_LINE.match(line.strip())
        if m:
            findings.append({"level": m.group(1).lower(), "code": m.group(2),
                             "resource": m.group(3) or "", "message": m.group(4).strip()})
    return findings


MULTIWORD_COLUMNS = ("POD NAME", "SERVICE ACCOUNT")


def parse_ztunnel_workloads(text: str) -> list[dict]:
    """`istioctl ztunnel-config workloads` table -> rows keyed by header (NAMESPACE, POD NAME, ...).

    Columns are separated by as little as one space (tabwriter), and no cell holds a space,
    so rows split on whitespace once the two-word headers are joined.
    """
    lines = [l for l in (text or "").splitlines() if l.strip()]
    if not lines:
        return []
    header = lines[0]
    for name in MULTIWORD_COLUMNS:
        header = header.replace(name, name.replace(" ", "\0"))
    cols = [h.replace("\0", " ") for h in header.split()]
    out = []
    for line in lines[1:]:
        cells = line.split()
        if len(cells) == len(cols):
            out.append(dict(zip(cols, cells)))
    return out


def hbone_workloads(rows: list[dict], namespace: str | None = None) -> list[dict]:
    return [r for r in rows if r.get("PROTOCOL") == "HBONE"
            and (namespace is None or r.get("NAMESPACE") == namespace)]


def parse_quantity(q: str | None) -> float:
    """Kubernetes quantity -> float (cpu cores or bytes)."""
    if q is None:
        return 0.0
    q = str(q).strip()
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
             "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    for suffix in sorted(units, key=len, reverse=True):
        if q.endswith(suffix):
            return float(q[: -len(suffix)]) * units[suffix]
    return float(q)
