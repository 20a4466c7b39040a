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

MARK = {PASS: "✔", WARN: "!", FAIL: "✘", SKIP: "-"}


def register(sub) -> None:
    from ambient_tui.cli import _plan_args

    p = sub.add_parser("preflight", help="check the cluster and tools before installing")
    p.add_argument("--json", action="store_true", help='print {"checks": [...]}')
    _plan_args(p)  # the same chart source and values as the install: preflight renders them
    access_args(p)
    p.set_defaults(func=cmd_preflight)

    p = sub.add_parser("install", help="preflight, then install Istio ambient")
    _plan_args(p)
    access_args(p)
    p.add_argument("--yes", action="store_true", help="do not ask before running the plan")
    p.add_argument("--dry-run", action="store_true", help="show what would run; change nothing")
    p.add_argument("--resume", action="store_true", help="skip steps the journal saw finish")
    p.add_argument("--force", action="store_true", help="install even when a preflight check fails")
    p.add_argument("--fix", action="store_true",
                   help="run the offered fixes (VPC CNI enforcing mode) as the plan's first phase")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser("status", help="Istio releases, readiness and enrolled namespaces")
    p.add_argument("--json", action="store_true")
    access_args(p)
    p.set_defaults(func=cmd_status)


def _settings_from(args):
    from ambient_tui.cli import UsageError, _settings
    from ambient_tui.settings import Settings

    if hasattr(args, "values"):
        s = _settings(args)
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
    from ambient_tui.cli import UsageError

    try:
        return CheckContext(settings, kubeconfig=args.kubeconfig, context=args.context)
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


def _chart_version(settings, chart: str, fallback: str) -> str:
    """The version of a local chart folder, or the plan's version for a repository source."""
    if settings.chart_source in ("blob", "oci", "gcs_legacy"):
        return fallback
    import yaml
    from ambient_tui.plans.install import COMPONENTS
    chart_dir = next((c[2] for c in COMPONENTS if c[1] == chart), chart)
    for d in (os.path.join(settings.chart_source, chart), os.path.join(settings.chart_source, chart_dir)):
        f = os.path.join(d, "Chart.yaml")
        if os.path.isfile(f):
            return str(yaml.safe_load(open(f)).get("version", fallback))
    return fallback


def already_installed(settings, releases: list[dict], version: str) -> list[str] | None:
    """Names of the wanted releases when all are deployed at the wanted chart version, else None."""
    from ambient_tui.plans.install import COMPONENTS

    if settings.values or settings.method != "helm":
        return None
    want = [c for c in COMPONENTS if c[0] != "istio-ingress" or settings.gateway]
    by_name = {r["name"]: r for r in releases}
    for release, chart, _, _ in want:
        r = by_name.get(release)
        if not r or r["status"] != "deployed" or r["chart_version"].lstrip("v") != \
                _chart_version(settings, chart, version).lstrip("v"):
            return None
    return [w[0] for w in want]


def _printer(plan):
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
            line = f"✔ {ev.step_id} {ev.state}{': ' + ev.message if ev.message else ''}"
        try:
            print(line, flush=True)
        except OSError:  # the terminal is gone (SSH dropped): the journal still gets everything
            pass
    return on_event


def _say(text: str, stream=None) -> None:
    try:
        print(text, file=stream or sys.stdout, flush=True)
    except OSError:
        pass


def fix_steps_for(check, ctx, by_id) -> list:
    """The enforcing-mode fix as steps when the vpc-cni check failed on strict mode.

    Managed add-on: UpdateAddon; self-managed, or unknown without AWS access: the DaemonSet env
    (shown in the plan, so a person with a managed add-on sees it is the DaemonSet path)."""
    from ambient_tui.checks.vpc_cni import enforcing_mode_fix_steps

    # A fix is offered only for strict mode with security groups for pods: a failure on
    # releases without the branch-ENI probe fix, a warning (still worth fixing) on the others.
    if check is None or check.status not in (FAIL, WARN) or not check.fix:
        return []
    eks = by_id.get("aws-eks")
    eks_data = eks.data if eks is not None and eks.status == PASS else {}
    managed = bool(check.data.get("managed"))
    return enforcing_mode_fix_steps(ctx.client(), managed, eks_data.get("cluster"), eks_data.get("region"))


