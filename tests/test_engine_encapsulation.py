"""Engines own their connections: nothing outside ``imdshunt/engine/`` reaches into one.

What the incremental state and the compiled store need of an engine's database is an engine
method (``engine/base.py``: ``StateDatabase``), so a second engine can offer the same, and an
engine can change how it holds its connection without breaking a caller. Two rules, checked
on the source (the AST, so comments and strings do not count):

* no module outside ``engine/`` reads an attribute ``con`` of anything but ``self`` (a module
  may own a connection of its own, as the native CloudTrail reader does; it may not touch an
  engine's);
* no module outside ``engine/`` imports a private name (``_to_arrow``, ``_ddl``,
  ``_sql_str`` ...) from an engine module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import imdshunt

SRC = Path(imdshunt.__file__).parent
ENGINE_DIR = SRC / "engine"


def _outside_engine() -> list[Path]:
    return [p for p in sorted(SRC.rglob("*.py")) if ENGINE_DIR not in p.parents]


def _connection_uses(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "con"
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    ]


def _private_engine_imports(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("imdshunt.engine"):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("_")]
    return out


def test_no_module_outside_the_engines_touches_an_engine_connection():
    found = [
        f"{path.relative_to(SRC)}:{line}"
        for path in _outside_engine()
        for line in _connection_uses(ast.parse(path.read_text(), str(path)))
    ]
    assert found == []


def test_no_module_outside_the_engines_imports_a_private_engine_name():
    found = [
        f"{path.relative_to(SRC)}:{line}: {name}"
        for path in _outside_engine()
        for line, name in _private_engine_imports(ast.parse(path.read_text(), str(path)))
    ]
    assert found == []


def test_the_scan_sees_a_connection_use_and_a_private_import():
    """The rules catch what they are about (a scan that finds nothing proves nothing)."""
    tree = ast.parse(
        "from imdshunt.engine.duckdb import _to_arrow, DuckDBEngine\n"
        "def f(engine):\n    return engine.con.sql('SELECT 1')\n"
        "class Reader:\n    def g(self):\n        return self.con\n"
    )
    assert _connection_uses(tree) == [3]
    assert _private_engine_imports(tree) == [(1, "_to_arrow")]
