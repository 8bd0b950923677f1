from __future__ import annotations

import csv
from typing import TextIO

from imdshunt.findings import CREDENTIAL_FIELDS, WEB_FIELDS, Finding, FindingKind
from imdshunt.outputs.base import Output, RunContext
from imdshunt.outputs.common import artifact_summary
from imdshunt.sanitize import csv_cell


def _cell(value) -> str:
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return csv_cell("; ".join(artifact_summary(v) for v in value))  # artifacts
    if isinstance(value, list):
        return csv_cell("; ".join(str(v) for v in value))
    if value is None:
        return ""
    return csv_cell(value)


class CsvOutput(Output):
    """A spreadsheet-safe CSV: lists joined with '; ', formula starters neutralised."""

    name = "csv"

    def write(self, findings: list[Finding], stream: TextIO, context: RunContext) -> None:
        columns: list[str] = []
        kinds = {f.kind for f in findings}
        base = CREDENTIAL_FIELDS if FindingKind.CREDENTIAL in kinds else ()
        for col in (*base, *(WEB_FIELDS if FindingKind.WEB in kinds else ())):
            if col not in columns:
                columns.append(col)
        for f in findings:
            for k in f.to_dict():
                if k not in columns:
                    columns.append(k)
        if not columns:
            columns = list(CREDENTIAL_FIELDS)
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(columns)
        for f in findings:
            writer.writerow([_cell(f.get(c)) for c in columns])
