"""The two apps `bench/pods_bench.py --vs-k9s` runs side by side on the same sandbox pods:
`ambient-tui pods --all-namespaces` and k9s, each in the same pty harness (bench/_pty.py).

Each contender says how to start it, which key re-sorts its table and what on screen proves
the new sort arrived, how to read "all pods on screen", and how to quit.

k9s is built from the Go module proxy at a pinned version by `python bench/pods_bench.py
--build-k9s` (outside the network namespace the benchmark itself runs in), into the
project's cache (ambient_tui/dirs.py: <cache>/bench-tools/k9s). It is never built or run by
the tests. It runs read-only, with a config under the benchmark's temporary HOME that skips
its release check (no network here anyway) and keeps its default 2 s refresh.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ambient_tui.dirs import cache_root  # noqa: E402

K9S_MODULE, K9S_VERSION = "github.com/derailed/k9s", "v0.50.16"


def k9s_path() -> Path:
    return cache_root() / "bench-tools" / "k9s"


def build_k9s() -> int:
    """go install the pinned k9s into the cache (several minutes on 2 busy cores)."""
    out = k9s_path()
    if out.exists():
        print(f"k9s already built: {out}")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOBIN=str(out.parent), CGO_ENABLED="0")
    argv = ["go", "install", f"{K9S_MODULE}@{K9S_VERSION}"]
    print(f"building k9s {K9S_VERSION}: GOBIN={out.parent} {' '.join(argv)}", flush=True)
    try:
        rc = subprocess.run(argv, env=env).returncode
    except FileNotFoundError:
        print("go is not on PATH: install Go 1.24+ to build k9s for the comparison", file=sys.stderr)
        return 1
    return rc


class Contender:
    name = ""
    sort_key = b""
    count_on_screen = False  # count is a str pattern over the emulated screen (pyte), not bytes
    # The probe alternates sort, cursor, sort, cursor: the first cursor key must be one that
    # moves. ambient-tui keeps the cursor on the same pod through a sort (after a reversal it
    # is at the bottom: up moves); k9s keeps the row index (at the top: down moves).
    cursor_down_first = True
    quit_keys = b"q"
    count = re.compile(rb"")

    def argv_env(self, kubeconfig: str, home: Path, env: dict) -> tuple[list[str], dict]:
        raise NotImplementedError

    def sort_marker(self, reverse: bool) -> bytes:
        raise NotImplementedError


class Ambient(Contender):
    name = "ambient-tui"
    sort_key = b"O"  # reverse the sort (namespace): the whole table re-sorts
    cursor_down_first = False
    count = re.compile(rb"\xc2\xb7 (\d+) pods")

    def __init__(self, extra_args: tuple[str, ...] = ()) -> None:
        self.extra_args = extra_args

    def argv_env(self, kubeconfig, home, env):
        env = dict(env, KUBECONFIG=kubeconfig, PYTHONPATH=str(ROOT), HOME=str(home),
                   XDG_CONFIG_HOME=str(home / "config"))
        return [sys.executable, "-m", "ambient_tui.cli", "pods", "--all-namespaces", *self.extra_args], env

    def sort_marker(self, reverse):
        return ("sort namespace" + ("↓" if reverse else "↑")).encode()


K9S_CONFIG = """\
k9s:
  refreshRate: 2
  readOnly: true
  skipLatestRevCheck: true
  ui:
    enableMouse: false
"""


class K9s(Contender):
    name = "k9s"
    sort_key = b"N"  # shift-n: sort by name; again: the other direction (the whole table)
    quit_keys = b"\x03"  # ctrl-c
    # The table title " pods(all)[20,003] " (thousands separated), read off the emulated
    # screen: tcell rewrites only the cells that changed, so the digits rarely arrive together.
    count = re.compile(r"pods\(all\)\[([\d,]+)\]")
    count_on_screen = True

    def argv_env(self, kubeconfig, home, env):
        conf = home / "k9s-config"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "config.yaml").write_text(K9S_CONFIG)
        env = dict(env, HOME=str(home), K9S_CONFIG_DIR=str(conf), XDG_STATE_HOME=str(home / "state"),
                   XDG_DATA_HOME=str(home / "data"), XDG_CACHE_HOME=str(home / "cache"))
        env.pop("KUBECONFIG", None)
        return [str(k9s_path()), "--kubeconfig", kubeconfig, "--readonly", "-A", "-c", "pods",
                "--logFile", str(home / "k9s.log")], env

    def sort_marker(self, reverse):
        # on the emulated screen: the NAME header carries the arrow (ui/table_helper.go)
        return re.compile("NAME↓" if reverse else "NAME↑")
