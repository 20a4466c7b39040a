"""Find helm, istioctl and kubectl and read their versions, through `sh` with argument lists."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import sh

from ambient_tui.catalog import parse_version
from ambient_tui.tools.install_hints import HINTS, missing_tool_message

VERSION_ARGS = {
    "helm": ["version", "--template", "{{.Version}}"],
    "istioctl": ["version", "--remote=false", "--short"],
    "kubectl": ["version", "--client", "-o", "json"],
}


class ToolError(RuntimeError):
    """A tool is missing, unreadable or too old; the message says what to do."""


@dataclass(frozen=True)
class ToolVersion:
    name: str
    path: str
    version: str

    @property
    def parsed(self) -> tuple[int, ...]:
        return parse_version(self.version)


def _parse(name: str, out: str) -> str:
    if name == "kubectl":
        try:
            return json.loads(out)["clientVersion"]["gitVersion"].lstrip("v")
        except (ValueError, KeyError):
            pass
    m = re.search(r"v?(\d+\.\d+(?:\.\d+)?)", out)
    if not m:
        raise ToolError(f"could not read the {name} version from: {out.strip()[:80]!r}")
    return m.group(1)


def detect(name: str, env: dict | None = None, timeout: float = 20) -> ToolVersion:
    path = _which(name, env)
    if not path:
        raise ToolError(missing_tool_message(name))
    cmd = sh.Command(str(path).strip())
    try:
        out = cmd(*VERSION_ARGS[name], _env=env, _timeout=timeout, _err_to_out=True)
    except sh.ErrorReturnCode as e:
        raise ToolError(f"{name} at {path} failed to report its version: "
                        f"{e.stdout.decode(errors='replace').strip()[:200]}") from None
    except sh.TimeoutException:
        raise ToolError(f"{name} at {path} did not answer `{name} version` within {timeout:g}s") from None
    return ToolVersion(name, str(path).strip(), _parse(name, str(out)))


def _which(name: str, env: dict | None) -> str | None:
    import os
    import shutil
    return shutil.which(name, path=(env or os.environ).get("PATH"))


def require(name: str, minimum: str, maximum_major: int | None = None, env: dict | None = None,
            why: str = "") -> ToolVersion:
    """The tool's version, or ToolError naming the version found, the one needed and how to get it."""
    tv = detect(name, env)
    need = f">= {minimum}" + (f" and < {maximum_major + 1}" if maximum_major is not None else "")
    reason = f" ({why})" if why else ""
    if tv.parsed < parse_version(minimum) or (maximum_major is not None and tv.parsed[0] > maximum_major):
        raise ToolError(f"{name} {tv.version} found at {tv.path}, but {need} is needed{reason}; {HINTS[name]}")
    return tv
