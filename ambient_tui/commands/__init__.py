"""Headless subcommands (install/preflight/status, uninstall, netpol, pods)."""

from __future__ import annotations

import argparse

from ambient_tui.errors import UsageError


def access_args(p: argparse.ArgumentParser) -> None:
    """--kubeconfig, --context and --read-only, the same on every subcommand that talks to a
    cluster. --read-only has no default here (SUPPRESS): given before the subcommand
    (`ambient-tui --read-only status`) the top-level flag is kept, not reset by this one."""
    p.add_argument("--kubeconfig", metavar="PATH",
                   help="default: $KUBECONFIG (merged, as kubectl does) or ~/.kube/config")
    p.add_argument("--context", metavar="NAME",
                   help="kube context (default: current-context); pinned for the whole run")
    p.add_argument("--read-only", action="store_true", default=argparse.SUPPRESS,
                   help="change nothing: every write (install, uninstall, apply, rollback) is refused")


def target_from_args(args: argparse.Namespace):
    """The cluster target of this run, resolved once (ClusterAccessError when it cannot be)."""
    from ambient_tui.cluster.target import resolve

    t = getattr(args, "_target", None)
    if t is None:
        t = resolve(getattr(args, "kubeconfig", None), getattr(args, "context", None),
                    read_only=bool(getattr(args, "read_only", False)))
        args._target = t
    return t


class ReadOnly(UsageError):
    """A write asked for under --read-only: one line, exit 2."""


def refuse_if_read_only(args: argparse.Namespace, what: str, hint: str = "") -> None:
    if getattr(args, "read_only", False):
        raise ReadOnly(f"--read-only: {what} would change the cluster; nothing was done"
                       + (f" ({hint})" if hint else ""))
