"""Headless `preflight`, `install` and `status`.

Exit codes: 0 ok, 1 a check or step failed (or the person declined), 2 usage or input error.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from ambient_tui.checks.model import FAIL, PASS, SKIP, WARN
from ambient_tui.commands import access_args
from ambient_tui.commands.common import UsageError, plan_args, settings_from_args

MARK = {PASS: "✔", WARN: "!", FAIL: "✘", SKIP: "-"}


def register(sub) -> None:
    p = sub.add_parser("preflight", help="check the cluster and tools before installing")
    p.add_argument("--json", action="store_true", help='print {"checks": [...]}')
    plan_args(p)  # the same chart source and values as the install: preflight renders them
    access_args(p)
    p.set_defaults(func=cmd_preflight)

    p = sub.add_parser("install", help="preflight, then install Istio ambient")
    plan_args(p)
    access_args(p)
    p.add_argument("--yes", action="store_true", help="do not ask before running the plan")
    p.add_argument("--dry-run", action="store_true", help="show what would run; change nothing")
    p.add_argument("--resume", action="store_true", help="skip steps the journal saw finish")
    p.add_argument("--force", action="store_true", help="install even when a preflight check fails")
    p.add_argument("--force-enroll", action="store_true",
                   help="enrol --enroll namespaces even when their live NetworkPolicies would block HBONE")
    p.add_argument("--fix", action="store_true",
                   help="run the offered fixes (VPC CNI enforcing mode) as the plan's first phase")
    from ambient_tui.commands.unlock import add_flag
    add_flag(p)
    p.add_argument("--upgrade-gateway-api", action="store_true",
                   help="agree to upgrade installed Gateway API CRDs that are older than the release "
                        "needs (in their own channel)")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser("status", help="Istio releases, readiness and enrolled namespaces")
    p.add_argument("--json", action="store_true")
    access_args(p)
    p.set_defaults(func=cmd_status)


def _settings_from(args):
    from ambient_tui.settings import Settings

    if hasattr(args, "values"):
        s = settings_from_args(args)
    else:
        s = Settings(istio_version=args.istio_version, method=args.method)
    s.context = args.context
    if s.chart_source not in ("blob", "oci", "gcs_legacy") and not os.path.isdir(s.chart_source):
        raise UsageError(f"--charts {s.chart_source}: not a directory")
    for comp, path in s.values.items():
        if not os.path.isfile(path):
            raise UsageError(f"--values {comp}={path}: no such file")
    return s


def _context(args, settings):
    from ambient_tui.catalog import UnknownVersion
    from ambient_tui.checks.model import CheckContext

    from ambient_tui.cluster.client import ClusterAccessError
    from ambient_tui.commands import target_from_args

    try:
        target = target_from_args(args)
    except ClusterAccessError:
        target = None  # CheckContext keeps the same error for cluster-access to report
    try:
        return CheckContext(settings, kubeconfig=args.kubeconfig, context=args.context, target=target)
    except UnknownVersion as e:
        raise UsageError(str(e)) from None


def _print_check(c, stream=sys.stdout) -> None:
    print(f"{MARK[c.status]} {c.status:4} {c.id:18} {c.detail}", file=stream, flush=True)
    if c.fix and c.status in (FAIL, WARN):
        print(f"  fix: {c.fix}", file=stream, flush=True)


def run_preflight(args, settings, as_json: bool = False, stream=sys.stdout):
    from ambient_tui.checks.runner import run_checks

    ctx = _context(args, settings)
    if not as_json:
        print(f"preflight for Istio {ctx.version} ({settings.method})", file=stream, flush=True)
    results = run_checks(ctx, on_result=None if as_json else (lambda c: _print_check(c, stream)))
    return ctx, results


def cmd_preflight(args) -> int:
    settings = _settings_from(args)
    _, results = run_preflight(args, settings, as_json=args.json)
    if args.json:
        print(json.dumps({"checks": [{k: c.to_dict()[k] for k in ("id", "title", "status", "detail", "fix")}
                                     for c in results]}, indent=2))
    else:
        counts = {s: sum(c.status == s for c in results) for s in (PASS, WARN, FAIL, SKIP)}
        print(", ".join(f"{v} {k}" for k, v in counts.items()))
    return 1 if any(c.status == FAIL for c in results) else 0


# The mark of a finished step: only a step that let the plan go on gets a tick.
END_MARK = {"succeeded": "✔", "warned": "!", "skipped": "-", "cancelled": "■", "failed": "✘"}


def _printer(plan, stream=None):
    from ambient_tui.engine.redact import redact

    titles = {s.id: s.title for s in plan.steps}
    fixes_shown: set = set()  # a cause shown while waiting, then again as it ends the wait

    def on_event(ev) -> None:
        from ambient_tui.engine.events import EventKind
        if ev.kind is EventKind.STARTED:
            line = f"▶ {titles.get(ev.step_id, ev.step_id)}: {ev.line}"
        elif ev.kind is EventKind.OUTPUT:
            line = f"  {ev.line}"
        elif ev.kind is EventKind.CAUSE:  # why the wait is stuck (watch/diagnose.py)
            end = "ending the wait" if ev.cause and ev.cause.permanent else "still waiting"
            line = f"! {ev.step_id}: {ev.message} ({end})"
            if ev.cause and ev.cause.detail:
                line += "\n  " + ev.cause.detail.replace("\n", "\n    ")
            if ev.line and (ev.step_id, ev.line) not in fixes_shown:
                fixes_shown.add((ev.step_id, ev.line))
                line += "\n  next: " + ev.line.replace("\n", "\n    ")
        elif ev.kind is EventKind.FAILED:
            line = f"✘ {ev.step_id} failed: {ev.message}".replace("\n", "\n    ")  # a values snippet
        else:
            mark = END_MARK.get(ev.state, "?")
            line = f"{mark} {ev.step_id} {ev.state}{': ' + ev.message if ev.message else ''}"
        line = redact(line)  # helm echoes values and URLs: keys and tokens never reach the terminal
        try:
            print(line, file=stream or sys.stdout, flush=True)
        except OSError:  # the terminal is gone (SSH dropped): the journal still gets everything
            pass
    return on_event


def _say(text: str, stream=None) -> None:
    try:
        print(text, file=stream or sys.stdout, flush=True)
    except OSError:
        pass


def cmd_install(args) -> int:
    from ambient_tui.cluster.lease import ClusterLock, LockError, LockHeld
    from ambient_tui.commands import refuse_if_read_only
    from ambient_tui.engine.journal import Journal, JournalError, journal_path
    from ambient_tui.engine.runbook import to_markdown
    from ambient_tui.engine.runner import LeftoverProcess, Runner, live_recorded
    from ambient_tui.plans import resume
    from ambient_tui.plans.install_session import InstallSession, kube_context_of

    if not args.dry_run:
        refuse_if_read_only(args, "install", "--dry-run shows the plan")
    settings = _settings_from(args)
    settings.force_enroll = args.force_enroll  # read by the enrol phase's netpol gate
    if getattr(args, "force_unlock", False):
        from ambient_tui.commands.unlock import force_unlock_interactive
        code = force_unlock_interactive(args.kubeconfig, args.context)
        if code:
            return code
    # The state directory holds the journal and the pinned target's kubeconfig, which the
    # preflight writes first: one that cannot be written (a file where it should be, a full
    # disk) stops the run here, as one line, before the preflight or any change.
    from ambient_tui.engine.journal import check_state_dir
    try:
        check_state_dir()
    except JournalError as e:
        print(f"ambient-tui: nothing was changed: {e}", file=sys.stderr)
        return 2
    ctx, results = run_preflight(args, settings)
    kube_context = kube_context_of(results)
    cluster = kube_context or args.context or "default"

    # Another run holds the cluster lock: refuse first, naming it (its helm processes are not
    # "an earlier run"). A lock that cannot be read is not refused here: preflight says why
    # (rbac), and the run's own lock acquisition stops before any change.
    if kube_context and not args.dry_run:
        from ambient_tui.cluster import lease
        try:
            holder = lease.current_holder(ctx.client())
        except Exception:  # noqa: BLE001 - LockError, ClusterAccessError
            holder = None
        if holder is not None and not holder.expired() and not holder.gone():
            print(f"ambient-tui: {lease.LockHeld(holder)}", file=sys.stderr)
            return 1

    # The journal is the memory: what an earlier run did (an uninstall ends every install run
    # before it, plans/resume.py), and whether a process it started still runs.
    previous = Journal.read(journal_path(cluster))
    for line in previous.damage_report():  # said once, here; the damaged lines are skipped
        _say(f"! {line}", sys.stderr)
    previous.records = resume.since_uninstall(previous.records)
    for step, pid, argv in live_recorded(previous):
        _say(f"ambient-tui: {os.path.basename(argv[0])} (pid {pid}) of step {step} of an earlier run is "
             f"still running; wait for it to end or stop it (kill {pid}), then run again", sys.stderr)
        return 1
    session = InstallSession(settings, ctx.catalog, cluster_target=ctx.target, kube_factory=ctx.client)
    try:
        outcome = session.decide(results, journal=previous, fix=args.fix, force=args.force, resume=args.resume,
                                 upgrade_gateway_api=args.upgrade_gateway_api)
    except Exception as e:  # noqa: BLE001 - e.g. the fix cannot read aws-node
        print(f"ambient-tui: cannot plan the install: {e}", file=sys.stderr)
        return 1
    for d in outcome.decisions:
        _say(f"{'!' if d.kind in ('interrupted', 'repair', 'refuse') else '·'} {d.line()}")
    refusal = session.refusal(outcome)
    if refusal:
        print(f"ambient-tui: refused: {refusal}", file=sys.stderr)
        return 1
    if outcome.blocking:
        vpc = next((c for c in outcome.blocking if c.id == "vpc-cni"), None)
        hint = (" The vpc-cni fix can run as the first step of the install: pass --fix."
                if vpc and vpc.fix and not args.fix else "")
        print(f"ambient-tui: preflight failed ({', '.join(c.id for c in outcome.blocking)}); nothing was "
              f"installed. Fix the above, or pass --force to install anyway.{hint}", file=sys.stderr)
        return 1
    if outcome.already_installed:
        print(f"already installed: Istio {ctx.version} ({', '.join(outcome.already_installed)} deployed); "
              "nothing to change")
        return 0
    plan = outcome.plan
    # Before anything is asked or changed: a journal that cannot be written (a file or a
    # directory where the state should be, a full disk) stops the run here.
    journal = Journal.for_cluster(cluster)
    try:
        journal.check()
    except JournalError as e:
        print(f"ambient-tui: nothing was changed: {e}", file=sys.stderr)
        return 2
    if not args.yes and not args.dry_run:
        sys.stdout.write(to_markdown(plan))
        sys.stdout.write("Run this plan? [y/N] ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            journal.close()
            print("not confirmed; nothing was changed")
            return 1
    env = ctx.target.tool_env() if ctx.target is not None else None
    lock = ClusterLock(ctx.client(), "install", journal) if kube_context else None
    from ambient_tui.watch.diagnose import step_watcher
    watcher = step_watcher(ctx.kubeconfig, kube_context, settings.namespace)
    runner = Runner(plan, journal=journal, dry_run=args.dry_run, env=env, lock=lock, step_watcher=watcher)
    runner.subscribe(_printer(plan))
    if (outcome.interrupted and not args.dry_run) or args.resume:
        # Continue the interrupted run (only that run), or --resume: skip a finished step only
        # where the cluster still shows its effect.
        run = None if args.resume else outcome.interrupted[0].run
        existing = next((c for c in results if c.id == "existing-istio"), None)
        releases = (existing.data.get("releases") if existing is not None else None) or []
        try:
            state = resume.read_state(ctx.client(), releases)
        except Exception as e:  # noqa: BLE001 - ClusterAccessError
            print(f"ambient-tui: cannot read the cluster to resume: {e}", file=sys.stderr)
            return 1
        decisions = resume.decide(plan.steps, previous.records, state, run)
        skipped = resume.apply(plan, decisions)
        for d in decisions:
            if not d.skip:
                _say(f"! {d.describe()}")
        if not args.dry_run:
            resume.journal_decisions(journal, decisions)
        if skipped:
            _say(f"{'resuming' if args.resume else 'continuing the interrupted run'}; "
                 f"already done: {', '.join(skipped)}")
    try:
        ok = asyncio.run(runner.run_interruptible())
    except JournalError as e:
        print(f"ambient-tui: {e}", file=sys.stderr)
        return 2
    except (LockHeld, LockError, LeftoverProcess) as e:
        print(f"ambient-tui: {e}", file=sys.stderr)
        return 1
    finally:
        journal.close()
        watcher.stop()
    if runner.journal_error is not None:
        done = [s.id for s in plan.steps if s.state.value == "succeeded"]
        _say(f"ambient-tui: {runner.journal_error}. The run stopped at a step boundary"
             + (f" after {', '.join(done)}" if done else " before any change")
             + "; `ambient-tui install` continues once the journal can be written", sys.stderr)
        return 1
    if runner.interrupted:
        running = [s.id for s in plan.steps if s.state.value == "cancelled"]
        _say(f"ambient-tui: {runner.interrupted} during {', '.join(running) or 'the install'}; "
             "run `ambient-tui install` again: it shows the interrupted step, repairs stuck releases "
             "and continues", sys.stderr)
        return 1
    if ok:
        print("dry run: nothing was changed" if args.dry_run else f"installed Istio {ctx.version} (ambient)")
        return 0
    print("install did not finish; fix the failed step and run again with --resume", file=sys.stderr)
    return 1


def collect_status(kube, env=None, kubeconfig=None) -> dict:
    from ambient_tui.checks.core import helm_list
    from ambient_tui.checks.parsers import istio_releases

    out: dict = {"context": kube.context, "releases": [], "workloads": {}, "enrolled": []}
    try:
        out["releases"] = istio_releases(helm_list(env, kubeconfig, kube.context))
    except Exception as e:  # noqa: BLE001
        out["releases_error"] = str(e)
    for kind, name in (("deployment", "istiod"), ("daemonset", "istio-cni-node"), ("daemonset", "ztunnel")):
        try:
            if kind == "deployment":
                d = kube.get_json(f"/apis/apps/v1/namespaces/istio-system/deployments/{name}", f"reading {name}")
                want, ready = d.spec.replicas or 0, d.status.ready_replicas or 0
            else:
                d = kube.get_daemonset("istio-system", name)
                if d is None:
                    raise LookupError
                want, ready = d.status.desired_number_scheduled or 0, d.status.number_ready or 0
            out["workloads"][name] = {"ready": ready, "desired": want, "ok": want > 0 and ready == want}
        except Exception:  # noqa: BLE001 - absent or unreadable
            out["workloads"][name] = {"ready": 0, "desired": 0, "ok": False, "absent": True}
    try:  # why a workload is not Ready: the same causes the install's waits report
        from ambient_tui.watch.diagnose import classify, read_objects
        objs = read_objects(kube)
        for name, w in out["workloads"].items():
            if not w["ok"]:
                w["causes"] = [{"kind": c.kind, "cause": c.summary, "permanent": c.permanent, "fix": c.fix}
                               for c in classify(name, objs, since=0)]
    except Exception as e:  # noqa: BLE001
        out["causes_error"] = str(e)
    out["enrolled"] = sorted(n.metadata.name for n in kube.list_namespaces()
                             if (n.metadata.labels or {}).get("istio.io/dataplane-mode") == "ambient")
    return out


def cmd_status(args) -> int:
    from ambient_tui.cluster.client import ClusterAccessError, load_client
    from ambient_tui.commands import target_from_args

    try:
        target = target_from_args(args)
        kube = load_client(target=target)
        kube.server_version()
        st = collect_status(kube, kubeconfig=target.kubeconfig_path())
    except ClusterAccessError as e:
        print(f"ambient-tui: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(st, indent=2))
    else:
        print(f"context {st['context']}")
        for r in st["releases"]:
            print(f"  release {r['namespace']}/{r['name']}: {r['chart']}-{r['chart_version']} {r['status']}")
        if not st["releases"]:
            print("  no Istio helm releases")
        for name, w in st["workloads"].items():
            state = "absent" if w.get("absent") else f"{w['ready']}/{w['desired']} ready"
            print(f"  {name}: {state}")
            for c in w.get("causes", []):
                print(f"    why: {c['cause']}")
                if c["fix"]:
                    print("    next: " + c["fix"].replace("\n", "\n      "))
        print(f"  enrolled namespaces: {', '.join(st['enrolled']) or 'none'}")
    healthy = all(w["ok"] for w in st["workloads"].values()) and all(
        r["status"] == "deployed" for r in st["releases"])
    return 0 if healthy else 1
