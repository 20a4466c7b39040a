"""Quick fixes as data, and applying them to the editor's text.

A fix appends a document, replaces one document, or deletes one. Appending keeps
the user's text byte for byte; replacing re-renders only that one document (its
comments are lost, the other documents are untouched).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import yaml

from .parse import PolicyDoc

# libyaml's emitter when PyYAML has it: a bundle with a thousand findings renders a
# thousand fixes.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_DUMPER, sort_keys=False)


@dataclass(frozen=True)
class Fix:
    title: str
    kind: str  # "append" | "replace" | "delete"
    text: str = ""  # the YAML, when given as text
    document: int | None = None  # 1-based document index for replace/delete
    name: str | None = None  # policy name, checked before replacing
    data: Any = field(default=None, compare=False, repr=False)  # rendered on first use

    @property
    def yaml(self) -> str:
        # Rendered lazily: a bundle's thousands of findings each carry a fix, and the text
        # output shows only their titles.
        if not self.text and self.data is not None:
            object.__setattr__(self, "text", _dump(self.data))
        return self.text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"title": self.title, "kind": self.kind}
        if self.yaml:
            out["yaml"] = self.yaml
        if self.document is not None:
            out["document"] = self.document
        return out


class FixError(Exception):
    pass


def _document_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of each document's root node, empty docs included."""
    spans: list[tuple[int, int]] = []
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                spans.append((-1, -1))
            else:
                spans.append((node.start_mark.index, node.end_mark.index))
    except yaml.YAMLError as err:
        raise FixError(f"the text no longer parses, fix not applied: {err}") from None
    finally:
        loader.dispose()
    return spans


def _line_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    # Widen to whole lines: the root node starts at column 0 in block style, and its
    # end mark sits at the next token (often the next line), so trim back to content.
    line_start = text.rfind("\n", 0, start) + 1
    trimmed = end
    while trimmed > start and text[trimmed - 1] in " \t\r\n":
        trimmed -= 1
    line_end = text.find("\n", trimmed)
    return line_start, (len(text) if line_end == -1 else line_end + 1)


def apply_fix(text: str, fix: Fix) -> str:
    """New editor text with `fix` applied. Raises FixError if the document moved or vanished."""
    if fix.kind == "append":
        body = text.rstrip()
        if not body.strip():
            return fix.yaml
        return body + "\n---\n" + fix.yaml
    if fix.document is None:
        raise FixError("fix has no target document")
    spans = _document_spans(text)
    if not 1 <= fix.document <= len(spans) or spans[fix.document - 1][0] < 0:
        raise FixError(f"document {fix.document} is no longer in the text; lint again")
    start, end = _line_bounds(text, *spans[fix.document - 1])
    if fix.name is not None:
        current = yaml.safe_load(text[start:end]) or {}
        name = ((current.get("metadata") or {}).get("name") if isinstance(current, dict) else None)
        if isinstance(current, dict) and current.get("kind") in ("List", "NetworkPolicyList"):
            name = fix.name  # list items are matched by index, not name
        if name != fix.name:
            raise FixError(f"document {fix.document} is now {name!r}, not {fix.name!r}; lint again")
    if fix.kind == "replace":
        replacement = fix.yaml if fix.yaml.endswith("\n") else fix.yaml + "\n"
        return text[:start] + replacement + text[end:]
    if fix.kind == "delete":
        before, after = text[:start], text[end:]
        # Drop the separator that introduced the deleted document.
        stripped = before.rstrip()
        if stripped.endswith("---"):
            before = stripped[:-3].rstrip()
            before = before + "\n" if before else ""
        elif after.lstrip().startswith("---"):
            after = after.lstrip()[3:].lstrip("\n")
        return before + after
    raise FixError(f"unknown fix kind {fix.kind!r}")


def replace_fix(doc: PolicyDoc, new_data: dict[str, Any], title: str) -> Fix:
    """A fix that swaps `doc` for `new_data` (inside its List when it came from one)."""
    whole: Any = new_data
    if doc.item is not None and isinstance(doc.extra.get("list"), dict):
        whole = copy.deepcopy(doc.extra["list"])
        whole["items"][doc.item] = new_data
    return Fix(title=title, kind="replace", data=whole,
               document=doc.document, name=doc.name if doc.item is None else None)


def delete_fix(doc: PolicyDoc, title: str) -> Fix:
    if doc.item is not None and isinstance(doc.extra.get("list"), dict):
        whole = copy.deepcopy(doc.extra["list"])
        del whole["items"][doc.item]
        return Fix(title=title, kind="replace", data=whole,
                   document=doc.document)
    return Fix(title=title, kind="delete", document=doc.document, name=doc.name)


def append_fix(new_doc: dict[str, Any], title: str) -> Fix:
    return Fix(title=title, kind="append", data=new_doc)
