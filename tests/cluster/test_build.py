"""The parts build: idempotent, and clear about a missing Go or an unreachable module proxy."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ambient_tui.sandbox import build

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]


def _build_cli(*args, **env):
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-m", "ambient_tui.sandbox.build", *args],
                          capture_output=True, text=True, env=full, timeout=120)


def test_second_build_builds_nothing():
    if build.missing():
        pytest.fail("parts missing: " + ", ".join(p.dirname for p in build.missing()))
    out = io.StringIO()
    assert build.build(out=out) == []
    assert "nothing to build: all parts cached" in out.getvalue()
    assert "$ " not in out.getvalue()  # no go command ran


def test_no_go_toolchain_is_reported(tmp_path):
    bindir = tmp_path / "bin"  # a PATH with python but no go
    bindir.mkdir()
    p = _build_cli("--only", "kwok", AMBIENT_TUI_CACHE=str(tmp_path / "cache"), PATH=str(bindir))
    assert p.returncode == 1
    assert "no Go toolchain found on PATH" in p.stderr
    assert not (tmp_path / "cache" / "parts" / f"kwok-{build.KWOK_VERSION}").exists()


def test_unreachable_module_proxy_is_reported(tmp_path):
    go = shutil.which("go")
    if go is None:
        pytest.fail("go is needed for the build tests")
    modcache = tmp_path / "gomod"
    p = _build_cli("--only", "gateway-api", AMBIENT_TUI_CACHE=str(tmp_path / "cache"),
                   GOMODCACHE=str(modcache), GOPROXY="http://127.0.0.1:9", GOSUMDB="off")
    subprocess.run(["chmod", "-R", "u+w", str(modcache)], check=False)  # go makes it read-only
    assert p.returncode == 1
    assert "cannot reach the Go module proxy (GOPROXY=http://127.0.0.1:9)" in p.stderr
    # Nothing half-built stays behind, so the next run retries cleanly.
    assert not (tmp_path / "cache" / "parts" / f"gateway-api-{build.GATEWAY_API_VERSION}").exists()
