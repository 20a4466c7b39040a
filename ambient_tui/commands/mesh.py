"""Headless mesh commands: `mesh`, `enroll`, `unenroll`, `opt-out`, `waypoint`, `verify`,
and `journal` (what ran, as a runbook).

Every change runs as plan steps through the engine's Runner: the plan is printed first, each
step is journaled, and a failure stops the plan with its reason. Exit codes: 0 ok, 1 a
failed step or check (or not confirmed), 2 bad input (one line that says what to do).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any, TextIO

from ambient_tui.commands import access_args

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2
_NS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_POD_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class InputError(Exception):
    """Bad arguments: one line, exit 2."""


class Failed(Exception):
    """The cluster could not be read or a check failed: one line, exit 1."""


def register(sub: Any) -> None:
    p = sub.add_parser("mesh", help="namespaces (mode, captured pods, waypoint), nodes (ztunnel, istio-cni)")
    p.add_argument("--json", action="store_true")
    access_args(p)
    p.set_defaults(func=cmd_mesh)

    p = sub.add_parser("enroll", help="enrol namespaces in ambient mode (lints their NetworkPolicies first)")
    p.add_argument("namespaces", nargs="+", metavar="NS")
    p.add_argument("--force", action="store_true", help="enrol even when a live NetworkPolicy blocks HBONE")
    p.add_argument("--dry-run", action="store_true", help="show the plan; change nothing")
    access_args(p)
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("unenroll", help="take namespaces out of the mesh (typed confirmation)")
    p.add_argument("namespaces", nargs="+", metavar="NS")
    p.add_argument("--yes", action="store_true", help="do not ask for the typed confirmation")
    access_args(p)
    p.set_defaults(func=cmd_unenroll)

    p = sub.add_parser("opt-out", help="opt pods out of the mesh (istio.io/dataplane-mode=none)")
    p.add_argument("-n", "--namespace", required=True, metavar="NS")
    p.add_argument("pods", nargs="+", metavar="POD")
    access_args(p)
    p.set_defaults(func=cmd_opt_out)

    p = sub.add_parser("waypoint", help="apply, list or delete waypoints (Gateways of class istio-waypoint)")
    wsub = p.add_subparsers(dest="waypoint_command", metavar="{apply,list,delete}")
    wsub.required = True
    a = wsub.add_parser("apply", help="apply a waypoint in a namespace")
    a.add_argument("-n", "--namespace", required=True, metavar="NS")
    a.add_argument("--name", default="waypoint")
    a.add_argument("--for", dest="for_", default="service", choices=("service", "workload", "all", "none"),
                   help="traffic the waypoint handles (istio.io/waypoint-for)")
    a.add_argument("--enroll-namespace", action="store_true",
                   help="label the namespace istio.io/use-waypoint=NAME")
    access_args(a)
    a.set_defaults(func=cmd_waypoint_apply)
    lst = wsub.add_parser("list", help="waypoints and whether they are ready")
    lst.add_argument("-n", "--namespace", metavar="NS")
    lst.add_argument("--json", action="store_true")
    access_args(lst)
    lst.set_defaults(func=cmd_waypoint_list)
    d = wsub.add_parser("delete", help="delete a waypoint (typed confirmation)")
    d.add_argument("-n", "--namespace", required=True, metavar="NS")
    d.add_argument("--name", default="waypoint")
    d.add_argument("--yes", action="store_true", help="do not ask for the typed confirmation")
    access_args(d)
    d.set_defaults(func=cmd_waypoint_delete)

    p = sub.add_parser("verify", help="prove enrolled pods are in the mesh (API vs ztunnel's workloads)")
    p.add_argument("-n", "--namespace", action="append", default=[], metavar="NS",
                   help="verify this namespace (repeat; default: every enrolled namespace)")
    p.add_argument("--ztunnel-dump", metavar="FILE",
                   help="read ztunnel's view from a saved config dump (kubectl exec ZTUNNEL -n "
                        "istio-system -- curl -s localhost:15000/config_dump) instead of a live ztunnel")
    p.add_argument("--sample", action="store_true",
                   help=f"the guide's sample check instead: a client and a server in a scratch namespace "
                        "(enrolled), a connection, ztunnel's view, then everything removed")
    p.add_argument("--json", action="store_true")
    access_args(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("journal", help="what ran (commands, times, results, output tails) as a runbook")
    p.add_argument("--run", default="last", metavar="last|ID", help="which run (default: the last)")
    p.add_argument("--format", choices=("markdown", "shell", "json"), default="markdown")
    p.add_argument("--cluster", metavar="NAME", help="journal of this cluster (default: the kube context)")
    access_args(p)
    p.set_defaults(func=cmd_journal)


# --- plumbing ------------------------------------------------------------------------------

def _guarded(fn):
    """One line and the right exit code for every expected failure."""
    def wrapper(args, out: TextIO | None = None, err: TextIO | None = None, stdin: TextIO | None = None) -> int:
        out, err, stdin = out or sys.stdout, err or sys.stderr, stdin or sys.stdin
        from ambient_tui.cluster.client import ClusterAccessError
        from ambient_tui.cluster.lease import LockError, LockHeld
        from ambient_tui.engine.journal import JournalError
        from ambient_tui.engine.runner import LeftoverProcess

        try:
            return fn(args, out, err, stdin)
        except InputError as e:
            print(f"ambient-tui {args.command}: {e}", file=err, flush=True)
            return EXIT_INPUT
        except (Failed, ClusterAccessError, JournalError, LockHeld, LockError, LeftoverProcess) as e:
            print(f"ambient-tui {args.command}: {e}", file=err, flush=True)
            return EXIT_FAILED
    wrapper.__name__ = fn.__name__
    return wrapper


def _say(text: str, out: TextIO) -> None:
    try:
        print(text, file=out, flush=True)
    except OSError:  # the terminal is gone: the journal still has everything
        pass


def namespaces_arg(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        for ns in (x.strip() for x in v.split(",")):
            if not ns:
                continue
            if not _NS_NAME.match(ns):
                raise InputError(f"{ns!r} is not a namespace name (lower-case letters, digits and '-', at most 63)")
            if ns not in out:
                out.append(ns)
    if not out and values:
        raise InputError("give at least one namespace")
    return out


def _client(args):
    from ambient_tui.cluster.client import ClusterAccessError, load_client

    try:
        kube = load_client(args.kubeconfig, args.context)
    except ClusterAccessError as e:
        raise InputError(e.message) from None
    kube.server_version()  # unreachable or unauthorized: one line, exit 1
    return kube


def _existing(kube, namespaces: list[str]) -> dict[str, dict]:
    """name -> labels; a missing namespace is an input error."""
    found = {}
    for ns in namespaces:
        obj = kube.get_namespace(ns)
        if obj is None:
            raise InputError(f"namespace {ns} does not exist; create it (kubectl create namespace {ns}) "
                             "or check the name with `ambient-tui mesh`")
        found[ns] = dict((obj.get("metadata") or {}).get("labels") or {})
    return found


def _run(kube, plan, out: TextIO, dry_run: bool = False, journal=None) -> bool:
    """Print the plan, run it through the Runner (journaled), print each step's result.
    `journal`: one already open (several plans in one run); else the cluster's, closed after."""
    import asyncio

    from ambient_tui.engine.events import EventKind
    from ambient_tui.engine.journal import Journal
    from ambient_tui.engine.runner import Runner
    from ambient_tui.mesh.enroll import change_lock

    total = len(plan.steps)
    _say(f"plan: {plan.title} ({total} step{'s' if total != 1 else ''})", out)
    for i, s in enumerate(plan.steps, 1):
        _say(f"  [{i}/{total}] {s.title}: {s.command}", out)
    own = journal is None
    journal = journal or Journal.for_cluster(kube.context or "default")
    runner = Runner(plan, journal=journal, dry_run=dry_run,
                    lock=None if dry_run else change_lock(kube, plan.title, journal))
    index = {s.id: i for i, s in enumerate(plan.steps, 1)}

    def progress(ev) -> None:
        tag = f"[{index[ev.step_id]}/{total}]"
        if ev.kind is EventKind.FINISHED:
            _say(f"{tag} {ev.state}{': ' + ev.message if ev.message else ''}", out)
        elif ev.kind is EventKind.FAILED:
            _say(f"{tag} FAILED: {ev.message}", out)
        elif ev.kind is EventKind.OUTPUT and ev.line.strip():
            _say(f"      {ev.line}", out)

    runner.subscribe(progress)
    try:
        # SIGHUP/SIGTERM (a dropped SSH session) cancel the running step, journaled as such
        return asyncio.run(runner.run_interruptible())
    finally:
        if own:
            journal.close()


