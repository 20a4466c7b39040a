"""Every input checked before anything changes: `plan`, `install` (dry run or not) and the TUI
start call `check_settings` on what the person asked for, so a bad values file or namespace is
one line and exit 2, not a failure half-way through an install.

Checks: the Istio version is in the catalogue; values files are readable YAML mappings (the
error names the file and line); enrolment namespaces are DNS-1123 labels; a local chart folder
holds a Chart.yaml for every chart the plan installs; a local Gateway API file exists.
"""

from __future__ import annotations

import os
import re

# Kubernetes namespace names: RFC 1123 labels.
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
REPO_SOURCES = ("blob", "oci", "gcs_legacy")


class InvalidInput(ValueError):
    """One line: what is wrong with which input, and what to do; the CLI exits 2."""


def check_namespace(name: str, flag: str = "--enroll") -> None:
    if len(name) > 63 or not DNS1123_LABEL.fullmatch(name):
        raise InvalidInput(
            f"{flag} {name!r}: not a valid namespace name (lower-case letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)")


def check_values_file(component: str, path: str) -> None:
    """A readable YAML mapping (or an empty file): what helm accepts as --values."""
    import yaml

    from ambient_tui.yaml_loader import SAFE_LOADER

    where = f"--values {component}={path}"
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{where}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{where}: a directory, not a values file") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{where}: not UTF-8 text; give a YAML values file") from None
    except OSError as e:
        raise InvalidInput(f"{where}: cannot read it ({e.strerror or e})") from None
    try:
        node = yaml.compose(text, Loader=SAFE_LOADER)
        yaml.load(text, Loader=SAFE_LOADER)  # anchors, tags: what compose alone lets through
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InvalidInput(f"{where}: not valid YAML{line} ({problem}); fix the file") from None
    if node is not None and not isinstance(node, yaml.MappingNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
        raise InvalidInput(f"{where}: line {node.start_mark.line + 1} starts {kind}; a values file "
                           "must be a YAML mapping (key: value)")


def check_charts(chart_source: str, gateway: bool) -> None:
    """A local chart folder must hold every chart the plan installs."""
    from ambient_tui.plans.install import COMPONENTS

    if not os.path.isdir(chart_source):
        raise InvalidInput(f"--charts {chart_source}: not a directory")
    missing = []
    for release, chart, chart_dir, _ in COMPONENTS:
        if release == "istio-ingress" and not gateway:
            continue
        if not any(os.path.isfile(os.path.join(chart_source, d, "Chart.yaml")) for d in (chart, chart_dir)):
            missing.append(chart)
    if missing:
        raise InvalidInput(f"--charts {chart_source}: no Chart.yaml for {', '.join(missing)} "
                           f"(expected {chart_source}/<chart>/Chart.yaml); give the folder that holds "
                           "the unpacked Istio charts")


def check_settings(settings):
    """Raise InvalidInput on the first bad input; return the settings for chaining."""
    from ambient_tui import catalog

    if settings.istio_version:
        try:
            catalog.load().release(settings.istio_version)
        except catalog.UnknownVersion as e:
            raise InvalidInput(f"--istio-version: {e}") from None
    for component, path in settings.values.items():
        check_values_file(component, path)
    for name in settings.enroll:
        check_namespace(name)
    if settings.method == "helm" and settings.chart_source not in REPO_SOURCES:
        check_charts(settings.chart_source, settings.gateway)
    if settings.gateway_api_file and not os.path.exists(settings.gateway_api_file):
        raise InvalidInput(f"--gateway-api-file {settings.gateway_api_file}: no such file or folder")
    return settings
