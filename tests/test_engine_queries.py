"""The queries run after a hunt (imdshunt.engine.queries, the IMDSv1 backlog), written once in
DuckDB's dialect: their Trino form (Athena) keeps their meaning.

Athena is not available to the suite; the Trino SQL is transpiled back to DuckDB (its "twin")
and run on the hunt's own engine, which must give the rows DuckDB's own SQL gives.
"""

from __future__ import annotations

import sqlglot

from imdshunt.engine.queries import SESSION_CALLS, session_calls_sql, session_keys
from imdshunt.exposure.backlog import backlog_sql_for
from tests import report_support as rs


def _twin(sql_trino: str) -> str:
    return sqlglot.transpile(sql_trino, read="trino", write="duckdb")[0]


def _hunt(tmp_path):
    return rs.hunt_org(tmp_path, with_web=True)


def test_session_calls_with_inlined_keys_in_trino_give_duckdbs_rows(tmp_path):
    result = _hunt(tmp_path)
    credential = [f for f in result.findings if f["kind"] == "credential"]
    keys = session_keys(credential + [{"finding_id": "none", "credential_id": "i-0"}])
    engine = result.engine
    own = engine.session_calls(keys, limit=20_000)
    assert own.schema == SESSION_CALLS
    assert own.num_rows == 36  # 30 on-box calls, 1 through the VPC endpoint, 5 by the thief
    twin = engine.query(_twin(session_calls_sql("trino", limit=20_000, keys=keys)))
    assert twin.cast(SESSION_CALLS).to_pylist() == own.to_pylist()


def test_session_calls_keep_off_box_calls_first_beyond_the_limit(tmp_path):
    result = _hunt(tmp_path)
    theft = next(
        f for f in result.findings if f["kind"] == "credential" and f["source_ip"] == rs.THIEF_IP
    )
    rows = result.engine.session_calls(session_keys([theft]), limit=8).to_pylist()
    # The thief's 5 calls made after 95 minutes of on-box work are kept; 3 on-box ones fill up.
    assert [r["src_ip"] for r in rows].count(rs.THIEF_IP) == 5 and len(rows) == 8
    assert {r["session_call_count"] for r in rows} == {36}
    assert [r["event_time"] for r in rows] == sorted(r["event_time"] for r in rows)


def test_the_imdsv1_backlog_in_trino_gives_duckdbs_rows(tmp_path):
    engine = _hunt(tmp_path).engine
    own = engine.query(backlog_sql_for("duckdb")).to_pylist()
    assert {r["instance_id"] for r in own} == {rs.INSTANCE, rs.QUIET_INSTANCE}
    twin = engine.query(_twin(backlog_sql_for("trino"))).to_pylist()
    assert twin == own
