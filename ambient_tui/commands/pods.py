"""`ambient-tui pods`: the live pod pane on its own, without the installer around it.

Scope: istio-system plus the namespaces labelled istio.io/dataplane-mode=ambient (default),
the namespaces given with --namespace, or every namespace (--all-namespaces). The kubeconfig
and context are checked before anything starts, so a typo is one line and exit 2, not a pane
stuck in "reconnecting". Problems the cluster reports later (a namespace that does not
exist, forbidden access) are shown in the pane by the watcher, never as a crash.

This module is engine code: it never imports textual or screens. The pane itself is started
by `ambient_tui.cli.start_pods_ui`, the one place allowed to import the UI.

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

EXIT_OK, EXIT_INPUT = 0, 2
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
    from ambient_tui.cli import start_pods_ui  # cli.py is the only engine module that may import the UI

    return int(start_pods_ui(provider, title=title, slow_link=slow_link) or 0)


def run(args: argparse.Namespace, err: TextIO | None = None,
        launch: Callable[[Any, str], int] | None = None,
        mesh: Callable[..., set[str]] | None = None) -> int:
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
    if launch is None:
        slow_link = bool(getattr(args, "slow_link", False))
        launch = lambda provider, title: _default_launch(provider, title, slow_link)  # noqa: E731
    profile_to = os.environ.get(PROFILE_ENV)
    watcher.start()
    try:
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
