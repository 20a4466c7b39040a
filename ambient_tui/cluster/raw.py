"""API objects as parsed JSON, read like the kubernetes client's models.

The kubernetes client (37.x) builds its typed models with pydantic: the first typed read of a
group (CoreV1Api, AppsV1Api, ...) imports and builds hundreds of model classes, about 0.6 s of
CPU each for core and apps, and every response is then validated into them. The preflight
only reads a few fields, so it reads JSON instead. `Obj` is that JSON as a dict that also
answers the models' snake_case attributes (`obj.metadata.owner_references` reads
`ownerReferences`), so code written against the models keeps working; a missing field is None,
as in the models. Maps such as labels stay plain dict access: `labels.get("app")`.
"""

from __future__ import annotations

import re
from typing import Any

_UNDERSCORE = re.compile(r"_([a-z0-9])")


def camel(name: str) -> str:
    """snake_case model attribute -> the API's camelCase JSON key."""
    return _UNDERSCORE.sub(lambda m: m.group(1).upper(), name)


class Obj(dict):
    """A JSON object; attribute reads go to the camelCase key (None when absent).

    dict's own methods (get, items, keys, values, ...) win over fields of the same name: read
    such fields with [] (e.g. `obj["items"]`)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return wrap(self.get(camel(name)))


def wrap(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, Obj):
        return Obj(value)
    if isinstance(value, list):
        return [wrap(v) for v in value]
    return value
