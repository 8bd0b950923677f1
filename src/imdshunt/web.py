"""Glue between the web log sources and an engine: load ``http_request``, build ``url_class``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imdshunt.errors import InputError
from imdshunt.sources.weblogs import ParseAccounting, read_web_log
from imdshunt.ssrf.urlclass import classify_urls

__all__ = ["build_url_class", "record_accounting"]


def record_accounting(acc: ParseAccounting, stats: Any) -> None:
    """Add one web log file's accounting to the run's ``RunStats``."""
    stats.web_files_read += acc.files
    stats.web_lines_read += acc.lines_read
    for reason, n in acc.skipped.items():
        ex = acc.examples[reason][0]
        stats.skip_records(f"web: {reason}", n, f"{ex.source_file}:{ex.line_number}: {ex.text}")
    for err in acc.file_errors:
        stats.skip_records(
            "web: file unreadable to the end",
            1,
            f"{err.source_file}:{err.line_number}: {err.reason}",
        )


def build_url_class(engine: Any) -> int:
    """Classify each distinct request shape once and register ``url_class``; returns its rows."""
    distinct = engine.query(
        "SELECT DISTINCT url, host, headers, body FROM http_request", label="distinct requests"
    )
    table = classify_urls(distinct)
    engine.register_table("url_class", table)
    return table.num_rows
