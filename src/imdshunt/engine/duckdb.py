"""The default engine: DuckDB embedded, no set-up.

Raw logs are decoded once into Arrow batches (see :mod:`imdshunt.sources.cloudtrail`) and
appended to a table; the canonical view de-duplicates CloudTrail's repeated deliveries
(the same ``eventID`` can arrive in two files: CloudTrail delivers at least once). Detection
SQL runs over views and returns Arrow tables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa

from imdshunt.errors import EngineError
from imdshunt.schema import API_ACTIVITY, HTTP_REQUEST, REFERENCE_TABLES

VIEWS_DIR = Path(__file__).resolve().parent.parent / "views"

#: A view file may ask for one of its views to be computed once per run (see _materialize).
MATERIALIZE = re.compile(r"^--\s*imdshunt:\s*materialize\s+(\w+)\s*$", re.M)

#: The de-duplicating view that feeds the materialised ``api_activity`` table.
DEDUP_VIEW_FILE = "api_activity.sql"


def view_files() -> list[Path]:
    """Shared derived views, ``NN_name.sql``, created in name order (later may read earlier)."""
    return sorted(p for p in VIEWS_DIR.glob("[0-9][0-9]_*.sql"))


def _ddl(name: str, schema: pa.Schema) -> str:
    con = duckdb.connect()
    con.register("_empty", pa.Table.from_batches([], schema=schema))
    cols = con.execute("DESCRIBE SELECT * FROM _empty").fetchall()
    con.close()
    body = ", ".join(f'"{c[0]}" {c[1]}' for c in cols)
    return f"CREATE TABLE IF NOT EXISTS {name} ({body})"


def _to_arrow(cursor) -> pa.Table:
    # DuckDB 2 renamed fetch_arrow_table() to to_arrow_table(); accept both.
    fetch = getattr(cursor, "to_arrow_table", None) or cursor.fetch_arrow_table
    return fetch()


class DuckDBEngine:
    """One hunt's worth of data in DuckDB.

    ``database`` defaults to memory; give a path to let DuckDB spill to disk and keep memory
    within ``memory_limit`` (e.g. ``"1GB"``) on inputs larger than RAM.
    """

    name = "duckdb"
    dialect = "duckdb"

    def __init__(
        self,
        database: str | os.PathLike = ":memory:",
        *,
        memory_limit: str | None = None,
        threads: int | None = None,
        temp_directory: str | os.PathLike | None = None,
    ):
        self.con = duckdb.connect(str(database))
        if memory_limit:
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if temp_directory:
            self.con.execute(f"SET temp_directory = '{temp_directory}'")
        self.con.execute(_ddl("api_activity_raw", API_ACTIVITY))
        self.con.execute(_ddl("http_request", HTTP_REQUEST))
        self.con.execute(_ddl("api_activity", API_ACTIVITY))
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS ip_class (src_ip VARCHAR, network VARCHAR, "
            "network_kind VARCHAR, is_aws BOOLEAN)"
        )
        # Inventory and org accounts: empty unless given, so detections reading them still run.
        for name, schema in REFERENCE_TABLES.items():
            self.con.execute(_ddl(name, schema))
        self.con.execute((VIEWS_DIR / DEDUP_VIEW_FILE).read_text())
        self._views_ready = False
        self._to_materialize: list[str] = []
        self.duplicate_records = 0

    # -- loading -------------------------------------------------------------------------
    def append(self, table: str, batch: pa.RecordBatch | pa.Table) -> None:
        self.con.register("_incoming", batch)
        try:
            self.con.execute(f"INSERT INTO {table} SELECT * FROM _incoming")
        finally:
            self.con.unregister("_incoming")
        self._views_ready = False

    def load_api_activity(self, batches: Iterable[pa.RecordBatch]) -> int:
        n = 0
        for b in batches:
            if b.num_rows:
                self.append("api_activity_raw", b)
                n += b.num_rows
        return n

    def load_http_requests(self, batches: Iterable[pa.RecordBatch]) -> int:
        n = 0
        for b in batches:
            if b.num_rows:
                self.append("http_request", b)
                n += b.num_rows
        return n

    def register_table(self, name: str, table: pa.Table) -> None:
        """Materialise a reference table (address classes, inventory ...) under ``name``."""
        self.con.register("_ref", table)
        try:
            self.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _ref")
        finally:
            self.con.unregister("_ref")
        self._views_ready = False

    def distinct_values(self, table: str, column: str) -> list:
        return [
            r[0]
            for r in self.con.execute(
                f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL"
            ).fetchall()
        ]

    # -- views and queries -----------------------------------------------------------------
    def _settle_api_activity(self) -> None:
        """Move newly loaded raw rows into ``api_activity``, once per eventID."""
        raw = self.con.execute("SELECT count(*) FROM api_activity_raw").fetchall()[0][0]
        if not raw:
            return
        before = self.con.execute("SELECT count(*) FROM api_activity").fetchall()[0][0]
        self.con.execute(
            "INSERT INTO api_activity SELECT d.* FROM api_activity_dedup d "
            "WHERE d.event_id IS NULL OR d.event_id NOT IN "
            "(SELECT event_id FROM api_activity WHERE event_id IS NOT NULL)"
        )
        after = self.con.execute("SELECT count(*) FROM api_activity").fetchall()[0][0]
        self.duplicate_records += raw - (after - before)
        self.con.execute("DELETE FROM api_activity_raw")

    def ensure_views(self) -> None:
        if self._views_ready:
            return
        self._settle_api_activity()
        pending = []
        for path in view_files():
            sql = path.read_text()
            try:
                self.con.execute(sql)
            except duckdb.Error as exc:
                raise EngineError(f"view {path.name}: {exc}") from exc
            pending.extend(MATERIALIZE.findall(sql))
        self._to_materialize = pending
        self._views_ready = True

    def _materialize(self) -> None:
        """Compute each marked view once, at the first query after the data last changed.

        A small view that several detections read (and that aggregates a large one) is marked
        ``-- imdshunt: materialize <name>`` in its view file; other engines may ignore the mark.
        Done lazily so that loading steps (which call :meth:`ensure_views`) never pay for it.
        """
        pending, self._to_materialize = self._to_materialize, []
        for name in pending:
            try:
                self.con.execute(
                    f"CREATE OR REPLACE TABLE {name}__materialized AS SELECT * FROM {name}"
                )
                self.con.execute(
                    f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {name}__materialized"
                )
            except duckdb.Error as exc:
                raise EngineError(f"materializing view {name}: {exc}") from exc

    def table_exists(self, name: str) -> bool:
        return bool(
            self.con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
            ).fetchall()[0][0]
        )

    def query(self, sql: str, *, label: str = "query") -> pa.Table:
        self.ensure_views()
        self._materialize()
        try:
            return _to_arrow(self.con.sql(sql))
        except duckdb.Error as exc:
            raise EngineError(f"{label}: {exc}") from exc

    def scalar(self, sql: str):
        self.ensure_views()
        self._materialize()
        return self.con.execute(sql).fetchall()[0][0]

    def close(self) -> None:
        self.con.close()
