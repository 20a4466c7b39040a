"""Where the guide's example policies live, and the editor's draft store.

Drafts go to $XDG_STATE_HOME/ambient-tui/drafts (default ~/.local/state/...): state,
not configuration, and they must survive a crash of the editor.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "netpol"
GUIDE_DIR = ASSETS / "guide"


@dataclass(frozen=True)
class Example:
    title: str
    path: Path

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")


def guide_examples(directory: Path = GUIDE_DIR) -> list[Example]:
    """The guide's section 8 policies, kept as published so the lint can explain them."""
    if not directory.is_dir():
        return []
    return [Example(f"guide {p.stem}", p) for p in sorted(directory.glob("*.yaml"))]


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ambient-tui"


def drafts_dir(base: Path | None = None) -> Path:
    return (base or state_dir()) / "drafts"


def draft_path(key: str, base: Path | None = None) -> Path:
    """A stable draft file per editor buffer key (a file path or 'untitled-N')."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(key).name or "untitled")[:60]
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]
    return drafts_dir(base) / f"{slug}-{digest}.yaml"


def save_draft(key: str, text: str, base: Path | None = None) -> Path:
    path = draft_path(key, base)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a crash mid-write never leaves half a draft.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def remove_draft(key: str, base: Path | None = None) -> None:
    try:
        draft_path(key, base).unlink()
    except FileNotFoundError:
        pass


def list_drafts(base: Path | None = None) -> list[Path]:
    d = drafts_dir(base)
    return sorted(d.glob("*.yaml"), key=lambda p: p.stat().st_mtime, reverse=True) if d.is_dir() else []
