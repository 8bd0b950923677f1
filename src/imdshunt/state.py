"""Incremental, scheduled hunts: remember what was read and what the detections need, not rows.

An incremental hunt is the one pipeline (:mod:`imdshunt.pipeline`) with a file selector before
it and a commit step after it. It selects the inputs its state has not read (local files by
resolved path, size and mtime; S3 objects by URI, size and ETag), loads only those into its
engine through the load step of a plain hunt (each source's ``load``: DuckDB parses delivered
CloudTrail natively), keeps of their rows what the detections need as SQL over them
(:meth:`HuntState.load_new`: partial call groups, vending and lineage events, accounts,
(principal, address) pairs, metadata-endpoint web requests), merges that into the stored
groups (:data:`imdshunt.callgroups.MERGE_PARTIALS`, repeated deliveries counted once), forgets
the rows, and runs the
pipeline's detect, merge and correlate steps over the merged groups, so a finding that grows in
later files is the same finding, updated, never a second one. Findings equal a plain hunt of
the same files (``tests/test_modes_equivalence.py``, ``tests/test_state.py``).

A state folder holds one DuckDB database, ``state.duckdb``, with

* ``call_group``: the merged call groups of every ``AssumedRole``, ``IAMUser`` and
  ``FederatedUser`` call, stored compactly (:data:`STORED_FROM_PARTIAL`): the first 100 event
  ids in sort order as 16-byte UUIDs (CloudTrail's eventIDs are; any other id is kept as
  text), and the 64-bit hash of every other event id, so a file delivered again never counts
  twice;
* ``vending``: the credential-vending events (sts ``AssumeRole*``) and the lineage events
  (:data:`imdshunt.schema.LINEAGE_EVENTS`: what a stolen key minted or changed), whole but for
  the session token in their response (no view reads it; it is most of a vending event's
  bytes, and a live credential has no place in a state folder);
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
from imdshunt.callgroups import (
    CALL_GROUP,
    KEY,
    MERGE_PARTIALS,
    PARTIAL_FROM_ROWS,
    USER_GROUP,
)
from imdshunt.engine.duckdb import DuckDBEngine
from imdshunt.errors import UsageError
from imdshunt.findings import Finding, FindingKind, findings_from_records
from imdshunt.request import HuntRequest
from imdshunt.schema import API_ACTIVITY, HTTP_REQUEST, LINEAGE_EVENTS, TS
from imdshunt.sources.discover import RunStats
from imdshunt.sources.inputs import InputFile, Reader, fetch_threads, list_inputs
from imdshunt.sources.registry import SOURCES, LoadContext, sort_inputs

STATE_DB = "state.duckdb"
LOCK_FILE = "lock"
#: Bumped when the tables change shape; an older state folder is refused with a clear message.
#: 3: lineage columns in vending; IAM and federated users grouped. 4: compact call groups
#: (event ids as UUIDs, hashes of the ids beyond the first 100 only), no session tokens.
STATE_FORMAT = "4"
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


#: The events ``credential_vending`` (views/10_credential_activity.sql) and ``lineage_call``
#: (views/40_lineage.sql) read, kept whole: a key minted in one run and used in a later one is
#: still tied to its theft.
VENDING_FILTER = (
    # LINEAGE_EVENTS' sts events include every AssumeRole* credential_vending reads
    "error_code IS NULL AND ("
    + " OR ".join(
        f"(event_source = '{source}' AND event_name IN ("
        + ", ".join(f"'{n}'" for n in sorted(names))
        + "))"
        for source, names in sorted(LINEAGE_EVENTS.items())
    )
    + ")"
)

ACCOUNTS = pa.schema([("account_id", pa.string()), ("last_seen", TS)])
PRINCIPALS = pa.schema([("principal_id", pa.string()), ("src_ip", pa.string()), ("last_seen", TS)])

#: Web requests that ``url_class`` names (the join of imds_ssrf_attempt): the only ones kept.
_WEB_CANDIDATES = """
SELECT r.* FROM http_request r
WHERE EXISTS (
    SELECT 1 FROM url_class u
    WHERE coalesce(r.url, '') = coalesce(u.url, '')
      AND coalesce(r.host, '') = coalesce(u.host, '')
      AND coalesce(r.headers, '') = coalesce(u.headers, '')
      AND coalesce(r.body, '') = coalesce(u.body, '')
)
"""

#: Is ``{e}`` an event id in the canonical form of a UUID (lowercase, hyphenated, as CloudTrail
#: writes eventID)? Only those are stored as 16-byte UUIDs: their text comes back exactly.
_IS_UUID = "coalesce(CAST(TRY_CAST({e} AS UUID) AS VARCHAR) = {e}, false)"

#: Merged groups (``{groups}``: ``group_key`` and :data:`~imdshunt.callgroups.CALL_GROUP`
#: columns) in the stored layout: the first 100 ids as UUIDs or text, and the hashes of the
#: group's other ids only (the first ids' hashes are computed again when read). Exact: a merge
#: never brings an id beyond a part's first 100 into the merged first 100.
STORED_FROM_PARTIAL = f"""
SELECT group_key, {_KEY_SQL}, call_count, first_seen, last_seen, session_created,
    [CAST(e AS UUID) FOR e IN event_ids IF {_IS_UUID.format(e="e")}] AS first_uuids,
    [e FOR e IN event_ids IF NOT {_IS_UUID.format(e="e")}] AS first_other_ids,
    [h FOR h IN event_hashes IF NOT list_contains(first_hashes, h)] AS later_hashes,
    unkeyed_calls, delivered_calls