def _confirm(expected: str, what: str, out: TextIO, stdin: TextIO) -> bool:
    from ambient_tui.engine.confirm import confirmed

    print(f"Type {expected!r} to {what}: ", end="", file=out, flush=True)
    return confirmed((stdin.readline() or "").rstrip("\r\n"), expected)


# --- mesh ----------------------------------------------------------------------------------

@_guarded
def cmd_mesh(args, out, err, stdin) -> int:
    from ambient_tui.mesh.state import collect

    kube = _client(args)
    state = collect(kube)
    if args.json:
        out.write(json.dumps({"context": kube.context, **state.to_dict()}, indent=2) + "\n")
        return EXIT_OK
    _say(f"context {kube.context}", out)
    _say(f"{'NAMESPACE':24} {'MODE':9} {'CAPTURED':>9} {'WAYPOINT':20} NETPOL", out)
    for n in state.namespaces:
        wp = f"{n.waypoint} ({n.waypoint_state})" if n.waypoint else "-"
        np = "-" if n.netpol_errors is None else ("ok" if not n.netpol_errors else f"{n.netpol_errors} blocking")
        _say(f"{n.name:24} {n.mode:9} {f'{n.captured}/{n.pods}':>9} {wp:20} {np}", out)
    _say("", out)
    _say(f"{'NODE':24} {'READY':6} {'ZTUNNEL':28} {'ISTIO-CNI':28} AMBIENT PODS", out)
    for n in state.nodes:
        z = f"{n.ztunnel} {'ready' if n.ztunnel_ready else 'NOT READY'}" if n.ztunnel else "none"
        c = f"{n.cni} {'ready' if n.cni_ready else 'NOT READY'}" if n.cni else "none"
        mark = "" if n.in_mesh or not n.ambient_pods else "  <- these pods are not in the mesh"
        _say(f"{n.name:24} {'yes' if n.ready else 'no':6} {z:28} {c:28} {n.ambient_pods}{mark}", out)
    for note in state.notes:
        _say(f"note: {note}", out)
    return EXIT_OK


