"""Incremental, scheduled hunts: remember what was read and what was reported.

An incremental hunt is the one pipeline (:mod:`imdshunt.pipeline`) with a file selector before
it and a commit step after it: it selects the inputs its state has not read (local files by
resolved path, size and mtime; S3 objects by URI, size and ETag), runs the pipeline over
everything the state then holds (so a finding that grows in later files is the same finding,
updated, never a second one), and reports what is new or changed.

A state folder holds one DuckDB database with the canonical rows read so far, the inputs they
came from and the findings already reported.

Consistency under interruption: loading the new files, marking them read, and recording the
findings happen in ONE database transaction. A run killed at any point (even ``kill -9``) leaves
the previous committed state; the next run reads the same new files again, so no file is skipped
or counted twice. Reporting is at-least-once: findings are written out before the transaction
commits, so a run killed between the two re-reports them next time rather than losing them.

One writer: a run holds an exclusive lock on ``STATE/lock`` for its whole length; a second run
on the same folder waits up to ``lock_timeout`` seconds, then fails with :class:`StateBusyError`.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imdshunt import pipeline
from imdshunt.engine.duckdb import DuckDBEngine
from imdshunt.errors import UsageError
from imdshunt.sources.discover import RunStats
from imdshunt.sources.inputs import InputFile, Reader, fetch_threads, list_inputs
from imdshunt.sources.registry import Progress, sort_inputs

STATE_DB = "state.duckdb"
LOCK_FILE = "lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS input_file (
    identity VARCHAR PRIMARY KEY, version VARCHAR, processed_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS reported_finding (
    finding_id VARCHAR PRIMARY KEY, fingerprint VARCHAR, first_reported TIMESTAMPTZ,
    last_reported TIMESTAMPTZ, record VARCHAR
);
"""


class StateBusyError(UsageError):
    """Another run holds the state folder's lock."""


@dataclass
class IncrementalResult:
    new: list[dict] = field(default_factory=list)
    updated: list[dict] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)  # everything known after this run
    stats: RunStats = field(default_factory=RunStats)
    files_already_processed: int = 0
    naive: dict[str, Any] = field(default_factory=dict)
    #: What evidence this run had and lacked (see :func:`imdshunt.pipeline.evidence_notes`).
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

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


class HuntState:
    """A state folder. Use as a context manager: it holds the folder's lock while open."""

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        memory_limit: str | None = None,
        lock_timeout: float = 60.0,
    ):
        self.dir = check_state_dir(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = _acquire(self.dir / LOCK_FILE, lock_timeout)
        try:
            self.engine = DuckDBEngine(self.dir / STATE_DB, memory_limit=memory_limit)
            self._execute(_SCHEMA)
        except BaseException:
            self._lock.close()
            raise

    def __enter__(self) -> HuntState:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.engine.close()
        finally:
            self._lock.close()

    def _execute(self, sql: str, params: list | None = None) -> list[tuple]:
        return self.engine.execute(sql, params)

    def processed(self) -> dict[str, str]:
        """Inputs already read: identity -> version."""
        return dict(self._execute("SELECT identity, version FROM input_file"))

    def reported(self) -> dict[str, str]:
        return dict(self._execute("SELECT finding_id, fingerprint FROM reported_finding"))

    def mark_read(self, files: Iterable[InputFile], now: dt.datetime) -> None:
        rows = [[f.key, f.version, now] for f in files]
        if rows:
            self.engine.executemany("INSERT OR REPLACE INTO input_file VALUES (?, ?, ?)", rows)

    def record(self, f: dict, fingerprint: str, now: dt.datetime) -> None:
        self._execute(
            "INSERT OR REPLACE INTO reported_finding VALUES (?, ?, "
            "coalesce((SELECT first_reported FROM reported_finding WHERE finding_id = ?), ?), "
            "?, ?)",
            [f["finding_id"], fingerprint, f["finding_id"], now, now, json.dumps(f, default=str)],
        )


def _acquire(path: Path, timeout: float):
    """An exclusive lock on ``path`` (released when the returned file is closed)."""
    fh = open(path, "a+")  # noqa: SIM115 - held for the state's lifetime
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fh
        except BlockingIOError:
            if time.monotonic() >= deadline:
                fh.close()
                raise StateBusyError(
                    f"{path.parent}: another imdshunt run holds this state folder "
                    f"(waited {timeout:g} s); two runs cannot both commit to one state"
                ) from None
            time.sleep(0.2)


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
    since: Any = None,
    until: Any = None,
    accounts: Iterable[str] | str | None = None,
    regions: Iterable[str] | str | None = None,
    session: Any = None,
    web_log_type: str | None = None,
    progress: Progress | None = None,
    lock_timeout: float = 60.0,
) -> IncrementalResult:
    """Read only inputs not seen before, re-run detections, report new and updated findings.

    ``paths`` are local files and folders or ``s3://`` prefixes, as for
    :func:`imdshunt.api.hunt`. ``report`` (optional) is called with the changes before they
    are committed as reported. ``inventory`` and ``org_accounts`` are this run's snapshot: they
    replace the previous run's, so a finding whose evidence changes (learned egress ->
    inventory) is reported as updated.
    """
    started = time.monotonic()
    cfg = pipeline.HuntConfig.make(
        ip_ranges=ip_ranges,
        allowlist=list(allowlist),
        fetch_ip_ranges=fetch_ip_ranges,
        params=params,
        kinds=tuple(kinds),
        web_log_type=web_log_type,
        inventory=inventory,
        org_accounts=org_accounts,
        since=since,
        until=until,
        accounts=accounts,
        regions=regions,
        workers=workers,
        progress=progress,
    )
    classifier, warnings = cfg.classifier()
    result = IncrementalResult()
    stats = result.stats
    with HuntState(state_dir, memory_limit=memory_limit, lock_timeout=lock_timeout) as state:
        listing = list_inputs(paths, stats, window=cfg.window, session=session, workers=workers)
        seen = state.processed()
        fresh = [f for f in listing.files if seen.get(f.key) != f.version]
        result.files_already_processed = len(listing.files) - len(fresh)
        reader = Reader(listing.s3_client, threads=fetch_threads(workers))
        state.engine.execute("BEGIN TRANSACTION")
        try:
            selected = sort_inputs(fresh, reader, stats)
            hunted = pipeline.run(
                state.engine,
                selected,
                reader,
                cfg,
                stats,
                classifier=classifier,
                warnings=warnings,
            )
            now = dt.datetime.now(dt.UTC)
            # Every listed input is marked, read or skipped on purpose (digests, other JSON):
            # a file is read again only when its version changes.
            state.mark_read(fresh, now)
            result.findings = hunted.findings
            result.naive = hunted.naive
            result.notes = hunted.notes
            result.warnings = hunted.warnings
            before = state.reported()
            for f in result.findings:
                fp = _fingerprint(f)
                old = before.get(f["finding_id"])
                if old == fp:
                    continue
                (result.new if old is None else result.updated).append(f)
                state.record(f, fp, now)
            if report is not None:
                report(result.changes)
            state.engine.execute("COMMIT")
        except BaseException:
            state.engine.execute("ROLLBACK")
            raise
    result.seconds = time.monotonic() - started
    return result


def check_state_dir(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{p}: --state must be a folder")
    return p
