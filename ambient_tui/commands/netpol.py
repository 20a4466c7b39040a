"""`ambient-tui netpol ...`: headless lint and templates.

Exit codes for lint: 0 no error findings (warnings allowed), 1 at least one error
finding, 2 input that cannot be read or parsed (one line: file, document, line, cause),
or a cluster that cannot be read. Bad input never produces a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

import ambient_tui.netpol.lint as lintmod
from ambient_tui.netpol import templates
from ambient_tui.commands import access_args
from ambient_tui.netpol.parse import (BOUNDS, Manifests, ParseError, PolicyDoc, parse_bytes,
                                      parse_manifests, read_file)

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT = 0, 1, 2


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `netpol` command (with `lint` and `template`) to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "netpol", help="ambient-aware NetworkPolicy lint and templates",
        description="Lint NetworkPolicies for Istio ambient mode, or print a template.")
    sub = parser.add_subparsers(dest="netpol_command", metavar="{lint,gate,template}")
    sub.required = True

    lint_p = sub.add_parser(
        "lint", help="lint the NetworkPolicies in manifest files, stdin or the live cluster",
        description="Judge the union of all policies given. Any stream of manifests works "
                    "(kustomize build . | ambient-tui netpol lint -): other kinds are counted "
                    "and skipped. Exit 0: no errors; 1: error findings; 2: unreadable input "
                    "or no cluster access.")
    lint_p.add_argument("files", nargs="*", metavar="FILE", help="YAML file, or - for stdin")
    lint_p.add_argument("--json", action="store_true", help="print findings as JSON")
    lint_p.add_argument("--not-enrolled", action="store_true",
                        help="the namespaces are not in the ambient mesh (skip HBONE/probe rules)")
    lint_p.add_argument("--cluster", action="store_true",
                        help="lint the live policies against live pods, namespaces and "
                             "enrolment (FILEs, if given, replace their live copies)")
    lint_p.add_argument("-n", "--namespace", action="append", metavar="NS", dest="namespaces",
                        help="with --cluster: only these namespaces (repeat); default: all")
    lint_p.add_argument("--istio-namespace", default="istio-system", metavar="NS",
                        help="with --cluster: where istio-cni's ConfigMap lives (excluded namespaces)")
    access_args(lint_p)
    lint_p.set_defaults(func=run_lint)

    gate_p = sub.add_parser(
        "gate", help="before enrolling NS: would its live NetworkPolicies block HBONE or probes?",
        description="Lint the namespace's live policies as if it were enrolled. Exit 0: safe "
                    "to enrol; 1: a blocking finding (printed with its fix); 2: no access.")
    gate_p.add_argument("namespace", metavar="NS")
    gate_p.add_argument("--istio-namespace", default="istio-system", metavar="NS")
    gate_p.add_argument("--force", action="store_true",
                        help="print the blocking findings but exit 0 (enrol anyway)")
    access_args(gate_p)
    gate_p.set_defaults(func=run_gate)

    tpl_p = sub.add_parser("template", help="print an ambient-correct NetworkPolicy template")
    tpl_p.add_argument("name", metavar="NAME", choices=sorted(templates.TEMPLATES),
                       help="one of: " + ", ".join(sorted(templates.TEMPLATES)))
    tpl_p.add_argument("--namespace", "-n", help="namespace of the policy")
    tpl_p.add_argument("--selector", action="append", metavar="K=V",
                       help="pods the policy selects (repeat or comma-separate); default: all")
    tpl_p.add_argument("--port", type=int, help="config server port (allow-egress-to-config-server)")
    tpl_p.add_argument("--to-namespace", help="config server namespace")
    tpl_p.add_argument("--to-selector", action="append", metavar="K=V",
                       help="config server pod labels (default app=config-server)")
    tpl_p.set_defaults(func=run_template)
    return parser


def _read(name: str, stdin: Any) -> Manifests:
    if name == "-":
        buffer = getattr(stdin, "buffer", None)
        if buffer is not None:
            return parse_bytes(buffer.read(BOUNDS.input_bytes + 1), "<stdin>")
        return parse_manifests(stdin.read(), "<stdin>")
    return read_file(name)


def run_lint(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None,
             stdin: TextIO | None = None, cluster: Any = None) -> int:
    out, err, stdin = out or sys.stdout, err or sys.stderr, stdin or sys.stdin
    if not args.files and not args.cluster:
        err.write("error: give a FILE (or - for stdin), or --cluster to lint the live policies\n")
        return EXIT_INPUT
    if getattr(args, "namespaces", None) and not args.cluster:
        err.write("error: -n/--namespace goes with --cluster\n")
        return EXIT_INPUT
    docs: list[PolicyDoc] = []
    problems: list[ParseError] = []
    skipped: dict[str, int] = {}
    for name in args.files:
        try:
            got = _read(name, stdin)
        except ParseError as exc:
            problems.append(exc)
            continue
        docs.extend(got.policies)
        for kind, n in got.skipped.items():
            skipped[kind] = skipped.get(kind, 0) + n
    note = Manifests(skipped=skipped).note()
    notes = [note] if note else []
    context, live_policies, live_docs = None, [], []
    if args.cluster and not problems:
        from ambient_tui.netpol.cluster import ClusterError, NetpolCluster
        from ambient_tui.netpol.live import load

        cluster = cluster or NetpolCluster(args.kubeconfig, args.context)
        try:
            live = load(cluster, args.namespaces,
                        progress=None if args.json else lambda m: err.write(f"... {m}\n"),
                        istio_namespace=getattr(args, "istio_namespace", "istio-system"))
        except ClusterError as exc:
            hint = ("; name the namespaces you may read with -n NS"
                    if exc.status == 403 and not args.namespaces else "")
            err.write(f"error: {exc.message}{hint}\n")
            return EXIT_INPUT
        context = live.context()
        notes.extend(live.notes)
        live_policies = live.policies
        if not args.files:
            live_docs, live_policies = live.policies, []
    if context is None:
        findings = lintmod.lint(docs, enrolled=not args.not_enrolled)
    else:
        findings = lintmod.lint(docs + live_docs, cluster_policies=live_policies, context=context)
    total = len(docs) + len(live_docs)
    if args.json:
        payload: dict[str, Any] = {"findings": [f.to_json() for f in findings],
                                   "policies": total, "notes": notes}
        if problems:
            payload["errors"] = [{"file": p.file, "document": p.document, "line": p.line,
                                  "column": p.column, "message": p.message} for p in problems]
        json.dump(payload, out, indent=2)
        out.write("\n")
    else:
        for f in findings:
            out.write(f"{f.file}:{f.line}: {f.severity} {f.rule} [{f.policy}] {f.message}\n")
            if f.fix:
                out.write(f"    fix: {f.fix.title}\n")
        for n in notes:
            out.write(f"note: {n}\n")
        errors = sum(f.severity == lintmod.ERROR for f in findings)
        if total or not problems:
            out.write(f"{total} policies, {errors} error(s), "
                      f"{len(findings) - errors} warning(s)\n")
    for p in problems:
        err.write(f"error: {p}\n")
    if problems:
        return EXIT_INPUT
    return EXIT_FINDINGS if lintmod.has_errors(findings) else EXIT_OK


def run_gate(args: argparse.Namespace, out: TextIO | None = None,
             err: TextIO | None = None) -> int:
    from ambient_tui.netpol.cluster import ClusterError, NetpolCluster
    from ambient_tui.netpol.gate import describe, enrolment_findings

    out, err = out or sys.stdout, err or sys.stderr
    try:
        blocking = enrolment_findings(NetpolCluster(args.kubeconfig, args.context), args.namespace,
                                      args.istio_namespace)
    except ClusterError as exc:
        err.write(f"error: cannot check {args.namespace}'s NetworkPolicies: {exc.message}\n")
        return EXIT_INPUT
    if not blocking:
        out.write(f"{args.namespace}: no live NetworkPolicy blocks HBONE or probes; safe to enrol\n")
        return EXIT_OK
    for f in blocking:
        out.write(f"{f.file}: {f.severity} {f.rule} [{f.policy}] {f.message}\n")
        if f.fix:
            out.write(f"    fix: {f.fix.title}\n" + "".join(
                f"      {line}\n" for line in f.fix.yaml.splitlines()))
    if args.force:
        out.write(f"--force: enrolling {args.namespace} despite {len(blocking)} finding(s)\n")
        return EXIT_OK
    out.write(describe(args.namespace, blocking).split(": ", 1)[0] +
              ": stopped. Apply the fix (ambient-tui netpol editor, or kubectl apply), or "
              "pass --force-enroll.\n")
    return EXIT_FINDINGS


def run_template(args: argparse.Namespace, out: TextIO | None = None,
                 err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        selector = templates.parse_selector(args.selector)
        to_selector = templates.parse_selector(args.to_selector) or None
    except ValueError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_INPUT
    if args.port is not None and not 1 <= args.port <= 65535:
        err.write(f"error: --port {args.port} is outside 1-65535\n")
        return EXIT_INPUT
    out.write(templates.render(args.name, namespace=args.namespace, selector=selector or None,
                               port=args.port, to_namespace=args.to_namespace,
                               to_selector=to_selector))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (python -m ambient_tui.commands.netpol), same as `ambient-tui netpol`."""
    parser = argparse.ArgumentParser(prog="ambient-tui")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["netpol", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
