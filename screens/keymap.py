"""User keymap: `$XDG_CONFIG_HOME/ambient-tui/keymap.yaml`, a mapping of binding id -> keys.

Example::

    ambient.run: ctrl+r
    ambient.skip: x,ctrl+s      # several keys, comma separated (or a YAML list)

A missing file is no keymap; a bad file is reported (the caller turns it into a notify),
never a crash.
"""

from __future__ import annotations

import os
from pathlib import Path


def keymap_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ambient-tui" / "keymap.yaml"


class KeymapError(Exception):
    """The keymap file exists but cannot be used; the message is one line."""


def load_keymap(path: Path | None = None) -> dict[str, str]:
    """Read the keymap; {} when the file does not exist. Raises KeymapError when it is bad."""
    path = path or keymap_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise KeymapError(f"cannot read keymap {path}: {exc.strerror or exc}") from None
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise KeymapError(f"keymap {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise KeymapError(f"keymap {path} must be a mapping of binding id to keys")
    keymap: dict[str, str] = {}
    for binding_id, keys in data.items():
        if isinstance(keys, list) and keys and all(isinstance(k, str) and k.strip() for k in keys):
            keys = ",".join(k.strip() for k in keys)
        if not isinstance(binding_id, str) or not isinstance(keys, str) or not keys.strip():
            raise KeymapError(
                f"keymap {path}: entry {binding_id!r} must map a binding id to a key string")
        keymap[binding_id] = ",".join(k.strip() for k in keys.split(","))
    return keymap
