"""Kubernetes access for checks and fix steps: the kubernetes client, imported lazily."""

from ambient_tui.cluster.client import ClusterAccessError, KubeClient, load_client

__all__ = ["ClusterAccessError", "KubeClient", "load_client"]
