"""Queries callers run after a hunt, written once in DuckDB's dialect and run by every engine.

Detections and views are not the only SQL an engine runs: the report draws each credential
finding's calls (:func:`session_calls_sql`, run by each engine's ``session_calls``), and the
IMDSv1 backlog (:mod:`imdshunt.exposure`) aggregates ``api_activity``. Both are written here or
beside their caller in DuckDB's dialect and transpiled (:func:`imdshunt.engine.portable.transpile`)
for Spark and Athena, like detections; ``tests/golden/<engine>/queries/`` holds what each engine
runs.

The keys of :func:`session_calls_sql` (one row per finding) are a relation named
``session_keys``: DuckDB registers an Arrow table under that name, Spark a temporary view, and
Athena, which cannot register a table without a round trip through S3, gets them inlined as a
``VALUES`` list (``keys=``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from imdshunt.engine.portable import transpile

#: One row per credential finding whose session the report draws.
SESSION_KEYS = pa.schema(
    [
        ("finding_id", pa.string()),
        ("account_id", pa.string()),
        ("role", pa.string()),
        ("credential_id", pa.string()),
        ("source_ip", pa.string()),
    ]
)

#: What ``session_calls`` returns on every engine, in this order, one row per call.
SESSION_CALLS = pa.schema(
    [
        ("finding_id", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("src_ip", pa.string()),
        ("network", pa.string()),
        ("network_kind", pa.string()),
        ("action", pa.string()),
        ("error_code", pa.string()),
        ("access_key_id", pa.string()),
        ("session_call_count", pa.int64()),
    ]
)

#: The relation :data:`SESSION_CALLS_SQL` reads its keys from.
SESSION_KEYS_RELATION = "session_keys"

# Every call of each finding's session (same account, role and session name), from any address.
# Beyond ``limit`` calls per finding, off-box calls and calls from the finding's own address are
# kept before on-box ones (the responder needs those), each group in time order;
# ``session_call_count`` counts them all. The limit is a plain subquery and row number, not
# QUALIFY: sqlglot rewrites QUALIFY for Spark and Trino by moving the ORDER BY inside.
SESSION_CALLS_SQL = """
SELECT finding_id, event_time, src_ip, network, network_kind, action, error_code,
       access_key_id, session_call_count
FROM (
    SELECT
        k.finding_id,
        c.event_time,
        c.src_ip,
        coalesce(ip.network, 'invalid') AS network,
        coalesce(ip.network_kind, 'invalid') AS network_kind,
        split_part(c.event_source, '.', 1) || ':' || c.event_name AS action,
        c.error_code,
        c.access_key_id,
        count(*) OVER (PARTITION BY k.finding_id) AS session_call_count,
        row_number() OVER (
            PARTITION BY k.finding_id
            ORDER BY
                CASE
                    WHEN coalesce(ip.network_kind, 'invalid') = 'internet' THEN 0
                    WHEN c.src_ip = k.source_ip THEN 0
                    ELSE 1
                END,
                c.event_time,
                c.event_id
        ) AS call_rank
    FROM api_activity c
    JOIN session_keys k
      ON c.account_id IS NOT DISTINCT FROM k.account_id
     AND c.session_name = k.credential_id
     AND c.role_name IS NOT DISTINCT FROM k.role
    LEFT JOIN ip_class ip ON ip.src_ip = c.src_ip
    WHERE c.actor_type = 'AssumedRole'
) AS calls
WHERE call_rank <= {limit}
ORDER BY finding_id, event_time, src_ip
"""


def session_keys(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """The keys table of :func:`session_calls_sql` from dicts with its column names."""
    return pa.Table.from_pylist(
        [{name: row.get(name) for name in SESSION_KEYS.names} for row in rows],
        schema=SESSION_KEYS,
    )


def session_calls_sql(dialect: str, *, limit: int, keys: pa.Table | None = None) -> str:
    """The session-calls query in ``dialect``; ``keys`` inlines the keys as ``VALUES``."""
    if keys is None:
        return _session_calls(dialect, int(limit))
    import sqlglot.expressions as exp

    tree = _parsed(int(limit)).copy()
    for table in list(tree.find_all(exp.Table)):
        if table.name == SESSION_KEYS_RELATION:
            table.replace(_keys_values(keys, table.alias_or_name))
    return transpile(tree, dialect)


def conform_session_calls(tables: Sequence[pa.Table]) -> pa.Table:
    """Engines' results as one table of :data:`SESSION_CALLS` (their types differ slightly:
    Spark's and Athena's timestamps, Athena's integers)."""
    parts = [t.select(SESSION_CALLS.names).cast(SESSION_CALLS) for t in tables if t.num_rows]
    return pa.concat_tables(parts) if parts else SESSION_CALLS.empty_table()


@functools.lru_cache(maxsize=16)
def _session_calls(dialect: str, limit: int) -> str:
    return transpile(_parsed(limit), dialect)


@functools.lru_cache(maxsize=16)
def _parsed(limit: int):
    import sqlglot

    return sqlglot.parse_one(SESSION_CALLS_SQL.format(limit=limit), read="duckdb")


def _keys_values(keys: pa.Table, alias: str):
    import sqlglot.expressions as exp

    def cell(value: Any) -> exp.Expression:
        # A typed NULL: Trino cannot infer a column's type from NULLs alone.
        if value is None:
            return exp.cast(exp.null(), "VARCHAR")
        return exp.Literal.string(str(value))

    rows = [
        exp.Tuple(expressions=[cell(row.get(n)) for n in SESSION_KEYS.names])
        for row in keys.select(SESSION_KEYS.names).to_pylist()
    ]
    return exp.values(
        [tuple(r.expressions) for r in rows], alias=alias, columns=list(SESSION_KEYS.names)
    )
