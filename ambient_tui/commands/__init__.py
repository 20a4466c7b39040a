"""Headless subcommands (install/preflight/status, uninstall, netpol, pods)."""

from __future__ import annotations

import argparse


def access_args(p: argparse.ArgumentParser) -> None:
    """--kubeconfig and --context, the same on every subcommand that talks to a cluster."""
    p.add_argument("--kubeconfig", metavar="PATH", help="default: $KUBECONFIG or ~/.kube/config")
    p.add_argument("--context", metavar="NAME", help="kube context (default: current-context)")
