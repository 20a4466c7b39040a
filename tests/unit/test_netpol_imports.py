"""The NetworkPolicy engine and CLI command must not import textual or screens."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_engine_has_no_ui_imports():
    files = sorted((ROOT / "ambient_tui" / "netpol").glob("*.py"))
    files.append(ROOT / "ambient_tui" / "commands" / "netpol.py")
    for path in files:
        bad = imported_modules(path) & {"textual", "screens"}
        assert not bad, f"{path} imports {bad}"


def test_kubernetes_is_imported_lazily():
    # Module level must stay free of kubernetes: start-up speed and offline use.
    tree = ast.parse((ROOT / "ambient_tui" / "netpol" / "cluster.py").read_text())
    top = {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    top |= {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    assert not any(name and name.startswith("kubernetes") for name in top)
