"""Load the NetworkPolicies from any stream of Kubernetes manifests, keeping line numbers.

Input is untrusted (a paste, `kustomize build`, an install bundle): every byte sequence
ends in documents or in one ParseError that says where and why, within bounded time
and memory. The bounds (BOUNDS) cap input size, nesting depth and the number of nodes
a document expands to through aliases; the message names the bound that was hit.

Documents are built straight from the YAML parser's events (libyaml when PyYAML has
it): one pass, no node tree. Line numbers inside a policy are looked up lazily, by
composing only that document again, so a 20,000-policy bundle costs one pass.

Lines and columns are 1-based everywhere in this package (what editors show).
Documents are numbered from 1 in the order they appear in the file.
"""

from __future__ import annotations

import contextlib
import gc
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml
from yaml import events as ev
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

KIND = "NetworkPolicy"
LIST_KINDS = ("List", "NetworkPolicyList")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Bounds:
    input_bytes: int = 64 * 1024 * 1024  # one file or stdin
    depth: int = 100  # nested mappings/sequences; real manifests (CRD schemas) stay under 40
    nodes: int = 1_000_000  # per document, aliases expanded (an alias bomb hits this)


BOUNDS = Bounds()


class ParseError(Exception):
    """Input that cannot be read or parsed. Carries where it happened."""

    def __init__(self, message: str, file: str = "<text>", document: int | None = None,
                 line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.document = document
        self.line = line
        self.column = column

    def location(self) -> str:
        parts = [self.file]
        if self.document is not None:
            parts.append(f"document {self.document}")
        if self.line is not None:
            where = f"line {self.line}"
            if self.column is not None:
                where += f", column {self.column}"
            parts.append(where)
        return ": ".join(parts)

    def __str__(self) -> str:
        return f"{self.location()}: {self.message}"


class NotNetworkPolicy(ParseError):
    """A document that is not a Kubernetes object at all (a scalar, a list, no kind)."""


@dataclass
class PolicyDoc:
    """One NetworkPolicy as loaded, with what is needed to find its lines again."""

    data: dict[str, Any]
    file: str = "<text>"
    document: int = 1
    # Position of the item inside a `kind: List` document, else None.
    item: int | None = None
    # Character span of the source document in the file text (for fixes).
    span: tuple[int, int] = (0, 0)
    start_line: int = 1  # line of the document's root (or of the List item)
    source: str = "file"  # "file" | "cluster"
    extra: dict[str, Any] = field(default_factory=dict)
    text: str | None = field(default=None, repr=False)  # the whole file, for line lookups
    _node: Node | None = field(default=None, repr=False)
    _root_line: int | None = field(default=None, repr=False)
    # Lines of top-level and spec keys, from the parse: ("spec", "ingress") -> line.
    keylines: dict[tuple, int] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        meta = self.data.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("name"), str):
            return meta["name"]
        return f"<unnamed document {self.document}>"

    @property
    def namespace(self) -> str | None:
        meta = self.data.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("namespace"), str):
            return meta["namespace"]
        return None

    @property
    def line(self) -> int:
        if self.item is not None and self.node is not None:
            return self.node.start_mark.line + 1 + self._offset  # the List item's own line
        return self.start_line

    @property
    def node(self) -> Node | None:
        if self._node is None and self.text is not None:
            root = _compose_span(self.text, self.span, None)
            if root is not None:
                self._root_line = root.start_mark.line + 1
                self._node = _item(root, self.item) if self.item is not None else root
        return self._node

    def line_of(self, *path: str | int) -> int:
        """Line of the deepest node along `path` that exists (the key's line for mappings)."""
        known = self.keylines.get(path)
        if known is not None:
            return known
        node = self.node
        if node is None:
            return self.start_line
        return node_line(node, path) + self._offset

    @property
    def _offset(self) -> int:
        # Lines before the document's span: its root sits on line start_line.
        root = self._root_line
        return self.start_line - root if root is not None else 0


