"""Outputs behind one small base class; registries are plain dicts."""

from __future__ import annotations

from imdshunt.outputs.asff import AsffOutput
from imdshunt.outputs.base import Output, RunContext
from imdshunt.outputs.csvout import CsvOutput
from imdshunt.outputs.html import HtmlOutput
from imdshunt.outputs.jsonl import JsonlOutput
from imdshunt.outputs.ocsf import OcsfOutput
from imdshunt.outputs.table import TableOutput

OUTPUTS: dict[str, type[Output]] = {
    "table": TableOutput,
    "jsonl": JsonlOutput,
    "csv": CsvOutput,
    "html": HtmlOutput,
    "ocsf": OcsfOutput,
    "asff": AsffOutput,
}

__all__ = ["OUTPUTS", "Output", "RunContext"]
