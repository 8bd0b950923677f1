"""The registries are the only lists: engines, sources and outputs, and what reads them."""

from __future__ import annotations

import ast
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import imdshunt
from imdshunt.cli import cli
from imdshunt.commands._common import EXIT_USAGE
from imdshunt.engine.base import DEFAULT_ENGINE, ENGINES, Engine
from imdshunt.outputs import OUTPUTS
from imdshunt.schema import API_ACTIVITY_COLUMNS
from imdshunt.sources.registry import SOURCES, Source


def _choices(command: str, option: str) -> list[str]:
    cmd = cli.commands[command]
    (param,) = [p for p in cmd.params if option in getattr(p, "opts", ())]
    assert isinstance(param.type, click.Choice)
    return list(param.type.choices)


@pytest.mark.parametrize("name", list(ENGINES))
def test_every_registered_engine_implements_the_contract_under_its_name(name):
    entry = ENGINES[name]
    cls = entry.load()
    assert issubclass(cls, Engine)
    assert cls.name == name and cls.dialect == entry.dialect
    assert cls.kinds == entry.kinds
    assert not getattr(cls, "__abstractmethods__", None), cls.__abstractmethods__


def test_cli_engine_choices_and_sql_dialects_come_from_the_registry():
    assert _choices("hunt", "--engine") == list(ENGINES)
    assert set(ENGINES) <= set(_choices("sql", "--dialect"))


def test_cli_formats_are_the_registered_outputs():
    assert sorted(_choices("hunt", "--format")) == sorted(OUTPUTS)


def test_every_source_fills_a_canonical_table():
    assert list(SOURCES)[-1] == "web", "web logs are tried last: they claim what is left"
    for name, source in SOURCES.items():
        assert isinstance(source, Source) and source.name == name
        assert source.table in ("api_activity", "http_request")
    assert "source_file" in API_ACTIVITY_COLUMNS


def test_golden_files_cover_every_registered_engine():
    from imdshunt.engine.golden import render_all

    assert {rel.split("/", 1)[0] for rel in render_all()} == set(ENGINES)


def _compared_engine_names(path: Path) -> list[str]:
    """``<something engine-like> == "<engine name>"`` (or ``!=``, ``in``) in one module.

    Engine-like: the other side mentions ``engine`` or is a ``.name``. sqlglot dialects share
    some engine names (``duckdb``, ``spark``); comparing a dialect is not comparing an engine.
    """
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        names = [
            c.value
            for side in sides
            for c in ast.walk(side)
            if isinstance(c, ast.Constant) and c.value in ENGINES
        ]
        others = [ast.unparse(s) for s in sides if not isinstance(s, ast.Constant)]
        if names and any("engine" in o or o.endswith(".name") for o in others):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_engine_name_is_compared_as_a_string_outside_the_registry():
    src = Path(imdshunt.__file__).parent
    found = [
        hit
        for path in sorted(src.rglob("*.py"))
        if path != src / "engine" / "base.py"
        for hit in _compared_engine_names(path)
    ]
    assert found == []


def test_the_scan_for_engine_names_sees_comparisons_and_not_dialects(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        'if engine_name != "duckdb" or entry.name in ("athena",):\n    pass\n'
        'if dialect == "duckdb":\n    pass\n'
    )
    assert [hit.split(":")[1] for hit in _compared_engine_names(probe)] == ["1", "1"]


@pytest.mark.parametrize("name", list(ENGINES))
def test_state_and_store_are_refused_by_the_engines_capabilities(name, tmp_path):
    cls = ENGINES[name].load()
    for option, able in (("--state", cls.keeps_state), ("--store", cls.hunts_store)):
        if able:
            continue  # hunting for real is tested in test_state.py / test_store.py
        args = ["hunt", "s3://trail/AWSLogs/", "--engine", name, option, str(tmp_path)]
        out = CliRunner().invoke(cli, args)
        assert out.exit_code == EXIT_USAGE, out.output
        assert f"{option}" in out.output and f"--engine {name}" in out.output


def test_state_follows_the_capability_not_the_engines_name(monkeypatch, tmp_path):
    monkeypatch.setattr(ENGINES[DEFAULT_ENGINE].load(), "keeps_state", False)
    out = CliRunner().invoke(cli, ["hunt", str(tmp_path), "--state", str(tmp_path / "state")])
    assert out.exit_code == EXIT_USAGE, out.output
    said = " ".join(out.output.split())
    assert (
        f"--state keeps its history in an engine's database: not with --engine {DEFAULT_ENGINE}"
        in said
    )
    assert not (tmp_path / "state").exists()


def test_state_and_store_together_are_refused(tmp_path):
    args = ["hunt", str(tmp_path), "--state", str(tmp_path / "s"), "--store", str(tmp_path)]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == EXIT_USAGE and "give one" in out.output
