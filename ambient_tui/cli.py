"""Entry point `ambient-tui`: the TUI by default, and headless subcommands.

Exit codes: 0 ok, 1 a check or step failed, 2 usage or input error. This is the only engine
module that may import the UI, and only lazily, to start it.
"""

from __future__ import annotations

import argparse
import sys

from ambient_tui import __version__


class UsageError(Exception):
    """Bad input: one line of cause and next step, exit 2."""


def _plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--istio-version", metavar="X.Y.Z", help="default: newest supported release in the catalogue")
    p.add_argument("--method", choices=["helm", "istioctl"], default="helm")
    p.add_argument("--gateway", action="store_true", help="also install the ingress gateway")
    p.add_argument("--charts", metavar="DIR", help="install from local chart folders (air-gapped)")
    p.add_argument("--chart-source", choices=["blob", "oci"], default="blob")
    p.add_argument("--gateway-api-file", metavar="PATH", help="Gateway API CRDs from a local file or folder")
    p.add_argument("--values", metavar="COMPONENT=FILE", action="append", default=[],
                   help="values file for base, istiod, cni, ztunnel or gateway")
    p.add_argument("--enroll", metavar="NS[,NS...]", default="", help="namespaces to enrol")


def _settings(args):
    from ambient_tui.plans.install import COMPONENT_KEYS
    from ambient_tui.settings import Settings

    values = {}
    for item in args.values:
        comp, sep, path = item.partition("=")
        if not sep or comp not in COMPONENT_KEYS:
            raise UsageError(f"--values {item!r}: use COMPONENT=FILE with COMPONENT one of "
                             f"{', '.join(COMPONENT_KEYS)}")
        values[comp] = path
    return Settings(istio_version=args.istio_version, method=args.method, gateway=args.gateway,
                    chart_source=args.charts or args.chart_source, values=values,
                    gateway_api_file=args.gateway_api_file,
                    enroll=[n for n in args.enroll.split(",") if n])


def _build_plan(args):
    from ambient_tui import catalog
    from ambient_tui.plans.install import build_install_plan

    try:
        return build_install_plan(_settings(args))
    except catalog.UnknownVersion as e:
        raise UsageError(str(e)) from None


def cmd_plan(args) -> int:
    from ambient_tui.engine.runbook import FORMATS

    plan = _build_plan(args)
    sys.stdout.write(FORMATS[args.format](plan))
    if plan.meta.get("eol"):
        print(f"note: Istio {plan.meta['istio_version']} reached end of life on {plan.meta['eol']}; "
              "it still installs, but choose a supported release if you can", file=sys.stderr)
    return 0


def _use_sandbox(args) -> int:
    """Point this process at the local sandbox, starting it (and building it) when needed.

    The sandbox has no network, so the plan installs from the built charts and CRD files.
    """
    import os

    from ambient_tui.sandbox import build
    from ambient_tui.sandbox.commands import sandbox_env
    from ambient_tui.sandbox.control_plane import SandboxError

    try:
        env = sandbox_env()
    except SandboxError:
        print("ambient-tui: the sandbox is not running; starting it (`ambient-tui sandbox up`)", file=sys.stderr)
        if main(["sandbox", "up"]) != 0:
            return 1
        env = sandbox_env()
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    args.istio_version = args.istio_version or build.ISTIO_VERSION
    args.charts = args.charts or str(build.charts_dir())
    if not args.gateway_api_file:
        from ambient_tui import catalog
        channel = catalog.load().release(args.istio_version).gateway_api.channel
        args.gateway_api_file = str(build.gateway_api_dir() / f"{channel}-install.yaml")
    return 0


def cmd_tui(args) -> int:
    if args.sandbox and _use_sandbox(args) != 0:
        return 1
    plan = _build_plan(args)
    settings = _settings(args)
    kubeconfig, kube_context = args.kubeconfig, args.context  # None: $KUBECONFIG, current context
    settings.context = kube_context
    if kube_context:
        from ambient_tui.plans.install import pin_context
        pin_context(plan, kube_context)
    if kubeconfig:
        for s in plan.steps:  # every tool the plan runs talks to the chosen cluster
            if s.argv and s.argv[0] in ("helm", "kubectl", "istioctl"):
                s.argv += ["--kubeconfig", kubeconfig]
    from ambient_tui.checks.model import CheckContext
    from screens.app import run_app  # the UI, imported only to start it

    return run_app(plan, context=kube_context or current_context(kubeconfig),
                   istio_version=plan.meta["istio_version"], kubeconfig=kubeconfig,
                   kube_context=kube_context, mouse=not args.no_mouse, slow_link=args.slow_link,
                   check_context_factory=lambda: CheckContext(settings, kubeconfig=kubeconfig,
                                                              context=kube_context)) or 0


def start_pods_ui(provider, *, title: str = "ambient-tui pods", mouse: bool = True,
                  slow_link: bool = False) -> int:
    """`ambient-tui pods`: the pod pane as its own app; the UI is imported only to start it."""
    from screens.app import run_pods_app

    return run_pods_app(provider, title=title, mouse=mouse, slow_link=slow_link) or 0


def current_context(kubeconfig: str | None = None) -> str:
    """The kubeconfig's current context, read with PyYAML: the kubernetes client is slow to import."""
    import os
    from pathlib import Path

    import yaml

    from ambient_tui.yaml_loader import SAFE_LOADER

    paths = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    for path in paths.split(os.pathsep):
        try:
            ctx = (yaml.load(Path(path).read_text(), Loader=SAFE_LOADER) or {}).get("current-context")
        except (OSError, yaml.YAMLError, AttributeError):
            continue
        if ctx:
            return str(ctx)
    return ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ambient-tui", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ambient-tui {__version__}")
    parser.add_argument("--sandbox", action="store_true", help="open the TUI against the local sandbox cluster")
    parser.add_argument("--kubeconfig", metavar="PATH", help="default: $KUBECONFIG or ~/.kube/config")
    parser.add_argument("--context", metavar="NAME", help="kube context (default: the current one)")
    parser.add_argument("--no-mouse", action="store_true",
                        help="leave the mouse to the terminal (copy and paste over SSH)")
    parser.add_argument("--slow-link", action="store_true",
                        help="for a thin SSH link: fewer redraws, no decorative motion")
    _plan_args(parser)
    parser.set_defaults(func=cmd_tui)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plan", help="print the install plan without touching any cluster")
    _plan_args(p)
    p.add_argument("--format", choices=["markdown", "shell", "json"], default="markdown")
    p.set_defaults(func=cmd_plan)

    from ambient_tui.commands import install as install_cmd
    from ambient_tui.commands import netpol as netpol_cmd
    from ambient_tui.commands import pods as pods_cmd
    from ambient_tui.commands import uninstall as uninstall_cmd
    from ambient_tui.sandbox import commands as sandbox_cmd
    for module in (install_cmd, uninstall_cmd, netpol_cmd, pods_cmd, sandbox_cmd):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as e:
        print(f"ambient-tui: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ambient-tui: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The console script: main(), then an exit without garbage collection. Tearing down the
    interpreter with the Kubernetes client loaded (~230,000 objects) spent about 0.5 s in
    collector passes that free nothing anyone waits for; atexit handlers still run."""
    code = main()
    import gc

    gc.disable()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