def node_line(node: Node, path: tuple[str | int, ...] | list[str | int]) -> int:
    best = node.start_mark.line + 1
    current: Node | None = node
    for step in path:
        if current is None:
            break
        nxt: Node | None = None
        if isinstance(current, MappingNode) and isinstance(step, str):
            for key, value in current.value:
                if isinstance(key, ScalarNode) and key.value == step:
                    best = key.start_mark.line + 1
                    nxt = value
                    break
        elif isinstance(current, SequenceNode) and isinstance(step, int):
            if 0 <= step < len(current.value):
                nxt = current.value[step]
                best = nxt.start_mark.line + 1
        if nxt is None:
            break
        current = nxt
    return best


class _LinesLoader(_LOADER):  # type: ignore[misc, valid-type]
    """Composes for line numbers only: every scalar is taken as a string, no resolver regexes."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:  # noqa: ARG002
        return "tag:yaml.org,2002:str" if kind is ScalarNode else (
            "tag:yaml.org,2002:seq" if kind is SequenceNode else "tag:yaml.org,2002:map")


_DOC_MARKER = re.compile(r"^(?:---|\.\.\.)(?:[ \t\r\n]|$)", re.MULTILINE)


def _compose_span(text: str, span: tuple[int, int], item: int | None) -> Node | None:
    """The node of one document, composed from the lines it spans alone (not the whole
    file: that made line lookups quadratic). Marks are relative to the span's first line;
    PolicyDoc.line_of adds the offset."""
    start = text.rfind("\n", 0, span[0]) + 1
    # A block collection's end mark is the next document's `---`: stop at the first marker.
    marker = _DOC_MARKER.search(text, span[0] + 1)
    end = marker.start() if marker else len(text)
    try:
        node = yaml.compose(text[start:end], Loader=_LinesLoader)
    except (yaml.YAMLError, RecursionError):
        return None
    return node


def _item(node: Node, item: int) -> Node | None:
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == "items" and isinstance(v, SequenceNode):
                return v.value[item] if item < len(v.value) else None
    return None


# --------------------------------------------------------------------------- bytes to text

# What YAML 1.1 allows in a stream (the reader refuses anything else).
_NOT_PRINTABLE = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")
_NAMES = {0: "NUL", 0x1B: "ESC", 0x7F: "DEL", 0x08: "backspace", 0x0C: "form feed"}


def _where(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def decode(raw: bytes, file: str = "<text>", bounds: Bounds = BOUNDS) -> str:
    """UTF-8 text from bytes, or ParseError naming the first bad byte's line and column."""
    if len(raw) > bounds.input_bytes:
        raise ParseError(f"input is {len(raw):,} bytes; the bound is {bounds.input_bytes:,} "
                         "(input size): split it", file)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        good = raw[:err.start].decode("utf-8", "replace")
        line, col = _where(good, len(good))
        raise ParseError(f"not UTF-8 text: byte 0x{raw[err.start]:02x} (save the file as UTF-8)",
                         file, None, line, col) from None


def check_text(text: str, file: str = "<text>", bounds: Bounds = BOUNDS) -> None:
    """Size and control characters, before the parser sees them."""
    if len(text) > bounds.input_bytes:
        raise ParseError(f"input is {len(text):,} characters; the bound is "
                         f"{bounds.input_bytes:,} (input size): split it", file)
    bad = _NOT_PRINTABLE.search(text)
    if bad:
        code = ord(bad.group())
        name = _NAMES.get(code, "control character")
        line, col = _where(text, bad.start())
        raise ParseError(f"{name} (U+{code:04X}) is not allowed in YAML; remove it", file,
                         None, line, col)


# --------------------------------------------------------------------------- events to data

