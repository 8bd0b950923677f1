"""Incremental, scheduled hunts: remember what was read and what the detections need, not rows.

An incremental hunt is the one pipeline (:mod:`imdshunt.pipeline`) with a file selector before
it and a commit step after it. It selects the inputs its state has not read (local files by
resolved path, size and mtime; S3 objects by URI, size and ETag), decodes only those into
partial call groups (:mod:`imdshunt.partials`), merges them into the stored groups
(:data:`imdshunt.callgroups.MERGE_PARTIALS`, repeated deliveries counted once), and runs the
pipeline's detect, merge and correlate steps over the merged groups, so a finding that grows in
later files is the same finding, updated, never a second one. Findings equal a plain hunt of
the same files (``tests/test_modes_equivalence.py``, ``tests/test_state.py``).

A state folder holds one DuckDB database, ``state.duckdb``, with

* ``call_group``: the merged call groups of every ``AssumedRole``, ``IAMUser`` and
  ``FederatedUser`` call (with their event hashes, so a file delivered again never counts
  twice);
* ``vending``: the credential-vending events (sts ``AssumeRole*``) and the lineage events
  (:data:`imdshunt.schema.LINEAGE_EVENTS`: what a stolen key minted or changed), whole;
* ``log_account``: the accounts that recorded events;
* ``principal_address``: each session's (principal id, address) pairs (the naive rule);
* ``web_request``: the web requests that name a metadata endpoint (every other request is
  counted and forgotten);
* ``input_file``: every input read (identity and version), ``reported_finding`` and ``meta``.

Retention (``retention_days``, default 30, counted back from the newest event the state has
seen, so a backfill of old logs is not forgotten as it is read): a run forgets call groups
whose last call is older, with their event hashes; vending and lineage events older (unless a
kept group uses the key they minted or the key that made them), (principal, address) pairs and
web requests older. What persists beyond it: each EC2 instance's first group at each address or
VPC endpoint (its learned egress, which the binding detections need), the accounts that
recorded events, the list of files read (a file is never read twice) and the findings already
reported. A finding whose evidence is partly forgotten is not reported again as "updated" for
having shrunk.

Consistency under interruption: the state is written in ONE database transaction after the
detections ran: groups merged, files marked read, findings recorded. A run killed at any point
(even ``kill -9``) leaves the previous committed state; the next run reads the same new files
again, so no file is skipped or counted twice. Reporting is at-least-once: findings are written
out before the transaction commits, so a run killed between the two re-reports them next time.

One writer: a run holds an exclusive lock on ``STATE/lock`` for its whole length; a second run
on the same folder waits up to ``lock_timeout`` seconds, then fails with :class:`StateBusyError`.

Cost: a run decodes only new files; with nothing new and the same configuration it reuses the
last run's result without running a detection.
"""

from __future__ import annotations

import dataclasses
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

import duckdb
import pyarrow as pa

from imdshunt import __version__, pipeline
from imdshunt.callgroups import CALL_GROUP, KEY, MERGE_PARTIALS, USER_GROUP
from imdshunt.engine.duckdb import DuckDBEngine, _ddl, _sql_str, _to_arrow
from imdshunt.errors import UsageError
from imdshunt.findings import Finding, findings_from_records
from imdshunt.partials import ACCOUNTS, PRINCIPALS, Partials, partials_from_files
from imdshunt.schema import API_ACTIVITY, HTTP_REQUEST
from imdshunt.sources.discover import RunStats
from imdshunt.sources.inputs import InputFile, Reader, fetch_threads, list_inputs
from imdshunt.sources.registry import Progress, sort_inputs

STATE_DB = "state.duckdb"
LOCK_FILE = "lock"
#: Bumped when the tables change shape; an older state folder is refused with a clear message.
STATE_FORMAT = "3"  # 3: lineage columns in vending; IAM and federated users grouped
DEFAULT_RETENTION_DAYS = 30.0
#: Seconds a run waits for another run's lock on the state folder ($IMDSHUNT_STATE_LOCK_TIMEOUT).
DEFAULT_LOCK_TIMEOUT = 60.0
ENV_LOCK_TIMEOUT = "IMDSHUNT_STATE_LOCK_TIMEOUT"

