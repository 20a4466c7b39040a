"""User keymap: `$XDG_CONFIG_HOME/ambient-tui/keymap.yaml`, a mapping of binding id -> keys.

Example::

    ambient.run: ctrl+r
    ambient.skip: x,ctrl+s      # several keys, comma separated (or a YAML list)

A missing file is no keymap; a bad file is reported (the caller turns it into a notify),
never a crash. Every key is checked (`","` or `"ctrl+"` would leave a binding without a key),
and `orphaned` names the bindings a remapped key took over: Textual drops those silently.
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
        parts = [k.strip() for k in keys.split(",")]
        for key in parts:
            problem = key_problem(key)
            if problem:
                raise KeymapError(f"keymap {path}: entry {binding_id!r}: {problem}")
        keymap[binding_id] = ",".join(parts)
    return keymap


MODIFIERS = ("ctrl", "shift", "alt", "meta", "super", "hyper")


def _named_keys() -> set[str]:
    """Key names Textual sends: its Keys enum (enter, f5, pageup...), aliases, character names."""
    from textual import keys as tk

    names = {k.value.rsplit("+", 1)[-1] for k in tk.Keys}
    names |= set(tk.KEY_ALIASES) | {a for v in tk.KEY_ALIASES.values() for a in v}
    names |= set(tk.KEY_TO_UNICODE_NAME) | set(tk.ASCII_KEY_NAMES.values()) | set(tk.KEY_NAME_REPLACEMENTS.values())
    return names


def key_problem(key: str) -> str:
    """Why `key` is not a key Textual can bind ("" when it is): "," and "ctrl+" are not."""
    import unicodedata

    if not key:
        return ("an empty key (a lone ',' separates keys; write 'comma' for the comma key)")
    *mods, base = key.split("+")
    bad = [m for m in mods if m not in MODIFIERS]
    if bad or not base:
        return (f"{key!r} is not a key: modifiers are {', '.join(MODIFIERS)}, joined to one key "
                "with '+', e.g. ctrl+r")
    if len(base) == 1 and not base.isspace():
        return ""
    if base in _named_keys():
        return ""
    try:  # Textual names other characters by their Unicode name: full_stop, question_mark
        unicodedata.lookup(base.replace("_", " "))
        return ""
    except KeyError:
        pass
    return f"{key!r} is not a key Textual knows (e.g. r, ctrl+r, f5, enter, comma, question_mark)"


def orphaned(keymap: dict[str, str], bindings) -> list[str]:
    """Ids of `bindings` the keymap leaves without a key: each of their keys went to another
    binding, and the keymap gives them none of their own."""
    taken = {k: bid for bid, keys in keymap.items() for k in keys.split(",")}
    out = []
    for b in bindings:
        if not getattr(b, "id", None) or b.id in keymap:
            continue
        own = [k.strip() for k in b.key.split(",")]
        if own and all(taken.get(k, b.id) != b.id for k in own):
            out.append(f"{b.id} ({b.description or b.action}): {', '.join(own)} now belongs to "
                       f"{', '.join(sorted({taken[k] for k in own}))}")
    return out
