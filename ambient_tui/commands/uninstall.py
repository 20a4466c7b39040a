"""`ambient-tui uninstall`: headless guided uninstall.

Discover, show exactly what will be deleted, check every permission before the first change,
ask for the cluster name to be typed (unless --yes), run the plan with progress, then verify.
Exit codes: 0 verification found nothing left of what was asked (or --dry-run), 1 refused,
aborted, a step failed or something is left, 2 the cluster could not be read.
The work itself is in plans/uninstall_session.py, shared with the TUI's uninstall screen.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, TextIO

from ambient_tui.commands import access_args

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "uninstall", help="remove Istio ambient from the cluster, then verify nothing is left",
        description="Remove Istio ambient in reverse order: unenrol namespaces, delete waypoints, "
                    "helm uninstall gateway/ztunnel/istio-cni/istiod/base (or istioctl uninstall --purge), "
                    "optionally purge CRDs, delete ambient-tui NetworkPolicies and the istio-system "
                    "namespace, optionally revert the VPC CNI enforcing mode.")
    p.add_argument("--yes", action="store_true", help="do not ask for the cluster name to be typed")
    p.add_argument("--dry-run", action="store_true", help="show what would be removed; change nothing")
    p.add_argument("--purge-crds", action="store_true",
                   help="also delete the Istio CRDs (and the Gateway API CRDs if this tool "
                        "installed them and nothing uses them)")
    p.add_argument("--keep-namespace-labels", action="store_true",
                   help="leave istio.io/dataplane-mode labels on namespaces")
    p.add_argument("--revert-cni", action="store_true",
                   help="put POD_SECURITY_GROUP_ENFORCING_MODE back to the value this tool's fix "
                        "found (recorded in the journal)")
    p.add_argument("--resume", action="store_true",
                   help="skip steps the journal saw succeed in the last interrupted uninstall")
    access_args(p)
    from ambient_tui.commands.unlock import add_flag
    add_flag(p)
    p.set_defaults(func=run)
    return p


def _last_uninstall_run(path):
    """The journal records of the last uninstall run, for --resume."""
    from ambient_tui.engine.journal import Journal, JournalRead
    from ambient_tui.plans.uninstall_session import last_uninstall_run

    return last_uninstall_run(Journal.read(path).records, JournalRead)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None,
        stdin: TextIO | None = None) -> int:
    from ambient_tui.engine.events import EventKind
    from ambient_tui.engine.redact import redact
    from ambient_tui.engine.journal import JournalError
    from ambient_tui.engine.runner import Runner
    from ambient_tui.plans import uninstall as u
    from ambient_tui.plans.uninstall_session import UninstallSession, verified_message

    out, err, stdin = out or sys.stdout, err or sys.stderr, stdin or sys.stdin
    opts = u.Options(purge_crds=args.purge_crds, keep_namespace_labels=args.keep_namespace_labels,
                     revert_cni=args.revert_cni)

    def say(msg: str = "") -> None:
        print(redact(msg), file=out, flush=True)

    def refuse(msg: str, code: int = EXIT_FAILED) -> int:
        print(f"ambient-tui uninstall: {msg}", file=err, flush=True)
        return code

    if getattr(args, "read_only", False) and not args.dry_run:
        return refuse("--read-only: uninstall would change the cluster; nothing was done "
                      "(--dry-run shows what it would delete)", EXIT_INPUT)
    from ambient_tui.cluster.client import ClusterAccessError
    from ambient_tui.commands import target_from_args
    try:
        target = target_from_args(args)  # one pinned target for discovery, plan and steps
    except ClusterAccessError as e:
        return refuse(f"nothing changed: {e}", EXIT_INPUT)
    session = UninstallSession(target.kubeconfig_path(), target.context)
    if getattr(args, "force_unlock", False):
        from ambient_tui.commands.unlock import force_unlock_interactive
        code = force_unlock_interactive(target.kubeconfig_path(), target.context, out, err, stdin)
        if code:
            return code

    try:
        before = session.discover()
    except u.DiscoveryError as e:  # Refused included: it says "refused, nothing changed"
        msg = str(e)
        return refuse(msg if msg.startswith("refused") else f"nothing changed: {msg}",
                      EXIT_FAILED if msg.startswith("refused") else EXIT_INPUT)
    cluster = session.cluster

    plan = session.plan(before, opts)
    items = u.deletion_list(before, opts)
    say(f"Cluster {cluster}: " + (f"{len(items)} item(s) will be removed:" if items else "nothing to remove."))
    for line in items:  # an indented line is part of the item above it (a release's objects)
        say(f"    {line}" if line.startswith("  ") else f"  - {line}")
    for line in u.kept_list(before, opts):
        say(f"  kept: {line}")
    if args.revert_cni and before.cni_change is None:
        say("  --revert-cni: nothing to revert; the journal records no VPC CNI change by this tool")
    if before.enrolled_namespaces and not opts.keep_namespace_labels:
        say("  warning: unenrolled namespaces lose mTLS; their traffic is sent in plain text")

    if plan.steps:
        try:
            denied = session.denied(before, opts)
        except u.DiscoveryError as e:
            return refuse(f"nothing changed: {e}", EXIT_INPUT)
        if denied:
            return refuse(session.refusal(denied))

    if args.dry_run:
        say("dry-run: nothing is changed. The plan:")
        for i, s in enumerate(plan.steps, 1):
            say(f"  [{i}/{len(plan.steps)}] {s.title}: {s.command}")
        return EXIT_OK
    if not plan.steps:
        return _verify(session, before, opts, say, verified_message)

    if not args.yes:
        phrase = session.phrase
        print(f"Type {session.phrase_kind} ({phrase}) to remove the items above: ", end="", file=out, flush=True)
        typed = (stdin.readline() or "").rstrip("\r\n")  # exact: no trimming, no case folding
        if not session.confirmed(typed):
            return refuse(f"aborted, nothing changed: typed {typed!r}, expected {phrase!r} exactly")

    from ambient_tui.cluster.lease import LockError, LockHeld
    from ambient_tui.engine.runner import LeftoverProcess

    journal = session.journal()
    try:  # a journal that cannot be written stops the uninstall before its first change
        journal.check()
    except JournalError as e:
        journal.close()
        return refuse(f"nothing changed: {e}")
    runner = Runner(plan, journal=journal, lock=session.lock(journal))
    if args.resume:
        done = session.resume(runner)
        if done:
            say(f"resuming: {len(done)} step(s) already done: {', '.join(done)}")
    total = len(plan.steps)
    index = {s.id: i for i, s in enumerate(plan.steps, 1)}

    def progress(ev) -> None:
        step = plan.step(ev.step_id)
        tag = f"[{index[ev.step_id]}/{total}]"
        if ev.kind is EventKind.STARTED:
            say(f"{tag} {step.title}: {step.command}")
        elif ev.kind is EventKind.FINISHED:
            say(f"{tag} {ev.state}{': ' + ev.message if ev.message else ''}")
        elif ev.kind is EventKind.FAILED:
            say(f"{tag} FAILED: {ev.message}")
        elif ev.kind is EventKind.OUTPUT and ev.line.strip():
            say(f"      {ev.line}")

    runner.subscribe(progress)
    try:
        ok = asyncio.run(runner.run())
    except JournalError as e:
        journal.close()
        return refuse(str(e))
    except (LockHeld, LockError, LeftoverProcess) as e:
        journal.close()
        return refuse(str(e))
    try:
        session.end_install_runs(journal, ok)
    finally:
        journal.close()
    if runner.journal_error is not None:
        say(f"ambient-tui uninstall: {runner.journal_error}; stopped at a step boundary, rerun with "
            "--resume once the journal can be written")
    elif not ok:
        failed = [s for s in plan.steps if not s.state.done]
        if failed:
            say(f"stopped at {failed[0].title}; fix the cause and rerun with --resume")
    code = _verify(session, before, opts, say, verified_message)
    return code if ok else EXIT_FAILED


def _verify(session, before, opts, say, verified_message) -> int:
    from ambient_tui.plans import uninstall as u

    try:
        left = session.verify(before, opts)
    except u.DiscoveryError as e:
        say(f"verification could not read the cluster: {e}")
        return EXIT_FAILED
    if not left:
        say(verified_message(before, opts))
        return EXIT_OK
    say(f"verification: {len(left)} item(s) left:")
    for item in left:
        say(f"  - {item.what}: remove with `{item.command}`")
    return EXIT_FAILED