_KEY_SQL = ", ".join(KEY)
_GROUP_COLS = ", ".join(CALL_GROUP.names)
#: One 64-bit value per group key, to find stored groups a run touches without a 16-column
#: join; a collision only brings one more (untouched) group into the exact merge.
_GROUP_HASH = f"hash({_KEY_SQL})"
#: Session names that are EC2 instance ids (views/10_credential_activity.sql, name_is_instance_id).
_INSTANCE_NAME = "regexp_full_match(session_name, '[iI]-([0-9a-fA-F]{8}|[0-9a-fA-F]{17})')"


class StateBusyError(UsageError):
    """Another run holds the state folder's lock."""


@dataclass
class IncrementalResult:
    new: list[Finding] = field(default_factory=list)
    updated: list[Finding] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # everything known after this run
    stats: RunStats = field(default_factory=RunStats)
    files_already_processed: int = 0
    naive: dict[str, Any] = field(default_factory=dict)
    #: What evidence this run had and lacked (see :func:`imdshunt.pipeline.evidence_notes`).
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: The newest event time the state has seen (for a watch's lag), or None.
    newest_event: dt.datetime | None = None
    #: Inputs this run committed as read (an SQS consumer deletes their messages).
    committed: list[InputFile] = field(default_factory=list)
    #: New inputs that could not be read (left unread, tried again next run).
    unread: list[InputFile] = field(default_factory=list)
    #: False when nothing was new and the last run's result was reused.
    detected: bool = True

    @property
    def changes(self) -> list[Finding]:
        return [Finding({**f.record, "change": "new"}) for f in self.new] + [
            Finding({**f.record, "change": "updated"}) for f in self.updated
        ]


def _fingerprint(f: Finding) -> str:
    """What makes a finding 'changed': more events, a later last use, new keys or actions."""
    key = json.dumps(
        [
            f.event_count,
            f.last_seen,
            f.access_key_ids,
            f.actions,
            f.reasons,
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _count(f: Finding) -> int:
    return int(f.event_count or f.request_count or 0)


def _shrank(old: Finding, new: Finding) -> bool:
    """A finding with fewer events or an earlier last use than reported: retention forgot
    part of its evidence. That is no news, so it is recorded but not reported."""
    return _count(new) < _count(old) or str(new.last_seen or "") < str(old.last_seen or "")


_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS st.meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    "CREATE TABLE IF NOT EXISTS st.input_file "
    "(identity VARCHAR PRIMARY KEY, version VARCHAR, processed_at TIMESTAMPTZ)",
    "CREATE TABLE IF NOT EXISTS st.reported_finding (finding_id VARCHAR PRIMARY KEY, "
    "fingerprint VARCHAR, first_reported TIMESTAMPTZ, last_reported TIMESTAMPTZ, "
    "record VARCHAR)",
    _ddl("st.call_group", pa.schema([("group_key", pa.uint64()), *CALL_GROUP])),
    _ddl("st.vending", API_ACTIVITY),
    _ddl("st.log_account", ACCOUNTS),
    _ddl("st.principal_address", PRINCIPALS),
    _ddl("st.web_request", HTTP_REQUEST),
]


class HuntState:
    """A state folder. Use as a context manager: it holds the folder's lock while open.

    The state database is attached as ``st`` to an in-memory engine: detections build their
    views and scratch tables in memory and read the stored groups in place, and the commit
    writes to ``st`` alone, in one transaction.
    """

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
            self.engine = DuckDBEngine(memory_limit=memory_limit)
            self._attach()
        except BaseException:
            self._lock.close()
            raise

    def _attach(self) -> None:
        path = self.dir / STATE_DB
        fresh = not path.exists()
        self.engine.execute(f"ATTACH {_sql_str(str(path))} AS st")
        tables = {
            r[0]
            for r in self._execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'st'"
            )
        }
        if not fresh and tables and "meta" not in tables:
            raise UsageError(
                f"{self.dir}: this state folder was written by an older imdshunt (it keeps every "
                "row); start a new --state folder (the files will be read once more)"
            )
        self.engine.execute("BEGIN TRANSACTION")
        for sql in _SCHEMA:
            self.engine.execute(sql)
        self.engine.execute("INSERT OR IGNORE INTO st.meta VALUES ('format', ?)", [STATE_FORMAT])
        self.engine.execute("COMMIT")
        fmt = self.meta("format")
        if fmt != STATE_FORMAT:
            raise UsageError(f"{self.dir}: state format {fmt}, this imdshunt reads {STATE_FORMAT}")
        # hash() may change between DuckDB versions: re-key the stored groups once if so.
        if self.meta("duckdb") != duckdb.__version__:
            self.engine.execute("BEGIN TRANSACTION")
            self.engine.execute(f"UPDATE st.call_group SET group_key = {_GROUP_HASH}")
            self._set_meta("duckdb", duckdb.__version__)
            self.engine.execute("COMMIT")

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

    def meta(self, key: str) -> str | None:
        rows = self._execute("SELECT value FROM st.meta WHERE key = ?", [key])
        return rows[0][0] if rows else None

    def _set_meta(self, key: str, value: str) -> None:
        self._execute("INSERT OR REPLACE INTO st.meta VALUES (?, ?)", [key, value])

    def processed(self) -> dict[str, str]:
        """Inputs already read: identity -> version."""
        return dict(self._execute("SELECT identity, version FROM st.input_file"))

    def reported(self) -> dict[str, tuple[str, str]]:
        """finding id -> (fingerprint, the finding as last recorded, JSON)."""
        rows = self._execute("SELECT finding_id, fingerprint, record FROM st.reported_finding")
        return {r[0]: (r[1], r[2]) for r in rows}

    def mark_read(self, files: Iterable[InputFile], now: dt.datetime) -> None:
        # One INSERT from Arrow: executemany costs a statement per file (minutes for 10 k).
        files = list(files)
        if not files:
            return
        table = pa.table(
            {
                "identity": [f.key for f in files],
                "version": [f.version for f in files],
                "processed_at": pa.array([now] * len(files), pa.timestamp("us", tz="UTC")),
            }
        )
        con = self.engine.con
        con.register("_read_files", table)
        try:
            con.execute("INSERT OR REPLACE INTO st.input_file SELECT * FROM _read_files")
        finally:
            con.unregister("_read_files")

    def record(self, f: Finding, fingerprint: str, now: dt.datetime) -> None:
        self._execute(
            "INSERT OR REPLACE INTO st.reported_finding VALUES (?, ?, "
            "coalesce((SELECT first_reported FROM st.reported_finding WHERE finding_id = ?), ?), "
            "?, ?)",
            [f.finding_id, fingerprint, f.finding_id, now, now, json.dumps(f.record, default=str)],
        )

    def newest_event(self) -> dt.datetime | None:
        value = self.meta("newest_event")
        return dt.datetime.fromisoformat(value) if value else None

    # -- one run's steps ---------------------------------------------------------------------
    def stage(self, parts: Partials) -> int:
        """Merge ``parts`` with the stored groups they touch into memory (``_touched``), and
        expose the state as it will be after this run (``_state_*`` views). Nothing is
        written to the state yet. Returns the repeated deliveries found against it."""
        con = self.engine.con
        tables = {
            "_new_groups_in": parts.groups,
            "_new_vending_in": parts.vending,
            "_new_accounts": parts.accounts,
            "_new_principals": parts.principals,
            "_new_web": parts.web,
        }
        for name, table in tables.items():
            con.register(name + "_arrow", table)
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS FROM {name}_arrow")
            con.unregister(name + "_arrow")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _new_groups AS "
            f"SELECT {_GROUP_HASH} AS group_key, * FROM _new_groups_in"
        )
        both = (
            f"(SELECT {_GROUP_COLS} FROM st.call_group WHERE group_key IN "
            f"(SELECT group_key FROM _new_groups) UNION ALL SELECT {_GROUP_COLS} FROM _new_groups)"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _touched AS SELECT "
            f"{_GROUP_HASH} AS group_key, * FROM ({MERGE_PARTIALS.format(partials=both)})"
        )
        # Vending events the state has not got (redeliveries of one event count once).
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _new_vending AS SELECT * FROM _new_vending_in n "
            "WHERE n.event_id IS NULL OR n.event_id NOT IN "
            "(SELECT event_id FROM st.vending WHERE event_id IS NOT NULL)"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _merged_principals AS "
            "SELECT principal_id, src_ip, max(last_seen) AS last_seen FROM ("
            "SELECT p.* FROM st.principal_address p SEMI JOIN _new_principals n "
            "ON p.principal_id IS NOT DISTINCT FROM n.principal_id "
            "AND p.src_ip IS NOT DISTINCT FROM n.src_ip "
            "UNION ALL SELECT * FROM _new_principals) GROUP BY principal_id, src_ip"
        )
        con.execute(
            "CREATE OR REPLACE TEMP VIEW _state_groups AS "
            f"SELECT {_GROUP_COLS} FROM st.call_group WHERE group_key NOT IN "
            f"(SELECT group_key FROM _new_groups) UNION ALL SELECT {_GROUP_COLS} FROM _touched"
        )
        con.execute(
            "CREATE OR REPLACE TEMP VIEW _state_accounts AS "
            "SELECT account_id FROM st.log_account UNION SELECT account_id FROM _new_accounts"
        )
        con.execute(
            "CREATE OR REPLACE TEMP VIEW _state_principals AS "
            "SELECT principal_id, src_ip FROM st.principal_address UNION "
            "SELECT principal_id, src_ip FROM _new_principals"
        )
        before = con.execute(
            "SELECT coalesce(sum(call_count), 0) FROM st.call_group "
            "WHERE group_key IN (SELECT group_key FROM _new_groups)"
        ).fetchall()[0][0]
        added = con.execute("SELECT coalesce(sum(call_count), 0) FROM _new_groups").fetchall()
        after = con.execute("SELECT coalesce(sum(call_count), 0) FROM _touched").fetchall()
        return int(before + added[0][0] - after[0][0])

    def load_into_engine(self, engine: DuckDBEngine, stats: RunStats) -> None:
        """The ``after_load`` step of :func:`imdshunt.pipeline.run`: the stored and new vending
        events and web requests as rows, the groups and accounts as given views."""
        from imdshunt.ssrf.urlclass import classify_urls

        vending = _to_arrow(
            engine.con.sql("SELECT * FROM st.vending UNION ALL SELECT * FROM _new_vending")
        )
        engine.load_api_activity(vending.to_batches())
        web = _to_arrow(
            engine.con.sql("SELECT * FROM st.web_request UNION ALL SELECT * FROM _new_web")
        )
        if web.num_rows:
            engine.load_http_requests(web.to_batches())
            # url_class from the rows at hand: a query would build the views before the
            # address classes are registered.
            engine.register_table("url_class", classify_urls(web))
        engine.use_call_groups(
            groups="SELECT * FROM _state_groups", accounts="SELECT * FROM _state_accounts"
        )

    def commit(
        self,
        parts: Partials,
        read: Sequence[InputFile],
        now: dt.datetime,
        retention_days: float | None,
    ) -> dt.datetime | None:
        """Write the staged run (inside the caller's transaction); returns the newest event."""
        x = self._execute
        x("DELETE FROM st.call_group WHERE group_key IN (SELECT group_key FROM _new_groups)")
        x("INSERT INTO st.call_group SELECT * FROM _touched")
        x("INSERT INTO st.vending SELECT * FROM _new_vending")
        x(
            "INSERT INTO st.log_account SELECT account_id, max(last_seen) FROM ("
            "SELECT * FROM st.log_account WHERE account_id IN "
            "(SELECT account_id FROM _new_accounts) UNION ALL SELECT * FROM _new_accounts) "
            "GROUP BY account_id"
        )
        x(
            "DELETE FROM st.log_account WHERE account_id IN (SELECT account_id FROM _new_accounts)"
            " AND rowid NOT IN (SELECT max(rowid) FROM st.log_account GROUP BY account_id)"
        )
        x(
            "DELETE FROM st.principal_address p USING _merged_principals m "
            "WHERE p.principal_id IS NOT DISTINCT FROM m.principal_id "
            "AND p.src_ip IS NOT DISTINCT FROM m.src_ip"
        )
        x("INSERT INTO st.principal_address SELECT * FROM _merged_principals")
        x("INSERT INTO st.web_request SELECT * FROM _new_web")
        self.mark_read(read, now)
        newest = self.newest_event()
        if parts.newest_event is not None and (newest is None or parts.newest_event > newest):
            newest = parts.newest_event
            self._set_meta("newest_event", newest.isoformat())
        if retention_days is not None and newest is not None:
            self.forget_before(newest - dt.timedelta(days=retention_days))
        return newest

    def forget_before(self, cutoff: dt.datetime) -> None:
        """Retention: forget what the detections no longer need (see the module doc)."""
        x = self._execute
        x(
            "DELETE FROM st.call_group WHERE last_seen < ? AND group_key NOT IN ("
            # each EC2 instance's first group at each address or endpoint: its learned egress
            "SELECT arg_min(group_key, first_seen) FROM st.call_group "
            f"WHERE {_INSTANCE_NAME} GROUP BY account_id, lower(session_name), "
            "vpce_id, vpce_account_id, region, src_ip)",
            [cutoff],
        )
        x(
            # a vending or lineage event stays while the key it minted, or the key that
            # made it (a stolen key's minting calls), still has calls in the state
            "DELETE FROM st.vending WHERE event_time < ? "
            "AND coalesce(resp_access_key_id, '') NOT IN (SELECT access_key_id "
            "FROM st.call_group WHERE access_key_id IS NOT NULL) "
            "AND coalesce(access_key_id, '') NOT IN (SELECT access_key_id "
            "FROM st.call_group WHERE access_key_id IS NOT NULL)",
            [cutoff],
        )
        x("DELETE FROM st.principal_address WHERE last_seen < ?", [cutoff])
        x("DELETE FROM st.web_request WHERE time < ?", [cutoff])

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.glob(STATE_DB + "*"))


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


