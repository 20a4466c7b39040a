"""`ambient-tui pods`: the live pod pane on its own, without the installer around it.

Scope: istio-system plus the namespaces labelled istio.io/dataplane-mode=ambient (default),
the namespaces given with --namespace, or every namespace (--all-namespaces). The kubeconfig
and context are checked before anything starts, so a typo is one line and exit 2, not a pane
stuck in "reconnecting". Problems the cluster reports later (a namespace that does not
exist, forbidden access) are shown in the pane by the watcher, never as a crash.

This module is engine code: it never imports textual or screens. The pane itself is started
by `ambient_tui.cli.start_pods_ui`, the one place allowed to import the UI.

Without a terminal (a pipe, a cron job, `</dev/null`) the pane cannot run: the pods are listed
once as a plain table instead (exit 0), or one line says why the cluster could not be read
(exit 1), so nothing waits for a terminal that will never come.

Set AMBIENT_TUI_PODS_PROFILE=FILE to write a cProfile of the UI thread to FILE on exit
(benchmarks: see bench/pods_bench.py).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

from ambient_tui.commands import access_args

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2
LIST_TIMEOUT = 30.0  # seconds the no-terminal listing waits for the first complete list
PROFILE_ENV = "AMBIENT_TUI_PODS_PROFILE"
# RFC 1123 label: what the API server accepts as a namespace name.
_NS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "pods", help="open the live pod pane (istio-system and enrolled namespaces by default)",
        description="Watch pods like `kubectl get pods -w`, in a table: `/` filters (text or a "
                    "label selector), `o` cycles the sort column, `O` reverses it, `q` quits.")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    scope.add_argument("-n", "--namespace", action="append", default=[], metavar="NS",
                       help="watch this namespace (repeat, or comma-separate, for more)")
    access_args(p)
    # also accepted before the command (ambient-tui --slow-link pods): same flag, same dest
    p.add_argument("--slow-link", action="store_true", default=argparse.SUPPRESS,
                   help="for a thin SSH link: fewer redraws, no decorative motion")
    p.set_defaults(func=run)
    return p


class InputError(Exception):
    """Bad arguments or kubeconfig: one line, exit 2."""


@dataclass(frozen=True)
class PodsOptions:
    kubeconfig: str | None          # as given; None lets the client read $KUBECONFIG itself
    context: str                    # resolved: the named one, or the kubeconfig's current one
    namespaces: tuple[str, ...] | None  # None: all namespaces; () : decide from the cluster


def kubeconfig_paths(kubeconfig: str | None) -> list[str]:
    """The files the kubernetes client would merge: --kubeconfig, else every $KUBECONFIG entry."""
    if kubeconfig:
        return [kubeconfig]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [p for p in env.split(os.pathsep) if p]
    return [str(Path.home() / ".kube" / "config")]


def resolve_context(kubeconfig: str | None, context: str | None) -> str:
    """The context name to use, or InputError naming the file and the known contexts."""
    from ambient_tui.cluster.client import ClusterAccessError, read_kubeconfig

    paths = kubeconfig_paths(kubeconfig)
    contexts: list[str] = []
    current = ""
    found = False
    for path in paths:
        if not kubeconfig and not Path(path).exists():
            continue  # a missing entry in $KUBECONFIG is skipped, as kubectl does
        try:
            data = read_kubeconfig(path)
        except ClusterAccessError as e:
            raise InputError(e.message) from None
        found = True
        contexts += [str(c.get("name")) for c in data.get("contexts") or [] if c.get("name")]
        current = current or str(data.get("current-context") or "")
    where = ", ".join(paths)
    if not found:
        raise InputError(f"no kubeconfig at {where}; pass --kubeconfig, set KUBECONFIG or run "
                         "`aws eks update-kubeconfig --name CLUSTER`")
    known = ", ".join(sorted(set(contexts))) or "none"
    name = context or current
    if not name:
        raise InputError(f"kubeconfig {where} has no current-context; pass --context (known: {known})")
    if name not in contexts:
        raise InputError(f"context {name!r} is not in kubeconfig {where}; known contexts: {known}")
    return name


def parse_namespaces(values: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        for ns in (v.strip() for v in value.split(",")):
            if not ns:
                continue
            if not _NS_NAME.match(ns):
                raise InputError(f"--namespace {ns!r}: not a valid namespace name "
                                 "(lower-case letters, digits and '-', at most 63)")
            if ns not in out:
                out.append(ns)
    if values and not out:
        raise InputError("--namespace: give at least one namespace name")
    return tuple(out)


def options(args: argparse.Namespace) -> PodsOptions:
    namespaces = None if args.all_namespaces else parse_namespaces(args.namespace)
    return PodsOptions(args.kubeconfig, resolve_context(args.kubeconfig, args.context), namespaces)


def scope_for(opts: PodsOptions, mesh: Callable[..., set[str]] | None = None) -> tuple[str, ...] | None:
    """None (all namespaces), the namespaces given, or istio-system + enrolled namespaces."""
    if opts.namespaces is None or opts.namespaces:
        return opts.namespaces
    if mesh is None:
        from ambient_tui.watch.pods import mesh_namespaces as mesh
    return tuple(sorted(mesh(kubeconfig=opts.kubeconfig, context=opts.context)))


def _default_launch(provider: Any, title: str, slow_link: bool = False) -> int:
    raise RuntimeError("the pods UI is started by cli.py (its parser sets `launch`); nothing launched it")


def has_terminal() -> bool:
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def print_once(watcher: Any, out: TextIO, err: TextIO, timeout: float = LIST_TIMEOUT) -> int:
    """Wait for the first complete list, print it as a table; one line when it cannot be read.
    A lost connection ends the wait at once: the point is to never hang."""
    import time

    from ambient_tui.watch.pods import RECONNECTING, WATCHING
    from ambient_tui.watch.rows import COLUMNS

    deadline = time.monotonic() + timeout
    while True:
        snap = watcher.snapshot()
        if snap.state == WATCHING:
            break
        if snap.state == RECONNECTING or time.monotonic() > deadline:
            why = snap.last_error or f"no complete pod list within {timeout:g}s"
            print(f"ambient-tui pods: cannot list pods: {why}; check the kubeconfig and the network "
                  "(`ambient-tui pods` in a terminal keeps retrying)", file=err, flush=True)
            return EXIT_FAILED
        time.sleep(0.05)
    now = time.time()
    rows = [r.cells(now) for _, r in sorted(snap.rows.items())]
    header = tuple(c.upper() for c in COLUMNS)
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    for cells in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip(), file=out)
    for scope, message in sorted(snap.messages.items()):
        print(f"ambient-tui pods: {scope}: {message}", file=err)
    if not rows:
        print("no pods in scope", file=err)
    out.flush()
    return EXIT_OK


def run(args: argparse.Namespace, err: TextIO | None = None,
        launch: Callable[[Any, str], int] | None = None,
        mesh: Callable[..., set[str]] | None = None, out: TextIO | None = None,
        terminal: bool | None = None) -> int:
    """Check the input, start a PodWatcher on the scope, open the pane, stop the watcher."""
    from ambient_tui.watch.pods import PodWatcher

    err = err or sys.stderr
    try:
        opts = options(args)
    except InputError as e:
        print(f"ambient-tui pods: {e}", file=err, flush=True)
        return EXIT_INPUT
    scope = scope_for(opts, mesh)
    watcher = PodWatcher(namespaces=scope, kubeconfig=opts.kubeconfig, context=opts.context)
    title = f"pods · context: {opts.context}"
    if terminal is None:
        terminal = launch is not None or has_terminal()
    if launch is None:
        slow_link = bool(getattr(args, "slow_link", False))
        chosen = getattr(args, "launch", None) or _default_launch
        launch = lambda provider, title: chosen(provider, title, slow_link)  # noqa: E731
    profile_to = os.environ.get(PROFILE_ENV)
    watcher.start()
    try:
        if not terminal:
            return print_once(watcher, out or sys.stdout, err)
        if not profile_to:
            return int(launch(watcher, title) or 0)
        import cProfile

        prof = cProfile.Profile()
        try:
            return int(prof.runcall(launch, watcher, title) or 0)
        finally:
            prof.dump_stats(profile_to)
    finally:
        watcher.stop(timeout=2.0)
