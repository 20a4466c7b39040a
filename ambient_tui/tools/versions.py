"""Find helm, istioctl and kubectl and read their versions, through `sh` with argument lists.

A version read is kept in tool-versions.json in the cache folder (ambient_tui/dirs.py), keyed on
the binary's path and identity (device, inode, size, mtime, ctime): a binary that is replaced or
rewritten gets a new identity and is asked again. Every preflight after the first then starts no
helm or istioctl process just to learn a version that cannot have changed. Version-manager shims
are never cached (see _cacheable): their answer depends on configuration, not on the file.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import sh

from ambient_tui.catalog import parse_version
from ambient_tui.dirs import cache_root
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
    path = str(path).strip()
    identity = _identity(path) if _cacheable(name, path) else None
    cached = _cache_get(name, path, identity)
    if cached:
        return ToolVersion(name, path, cached)
    version = _parse(name, _ask_version(name, path, env, timeout))
    # The identity from before the run: a binary replaced meanwhile is asked again next time.
    _cache_put(name, path, identity, version)
    return ToolVersion(name, path, version)


def cache_file() -> Path:
    return cache_root() / "tool-versions.json"


def _cacheable(name: str, path: str) -> bool:
    """A binary of the tool's own name. Not a script (asdf shims are scripts) and not a link to
    a binary of another name (mise shims link to mise): those pick a version by configuration."""
    try:
        if os.path.basename(os.path.realpath(path)) != name:
            return False
        with open(path, "rb") as f:
            return f.read(2) != b"#!"
    except OSError:
        return False


def _identity(path: str) -> list[int] | None:
    try:
        st = os.stat(path)  # follows symlinks: a re-pointed link is a new identity
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


_cache_lock = threading.Lock()


def _cache_read() -> dict:
    try:
        data = json.loads(cache_file().read_text())
    except (OSError, ValueError):  # absent or damaged: an empty cache, rebuilt as tools are read
        return {}
    return data if isinstance(data, dict) else {}


def _cache_get(name: str, path: str, identity: list[int] | None) -> str | None:
    if identity is None:
        return None
    entry = _cache_read().get(f"{name} {path}")
    if not isinstance(entry, dict) or entry.get("identity") != identity:
        return None
    return entry["version"] if isinstance(entry.get("version"), str) else None


def _cache_put(name: str, path: str, identity: list[int] | None, version: str) -> None:
    if identity is None:
        return
    f = cache_file()
    with _cache_lock:
        # Entries of binaries that are gone are dropped, so the file stays a line per tool.
        data = {k: v for k, v in _cache_read().items() if os.path.exists(k.partition(" ")[2])}
        data[f"{name} {path}"] = {"identity": identity, "version": version}
        try:
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_name(f"{f.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            os.replace(tmp, f)  # readers see the old file or the new one, never half of one
        except OSError:  # a read-only cache only costs the next run a version read
            pass


def _ask_version(name: str, path: str, env: dict | None, timeout: float) -> str:
    """The tool's answer to its version command, or ToolError. The bound is a timer that kills
    the process: sh's own _timeout checks the clock every 0.1 s, which added ~60 ms per read."""
    proc = sh.Command(path)(*VERSION_ARGS[name], _env=env, _err_to_out=True, _bg=True,
                            _bg_exc=False, _new_group=True)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        try:
            proc.kill_group()  # its children too: they would hold the output pipe open
        except OSError:  # it ended as the time ran out
            pass

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        proc.wait()
        return str(proc)
    except sh.ErrorReturnCode as e:
        if expired.is_set():
            raise ToolError(f"{name} at {path} did not answer `{name} version` within {timeout:g}s") from None
        out = e.stdout.decode(errors="replace").strip()[:200]
        raise ToolError(f"{name} at {path} failed to report its version: {out}") from None
    finally:
        timer.cancel()


def _which(name: str, env: dict | None) -> str | None:
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