FROM (SELECT *, [md5_number_lower(e) FOR e IN event_ids] AS first_hashes FROM {{groups}})
"""

#: The stored groups in the layout of merged groups (group_key + CALL_GROUP), for a merge.
_STORED_EVENT_IDS = (
    "CASE WHEN first_uuids IS NULL AND first_other_ids IS NULL THEN NULL ELSE list_sort("
    "list_concat(coalesce([CAST(u AS VARCHAR) FOR u IN first_uuids], []), "
    "coalesce(first_other_ids, []))) END"
)
PARTIAL_FROM_STORED = f"""
SELECT group_key, {_KEY_SQL}, call_count, first_seen, last_seen, session_created, event_ids,
    list_sort(list_concat(coalesce(later_hashes, []),
        coalesce([md5_number_lower(e) FOR e IN event_ids], []))) AS event_hashes,
    unkeyed_calls, delivered_calls
FROM (SELECT *, {_STORED_EVENT_IDS} AS event_ids FROM st.call_group)
"""
#: What the detections read of a stored group (no hashes: they are for merging only).
_STORED_FOR_DETECTIONS = (
    f"SELECT group_key, {_KEY_SQL}, call_count, first_seen, last_seen, session_created, "
    f"{_STORED_EVENT_IDS} AS event_ids FROM st.call_group"
)
_DETECTION_COLS = f"{_KEY_SQL}, call_count, first_seen, last_seen, session_created, event_ids"

#: The stored call groups (every key column is text, as in api_activity).
_STORED_CALL_GROUP = (
    "CREATE TABLE IF NOT EXISTS st.call_group (group_key UBIGINT, "
    + ", ".join(f"{k} VARCHAR" for k in KEY)
    + ", call_count BIGINT, first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ, "
    "session_created TIMESTAMPTZ, first_uuids UUID[], first_other_ids VARCHAR[], "
    "later_hashes UBIGINT[], unkeyed_calls BIGINT, delivered_calls BIGINT)"
)

#: A vending event's response as stored: without ``credentials.sessionToken``. Inside a JSON
#: string every ``"`` is escaped, so the pattern matches the token's value and nothing else; a
#: token with an escape in it (none is: it is base64) is kept as it is.
_WITHOUT_SESSION_TOKEN = (
    'regexp_replace(response_elements, \'"sessionToken"\\s*:\\s*"[^"\\\\]*"\', '
    '\'"sessionToken":""\')'
)

#: The state database's block size: a few small tables, so DuckDB's default of 256 KiB a block
#: would be a good part of the file (measured: 64 KiB gives the smallest file).
_BLOCK_SIZE = 65536

#: What a run keeps of its new files (temporary tables, see HuntState.load_new).
_NEW_TABLES = {
    "_new_groups_in": CALL_GROUP,
    "_new_vending_in": API_ACTIVITY,
    "_new_accounts": ACCOUNTS,
    "_new_principals": PRINCIPALS,
    "_new_web": HTTP_REQUEST,
}


@dataclass
class NewFiles:
    """What :meth:`HuntState.load_new` learnt of a run's new files besides its tables."""

    newest_event: dt.datetime | None = None
    #: Repeated deliveries among the new files (against the state: :meth:`HuntState.stage`).
    duplicate_records: int = 0


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
    _STORED_CALL_GROUP,
]
#: The stored tables of Arrow schemas.
_STORED = {
    "st.vending": API_ACTIVITY,
    "st.log_account": ACCOUNTS,
    "st.principal_address": PRINCIPALS,
    "st.web_request": HTTP_REQUEST,
}


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
        self._newest_loaded: dt.datetime | None = None
        try:
            self.engine = DuckDBEngine(memory_limit=memory_limit)
            self._attach()
        except BaseException:
            self._lock.close()
            raise

    def _attach(self) -> None:
        path = self.dir / STATE_DB
        fresh = not path.exists()
        self.engine.attach_database(path, "st", block_size=_BLOCK_SIZE)
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
        self.engine.execute_all(
            [*_SCHEMA, f"INSERT OR IGNORE INTO st.meta VALUES ('format', '{STATE_FORMAT}')"]
        )
        for name, schema in _STORED.items():
            self.engine.create_table(name, schema)
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
        self.engine.insert_arrow("st.input_file", table, replace=True)

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
    def load_new(
        self,
        selected: dict[str, list[InputFile]],
        ctx: LoadContext,
        kinds: Sequence[str] = ("credential", "web"),
    ) -> NewFiles:
        """Load the new files (as :func:`imdshunt.registry.sort_inputs` sorts them) into the
        state's engine through each source's ``load``, the load step of a plain hunt, and
        keep what the detections need of them as temporary tables, SQL over the loaded rows:
        their partial call groups (:data:`~imdshunt.callgroups.PARTIAL_FROM_ROWS`, merged),
        vending and lineage events whole, accounts, (principal, address) pairs and the web
        requests naming a metadata endpoint. The rows are then forgotten: the detections
        hunt the merged groups (:meth:`stage`, :meth:`load_into_engine`)."""
        engine = self.engine
        out = NewFiles()
        for name, schema in _NEW_TABLES.items():
            engine.create_table(name, schema, temporary=True, replace=True)
        newest: list[Any] = []
        api = {n: f for n, f in selected.items() if f and SOURCES[n].table == "api_activity"}
        if api:
            for name, files in api.items():
                SOURCES[name].load(files, engine, ctx)
            # Settles api_activity (each eventID once); no shared view is built: that is the
            # detections' cost, paid once over the merged groups.
            engine.ensure_views()
            out.duplicate_records = engine.duplicate_records
            partial = PARTIAL_FROM_ROWS.format(rows="api_activity")
            engine.execute(
                f"INSERT INTO _new_groups_in {MERGE_PARTIALS.format(partials=f'({partial})')}"
            )
            engine.execute(
                f"INSERT INTO _new_vending_in SELECT * REPLACE ({_WITHOUT_SESSION_TOKEN} AS "
                f"response_elements) FROM api_activity WHERE {VENDING_FILTER}"
            )
            engine.execute(
                "INSERT INTO _new_accounts SELECT account_id, max(event_time) FROM api_activity "
                "WHERE account_id IS NOT NULL GROUP BY account_id"
            )
            engine.execute(
                "INSERT INTO _new_principals SELECT principal_id, src_ip, max(event_time) "
                "FROM api_activity WHERE actor_type = 'AssumedRole' GROUP BY principal_id, src_ip"
            )
            newest.append(engine.execute("SELECT max(event_time) FROM api_activity")[0][0])
            engine.drop_loaded_rows()
        web = {n: f for n, f in selected.items() if f and SOURCES[n].table == "http_request"}
        if web and FindingKind.WEB in kinds:
            # After the API rows are forgotten: the web load builds url_class with a query,
            # which builds the shared views, and over an empty api_activity that costs nothing.
            for name, files in web.items():
                SOURCES[name].load(files, engine, ctx)
            engine.execute(f"INSERT INTO _new_web {_WEB_CANDIDATES}")
            newest.append(engine.execute("SELECT max(time) FROM http_request")[0][0])
            engine.drop_loaded_rows()
        else:
            for files in web.values():
                for f in files:
                    ctx.stats.skip_file(f.uri, "web log (not asked for)")
        stamps = [t for t in newest if t is not None]
        out.newest_event = max(stamps) if stamps else None
        self._newest_loaded = out.newest_event
        return out

    def stage(self) -> int:
        """Merge the new files' groups (:meth:`load_new`) with the stored groups they touch
        into memory (``_touched``), and expose the state as it will be after this run
        (``_state_*`` views). Nothing is written to the state yet. Returns the repeated
        deliveries found against it."""
        x = self.engine.execute
        x(
            "CREATE OR REPLACE TEMP TABLE _new_groups AS "
            f"SELECT {_GROUP_HASH} AS group_key, * FROM _new_groups_in"
        )
        both = (
            f"(SELECT {_GROUP_COLS} FROM ({PARTIAL_FROM_STORED}) WHERE group_key IN "
            f"(SELECT group_key FROM _new_groups) UNION ALL SELECT {_GROUP_COLS} FROM _new_groups)"
        )
        x(
            "CREATE OR REPLACE TEMP TABLE _touched AS SELECT "
            f"{_GROUP_HASH} AS group_key, * FROM ({MERGE_PARTIALS.format(partials=both)})"
        )
        # Vending events the state has not got (redeliveries of one event count once).
        x(
            "CREATE OR REPLACE TEMP TABLE _new_vending AS SELECT * FROM _new_vending_in n "
            "WHERE n.event_id IS NULL OR n.event_id NOT IN "
            "(SELECT event_id FROM st.vending WHERE event_id IS NOT NULL)"
        )
        x(
            "CREATE OR REPLACE TEMP TABLE _merged_principals AS "
            "SELECT principal_id, src_ip, max(last_seen) AS last_seen FROM ("
            "SELECT p.* FROM st.principal_address p SEMI JOIN _new_principals n "
            "ON p.principal_id IS NOT DISTINCT FROM n.principal_id "
            "AND p.src_ip IS NOT DISTINCT FROM n.src_ip "
            "UNION ALL SELECT * FROM _new_principals) GROUP BY principal_id, src_ip"
        )
        x(
            "CREATE OR REPLACE TEMP VIEW _state_groups AS "
            f"SELECT {_DETECTION_COLS} FROM ({_STORED_FOR_DETECTIONS}) WHERE group_key NOT IN "
            f"(SELECT group_key FROM _new_groups) UNION ALL SELECT {_DETECTION_COLS} FROM _touched"
        )
        x(
            "CREATE OR REPLACE TEMP VIEW _state_accounts AS "
            "SELECT account_id FROM st.log_account UNION SELECT account_id FROM _new_accounts"
        )
        x(
            "CREATE OR REPLACE TEMP VIEW _state_principals AS "
            "SELECT principal_id, src_ip FROM st.principal_address UNION "
            "SELECT principal_id, src_ip FROM _new_principals"
        )
        before = x(
            "SELECT coalesce(sum(call_count), 0) FROM st.call_group "
            "WHERE group_key IN (SELECT group_key FROM _new_groups)"
        )[0][0]
        added = x("SELECT coalesce(sum(call_count), 0) FROM _new_groups")[0][0]
        after = x("SELECT coalesce(sum(call_count), 0) FROM _touched")[0][0]
        return int(before + added - after)

    def load_into_engine(self, engine: DuckDBEngine, stats: RunStats) -> None:
        """The ``after_load`` step of :func:`imdshunt.pipeline.run`: the stored and new vending
        events and web requests as rows, the groups and accounts as given views."""
        from imdshunt.ssrf.urlclass import classify_urls

        engine.load_query(
            "api_activity", "SELECT * FROM st.vending UNION ALL SELECT * FROM _new_vending"
        )
        web = engine.read_arrow("SELECT * FROM st.web_request UNION ALL SELECT * FROM _new_web")
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
        read: Sequence[InputFile],
        now: dt.datetime,
        retention_days: float | None,
    ) -> dt.datetime | None:
        """Write the staged run (inside the caller's transaction); returns the newest event."""
        x = self._execute
        x("DELETE FROM st.call_group WHERE group_key IN (SELECT group_key FROM _new_groups)")
        x(f"INSERT INTO st.call_group {STORED_FROM_PARTIAL.format(groups='_touched')}")
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
        loaded = self._newest_loaded
        if loaded is not None and (newest is None or loaded > newest):
            newest = loaded
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
    is new, the last run's result stands and no detection runs.

    Derived from :class:`~imdshunt.pipeline.HuntConfig`'s fields, so a field added there
    counts here unless it declares ``metadata={"changes_findings": False}`` (how many
    workers, progress). Two fields stand for files: the ip-ranges copy (its identity, size
    and time) and, without explicit detections, the view and detection files (their bytes).
    """
    from imdshunt.engine.duckdb import VIEWS_DIR

    h = hashlib.sha256()
    doc: dict[str, Any] = {"version": __version__, "retention_days": retention_days}
    for f in dataclasses.fields(cfg):
        if not f.metadata.get("changes_findings", True):
            continue
        value = getattr(cfg, f.name)
        if f.name == "ip_ranges":
            value = _ip_ranges_identity(value)
        elif f.name == "detections" and value is None:
            for root in (VIEWS_DIR, VIEWS_DIR.parent / "detections"):
                for p in sorted(root.rglob("*")):
                    if p.is_file() and p.suffix in (".sql", ".yml"):
                        h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
        elif f.name == "detections":
            value = sorted(value)
        elif dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        doc[f.name] = value
    h.update(json.dumps(doc, sort_keys=True, default=_digestible).encode())
    return h.hexdigest()


def _ip_ranges_identity(given: str | os.PathLike | None) -> list | None:
    from imdshunt.enrich.ipranges import resolve_ip_ranges_path

    try:
        p = resolve_ip_ranges_path(given, fetch=False)
        st = p.stat()
    except Exception:  # no copy yet: the run fetches one, and the digest differs next time
        return None
    return [str(p.resolve()), st.st_size, st.st_mtime_ns]


def _digestible(value: Any) -> Any:
    """JSON for what json.dumps cannot write, the same on every run (sets sorted)."""
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def _listing_window(window, newest: dt.datetime | None, slack_days: float):
    """The hunt's window, starting no earlier than the delivery day of the newest event the
    state has seen, less ``slack_days`` (late deliveries land in earlier day folders)."""
    if newest is None:
        return window
    since = (newest - dt.timedelta(days=slack_days)).date()
    if window.since is not None and window.since >= since:
        return window
    return dataclasses.replace(window, since=since)


@dataclass(frozen=True)
class StateOptions:
    """How an incremental run treats its state folder.

    ``report`` (optional) is called with the changes before they are committed as reported.
    ``retention_days`` bounds the state (None: keep everything; see the module doc).
    ``lock_timeout`` (default ``$IMDSHUNT_STATE_LOCK_TIMEOUT``, else 60 s) is how long to wait
    for another run on the same state folder before :class:`StateBusyError`.
    ``prune_listing_days`` lists only day folders from the newest event's day less that many
    days (a frequent ``watch`` poll need not list the whole trail).
    """

    directory: str | os.PathLike
    retention_days: float | None = DEFAULT_RETENTION_DAYS
    report: Callable[[list[dict]], None] | None = None
    lock_timeout: float | None = None
    prune_listing_days: float | None = None


_STATE_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(StateOptions)) - {"directory"}


def hunt_incremental(
    request: HuntRequest | Iterable[str | os.PathLike],
    state_options: StateOptions | str | os.PathLike,
    /,
    **options: Any,
) -> IncrementalResult:
    """Read only inputs not seen before, merge them into the state, report new and updated
    findings.

    ``request`` is the run's :class:`~imdshunt.request.HuntRequest` (paths, local or
    ``s3://``, or inputs named directly by S3 event notifications, see
    :mod:`imdshunt.sources.sqs`); ``state`` its :class:`StateOptions`. For the library's
    keyword style, give the paths and the state folder, and the options of both as keywords.
    ``inventory`` and ``org_accounts`` are this run's snapshot: they replace the previous
    run's, so a finding whose evidence changes (learned egress -> inventory) is reported as
    updated.
    """
    if not isinstance(state_options, StateOptions):
        own = {k: options.pop(k) for k in _STATE_OPTION_NAMES & options.keys()}
        state_options = StateOptions(state_options, **own)
    if not isinstance(request, HuntRequest):
        request = HuntRequest.make(request, **options)
    elif options:
        raise UsageError(f"hunt_incremental: options {sorted(options)} given with a HuntRequest")
    if request.engine is not None or request.store is not None:
        # The state's own DuckDB database holds its history; a store is another way to hunt.
        raise UsageError("--state hunts with its own DuckDB engine, without --store")
    started = time.monotonic()
    cfg = request.config
    paths, files, session, workers = request.paths, request.files, request.session, cfg.workers
    s3_client, memory_limit, progress = request.s3_client, request.memory_limit, cfg.progress
    state_dir, report = state_options.directory, state_options.report
    retention_days, lock_timeout = state_options.retention_days, state_options.lock_timeout
    prune_listing_days = state_options.prune_listing_days
    web_log_type = cfg.web_log_type
    if lock_timeout is None:
        lock_timeout = float(os.environ.get(ENV_LOCK_TIMEOUT) or DEFAULT_LOCK_TIMEOUT)
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
        classifier, warnings = (
            (request.classifier, []) if request.classifier is not None else cfg.classifier()
        )
        reader = Reader(s3_client, threads=fetch_threads(workers))
        selected = sort_inputs(fresh, reader, stats)
        ctx = LoadContext(
            reader=reader,
            stats=stats,
            workers=workers,
            web_log_type=web_log_type,
            progress=progress,
        )
        new = state.load_new(selected, ctx, cfg.kinds)
        cross_run_duplicates = state.stage()
        hunted = pipeline.run(
            state.engine,
            {},
            reader,
            cfg,
            stats,
            classified=(classifier, warnings),
            after_load=lambda engine, _stats: state.load_into_engine(engine, _stats),
            naive=_naive_from_groups,
        )
        stats.duplicate_records = new.duplicate_records + cross_run_duplicates
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
            result.newest_event = state.commit(read, now, retention_days)
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