# --- enrolment -----------------------------------------------------------------------------

@_guarded
def cmd_enroll(args, out, err, stdin) -> int:
    from ambient_tui.mesh import enroll
    from ambient_tui.mesh.state import EXCLUDED_NAMESPACES, namespace_mode

    wanted = namespaces_arg(args.namespaces)
    bad = [ns for ns in wanted if ns in EXCLUDED_NAMESPACES]
    if bad:
        raise InputError(f"{', '.join(bad)}: the control plane's and Kubernetes' own namespaces are "
                         "never captured by istio-cni; enrol your application namespaces")
    kube = _client(args)
    labels = _existing(kube, wanted)
    todo = [ns for ns in wanted if namespace_mode(ns, labels[ns]) != "ambient"]
    for ns in wanted:
        if ns not in todo:
            _say(f"{ns} is already enrolled; nothing to change", out)
        elif namespace_mode(ns, labels[ns]) == "sidecar":
            _say(f"warning: {ns} has sidecar injection on; its pods keep their sidecars until restarted "
                 "without it", out)
    if not todo:
        return EXIT_OK
    problems = enroll.enrolment_gate(kube, todo)
    for p in problems:
        _say(("warning (forced): " if args.force else "blocked: ") + p, out)
    if problems and not args.force:
        _say("nothing was enrolled: allow TCP 15008 (HBONE) and 169.254.7.127/32 (kubelet probes) in "
             "those policies (`ambient-tui netpol template allow-hbone`), or pass --force", err)
        return EXIT_FAILED
    ok = _run(kube, enroll.enroll_plan(kube, todo), out, dry_run=args.dry_run)
    if ok and not args.dry_run:
        _say(f"enrolled: {', '.join(todo)}. Pods already running are captured by istio-cni now; "
             "check with `ambient-tui verify`", out)
    return EXIT_OK if ok else EXIT_FAILED


@_guarded
def cmd_unenroll(args, out, err, stdin) -> int:
    from ambient_tui.mesh import enroll
    from ambient_tui.mesh.state import namespace_mode

    wanted = namespaces_arg(args.namespaces)
    kube = _client(args)
    labels = _existing(kube, wanted)
    todo = [ns for ns in wanted if namespace_mode(ns, labels[ns]) == "ambient"]
    for ns in wanted:
        if ns not in todo:
            _say(f"{ns} is not enrolled; nothing to change", out)
    if not todo:
        return EXIT_OK
    _say(f"Unenrolling removes istio.io/dataplane-mode from {', '.join(todo)}: their pods leave the "
         "mesh and talk in plain text (no mTLS), and AuthorizationPolicies stop applying to them.", out)
    if not args.yes and not _confirm(",".join(todo), "unenrol", out, stdin):
        _say("not confirmed; nothing was changed", err)
        return EXIT_FAILED
    ok = _run(kube, enroll.unenroll_plan(kube, todo), out)
    return EXIT_OK if ok else EXIT_FAILED


