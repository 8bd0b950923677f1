"""The default engine: DuckDB embedded, no set-up.

Raw logs are decoded once into Arrow batches (see :mod:`imdshunt.sources.cloudtrail`) and
appended to a table; the canonical view de-duplicates CloudTrail's repeated deliveries
(the same ``eventID`` can arrive in two files: CloudTrail delivers at least once). Detection
SQL runs over views and returns Arrow tables.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from imdshunt.engine.base import BatchLoading, Engine, StateDatabase
from imdshunt.errors import EngineError
from imdshunt.schema import API_ACTIVITY, HTTP_REQUEST, IP_CLASS, REFERENCE_TABLES

VIEWS_DIR = Path(__file__).resolve().parent.parent / "views"

#: A view file may ask for one of its views to be computed once per run (see _materialize).
MATERIALIZE = re.compile(r"^--\s*imdshunt:\s*materialize\s+(\w+)\s*$", re.M)
_VIEW_NAME = re.compile(r"^CREATE OR REPLACE VIEW (\w+)", re.M)

#: The de-duplicating view that feeds the materialised ``api_activity`` table.
DEDUP_VIEW_FILE = "api_activity.sql"


def view_files() -> list[Path]:
    """Shared derived views, ``NN_name.sql``, created in name order (later may read earlier)."""
    return sorted(p for p in VIEWS_DIR.glob("[0-9][0-9]_*.sql"))


#: DuckDB's type for each Arrow type the canonical schemas use (DuckDB's own Arrow mapping).
_DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us", tz="UTC"): "TIMESTAMP WITH TIME ZONE",
}


def _ddl(name: str, schema: pa.Schema) -> str:
    types = [_DUCKDB_TYPES.get(f.type) for f in schema]
    if None in types:  # a type not in the table: ask DuckDB (a connection costs ~30 ms)
        con = duckdb.connect()
        con.register("_empty", pa.Table.from_batches([], schema=schema))
        types = [c[1] for c in con.execute("DESCRIBE SELECT * FROM _empty").fetchall()]
        con.close()
    body = ", ".join(f'"{f.name}" {t}' for f, t in zip(schema, types, strict=True))
    return f"CREATE TABLE IF NOT EXISTS {name} ({body})"


def _to_arrow(cursor) -> pa.Table:
    # DuckDB 2 renamed fetch_arrow_table() to to_arrow_table(); accept both.
    fetch = getattr(cursor, "to_arrow_table", None) or cursor.fetch_arrow_table
    return fetch()


class DuckDBEngine(BatchLoading, StateDatabase, Engine):
    """One hunt's worth of data in DuckDB.

    ``database`` defaults to memory; give a path to let DuckDB spill to disk and keep memory
    within ``memory_limit`` (e.g. ``"1GB"``) on inputs larger than RAM.
    """

    name = "duckdb"
    dialect = "duckdb"
    keeps_state = True
    hunts_store = True
    parses_delivered_cloudtrail = True

    @classmethod
    def view_files(cls) -> list[Path]:
        """The de-duplicated ``api_activity`` first, then ``views/NN_*.sql``."""
        return [VIEWS_DIR / DEDUP_VIEW_FILE, *view_files()]

    def __init__(
        self,
        database: str | os.PathLike = ":memory:",
        *,
        memory_limit: str | None = None,
        threads: int | None = None,
        temp_directory: str | os.PathLike | None = None,
    ):
        self.con = duckdb.connect(str(database))
        #: Rows loaded into an on-disk database outlive this engine (incremental state), so
        #: they are inserted; an in-memory engine reads decoded files in place instead.
        self.persistent = str(database) != ":memory:"
        self.warnings: list[str] = []
        if memory_limit:
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self._temp_set = bool(temp_directory)
        if temp_directory:
            self.con.execute(f"SET temp_directory = '{temp_directory}'")
        self.con.execute(_ddl("api_activity_raw", API_ACTIVITY))
        self.con.execute(_ddl("http_request", HTTP_REQUEST))
        # Settled rows appended through load_api_activity(); ``api_activity`` is a view over
        # them and over any attached files (see attach_files).
        self.con.execute(_ddl("api_activity_loaded", API_ACTIVITY))
        self.con.execute(_ddl("ip_class", IP_CLASS))
        # Inventory and org accounts: empty unless given, so detections reading them still run.
        for name, schema in REFERENCE_TABLES.items():
            self.con.execute(_ddl(name, schema))
        self.con.execute((VIEWS_DIR / DEDUP_VIEW_FILE).read_text())
        self._views_ready = False
        self._views_built = False  # the shared views exist and are computed (see _materialize)
        self.duplicate_records = 0
        self._settled_duplicates = 0
        self._external: list[str] = []  # SELECTs over attached files, in canonical columns
        self._registered: list[str] = []  # Arrow datasets those SELECTs read
        self._external_ready = False
        self._scratch: str | None = None
        self._preset: tuple[int, str, list] | None = None
        self._derived_preset: dict[str, str] = {}
        self._provided: dict[str, str] = {}  # views read from precomputed files
        self._given: dict[str, str] = {}  # views read from relations (see use_call_groups)
        self._given_addresses: str | None = None
        self._materialized = False
        self.dedup_state: tuple[int, str, list] | None = None
        self._set_api_activity_view()

    @property
    def attaches_files(self) -> bool:  # type: ignore[override]
        """In memory, decoded Parquet is scanned in place; an on-disk database keeps rows."""
        return not self.persistent

    # -- loading -------------------------------------------------------------------------
    def append(self, table: str, batch: pa.RecordBatch | pa.Table) -> None:
        self.con.register("_incoming", batch)
        try:
            self.con.execute(f"INSERT INTO {table} SELECT * FROM _incoming")
        finally:
            self.con.unregister("_incoming")
        self._views_ready = False

    def scratch_dir(self) -> str:
        """A private temporary folder that lives as long as this engine (decoded batches)."""
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="imdshunt-")
            self._finalizer = weakref.finalize(self, shutil.rmtree, self._scratch, True)
            if not self._temp_set:  # spill here rather than into ./.tmp
                spill = os.path.join(self._scratch, "spill")
                self.con.execute(f"SET temp_directory = {_sql_str(spill)}")
        return self._scratch

    def attach_files(
        self,
        files: Sequence[str],
        *,
        fmt: str,
        hive: bool = False,
        duplicates: tuple[int, str, list] | None = None,
        derived: dict[str, str] | None = None,
        regions: Sequence[str] | None = None,
    ) -> None:
        """Let ``api_activity`` also read ``files`` in place, without loading them.

        ``fmt`` is ``ipc`` (Arrow IPC files, scanned zero-copy through a pyarrow dataset) or
        ``parquet`` (a list of files or a glob, read by DuckDB; ``hive`` for ``key=value``
        partition folders, whose partition columns are not part of the view). Files must hold
        the canonical ``api_activity`` columns.

        ``duplicates`` (the :attr:`dedup_state` of an earlier run over exactly these files) and
        ``derived`` (view name -> a Parquet file holding that view's rows computed over exactly
        these files, for views that read nothing but ``api_activity``) are used only while
        these files are all ``api_activity`` holds; see :mod:`imdshunt.store`. ``regions``
        (Parquet only) keeps the rows of those regions.
        """
        cols = ", ".join(f'"{c}"' for c in API_ACTIVITY.names)
        files = list(files)
        if not files:
            return
        if self._materialized:
            raise EngineError("api_activity was materialised; files cannot be attached to it")
        if fmt == "ipc":
            import pyarrow.dataset as ds

            name = f"_api_activity_ext{len(self._external)}"
            self.con.register(name, ds.dataset(files, format="ipc", schema=API_ACTIVITY))
            self._registered.append(name)
            self._external.append(f"SELECT {cols} FROM {name}")
        elif fmt == "parquet":
            listing = "[" + ", ".join(_sql_str(f) for f in files) + "]"
            hp = "true" if hive else "false"
            where = ""
            if regions:  # a row filter: the files are not split by region
                where = " WHERE region IN (" + ", ".join(_sql_str(r) for r in regions) + ")"
            self._external.append(
                f"SELECT {cols} FROM read_parquet({listing}, hive_partitioning = {hp}){where}"
            )
        else:
            raise ValueError(f"unknown format {fmt!r}")
        self._preset = duplicates if not self._external[:-1] else None
        self._derived_preset = dict(derived or {}) if not self._external[:-1] else {}
        self._external_ready = False
        self._views_ready = False

    def materialize(self) -> None:
        """Make ``api_activity`` a table holding its rows now, for callers that modify it
        (``DELETE FROM api_activity ...``). Reads every attached file once into DuckDB, so
        it costs memory and time on large inputs; nothing can be attached afterwards."""
        self.ensure_views()
        self.con.execute("CREATE OR REPLACE TEMP TABLE _api_activity_now AS FROM api_activity")
        self.con.execute("DROP VIEW api_activity")
        self.con.execute("CREATE TABLE api_activity AS FROM _api_activity_now")
        self.con.execute("DROP TABLE _api_activity_now")
        self._materialized = True
        self._views_ready = False

    def register_table(self, name: str, table: pa.Table, *, scratch: bool = False) -> None:
        """Materialise a reference table (address classes, inventory ...) under ``name``."""
        self.con.register("_ref", table)
        try:
            self.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _ref")
        finally:
            self.con.unregister("_ref")
        # Views are built at the first query (see _materialize); only views already built
        # and computed must be made again.
        if self._views_built and not scratch:
            self._views_ready = False

    def distinct_values(self, table: str, column: str) -> list:
        if table == "api_activity" and column == "src_ip" and self._given_addresses:
            # hunting from call groups: the addresses are the groups' and the loaded rows'
            sql = f"SELECT src_ip FROM ({self._given_addresses}) UNION SELECT src_ip FROM {table}"
            return [r[0] for r in self.con.execute(sql).fetchall() if r[0] is not None]
        return [
            r[0]
            for r in self.con.execute(
                f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL"
            ).fetchall()
        ]

    # -- views and queries -----------------------------------------------------------------
    def _settle_api_activity(self) -> None:
        """Move newly loaded raw rows into ``api_activity_loaded``, once per eventID."""
        raw = self.con.execute("SELECT count(*) FROM api_activity_raw").fetchall()[0][0]
        if not raw:
            return
        target = "api_activity" if self._materialized else "api_activity_loaded"
        before = self.con.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0]
        self.con.execute(
            f"INSERT INTO {target} SELECT d.* FROM api_activity_dedup d "
            "WHERE d.event_id IS NULL OR d.event_id NOT IN "
            f"(SELECT event_id FROM {target} WHERE event_id IS NOT NULL)"
        )
        after = self.con.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0]
        self._settled_duplicates += raw - (after - before)
        self.con.execute("DELETE FROM api_activity_raw")
        self._external_ready = False

    def _set_api_activity_view(self, *, dedup: str = "", drops: list[tuple] = ()) -> None:
        """``api_activity`` over the union: as is, minus ``drops``, or through a window."""
        union = " UNION ALL ".join(["SELECT * FROM api_activity_loaded", *self._external])
        self.con.execute(f"CREATE OR REPLACE VIEW api_activity_union AS {union}")
        if dedup == "drops":
            # The later copies, named by file and record as literals: rows of other files
            # pass the first test without evaluating the second, and no join runs per query.
            files = ", ".join(sorted({_sql_str(f) for f, _ in drops}))
            keys = ", ".join(_sql_str(f"{f}#{r}") for f, r in drops)
            self.con.execute(
                "CREATE OR REPLACE VIEW api_activity AS SELECT * FROM api_activity_union "
                f"WHERE NOT coalesce(source_file IN ({files}) AND "
                f"source_file || '#' || CAST(source_record AS VARCHAR) IN ({keys}), false)"
            )
        elif dedup == "window":
            # Only the repeated eventIDs go through the window; every other row passes a hash
            # anti-join against that small set.
            self.con.execute(
                "CREATE OR REPLACE VIEW api_activity AS "
                "SELECT * FROM api_activity_union u "
                "WHERE u.event_id IS NULL OR u.event_id NOT IN (SELECT event_id FROM _dup_ids) "
                "UNION ALL "
                "SELECT * FROM api_activity_union u "
                "WHERE u.event_id IN (SELECT event_id FROM _dup_ids) "
                "QUALIFY row_number() OVER "
                "(PARTITION BY u.event_id ORDER BY u.source_file, u.source_record) = 1"
            )
        else:
            self.con.execute("CREATE OR REPLACE VIEW api_activity AS FROM api_activity_union")

    #: Above this many later copies the view de-duplicates with a window instead of literals.
    MAX_LITERAL_DROPS = 20_000

    def _settle_external(self) -> None:
        """Point ``api_activity`` at loaded rows and attached files, each eventID once.

        CloudTrail delivers at least once, so a repeated eventID is expected; the first
        delivery (by file, then record) is kept, as for loaded rows.
        """
        if self._external_ready:
            return
        if self._materialized:  # api_activity is a table now; its counts stay as they were
            self._external_ready = True
            return
        if not self._external:
            self.duplicate_records = self._settled_duplicates
            self._external_ready = True
            return
        if (
            self._preset is not None
            and len(self._external) == 1
            and self._preset[1] in ("", "drops")
            and not self.con.execute("SELECT count(*) FROM api_activity_loaded").fetchall()[0][0]
        ):
            extra, mode, drops = self._preset
            self._set_api_activity_view(dedup=mode, drops=[tuple(d) for d in drops])
            self.duplicate_records = self._settled_duplicates + int(extra)
            self.dedup_state = self._preset
            self._provided = self._derived_preset
            self._external_ready = True
            return
        self._provided = {}
        self._set_api_activity_view()
        # Group on the 64-bit hash first: a few hundred MB less than grouping 10 M strings;
        # a collision only sends a few more rows to the exact second step.
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _dup_hashes AS "
            "SELECT hash(event_id) AS h FROM api_activity_union WHERE event_id IS NOT NULL "
            "GROUP BY h HAVING count(*) > 1"
        )
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _dup_ids AS "
            "SELECT event_id, count(*) - 1 AS extra FROM api_activity_union "
            "WHERE event_id IS NOT NULL AND hash(event_id) IN (SELECT h FROM _dup_hashes) "
            "GROUP BY event_id HAVING count(*) > 1"
        )
        extra = int(
            self.con.execute("SELECT coalesce(sum(extra), 0) FROM _dup_ids").fetchall()[0][0]
        )
        mode, drops = "", []
        if extra:
            ranked = self.con.execute(
                "SELECT source_file, source_record, row_number() OVER (PARTITION BY event_id "
                "ORDER BY source_file, source_record) AS rn FROM api_activity_union "
                "WHERE event_id IN (SELECT event_id FROM _dup_ids)"
            ).fetchall()
            kept = {(f, r) for f, r, rn in ranked if rn == 1}
            drops = sorted({(f, r) for f, r, rn in ranked if rn > 1})
            # A copy indistinguishable from the kept one (the same file read twice) or too
            # many copies: the exact window.
            literal = (
                len(drops) <= self.MAX_LITERAL_DROPS
                and not kept.intersection(drops)
                and all(f is not None and r is not None for f, r in drops)
            )
            mode = "drops" if literal else "window"
        self._set_api_activity_view(dedup=mode, drops=drops)
        self.duplicate_records = self._settled_duplicates + extra
        #: (later copies, view mode, [(file, record) dropped]): reusable for the same files.
        self.dedup_state = (extra, mode, [list(d) for d in drops] if mode == "drops" else [])
        self._external_ready = True

    def ensure_views(self) -> None:
        """Settle ``api_activity`` (loaded rows and attached files, each eventID once).

        The shared views over it are created at the first query (see :meth:`_materialize`), so
        that loading steps and address classification, which call this, never pay for them.
        """
        if self._views_ready:
            return
        self._settle_api_activity()
        self._settle_external()
        self._views_built = False
        self._views_ready = True

    def _materialize(self) -> None:
        """Create the shared views, file by file, computing each file's marked views before
        the next file is read.

        A small view that several detections read (and that aggregates a large one) is marked
        ``-- imdshunt: materialize <name>`` in its view file; other engines may ignore the mark.
        Computing it before later files are created matters as much as computing it once:
        DuckDB binds a view when it is created, and binding a view over the raw views again
        lists and opens every attached file.
        """
        if not self._views_built:
            self._build_views(compute=True)
            self._views_built = True

    def create_views(self) -> None:
        """Create the shared views without computing any (for reading a few of them)."""
        self.ensure_views()
        self._build_views(compute=False)

    def _build_views(self, *, compute: bool) -> None:
        for path in view_files():
            sql = path.read_text()
            try:
                self.con.execute(sql)
            except duckdb.Error as exc:
                raise EngineError(f"view {path.name}: {exc}") from exc
            defined = set(_VIEW_NAME.findall(sql))
            for name in defined & set(self._given):
                self.con.execute(f"CREATE OR REPLACE VIEW {name} AS {self._given[name]}")
            for name in defined & set(self._provided) - set(self._given):
                # computed ahead over exactly the attached files (see attach_files)
                path_sql = _sql_str(self._provided[name])
                self.con.execute(
                    f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({path_sql})"
                )
            for name in MATERIALIZE.findall(sql):
                if name in self._provided or name in self._given or not compute:
                    continue
                try:
                    self.con.execute(
                        f"CREATE OR REPLACE TABLE {name}__materialized AS SELECT * FROM {name}"
                    )
                    self.con.execute(
                        f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {name}__materialized"
                    )
                except duckdb.Error as exc:
                    raise EngineError(f"materializing view {name}: {exc}") from exc

    # -- hunting from call groups (incremental state) --------------------------------------
    def use_call_groups(self, *, groups: str, accounts: str) -> None:
        """Hunt from call groups merged elsewhere instead of from single calls.

        ``groups`` is a relation (SQL) of merged call groups of every ``AssumedRole`` call
        (:data:`imdshunt.callgroups.CALL_GROUP` columns, see :mod:`imdshunt.callgroups`),
        ``accounts`` a relation with an ``account_id`` column (the accounts that recorded
        events). ``api_call_group`` and ``log_account`` then read them; ``api_activity`` holds
        only what was loaded besides (an incremental state loads the credential-vending events,
        so ``credential_vending`` is computed by its own SQL). ``api_activity`` counts as
        having rows when the groups or accounts do, and the addresses to classify are the
        groups' and the loaded rows'. Everything downstream of these views is unchanged.
        """
        from imdshunt.callgroups import KEY

        cols = ", ".join(KEY)
        self._given = {
            # the view's own role filter (callgroups keeps every AssumedRole call)
            "api_call_group": (
                f"SELECT {cols}, call_count, first_seen, last_seen, session_created, event_ids "
                f"FROM ({groups}) WHERE coalesce(role_name, '') <> 'aws:ec2-instance'"
            ),
            "log_account": f"SELECT DISTINCT account_id FROM ({accounts})",
        }
        self._given_addresses = f"SELECT DISTINCT src_ip FROM ({groups})"
        self._given_any = f"SELECT 1 FROM ({groups}) UNION ALL SELECT 1 FROM ({accounts})"
        self._views_ready = False

    def has_rows(self, name: str) -> bool:
        if name == "api_activity" and self._given:
            sql = f"SELECT count(*) > 0 FROM ({self._given_any} LIMIT 1) t"
            if self.con.execute(sql).fetchall()[0][0]:
                return True
        return super().has_rows(name)

    def table_exists(self, name: str) -> bool:
        def exists() -> bool:
            return bool(
                self.con.execute(
                    "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
                ).fetchall()[0][0]
            )

        if exists():
            return True
        if self._views_ready and not self._views_built:  # perhaps a shared view not made yet
            self._materialize()
            return exists()
        return False

    #: Detection SQL runs as written, ``$name`` parameters bound by DuckDB (no transpiling).
    binds_params = True

    def query(
        self, sql: str, *, label: str = "query", params: dict[str, Any] | None = None
    ) -> pa.Table:
        self.ensure_views()
        self._materialize()
        try:
            return _to_arrow(self.con.sql(sql, params=params) if params else self.con.sql(sql))
        except duckdb.Error as exc:
            raise EngineError(f"{label}: {exc}") from exc

    def scalar(self, sql: str):
        self.ensure_views()
        self._materialize()
        return self.con.execute(sql).fetchall()[0][0]

    # -- the engine's own database (incremental state, compiled store) ----------------------
    def execute(self, sql: str, params: list | None = None) -> list[tuple]:
        """Run a statement on this engine's database (bookkeeping tables); returns its rows."""
        try:
            cur = self.con.execute(sql, params) if params else self.con.execute(sql)
            return cur.fetchall() if cur.description else []
        except duckdb.Error as exc:
            raise EngineError(f"{sql.split(None, 3)[:3]}: {exc}") from exc

    def executemany(self, sql: str, rows: list[list]) -> None:
        self.con.executemany(sql, rows)

    def execute_all(self, statements: Sequence[str]) -> None:
        """Run ``statements`` in order, in one transaction: all of them take effect or none."""
        self.execute("BEGIN TRANSACTION")
        try:
            for sql in statements:
                self.execute(sql)
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def attach_database(
        self, path: str | os.PathLike, alias: str, *, block_size: int | None = None
    ) -> None:
        """Attach the DuckDB database file ``path`` (created if absent) as ``alias``.

        ``block_size`` applies to a file this creates (a file keeps the size it was made with):
        DuckDB's default of 256 KiB costs at least a block per table, a lot for a database of
        a few small tables. A DuckDB without the option (before 1.2) uses its default."""
        target = f"ATTACH {_sql_str(str(path))} AS {alias}"
        if block_size and not os.path.exists(path):
            try:
                self.execute(f"{target} (BLOCK_SIZE {int(block_size)})")
                return
            except EngineError:
                if os.path.exists(path):
                    raise
        self.execute(target)

    def create_table(
        self, name: str, schema: pa.Schema, *, temporary: bool = False, replace: bool = False
    ) -> None:
        """Create an empty table of ``schema`` (kept if it exists, unless ``replace``)."""
        ddl = _ddl(name, schema)
        if temporary or replace:
            head = "CREATE OR REPLACE" if replace else "CREATE"
            kind = "TEMP TABLE" if temporary else "TABLE"
            exists = "" if replace else " IF NOT EXISTS"
            ddl = ddl.replace("CREATE TABLE IF NOT EXISTS", f"{head} {kind}{exists}", 1)
        self.execute(ddl)

    def insert_arrow(self, table: str, rows: pa.Table, *, replace: bool = False) -> None:
        """Insert Arrow ``rows`` into ``table`` in one statement (by position); ``replace``:
        ``INSERT OR REPLACE`` on the table's primary key."""
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        self.con.register("_insert_rows", rows)
        try:
            self.execute(f"{verb} INTO {table} SELECT * FROM _insert_rows")
        finally:
            self.con.unregister("_insert_rows")

    def read_arrow(self, sql: str) -> pa.Table:
        """A statement's rows as Arrow, read as the database holds them now: unlike
        :meth:`query`, nothing is settled and no shared view is built."""
        try:
            return _to_arrow(self.con.sql(sql))
        except duckdb.Error as exc:
            raise EngineError(f"{sql.split(None, 3)[:3]}: {exc}") from exc

    def load_query(self, table: str, sql: str) -> int:
        """Append the canonical rows a query returns to ``api_activity`` (settled like loaded
        batches: each eventID once) or ``http_request``; returns the rows appended."""
        target = {"api_activity": "api_activity_raw", "http_request": "http_request"}[table]
        n = self.execute(f"INSERT INTO {target} {sql}")
        self._views_ready = False
        return int(n[0][0]) if n else 0

    def drop_loaded_rows(self) -> None:
        """Forget every row loaded or attached (``api_activity``, ``http_request``) and the
        views computed over them, as if nothing had been loaded; reference tables stay.

        An incremental state loads a run's new files, keeps what it needs of them as SQL
        over the rows (:mod:`imdshunt.state`), then hunts from its merged call groups."""
        if self._materialized:
            raise EngineError("api_activity was materialised; its rows cannot be dropped")
        for sql in (
            "DELETE FROM api_activity_raw",
            "DELETE FROM api_activity_loaded",
            "DELETE FROM http_request",
        ):
            self.execute(sql)
        for name in self._registered:
            self.con.unregister(name)
        self._registered = []
        self._external = []
        self._external_ready = False
        self._preset = None
        self._derived_preset = {}
        self._provided = {}
        self._settled_duplicates = 0
        self.duplicate_records = 0
        self.dedup_state = None
        self._set_api_activity_view()
        self._views_ready = False
        self._views_built = False

    def export_parquet(self, relation: str, path: str | os.PathLike) -> None:
        """Write a table or view to a zstd Parquet file."""
        self.query("SELECT 1", label="views")  # the shared views exist
        self.con.execute(
            f"COPY (SELECT * FROM {relation}) TO {_sql_str(str(path))} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )

    def parquet_rows(self, files: Sequence[str], regions: Sequence[str] | None = None) -> int:
        """Rows in Parquet ``files`` (paths or globs): from the footers alone, or counted
        within ``regions``."""
        if regions:
            listing = "[" + ", ".join(_sql_str(f) for f in files) + "]"
            inlist = ", ".join(_sql_str(r) for r in regions)
            sql = f"SELECT count(*) FROM read_parquet({listing}) WHERE region IN ({inlist})"
            return int(self.con.execute(sql).fetchall()[0][0])
        sql = "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata(?)"
        return int(self.con.execute(sql, [list(files)]).fetchall()[0][0])

    def close(self) -> None:
        self.con.close()
        if self._scratch is not None:
            self._finalizer()

    # -- after a hunt: what outputs read (SQL in imdshunt.engine.queries) -------------------
    def session_calls(self, keys: pa.Table, *, limit: int) -> pa.Table:
        """Every call of each keyed finding's session, at most ``limit`` per finding.

        ``keys`` has the columns of :data:`imdshunt.engine.queries.SESSION_KEYS`; the result
        those of :data:`~imdshunt.engine.queries.SESSION_CALLS`. The keys are registered for
        the query only (not as a reference table, which would rebuild the computed views).
        """
        from imdshunt.engine.queries import (
            SESSION_KEYS_RELATION,
            conform_session_calls,
            session_calls_sql,
        )

        self.ensure_views()
        self.con.register(SESSION_KEYS_RELATION, keys)
        try:
            table = self.query(session_calls_sql(self.dialect, limit=limit), label="session calls")
        finally:
            self.con.unregister(SESSION_KEYS_RELATION)
        return conform_session_calls([table])


def _sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"
