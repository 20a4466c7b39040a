"""What to install and where: the choices a person makes, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Settings:
    istio_version: str | None = None  # None: the catalogue's newest supported release
    method: str = "helm"  # helm | istioctl
    gateway: bool = False
    namespace: str = "istio-system"
    gateway_namespace: str = "istio-ingress"
    chart_source: str = "blob"  # blob | oci | a local charts directory
    values: dict[str, str] = field(default_factory=dict)  # component -> values file
    gateway_api_file: str | None = None  # local file or folder for air-gapped clusters
    enroll: list[str] = field(default_factory=list)
    force_enroll: bool = False  # enrol even when the namespace's live NetworkPolicies block HBONE
    context: str | None = None
