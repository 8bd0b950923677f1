"""What an incremental run keeps of the files it decodes: partial call groups, not rows.

:func:`partials_from_files` is the one seam between decoding and the incremental state
(:mod:`imdshunt.state`): it decodes the selected files and returns, for those files alone,

* their call groups (:data:`imdshunt.callgroups.CALL_GROUP`, every ``AssumedRole`` call,
  repeated deliveries counted once through the event hashes),
* the credential-vending events as whole canonical rows (``credential_vending`` is computed
  from them by its own SQL, so an upgrade of that view applies to stored events too),
* the accounts that recorded events, and each session's (principal id, address) pairs (the
  naive rule's session count),
* the web requests that name a metadata endpoint (the only ones ``imds_ssrf_attempt`` reads),
* the newest event time and the repeated deliveries found among them.

Today the groups are computed from decoded rows with :data:`~imdshunt.callgroups.PARTIAL_FROM_ROWS`
in a scratch in-memory DuckDB; a decoder that emits partial groups directly replaces the body
of this one function and nothing else.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from imdshunt.callgroups import CALL_GROUP, MERGE_PARTIALS, PARTIAL_FROM_ROWS
from imdshunt.findings import FindingKind
from imdshunt.schema import API_ACTIVITY, HTTP_REQUEST, LINEAGE_EVENTS, TS
from imdshunt.sources.discover import RunStats
from imdshunt.sources.inputs import InputFile, Reader
from imdshunt.sources.registry import SOURCES, LoadContext

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

#: Web requests that ``url_class`` names (the join of imds_ssrf_attempt).
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


@dataclass
class Partials:
    """What the detections need of some files, without their rows (see the module doc)."""

    groups: pa.Table = field(default_factory=CALL_GROUP.empty_table)
    vending: pa.Table = field(default_factory=API_ACTIVITY.empty_table)
    accounts: pa.Table = field(default_factory=ACCOUNTS.empty_table)
    principals: pa.Table = field(default_factory=PRINCIPALS.empty_table)
    web: pa.Table = field(default_factory=HTTP_REQUEST.empty_table)
    newest_event: dt.datetime | None = None
    duplicate_records: int = 0
    #: Files decoded completely (a file that failed to read is not among them).
    files_done: list[InputFile] = field(default_factory=list)


def partials_from_files(
    selected: dict[str, list[InputFile]],
    reader: Reader,
    stats: RunStats,
    *,
    workers: int | None = None,
    web_log_type: str | None = None,
    kinds: tuple[str, ...] = ("credential", "web"),
    progress: Any = None,
) -> Partials:
    """Decode ``selected`` (as :func:`imdshunt.sources.registry.sort_inputs` sorts them) and
    return their :class:`Partials`, accounting in ``stats`` as a plain hunt does."""
    from imdshunt.engine.duckdb import DuckDBEngine, _to_arrow

    ctx = LoadContext(
        reader=reader, stats=stats, workers=workers, web_log_type=web_log_type, progress=progress
    )
    out = Partials()
    newest: list[Any] = []
    api_files = {n: f for n, f in selected.items() if f and SOURCES[n].table == "api_activity"}
    if api_files:
        engine = DuckDBEngine()
        try:
            for name, files in api_files.items():
                SOURCES[name].load(files, engine, ctx)
            # Only api_activity is settled; none of the shared views is built (that is the
            # detections' cost, paid once over the merged groups). Read through the
            # connection because Engine.query would build and compute them all.
            engine.ensure_views()
            out.duplicate_records = engine.duplicate_records

            def arrow(sql: str, schema: pa.Schema) -> pa.Table:
                return _to_arrow(engine.con.sql(sql)).cast(schema)

            partial = PARTIAL_FROM_ROWS.format(rows="api_activity")
            out.groups = arrow(MERGE_PARTIALS.format(partials=f"({partial})"), CALL_GROUP)
            out.vending = arrow(f"SELECT * FROM api_activity WHERE {VENDING_FILTER}", API_ACTIVITY)
            out.accounts = arrow(
                "SELECT account_id, max(event_time) AS last_seen FROM api_activity "
                "WHERE account_id IS NOT NULL GROUP BY account_id",
                ACCOUNTS,
            )
            out.principals = arrow(
                "SELECT principal_id, src_ip, max(event_time) AS last_seen FROM api_activity "
                "WHERE actor_type = 'AssumedRole' GROUP BY principal_id, src_ip",
                PRINCIPALS,
            )
            newest.append(
                engine.con.execute("SELECT max(event_time) FROM api_activity").fetchall()[0][0]
            )
        finally:
            engine.close()
    web_files = {n: f for n, f in selected.items() if f and SOURCES[n].table == "http_request"}
    if web_files and FindingKind.WEB in kinds:
        # A separate engine: url_class is built with a query, which builds the shared views,
        # and over an empty api_activity that costs nothing.
        engine = DuckDBEngine()
        try:
            for name, files in web_files.items():
                SOURCES[name].load(files, engine, ctx)
            out.web = engine.query(_WEB_CANDIDATES, label="web candidates").cast(HTTP_REQUEST)
            newest.append(engine.scalar("SELECT max(time) FROM http_request"))
        finally:
            engine.close()
    else:
        for files in web_files.values():
            for f in files:
                stats.skip_file(f.uri, "web log (not asked for)")
    out.files_done = ctx.done
    stamps = [t for t in newest if t is not None]
    out.newest_event = max(stamps) if stamps else None
    return out