def cmd_install(args) -> int:
    from ambient_tui.engine.journal import Journal, JournalError, JournalRead, journal_path
    from ambient_tui.engine.plan import Phase
    from ambient_tui.engine.runbook import to_markdown
    from ambient_tui.engine.runner import Runner
    from ambient_tui.plans import repair
    from ambient_tui.plans.install import build_install_plan, pin_context

    settings = _settings_from(args)
    ctx, results = run_preflight(args, settings)
    by_id = {c.id: c for c in results}
    access = by_id.get("cluster-access")
    kube_context = access.data.get("context") if access and access.status == PASS else None
    cluster = kube_context or args.context or "default"

    # A run the terminal dropped: say what it was doing, and unstick what helm left pending.
    previous = Journal.read(journal_path(cluster))
    interrupted = repair.interrupted_steps(previous)
    for s in interrupted:
        _say(f"! the last run was interrupted: {s.describe()}")
    existing = by_id.get("existing-istio")
    releases = (existing.data.get("releases") if existing else None) or []
    repairs = []
    if kube_context and releases:
        try:
            histories = repair.stuck_releases(releases, None, args.kubeconfig, kube_context)
            repairs = repair.find_repairs(previous, releases, histories)
        except Exception as e:  # noqa: BLE001 - then the existing-istio failure stands
            _say(f"! could not read helm history to plan a repair: {e}", sys.stderr)
    for r in repairs:
        _say(f"! {r.describe()}")

    fixed: set[str] = set()
    fix_steps = []
    vpc = by_id.get("vpc-cni")
    if getattr(args, "fix", False) and vpc is not None:
        try:
            fix_steps = fix_steps_for(vpc, ctx, by_id)
        except Exception as e:  # noqa: BLE001
            print(f"ambient-tui: cannot build the vpc-cni fix: {e}", file=sys.stderr)
            return 1
        if fix_steps:
            fixed.add("vpc-cni")
    failed = repair.blocking(results, fixed, repairs, releases)
    if failed and not args.force:
        hint = ""
        if vpc is not None and vpc in failed and vpc.fix:
            hint = " The vpc-cni fix can run as the first step of the install: pass --fix."
        print(f"ambient-tui: preflight failed ({', '.join(c.id for c in failed)}); nothing was "
              f"installed. Fix the above, or pass --force to install anyway.{hint}", file=sys.stderr)
        return 1
    gw = by_id.get("gateway-api")
    settings.gateway_api_present = bool(gw and gw.data.get("present"))
    done = already_installed(settings, releases, ctx.version)
    if done and not args.resume and not repairs and not interrupted and not fix_steps:
        print(f"already installed: Istio {ctx.version} ({', '.join(done)} deployed); nothing to change")
        return 0
    plan = build_install_plan(settings, ctx.catalog)
    first = []
    if fix_steps:
        first.append(Phase("fix-vpc-cni", "Fix: VPC CNI enforcing mode (standard)", fix_steps))
    repair_phase = repair.repair_phase(repairs)
    if repair_phase:
        first.append(repair_phase)
    plan.phases[:0] = first
    if not args.yes and not args.dry_run:
        sys.stdout.write(to_markdown(plan))
        sys.stdout.write("Run this plan? [y/N] ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("not confirmed; nothing was changed")
            return 1
    env = {}
    kc = args.kubeconfig
    if kc:
        env["KUBECONFIG"] = kc
    if kube_context:
        pin_context(plan, kube_context)  # the checked context, not whatever is current later
    try:
        journal = Journal.for_cluster(cluster)
    except JournalError as e:
        print(f"ambient-tui: {e}", file=sys.stderr)
        return 2
    from ambient_tui.watch.diagnose import step_watcher
    watcher = step_watcher(kc, kube_context, settings.namespace)
    runner = Runner(plan, journal=journal, dry_run=args.dry_run, env=env or None, step_watcher=watcher)
    runner.subscribe(_printer(plan))
    if interrupted and not args.dry_run:
        # Continue the interrupted run: skip what it finished (only that run, not older ones).
        run = interrupted[0].run
        skipped = runner.resume_from(JournalRead([r for r in previous.records if r.get("run") == run]))
        if skipped:
            _say(f"continuing the interrupted run; already done: {', '.join(skipped)}")
    try:
        ok = asyncio.run(runner.run_interruptible(resume=args.resume))
    except JournalError as e:
        print(f"ambient-tui: {e}", file=sys.stderr)
        return 2
    finally:
        journal.close()
        watcher.stop()
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

    try:
        kube = load_client(args.kubeconfig, args.context)
        kube.server_version()
        st = collect_status(kube, kubeconfig=args.kubeconfig)
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
