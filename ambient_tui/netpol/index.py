"""Policies indexed by namespace and selector, so the union for one pod is found without
scanning every policy (the lint was quadratic in the number of policies without it).

A policy goes in one bucket: its namespace's catch-all list when its podSelector has no
matchLabels, else under the first of its matchLabels pairs. A pod's candidates are the
catch-all list plus the buckets of its own label pairs; callers still check the full
selector (matchExpressions included), so the index only ever narrows, never decides.
"""

from __future__ import annotations

from typing import Any, Generic, Mapping, TypeVar

from .model import as_dict

T = TypeVar("T")


class SelectorIndex(Generic[T]):
    def __init__(self) -> None:
        self._any: dict[str, list[tuple[int, T]]] = {}
        self._by_label: dict[str, dict[tuple[str, str], list[tuple[int, T]]]] = {}
        self._n = 0

    def add(self, namespace: str, selector: Any, item: T) -> None:
        self._n += 1
        labels = as_dict(as_dict(selector).get("matchLabels"))
        if not labels:
            self._any.setdefault(namespace, []).append((self._n, item))
            return
        key = min((str(k), str(v)) for k, v in labels.items())
        self._by_label.setdefault(namespace, {}).setdefault(key, []).append((self._n, item))

    def candidates(self, namespace: str, labels: Mapping[str, str]) -> list[T]:
        """Items that may select a pod with `labels`, in the order they were added."""
        found = list(self._any.get(namespace, ()))
        buckets = self._by_label.get(namespace)
        if buckets:
            for pair in labels.items():
                found.extend(buckets.get((str(pair[0]), str(pair[1])), ()))
        found.sort(key=lambda entry: entry[0])
        return [item for _, item in found]