@_guarded
def cmd_opt_out(args, out, err, stdin) -> int:
    from ambient_tui.mesh import enroll

    ns = namespaces_arg([args.namespace])[0]
    for pod in args.pods:
        if not _POD_NAME.match(pod):
            raise InputError(f"{pod!r} is not a pod name")
    kube = _client(args)
    names = {(p.get("metadata") or {}).get("name") for p in kube.list_pods(ns)}
    missing = [p for p in args.pods if p not in names]
    if missing:
        raise InputError(f"no pod {', '.join(missing)} in {ns}; list them with `ambient-tui pods -n {ns}`")
    ok = _run(kube, enroll.opt_out_plan(kube, ns, list(args.pods)), out)
    return EXIT_OK if ok else EXIT_FAILED


# --- waypoints -----------------------------------------------------------------------------

@_guarded
def cmd_waypoint_apply(args, out, err, stdin) -> int:
    from ambient_tui.mesh import waypoint

    ns = namespaces_arg([args.namespace])[0]
    if not _NS_NAME.match(args.name):
        raise InputError(f"--name {args.name!r} is not a valid name")
    kube = _client(args)
    _existing(kube, [ns])
    ok = _run(kube, waypoint.apply_plan(kube, ns, args.name, args.enroll_namespace, args.for_), out)
    if ok:
        found = [w for w in waypoint.list_waypoints(kube, ns) if w.name == args.name]
        state = found[0].reason() if found else "not listed"
        _say(f"waypoint {ns}/{args.name}: {state}", out)
    return EXIT_OK if ok else EXIT_FAILED


def _gateway_api_missing(e) -> bool:
    return getattr(e, "kind", "") == "not-found"


@_guarded
def cmd_waypoint_list(args, out, err, stdin) -> int:
    from ambient_tui.cluster.client import ClusterAccessError
    from ambient_tui.mesh import waypoint

    ns = namespaces_arg([args.namespace])[0] if args.namespace else None
    kube = _client(args)
    try:
        wps = waypoint.list_waypoints(kube, ns)
    except ClusterAccessError as e:
        if not _gateway_api_missing(e):
            raise
        raise Failed("the Gateway API CRDs are not installed, so there are no waypoints; "
                     "install them (the install plan's Gateway API step)") from None
    if args.json:
        out.write(json.dumps([{"namespace": w.namespace, "name": w.name, "for": w.for_, "ready": w.ready,
                               "programmed": w.programmed, "has_deployment": w.has_deployment,
                               "state": w.reason()} for w in wps], indent=2) + "\n")
        return EXIT_OK
    if not wps:
        _say("no waypoints" + (f" in {ns}" if ns else ""), out)
    for w in wps:
        _say(f"{w.namespace}/{w.name}  for={w.for_ or '-'}  {w.reason()}", out)
    return EXIT_OK


@_guarded
def cmd_waypoint_delete(args, out, err, stdin) -> int:
    from ambient_tui.mesh import waypoint

    ns = namespaces_arg([args.namespace])[0]
    kube = _client(args)
    _existing(kube, [ns])
    uses = waypoint.namespace_uses(kube, ns)
    present = any(w.name == args.name for w in waypoint.list_waypoints(kube, ns))
    if not present and uses != args.name:
        _say(f"no waypoint {ns}/{args.name}; nothing to delete", out)
        return EXIT_OK
    _say(f"This deletes Gateway {ns}/{args.name} (istiod then removes its Deployment and Service)"
         + (f" and the label istio.io/use-waypoint={uses} from namespace {ns}" if uses == args.name else "")
         + "; traffic that used it loses its L7 policies.", out)
    if not args.yes and not _confirm(ns, "delete the waypoint", out, stdin):
        _say("not confirmed; nothing was changed", err)
        return EXIT_FAILED
    plan = waypoint.delete_plan(kube, ns, args.name, unlabel=uses == args.name)
    if not present:
        plan.phases[0].steps = plan.phases[0].steps[1:]  # only the stale label is left
    ok = _run(kube, plan, out)
    return EXIT_OK if ok else EXIT_FAILED


# --- verify --------------------------------------------------------------------------------

