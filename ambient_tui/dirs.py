"""Where ambient-tui keeps its cache: built sandbox parts, the sandbox state, tool versions."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$AMBIENT_TUI_CACHE, else $XDG_CACHE_HOME/ambient-tui, else ~/.cache/ambient-tui."""
    env = os.environ.get("AMBIENT_TUI_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ambient-tui"
