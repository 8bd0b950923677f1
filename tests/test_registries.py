"""The registries are the only lists: engines, sources and outputs, and what reads them."""

from __future__ import annotations

import click
import pytest

from imdshunt.cli import cli
from imdshunt.engine.base import ENGINES, Engine
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
