"""`ambient-tui unlock` (and `install/uninstall --force-unlock`): clear the cluster lock.

For a lock whose run is gone but whose lease has not expired yet, or an operator who knows
better. It shows who holds the lock, asks for the cluster name to be typed (exactly), clears
the Lease and journals who did it and whose lock it was. Exit 0 unlocked (or free), 1 refused
or the lease could not be written, 2 the cluster could not be reached.
"""

from __future__ import annotations

import sys
from typing import TextIO

from ambient_tui.commands import access_args
from ambient_tui.engine.confirm import Target, confirmation_phrase, confirmed


def register(sub) -> None:
    p = sub.add_parser("unlock", help="clear the cluster lock another ambient-tui run holds "
                                      "(asks for the cluster name)")
    access_args(p)
    p.set_defaults(func=cmd_unlock)


def add_flag(p) -> None:
    p.add_argument("--force-unlock", action="store_true",
                   help="first clear the cluster lock another run holds (asks for the cluster name)")


def phrase_for(context: str, server: str) -> str:
    """Never empty: the context name, else the API server host, else a fixed sentence."""
    return confirmation_phrase(Target(context=context or "", server=server or ""))


def force_unlock_interactive(kubeconfig: str | None, context: str | None, out: TextIO | None = None,
                             err: TextIO | None = None, stdin: TextIO | None = None) -> int:
    from ambient_tui.cluster import lease
    from ambient_tui.cluster.client import ClusterAccessError, load_client
    from ambient_tui.engine.journal import Journal

    out, err, stdin = out or sys.stdout, err or sys.stderr, stdin or sys.stdin
    try:
        kube = load_client(kubeconfig, context)
        holder = lease.current_holder(kube)
    except (ClusterAccessError, lease.LockError) as e:
        print(f"ambient-tui unlock: {e}", file=err, flush=True)
        return 2
    if holder is None:
        print("the cluster lock is free; nothing to unlock", file=out, flush=True)
        return 0
    print(f"The cluster lock ({lease.NAMESPACE}/{lease.NAME}) is held by {holder.describe()}.",
          file=out, flush=True)
    if not holder.expired():
        print("  warning: it is still being renewed, so that run may be alive: after the unlock "
              "two runs can change the cluster at once", file=out, flush=True)
    phrase = phrase_for(kube.context, kube.server)
    print(f"Type the cluster name ({phrase}) to clear the lock: ", end="", file=out, flush=True)
    typed = (stdin.readline() or "").rstrip("\n")
    if not confirmed(typed, phrase):
        print(f"ambient-tui unlock: aborted, the lock is kept: typed {typed!r}, expected {phrase!r}",
              file=err, flush=True)
        return 1
    journal = Journal.for_cluster(kube.context or "default")
    try:
        lease.force_unlock(kube, journal)
    except lease.LockError as e:
        print(f"ambient-tui unlock: {e}", file=err, flush=True)
        return 1
    finally:
        journal.close()
    print(f"unlocked: the lock of {holder.user}@{holder.host} pid {holder.pid} is cleared "
          "(journaled)", file=out, flush=True)
    return 0


def cmd_unlock(args) -> int:
    return force_unlock_interactive(args.kubeconfig, args.context)
