"""What to tell a person whose helm, istioctl or kubectl is missing or too old."""

from __future__ import annotations

HINTS = {
    "helm": "install Helm 3.6 or newer: https://helm.sh/docs/intro/install/",
    "istioctl": "install the istioctl matching your Istio release: https://istio.io/latest/docs/setup/getting-started/#download",
    "kubectl": "install kubectl: https://kubernetes.io/docs/tasks/tools/",
}


def missing_tool_message(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    hint = HINTS.get(base, "install it or put it on PATH")
    return f"{base} not found on PATH; {hint}"
