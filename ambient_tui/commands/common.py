"""What the CLI entry point and the subcommands share: the plan options and the Settings
they make (commands/ never imports cli.py)."""

from __future__ import annotations

import argparse

from ambient_tui.errors import UsageError

__all__ = ["UsageError", "plan_args", "settings_from_args"]


def plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--istio-version", metavar="X.Y.Z", help="default: newest supported release in the catalogue")
    p.add_argument("--method", choices=["helm", "istioctl"], default="helm")
    p.add_argument("--gateway", action="store_true", help="also install the ingress gateway")
    p.add_argument("--charts", metavar="DIR", help="install from local chart folders (air-gapped)")
    p.add_argument("--chart-source", choices=["blob", "oci"], default="blob")
    p.add_argument("--gateway-api-file", metavar="PATH", help="Gateway API CRDs from a local file or folder")
    p.add_argument("--values", metavar="COMPONENT=FILE", action="append", default=[],
                   help="values file for base, istiod, cni, ztunnel or gateway")
    p.add_argument("--enroll", metavar="NS[,NS...]", default="", help="namespaces to enrol")


def settings_from_args(args):
    from ambient_tui.plans.install import COMPONENT_KEYS
    from ambient_tui.settings import Settings

    values = {}
    for item in args.values:
        comp, sep, path = item.partition("=")
        if not sep or comp not in COMPONENT_KEYS:
            raise UsageError(f"--values {item!r}: use COMPONENT=FILE with COMPONENT one of "
                             f"{', '.join(COMPONENT_KEYS)}")
        values[comp] = path
    settings = Settings(istio_version=args.istio_version, method=args.method, gateway=args.gateway,
                        chart_source=args.charts or args.chart_source, values=values,
                        gateway_api_file=args.gateway_api_file,
                        enroll=[n for n in args.enroll.split(",") if n])
    from ambient_tui.validate import InvalidInput, check_settings

    try:  # every input, before anything changes (plan, install, --dry-run, the TUI)
        return check_settings(settings)
    except InvalidInput as e:
        raise UsageError(str(e)) from None