_resolver = yaml.resolver.Resolver()
_constructor = yaml.constructor.SafeConstructor()
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_MAP_TAGS = (None, "tag:yaml.org,2002:map", "!")
_SEQ_TAGS = (None, "tag:yaml.org,2002:seq", "!")


class _Merge:
    """Stand-in key for `<<`, resolved when its mapping ends."""


# A plain scalar that starts with a letter is a string unless it is one of these words
# (YAML 1.1 as PyYAML's resolver reads it); anything else goes through the resolver.
_WORDS: dict[str, Any] = {w: True for w in "yes Yes YES true True TRUE on On ON".split()}
_WORDS.update({w: False for w in "no No NO false False FALSE off Off OFF".split()})
_WORDS.update({w: None for w in "null Null NULL".split()})
_NOT_WORD = frozenset("0123456789+-.~<=:!&*?|>'\"%@`#,[]{}")


def _scalar(event: ev.ScalarEvent) -> Any:
    tag = event.tag
    value = event.value
    if tag is None and event.style is None and value and value[0] not in _NOT_WORD:
        return _WORDS.get(value, value)  # the common case, without the resolver's regexes
    if tag is None and event.style is None and value.isascii() and value.isdigit() and (
            value[0] != "0" or value == "0"):
        return int(value)  # a port number (a leading 0 would be YAML 1.1 octal: resolver)
    if tag is None or tag == "!":
        tag = _resolver.resolve(ScalarNode, event.value, event.implicit)
    if tag == _STR:
        return event.value
    if tag == _MERGE:
        return _Merge
    try:
        return _constructor.construct_object(ScalarNode(tag, event.value, event.start_mark,
                                                        event.end_mark, event.style))
    except (ValueError, OverflowError):
        return event.value  # e.g. a date-like value that is no date, or a 5000-digit number


@dataclass
class RawDoc:
    index: int
    data: Any
    span: tuple[int, int]
    line: int
    keylines: dict[tuple, int] = field(default_factory=dict)


def _fail(message: str, file: str, index: int, mark: Any) -> ParseError:
    if mark is None:
        return ParseError(message, file, index or None)
    return ParseError(message, file, index or None, mark.line + 1, mark.column + 1)


def iter_raw(text: str, file: str = "<text>", bounds: Bounds = BOUNDS) -> Iterator[RawDoc]:
    """Every document of `text` as plain data, within `bounds`; ParseError otherwise."""
    check_text(text, file, bounds)
    loader = _LOADER(text)
    try:
        yield from _documents(loader, file, bounds)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        context = getattr(err, "context", None)
        msg = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
        raise _fail(msg, file, 0, mark) from None
    finally:
        loader.dispose()


def _documents(loader: Any, file: str, bounds: Bounds) -> Iterator[RawDoc]:
    index = 0
    get = loader.get_event
    while True:
        event = get()
        if isinstance(event, ev.StreamEndEvent):
            return
        if not isinstance(event, ev.DocumentStartEvent):
            continue
        index += 1
        try:
            data, span, line, keylines = _document(get, file, index, bounds)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            context = getattr(err, "context", None)
            msg = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
            raise _fail(msg, file, index, mark) from None
        yield RawDoc(index, data, span, line, keylines)


