"""The Istio release catalogue, read from assets/istio-releases.yaml.

Plans and checks ask this module; no other code names an Istio or Gateway API version.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from ambient_tui.yaml_loader import SAFE_LOADER

ASSETS = Path(__file__).resolve().parent.parent / "assets"
CATALOG_FILE = ASSETS / "istio-releases.yaml"


class UnknownVersion(ValueError):
    """An Istio version the catalogue does not describe."""


def parse_version(text: str) -> tuple[int, ...]:
    """'v1.30.0' or '1.30' -> (1, 30, 0) / (1, 30); ignores a -suffix such as '-distroless'."""
    core = text.strip().lstrip("v").split("-")[0].split("+")[0]
    try:
        return tuple(int(p) for p in core.split("."))
    except ValueError:
        raise UnknownVersion(f"not a version number: {text!r}") from None


@dataclass(frozen=True)
class GatewayAPI:
    version: str
    channel: str
    server_side: bool

    def url(self, template: str) -> str:
        return template.format(version=self.version, channel=self.channel)


@dataclass(frozen=True)
class Release:
    minor: str
    latest: str
    released: dt.date
    kubernetes: tuple[str, str]
    gateway_api: GatewayAPI
    eol: dt.date | None
    quirks: dict

    def supports_kubernetes(self, version: str) -> bool:
        minor = parse_version(version)[:2]
        lo, hi = (parse_version(v)[:2] for v in self.kubernetes)
        return lo <= minor <= hi

    def is_eol(self, today: dt.date | None = None) -> bool:
        return self.eol is not None and self.eol < (today or dt.date.today())

    def has_branch_eni_probe_fix(self, version: str) -> bool:
        fix = self.quirks.get("branch_eni_probe_fix")
        return fix is not None and parse_version(version) >= parse_version(fix)

    @property
    def helm4_supported(self) -> bool:
        return bool(self.quirks.get("helm4"))


@dataclass(frozen=True)
class Catalog:
    releases: tuple[Release, ...]
    chart_repos: dict
    gateway_api_url: str
    # official_hub, retired (registry, retired, brownouts), development, moving_tags
    images: dict = field(default_factory=dict)

    @property
    def known_versions(self) -> list[str]:
        return [r.latest for r in self.releases]

    def release(self, version: str) -> Release:
        """The release row for '1.30', '1.30.0' or 'v1.30.2'."""
        minor = ".".join(str(p) for p in parse_version(version)[:2])
        for r in self.releases:
            if r.minor == minor:
                return r
        raise UnknownVersion(
            f"Istio {version} is not in the catalogue; known: {', '.join(self.known_versions)}")

    def newest_supported(self, today: dt.date | None = None) -> Release:
        live = [r for r in self.releases if not r.is_eol(today)]
        return max(live or self.releases, key=lambda r: parse_version(r.minor))

    def resolve(self, version: str | None, today: dt.date | None = None) -> tuple[Release, str]:
        """Release row and full version; None means the newest supported release."""
        if not version:
            r = self.newest_supported(today)
            return r, r.latest
        r = self.release(version)
        full = version.lstrip("v")
        if len(parse_version(full)) < 3:
            full = r.latest
        return r, full

    def chart_repo(self, source: str = "blob") -> str:
        return self.chart_repos[source]


def _release(row: dict) -> Release:
    return Release(
        minor=str(row["minor"]),
        latest=str(row["latest"]),
        released=row["released"],
        kubernetes=tuple(str(v) for v in row["kubernetes"]),
        gateway_api=GatewayAPI(**row["gateway_api"]),
        eol=row.get("eol"),
        quirks=dict(row.get("quirks") or {}),
    )


@lru_cache(maxsize=4)
def load(path: Path = CATALOG_FILE) -> Catalog:
    data = yaml.load(Path(path).read_text(), Loader=SAFE_LOADER)
    return Catalog(
        releases=tuple(_release(r) for r in data["releases"]),
        chart_repos=dict(data["chart_repos"]),
        gateway_api_url=data["gateway_api_url"],
        images=dict(data.get("images") or {}),
    )
