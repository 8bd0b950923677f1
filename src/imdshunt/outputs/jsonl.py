from __future__ import annotations

import json
from typing import TextIO

from imdshunt.findings import Finding
from imdshunt.outputs.base import Output, RunContext


class JsonlOutput(Output):
    """One JSON object per line: the findings contract. Non-ASCII and controls are escaped."""

    name = "jsonl"

    def write(self, findings: list[Finding], stream: TextIO, context: RunContext) -> None:
        for f in findings:
            stream.write(json.dumps(f.to_dict(), ensure_ascii=True, default=str) + "\n")