def _config_digest(cfg: pipeline.HuntConfig, retention_days: float | None) -> str:
    """What besides new files can change a run's findings: when it is unchanged and nothing
    is new, the last run's result stands and no detection runs."""
    from imdshunt.engine.duckdb import VIEWS_DIR

    h = hashlib.sha256()
    ipr: Any = None
    try:
        from imdshunt.enrich.ipranges import resolve_ip_ranges_path

        p = resolve_ip_ranges_path(cfg.ip_ranges, fetch=False)
        st = p.stat()
        ipr = [str(p.resolve()), st.st_size, st.st_mtime_ns]
    except Exception:  # no copy yet: the run fetches one, and the digest differs next time
        ipr = None
    if cfg.detections is None:
        roots = [VIEWS_DIR, VIEWS_DIR.parent / "detections"]
        for root in roots:
            for p in sorted(root.rglob("*")):
                if p.is_file() and p.suffix in (".sql", ".yml"):
                    h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    else:
        h.update(json.dumps(sorted(cfg.detections), default=str).encode())
    inv = cfg.inventory
    doc = [
        __version__,
        ipr,
        sorted(cfg.allowlist),
        cfg.params,
        list(cfg.kinds),
        cfg.web_log_type,
        cfg.instance_by_ip,
        cfg.chain_window_hours,
        str(cfg.window),
        retention_days,
        inv.addresses,
        inv.vpc_endpoints,
        sorted(inv.org_accounts),
    ]
    h.update(json.dumps(doc, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _listing_window(window, newest: dt.datetime | None, slack_days: float):
    """The hunt's window, starting no earlier than the delivery day of the newest event the
    state has seen, less ``slack_days`` (late deliveries land in earlier day folders)."""
    if newest is None:
        return window
    since = (newest - dt.timedelta(days=slack_days)).date()
    if window.since is not None and window.since >= since:
        return window
    return dataclasses.replace(window, since=since)


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
    lock_timeout: float | None = None,
    retention_days: float | None = DEFAULT_RETENTION_DAYS,
    files: Sequence[InputFile] | None = None,
    s3_client: Any = None,
    prune_listing_days: float | None = None,
) -> IncrementalResult:
    """Read only inputs not seen before, merge them into the state, report new and updated
    findings.

    ``paths`` are local files and folders or ``s3://`` prefixes, as for
    :func:`imdshunt.api.hunt`; or ``files`` names the inputs directly (S3 event
    notifications, see :mod:`imdshunt.sources.sqs`; read with ``s3_client``). ``report``
    (optional) is called with the changes before they are committed as reported.
    ``inventory`` and ``org_accounts`` are this run's snapshot: they replace the previous
    run's, so a finding whose evidence changes (learned egress -> inventory) is reported as
    updated. ``retention_days`` bounds the state (None: keep everything; see the module doc).
    ``lock_timeout`` (default ``$IMDSHUNT_STATE_LOCK_TIMEOUT``, else 60 s) is how long to wait
    for another run on the same state folder before :class:`StateBusyError`.
    ``prune_listing_days`` lists only day folders from the newest event's day less that many
    days (a frequent ``watch`` poll need not list the whole trail).
    """
    started = time.monotonic()
    if lock_timeout is None:
        lock_timeout = float(os.environ.get(ENV_LOCK_TIMEOUT) or DEFAULT_LOCK_TIMEOUT)
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
    result = IncrementalResult()
    stats = result.stats
    with HuntState(state_dir, memory_limit=memory_limit, lock_timeout=lock_timeout) as state:
        newest = state.newest_event()
        if files is None:
            window = cfg.window
            if prune_listing_days is not None:
                window = _listing_window(window, newest, prune_listing_days)
            listing = list_inputs(paths, stats, window=window, session=session, workers=workers)
            listed, s3_client = listing.files, listing.s3_client
        else:
            listed = [f for f in files if cfg.window.keep_path(f.path.as_posix())[0]]
        seen = state.processed()
        fresh = [f for f in listed if seen.get(f.key) != f.version]
        result.files_already_processed = len(listed) - len(fresh)
        digest = _config_digest(cfg, retention_days)
        last = state.meta("last_result")
        if not fresh and last and state.meta("config_digest") == digest:
            doc = json.loads(last)
            result.findings, result.naive, result.notes = (
                findings_from_records(doc["findings"]),
                doc["naive"],
                doc["notes"],
            )
            result.newest_event = newest
            result.detected = False
            result.seconds = time.monotonic() - started
            return result
        classifier, warnings = cfg.classifier()
        reader = Reader(s3_client, threads=fetch_threads(workers))
        selected = sort_inputs(fresh, reader, stats)
        parts = partials_from_files(
            selected,
            reader,
            stats,
            workers=workers,
            web_log_type=web_log_type,
            kinds=cfg.kinds,
            progress=progress,
        )
        cross_run_duplicates = state.stage(parts)
        hunted = pipeline.run(
            state.engine,
            {},
            reader,
            cfg,
            stats,
            classifier=classifier,
            warnings=warnings,
            after_load=lambda engine, _stats: state.load_into_engine(engine, _stats),
            naive=_naive_from_groups,
        )
        stats.duplicate_records = parts.duplicate_records + cross_run_duplicates
        # Every new input is marked read (decoded, or skipped on purpose: digests, other
        # JSON, corrupt files) except those that could not be fetched: tried again next run
        # (and, from SQS, their messages are not deleted).
        unreadable = {s.path for s in stats.files_skipped if s.reason.startswith("unreadable")}
        read = [f for f in fresh if f.uri not in unreadable]
        now = dt.datetime.now(dt.UTC)
        result.findings = hunted.findings
        result.naive = hunted.naive
        result.notes = hunted.notes
        result.warnings = hunted.warnings
        before = state.reported()
        to_record = []
        for f in result.findings:
            fp = _fingerprint(f)
            old = before.get(f.finding_id)
            if old is not None and old[0] == fp:
                continue
            if old is None:
                result.new.append(f)
            elif not _shrank(Finding(json.loads(old[1])), f):
                result.updated.append(f)
            to_record.append((f, fp))
        state.engine.execute("BEGIN TRANSACTION")
        try:
            result.newest_event = state.commit(parts, read, now, retention_days)
            for f, fp in to_record:
                state.record(f, fp, now)
            state._set_meta("config_digest", digest)
            state._set_meta(
                "last_result",
                json.dumps(
                    {
                        "findings": [f.record for f in result.findings],
                        "naive": result.naive,
                        "notes": result.notes,
                    },
                    default=str,
                ),
            )
            if report is not None:
                report(result.changes)
            state.engine.execute("COMMIT")
        except BaseException:
            state.engine.execute("ROLLBACK")
            raise
        result.committed = read
        result.unread = [f for f in fresh if f.uri in unreadable]
    result.seconds = time.monotonic() - started
    return result


def _naive_from_groups(engine) -> dict[str, int]:
    """:func:`imdshunt.pipeline.naive_rule` from the stored groups and (session, address)
    pairs: the same numbers without single calls."""
    row = engine.query(
        "SELECT (SELECT coalesce(sum(g.call_count), 0) FROM _state_groups g "
        "JOIN ip_class ip ON ip.src_ip = g.src_ip WHERE ip.network_kind = 'internet' "
        f"AND NOT {USER_GROUP.replace('actor_arn', 'g.actor_arn')}) AS events, "
        "(SELECT count(DISTINCT p.principal_id) FROM _state_principals p "
        "JOIN ip_class ip ON ip.src_ip = p.src_ip WHERE ip.network_kind = 'internet') "
        "AS sessions",
        label="naive rule",
    ).to_pylist()[0]
    return {"events": int(row["events"] or 0), "sessions": int(row["sessions"] or 0)}


def check_state_dir(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{p}: --state must be a folder")
    return p
