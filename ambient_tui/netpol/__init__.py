"""Ambient-aware NetworkPolicy engine: parse, schema, templates, lint, quick fixes, cluster ops.

No Textual here; the screen in screens/netpol.py and the `netpol` CLI command are the faces.
"""

from .fixes import Fix, FixError, apply_fix
# `lint` the function is not re-exported: it would shadow the `lint` submodule.
from .lint import ERROR, RULES, WARNING, Finding, Pod, has_errors, lint_text
from .parse import NotNetworkPolicy, ParseError, PolicyDoc, from_object, parse_file, parse_text
from .templates import (MANAGED_BY_KEY, MANAGED_BY_VALUE, MANAGED_SELECTOR, TEMPLATES,
                        is_managed, label_managed, render)

__all__ = [
    "ERROR", "WARNING", "RULES", "Finding", "Fix", "FixError", "Pod", "PolicyDoc", "ParseError",
    "NotNetworkPolicy", "MANAGED_BY_KEY", "MANAGED_BY_VALUE", "MANAGED_SELECTOR", "TEMPLATES",
    "apply_fix", "from_object", "has_errors", "is_managed", "label_managed", "lint_text",
    "parse_file", "parse_text", "render",
]