def _document(get: Any, file: str, index: int, bounds: Bounds
              ) -> tuple[Any, tuple[int, int], int, dict[tuple, int]]:
    """One document's data (consumes through DocumentEnd). Iterative: depth costs no stack."""
    anchors: dict[str, tuple[Any, int]] = {}
    # Each frame: [container, pending key or _NOKEY, anchor, node count at start, merges]
    stack: list[list[Any]] = []
    count = 0
    root: Any = None
    start_mark = end_mark = None
    nokey = _NOKEY
    keylines: dict[tuple, int] = {}

    def add(value: Any, mark: Any) -> None:
        nonlocal root
        if not stack:
            root = value
            return
        frame = stack[-1]
        box = frame[0]
        if isinstance(box, list):
            box.append(value)
        elif frame[1] is nokey:
            if isinstance(value, (dict, list)):
                raise _fail("a mapping or list used as a key", file, index, mark)
            frame[1] = value
        else:
            key = frame[1]
            frame[1] = nokey
            if key is _Merge:
                frame[4].append((value, mark))
            else:
                box[key] = value

    scalar_event, words, not_word = ev.ScalarEvent, _WORDS, _NOT_WORD
    while True:
        event = get()
        cls = type(event)
        if cls is scalar_event:
            count += 1
            # The common case inline (a plain word into a mapping): this loop is the bulk cost.
            value = event.value
            if event.tag is None and event.style is None and value and value[0] not in not_word:
                value = words.get(value, value)
            else:
                value = _scalar(event)
            if event.anchor:
                anchors[event.anchor] = (value, 1)
            if start_mark is None:
                start_mark = event.start_mark
            end_mark = event.end_mark
            if stack:
                frame = stack[-1]
                if frame[1] is nokey and frame[0].__class__ is dict:
                    frame[1] = value
                    # Lines of the top-level and spec keys, where most findings point: then
                    # the document need not be composed again for them.
                    depth = len(stack)
                    if depth == 1:
                        keylines[(value,)] = event.start_mark.line + 1
                    elif depth == 2 and stack[0][1] == "spec":
                        keylines[("spec", value)] = event.start_mark.line + 1
                    continue
            add(value, event.start_mark)
        elif cls is ev.MappingStartEvent or cls is ev.SequenceStartEvent:
            if len(stack) >= bounds.depth:
                raise _fail(f"nesting deeper than {bounds.depth} levels (the depth bound)",
                            file, index, event.start_mark)
            if event.tag not in (_MAP_TAGS if cls is ev.MappingStartEvent else _SEQ_TAGS):
                raise _fail(f"tag {event.tag!r} is not allowed here", file, index,
                            event.start_mark)
            count += 1
            if start_mark is None:
                start_mark = event.start_mark
            stack.append([{} if cls is ev.MappingStartEvent else [], nokey, event.anchor,
                          count, []])
        elif cls is ev.MappingEndEvent or cls is ev.SequenceEndEvent:
            box, _, anchor, began, merges = stack.pop()
            for value, mark in merges:
                for part in (value if isinstance(value, list) else [value]):
                    if not isinstance(part, dict):
                        raise _fail("'<<' merges only mappings", file, index, mark)
                    for k, v in part.items():
                        box.setdefault(k, v)
            if anchor:
                anchors[anchor] = (box, count - began + 1)
            end_mark = event.end_mark
            add(box, event.start_mark)
        elif cls is ev.AliasEvent:
            if event.anchor not in anchors:
                raise _fail(f"alias *{event.anchor} refers to no complete anchor (undefined, "
                            "or recursive)", file, index, event.start_mark)
            value, size = anchors[event.anchor]
            count += size
            if count > bounds.nodes:
                raise _fail(f"aliases expand this document past {bounds.nodes:,} nodes "
                            "(the alias expansion bound)", file, index, event.start_mark)
            end_mark = event.end_mark
            add(value, event.start_mark)
        elif cls is ev.DocumentEndEvent:
            span = (start_mark.index, end_mark.index) if start_mark is not None else (0, 0)
            line = start_mark.line + 1 if start_mark is not None else 1
            return root, span, line, keylines
        if count > bounds.nodes:
            raise _fail(f"document has more than {bounds.nodes:,} nodes (the document size "
                        "bound)", file, index, event.start_mark)


class _NoKey:
    pass


_NOKEY = _NoKey()


# --------------------------------------------------------------------------- manifests


