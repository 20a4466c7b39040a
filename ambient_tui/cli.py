"""Entry point `ambient-tui`: the TUI by default, and headless subcommands.

Exit codes: 0 ok, 1 a check or step failed, 2 usage or input error. This is the only engine
module that may import the UI, and only lazily, to start it.
"""

from __future__ import annotations

import argparse
import sys

from ambient_tui import __version__


# Shared with the subcommands (commands/ never imports this module).
from ambient_tui.commands.common import UsageError, plan_args as _plan_args  # noqa: E402
from ambient_tui.commands.common import settings_from_args as _settings  # noqa: E402
from ambient_tui.errors import AmbientError  # noqa: E402


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
    from ambient_tui import catalog
    from ambient_tui.plans.install_session import InstallSession

    settings = _settings(args)
    from ambient_tui.cluster.client import ClusterAccessError, load_client
    from ambient_tui.commands import target_from_args

    try:
        # Resolved once, here: a context switched later in another shell changes nothing.
        target = target_from_args(args)
        target.kubeconfig_path()  # written now: an unwritable state folder is one line here
    except ClusterAccessError as e:
        raise UsageError(e.message) from None
    settings.context = target.context
    try:
        session = InstallSession(settings, cluster_target=target)
    except catalog.UnknownVersion as e:
        raise UsageError(str(e)) from None
    plan = session.initial_plan()  # what preflight's decisions then replace (the same session as `install`)
    from ambient_tui.checks.model import CheckContext
    from screens.app import run_app  # the UI, imported only to start it

    return run_app(plan, target=target, istio_version=plan.meta["istio_version"],
                   mouse=not args.no_mouse, install_session=session, slow_link=args.slow_link,
                   lock_client=lambda: load_client(target=target),
                   check_context_factory=lambda: CheckContext(settings, target=target)) or 0


def start_pods_ui(provider, *, title: str = "ambient-tui pods", mouse: bool = True,
                  slow_link: bool = False) -> int:
    """`ambient-tui pods`: the pod pane as its own app; the UI is imported only to start it."""
    from screens.app import run_pods_app

    return run_pods_app(provider, title=title, mouse=mouse, slow_link=slow_link) or 0


def current_context(kubeconfig: str | None = None) -> str:
    from ambient_tui.cluster.target import current_context as current

    return current(kubeconfig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ambient-tui", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ambient-tui {__version__}")
    parser.add_argument("--sandbox", action="store_true", help="open the TUI against the local sandbox cluster")
    parser.add_argument("--kubeconfig", metavar="PATH",
                        help="default: $KUBECONFIG (merged, as kubectl does) or ~/.kube/config")
    parser.add_argument("--context", metavar="NAME",
                        help="kube context (default: the current one); pinned, with its server "
                             "and user, for the whole session")
    parser.add_argument("--read-only", action="store_true",
                        help="look, change nothing: no run, fix, uninstall, rollback or apply")
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
    from ambient_tui.commands import mesh as mesh_cmd
    from ambient_tui.commands import netpol as netpol_cmd
    from ambient_tui.commands import pods as pods_cmd
    from ambient_tui.commands import uninstall as uninstall_cmd
    from ambient_tui.commands import unlock as unlock_cmd
    from ambient_tui.sandbox import commands as sandbox_cmd
    for module in (install_cmd, uninstall_cmd, unlock_cmd, netpol_cmd, pods_cmd, sandbox_cmd, mesh_cmd):
        module.register(sub)
    # commands/ never imports this module: the pods UI's start is handed to it.
    sub.choices["pods"].set_defaults(
        launch=lambda provider, title, slow_link=False: start_pods_ui(provider, title=title, slow_link=slow_link))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AmbientError as e:  # the one handler: cause and next step on one line
        print(f"ambient-tui: {e.line()}", file=sys.stderr)
        return e.code
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
    # `python -m ambient_tui.cli`: run the package module, so the UsageError that commands
    # import from ambient_tui.cli is the one main() catches (not a __main__ copy of it).
    from ambient_tui.cli import entry as _entry

    _entry()
