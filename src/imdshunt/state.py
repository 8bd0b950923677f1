"""Incremental, scheduled hunts: remember what was read and what was reported.

A state folder holds one DuckDB database with the canonical rows read so far, the files they
came from (path, size, mtime) and the findings already reported. Each run reads only new files,
runs every detection over the whole history (so a finding that grows in later files is the same
finding, updated, never a second one) and reports what is new or changed.

Consistency under interruption: loading the new files, marking them processed, and recording the
findings happen in ONE database transaction. A run killed at any point (even ``kill -9``) leaves
the previous committed state; the next run reads the same new files again, so no file is skipped
or counted twice. Reporting is at-least-once: findings are written out before the transaction
commits, so a run killed between the two re-reports them next time rather than losing them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imdshunt import api
from imdshunt.engine.duckdb import DuckDBEngine
from imdshunt.enrich.inventory import load_inventory, register_inventory
from imdshunt.enrich.ipranges import load_classifier
from imdshunt.errors import UsageError
from imdshunt.sources.discover import RunStats

STATE_DB = "state.duckdb"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS processed_file (
    path VARCHAR PRIMARY KEY, size BIGINT, mtime_ns BIGINT, processed_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS reported_finding (
    finding_id VARCHAR PRIMARY KEY, fingerprint VARCHAR, first_reported TIMESTAMPTZ,
    last_reported TIMESTAMPTZ, record VARCHAR
);
"""


@dataclass
class IncrementalResult:
    new: list[dict] = field(default_factory=list)
    updated: list[dict] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)  # everything known after this run
    stats: RunStats = field(default_factory=RunStats)
    files_already_processed: int = 0
    naive: dict[str, Any] = field(default_factory=dict)
    #: What evidence this run had and lacked (see :func:`imdshunt.api.evidence_notes`).
    notes: list[str] = field(default_factory=list)

    @property
    def changes(self) -> list[dict]:
        return [dict(f, change="new") for f in self.new] + [
            dict(f, change="updated") for f in self.updated
        ]


def _fingerprint(f: dict) -> str:
    """What makes a finding 'changed': more events, a later last use, new keys or actions."""
    key = json.dumps(
        [
            f.get("event_count"),
            f.get("last_seen"),
            f.get("access_key_ids"),
            f.get("actions"),
            f.get("reasons"),
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _file_key(p: Path) -> tuple[str, int, int]:
    st = p.stat()
    return str(p.resolve()), st.st_size, st.st_mtime_ns


class HuntState:
    """A state folder. Use as a context manager; one writer at a time."""

    def __init__(self, directory: str | os.PathLike, *, memory_limit: str | None = None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.engine = DuckDBEngine(self.dir / STATE_DB, memory_limit=memory_limit)
        self.engine.con.execute(_SCHEMA)

    def __enter__(self) -> HuntState:
        return self

    def __exit__(self, *exc) -> None:
        self.engine.close()

    def processed(self) -> dict[str, tuple[int, int]]:
        rows = self.engine.con.execute("SELECT path, size, mtime_ns FROM processed_file").fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def reported(self) -> dict[str, str]:
        rows = self.engine.con.execute(
            "SELECT finding_id, fingerprint FROM reported_finding"
        ).fetchall()
        return dict(rows)


def hunt_incremental(
    paths: Iterable[str | os.PathLike],
    state_dir: str | os.PathLike,
    *,
    ip_ranges: str | os.PathLike | None = None,
    allowlist: Iterable[str] = (),
    workers: int | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    kinds: Sequence[str] = ("credential", "web"),
    fetch_ip_ranges: bool = True,
    memory_limit: str | None = None,
    report: Callable[[list[dict]], None] | None = None,
    inventory: Iterable[str | os.PathLike] = (),
    org_accounts: Iterable[str] = (),
) -> IncrementalResult:
    """Read only files not seen before, re-run detections, report new and updated findings.

    ``report`` (optional) is called with the changes before they are committed as reported.
    ``inventory`` and ``org_accounts`` are this run's snapshot: they replace the previous
    run's, so a finding whose evidence changes (learned egress -> inventory) is reported as
    updated.
    """
    classifier = load_classifier(ip_ranges, allowlist, fetch=fetch_ip_ranges)
    inv = load_inventory(inventory, org_accounts)
    result = IncrementalResult()
    with HuntState(state_dir, memory_limit=memory_limit) as state:
        con = state.engine.con
        seen = state.processed()
        stats = result.stats
        found = api.discover(paths, stats)
        fresh = api.SourceFiles()
        fresh_keys = []
        for bucket, target in ((found.cloudtrail, fresh.cloudtrail), (found.web, fresh.web)):
            for p in bucket:
                key = _file_key(p)
                if seen.get(key[0]) == key[1:]:
                    result.files_already_processed += 1
                    continue
                target.append(p)
                fresh_keys.append(key)
        con.execute("BEGIN TRANSACTION")
        try:
            api.load_cloudtrail(fresh, engine=state.engine, stats=stats, workers=workers)
            if fresh.web and "web" in kinds:
                api.load_web_logs(fresh.web, state.engine, stats)
            now = dt.datetime.now(dt.UTC)
            for path, size, mtime in fresh_keys:
                con.execute(
                    "INSERT OR REPLACE INTO processed_file VALUES (?, ?, ?, ?)",
                    [path, size, mtime, now],
                )
            register_inventory(state.engine, inv)
            api.classify_addresses(state.engine, classifier)
            stats.duplicate_records = state.engine.duplicate_records
            result.findings = api.run_detections(state.engine, None, params, kinds=kinds)
            result.naive = api.naive_rule(state.engine)
            result.notes = api.evidence_notes(state.engine, inv)
            before = state.reported()
            for f in result.findings:
                fp = _fingerprint(f)
                old = before.get(f["finding_id"])
                if old == fp:
                    continue
                (result.new if old is None else result.updated).append(f)
                con.execute(
                    "INSERT OR REPLACE INTO reported_finding VALUES (?, ?, "
                    "coalesce((SELECT first_reported FROM reported_finding WHERE finding_id = ?),"
                    " ?), ?, ?)",
                    [f["finding_id"], fp, f["finding_id"], now, now, json.dumps(f, default=str)],
                )
            if report is not None:
                report(result.changes)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return result


def check_state_dir(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{p}: --state must be a folder")
    return p