@_guarded
def cmd_verify(args, out, err, stdin) -> int:
    from ambient_tui.mesh.verify import verify

    chosen = namespaces_arg(args.namespace) if args.namespace else None
    dump = args.ztunnel_dump
    if dump:
        import os
        if not os.path.isfile(dump):
            raise InputError(f"--ztunnel-dump {dump}: no such file")
    kube = _client(args)
    if args.sample:
        return _sample(args, kube, out, dump)
    if chosen:
        _existing(kube, chosen)
    if not args.json:
        _say("asking ztunnel for its workloads (istioctl ztunnel-config workloads)…", err)
    result = verify(kube, chosen, args.kubeconfig, kube.context, dump=dump)
    if args.json:
        out.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return EXIT_OK if result.proven else EXIT_FAILED
    if not result.namespaces:
        _say("no enrolled namespaces to verify; enrol one with `ambient-tui enroll NS`", out)
    if result.ztunnel_asked:
        _say(f"ztunnel's view: {result.source}", out)
    else:
        _say(f"ztunnel could not be asked: {result.ztunnel_error}", out)
        _say("NOT VERIFIED: no pod is counted as in the mesh without ztunnel's own view; "
             "what the API says about each pod follows.", out)
    for n in result.namespaces:
        head = f"{n.namespace}: {n.in_mesh}/{n.pods} pods in the mesh (HBONE)" if result.ztunnel_asked \
            else f"{n.namespace}: {n.pods} pods (not verified)"
        _say(head, out)
        for m in n.missing:
            _say(f"  {'·' if m.expected else '-'} {m.pod} on {m.node or '(unscheduled)'}: {m.reason}"
                 + (f"; {m.fix}" if m.fix else "") + (" (on purpose)" if m.expected else ""), out)
    if result.services:
        _say("services and their waypoint (istioctl ztunnel-config services):", out)
        for s in result.services:
            _say(f"  {s.namespace}/{s.name}: waypoint {s.waypoint or 'None'}", out)
    elif result.services_error:
        _say(f"services could not be read from ztunnel: {result.services_error}", out)
    if result.proven:
        _say("verified: every pod of these namespaces is in the mesh (but those kept out on purpose)", out)
    return EXIT_OK if result.proven else EXIT_FAILED


def _sample(args, kube, out, dump) -> int:
    from ambient_tui.mesh import sample
    from ambient_tui.mesh.verify import istioctl_argv, parse_workloads, run_istioctl

    if kube.get_namespace(sample.NAMESPACE) is not None:
        raise InputError(f"namespace {sample.NAMESPACE} already exists (a sample check that did not "
                         f"finish?); delete it first: kubectl delete namespace {sample.NAMESPACE}")
    kubectl_args = (["--kubeconfig", args.kubeconfig] if args.kubeconfig else []) + ["--context", kube.context]

    def ztunnel():
        code, text = run_istioctl(istioctl_argv("workloads", args.kubeconfig, kube.context, dump))
        return (parse_workloads(text), "") if code == 0 else (None, (text.strip().splitlines() or ["no output"])[-1])

    from ambient_tui.engine.journal import Journal

    ok = False
    journal = Journal.for_cluster(kube.context or "default")  # one run: the check and its clean-up
    try:
        ok = _run(kube, sample.check_plan(kube, kubectl_args, ztunnel=ztunnel), out, journal=journal)
    finally:  # remove it all, whatever happened
        cleaned = _run(kube, sample.cleanup_plan(kube), out, journal=journal)
        journal.close()
    if ok and cleaned:
        _say("sample check passed: the client reached the server over HBONE; the sample is removed", out)
        return EXIT_OK
    _say("sample check NOT passed" + ("" if cleaned else f"; namespace {sample.NAMESPACE} may be left: "
                                      f"kubectl delete namespace {sample.NAMESPACE}"), out)
    return EXIT_FAILED


# --- journal -------------------------------------------------------------------------------

@_guarded
def cmd_journal(args, out, err, stdin) -> int:
    from ambient_tui.engine import journal_export as jx
    from ambient_tui.engine.journal import Journal, journal_path

    cluster = args.cluster or args.context
    if not cluster:
        from ambient_tui.cluster.target import current_context
        cluster = current_context(args.kubeconfig) or "default"
    path = journal_path(cluster)
    read = Journal.read(path)
    if read.corrupt:
        lines = ", ".join(str(n) for n, _ in read.corrupt[:10])
        _say(f"journal {path}: {len(read.corrupt)} unreadable line(s) skipped (line {lines})", err)
    if not read.records:
        raise InputError(f"no journal for cluster {cluster} at {path}; pass --cluster NAME "
                         "(the kube context the changes ran against)")
    run = jx.select_run(read.records, args.run)
    if run is None:
        known = ", ".join(jx.runs(read.records)[-5:])
        raise InputError(f"no run {args.run!r} in {path}; recent runs: {known}")
    out.write(jx.FORMATS[args.format](run, cluster, jx.ran(read.records, run)))
    return EXIT_OK
