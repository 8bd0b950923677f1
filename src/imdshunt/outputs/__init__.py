"""Outputs behind one small base class; registries are plain dicts."""

from __future__ import annotations

from imdshunt.outputs.base import Output, RunContext
from imdshunt.outputs.csvout import CsvOutput
from imdshunt.outputs.jsonl import JsonlOutput
from imdshunt.outputs.table import TableOutput

OUTPUTS: dict[str, type[Output]] = {
    "table": TableOutput,
    "jsonl": JsonlOutput,
    "csv": CsvOutput,
}

__all__ = ["OUTPUTS", "Output", "RunContext"]