@dataclass
class Manifests:
    """The NetworkPolicies of a stream, and what else was in it (skipped, counted)."""

    policies: list[PolicyDoc] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # kind -> count

    def note(self) -> str:
        """One line about the skipped kinds, or ''."""
        if not self.skipped:
            return ""
        total = sum(self.skipped.values())
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.skipped.items(),
                                                         key=lambda kv: (-kv[1], kv[0]))[:6])
        more = " ..." if len(self.skipped) > 6 else ""
        return f"skipped {total} document(s) of other kinds: {kinds}{more}"


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cycle collector off while a bundle is read and linted: the data is acyclic, and
    its full passes over a growing heap doubled the time of 8,000 policies."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_manifests(text: str, file: str = "<text>", bounds: Bounds = BOUNDS) -> Manifests:
    """NetworkPolicies out of any stream of manifests; other kinds are counted, not refused."""
    with gc_paused():
        return _parse_manifests(text, file, bounds)


def _parse_manifests(text: str, file: str, bounds: Bounds) -> Manifests:
    out = Manifests()
    for raw in iter_raw(text, file, bounds):
        data = raw.data
        if data is None:
            continue  # an empty document (a trailing ---)
        if not isinstance(data, dict):
            raise NotNetworkPolicy(f"document is a {type(data).__name__}, not a Kubernetes object "
                                   "(a mapping with apiVersion and kind)", file, raw.index,
                                   raw.line, 1)
        kind = data.get("kind")
        if kind in LIST_KINDS and isinstance(data.get("items"), list):
            # `kubectl get netpol -o yaml` prints a List; its items are taken one by one.
            for i, item in enumerate(data["items"]):
                if isinstance(item, dict) and item.get("kind", KIND if kind != "List" else None) == KIND:
                    item.setdefault("kind", KIND)
                    doc = PolicyDoc(item, file, raw.index, i, raw.span, raw.line, text=text)
                    doc.extra["list"] = data
                    out.policies.append(doc)
                else:
                    k = item.get("kind") if isinstance(item, dict) else None
                    out.skipped[str(k or "item without kind")] = out.skipped.get(
                        str(k or "item without kind"), 0) + 1
            continue
        if kind == KIND:
            out.policies.append(PolicyDoc(data, file, raw.index, None, raw.span, raw.line,
                                          text=text, keylines=raw.keylines))
        elif isinstance(kind, str) and kind:
            out.skipped[kind] = out.skipped.get(kind, 0) + 1
        else:
            raise NotNetworkPolicy("document has no kind: not a Kubernetes object (add "
                                   "apiVersion: networking.k8s.io/v1 and kind: NetworkPolicy)",
                                   file, raw.index, raw.line, 1)
    return out


def parse_text(text: str, file: str = "<text>") -> list[PolicyDoc]:
    """All NetworkPolicies in `text` (other kinds skipped). Raises ParseError."""
    return parse_manifests(text, file).policies


def parse_bytes(raw: bytes, file: str = "<stdin>") -> Manifests:
    return parse_manifests(decode(raw, file), file)


def read_file(path: str | Path) -> Manifests:
    """Read, decode and parse one file; every failure is a ParseError."""
    name = str(path)
    try:
        size = Path(path).stat().st_size
        if size > BOUNDS.input_bytes:
            raise ParseError(f"file is {size:,} bytes; the bound is {BOUNDS.input_bytes:,} "
                             "(input size): split it", name)
        raw = Path(path).read_bytes()
    except OSError as err:
        raise ParseError(f"cannot read file: {err.strerror or err}", name) from None
    return parse_bytes(raw, name)


def parse_file(path: str | Path) -> list[PolicyDoc]:
    return read_file(path).policies


def from_object(data: dict[str, Any], source: str = "cluster") -> PolicyDoc:
    """Wrap a policy that did not come from text (the cluster's copy) for lint."""
    text = yaml.safe_dump(data, sort_keys=False)
    meta = data.get("metadata") or {}
    label = f"cluster:{meta.get('namespace', '')}/{meta.get('name', '')}"
    return PolicyDoc(data=data, file=label, span=(0, len(text)), source=source, text=text)
