from __future__ import annotations

import json
from typing import TextIO

from imdshunt.findings import ordered
from imdshunt.outputs.base import Output, RunContext


class JsonlOutput(Output):
    """One JSON object per line: the findings contract. Non-ASCII and controls are escaped."""

    name = "jsonl"

    def write(self, findings: list[dict], stream: TextIO, context: RunContext) -> None:
        for f in findings:
            stream.write(json.dumps(ordered(f), ensure_ascii=True, default=str) + "\n")
