"""Load NetworkPolicy documents from multi-document YAML, keeping line numbers.

Lines and columns are 1-based everywhere in this package (what editors show).
Documents are numbered from 1 in the order they appear in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

KIND = "NetworkPolicy"
LIST_KINDS = ("List", "NetworkPolicyList")


class ParseError(Exception):
    """Input that cannot be read, parsed, or is not a NetworkPolicy.

    Carries where it happened so the CLI and the editor can point at it.
    """

    def __init__(
        self,
        message: str,
        file: str = "<text>",
        document: int | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
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
    """A well-formed document of some other kind (ConfigMap, Deployment, ...)."""


@dataclass
class PolicyDoc:
    """One NetworkPolicy as loaded: the data plus the YAML node for line lookups."""

    data: dict[str, Any]
    node: MappingNode
    file: str = "<text>"
    document: int = 1
    # Position of the item inside a `kind: List` document, else None.
    item: int | None = None
    # Character span of the source document in the file text (for fixes).
    span: tuple[int, int] = (0, 0)
    source: str = "file"  # "file" | "cluster"
    extra: dict[str, Any] = field(default_factory=dict)

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
        return self.node.start_mark.line + 1

    def line_of(self, *path: str | int) -> int:
        """Line of the deepest node along `path` that exists (the key's line for mappings)."""
        return node_line(self.node, path)


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


def _mark(err: yaml.YAMLError) -> tuple[int | None, int | None]:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    if mark is None:
        return None, None
    return mark.line + 1, mark.column + 1


def _iter_documents(text: str, file: str) -> Iterator[tuple[int, MappingNode | Node | None, Any]]:
    # SafeLoader composes one node per document, then constructs plain data from
    # that same node: we keep both, so lines come from the node and values from data.
    loader = yaml.SafeLoader(text)
    index = 0
    try:
        while True:
            try:
                if not loader.check_node():
                    break
                index += 1
                node = loader.get_node()
                data = loader.construct_document(node) if node is not None else None
            except yaml.YAMLError as err:
                line, col = _mark(err)
                problem = getattr(err, "problem", None) or str(err)
                context = getattr(err, "context", None)
                msg = f"YAML syntax error: {problem}"
                if context:
                    msg += f" ({context})"
                raise ParseError(msg, file, index or 1, line, col) from None
            yield index, node, data
    finally:
        loader.dispose()


def parse_text(text: str, file: str = "<text>") -> list[PolicyDoc]:
    """All NetworkPolicies in `text`.

    Raises ParseError for bad YAML, NotNetworkPolicy for any other kind.
    Empty documents (a trailing `---`) are skipped.
    """
    docs: list[PolicyDoc] = []
    for index, node, data in _iter_documents(text, file):
        if node is None or data is None:
            continue
        line = node.start_mark.line + 1
        span = (node.start_mark.index, node.end_mark.index)
        if not isinstance(data, dict) or not isinstance(node, MappingNode):
            raise NotNetworkPolicy(
                f"expected a mapping with apiVersion/kind, got a {type(data).__name__}",
                file, index, line, 1,
            )
        kind = data.get("kind")
        if kind in LIST_KINDS and isinstance(data.get("items"), list):
            # `kubectl get netpol -o yaml` prints a List; accept it item by item.
            items_node = _child(node, "items")
            for i, item in enumerate(data["items"]):
                item_node = items_node.value[i] if isinstance(items_node, SequenceNode) else node
                one = _one(item, item_node, file, index, i, span)
                one.extra["list"] = data
                docs.append(one)
            continue
        docs.append(_one(data, node, file, index, None, span))
    return docs


def _child(node: MappingNode, key: str) -> Node | None:
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return v
    return None


def _one(
    data: Any, node: Node, file: str, index: int, item: int | None, span: tuple[int, int]
) -> PolicyDoc:
    line = node.start_mark.line + 1
    where = f" (item {item + 1} of the List)" if item is not None else ""
    if not isinstance(data, dict) or not isinstance(node, MappingNode):
        raise NotNetworkPolicy(f"expected a NetworkPolicy mapping{where}", file, index, line, 1)
    kind = data.get("kind")
    if kind != KIND:
        kline = node_line(node, ("kind",))
        name = ""
        meta = data.get("metadata")
        if isinstance(meta, dict) and meta.get("name"):
            name = f" {meta['name']!r}"
        shown = "no kind" if kind is None else f"a {kind}"
        raise NotNetworkPolicy(
            f"document is {shown}{name}{where}, not a NetworkPolicy; "
            "only NetworkPolicy documents can be linted here",
            file, index, kline, 1,
        )
    return PolicyDoc(data=data, node=node, file=file, document=index, item=item, span=span)


def parse_file(path: str | Path) -> list[PolicyDoc]:
    """Read and parse a file; unreadable files raise ParseError too."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise ParseError(f"cannot read file: {err.strerror or err}", name) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ParseError(f"not UTF-8 text (byte {err.start})", name) from None
    return parse_text(text, name)


def from_object(data: dict[str, Any], source: str = "cluster") -> PolicyDoc:
    """Wrap a policy that did not come from text (the cluster's copy) for lint."""
    text = yaml.safe_dump(data, sort_keys=False)
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    assert isinstance(node, MappingNode)
    meta = data.get("metadata") or {}
    label = f"cluster:{meta.get('namespace', '')}/{meta.get('name', '')}"
    return PolicyDoc(data=data, node=node, file=label, source=source)
