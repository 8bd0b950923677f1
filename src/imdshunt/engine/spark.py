"""Apache Spark engine: the same views and detections over Spark SQL (pyspark, optional extra).

Install with ``pip install 'imdshunt[spark]'``. By default a local session (``local[*]``) is
started on first use; on a cluster, pass the application's own ``SparkSession``. Canonical rows
are registered as temporary views (``api_activity_raw``, ``http_request``, ``ip_class``, any
reference table); the shared views (``views/api_activity.sql`` de-duplication, then
``views/NN_*.sql`` in name order) and every detection are transpiled from DuckDB's dialect with
:func:`imdshunt.engine.portable.transpile` and run as Spark SQL. Results come back as Arrow.

Data already in canonical form in Spark (a DataFrame with the columns of
:data:`imdshunt.schema.API_ACTIVITY`) is registered with :meth:`SparkEngine.register_dataframe`
and never passes through the driver. Raw logs read by :func:`imdshunt.api.hunt` are decoded on
the driver (as for DuckDB) and handed to Spark as Arrow; a cluster-side decoder of raw
CloudTrail or OCSF is not provided yet.

The session time zone is set to UTC: CloudTrail times are UTC and Spark would otherwise render
timestamps in the JVM's zone.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from imdshunt.engine.base import BatchLoading
from imdshunt.engine.duckdb import DEDUP_VIEW_FILE, VIEWS_DIR, view_files
from imdshunt.engine.portable import transpile_script
from imdshunt.errors import EngineError
from imdshunt.schema import API_ACTIVITY, HTTP_REQUEST

IP_CLASS = pa.schema(
    [
        ("src_ip", pa.string()),
        ("network", pa.string()),
        ("network_kind", pa.string()),
        ("is_aws", pa.bool_()),
    ]
)


def local_session(master: str = "local[*]", app_name: str = "imdshunt") -> Any:
    """A local SparkSession tuned for small inputs (few shuffle partitions, no UI, UTC)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise EngineError(
            "the Spark engine needs pyspark: pip install 'imdshunt[spark]' (and Java 17+)"
        ) from exc
    return (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .getOrCreate()
    )


class SparkEngine(BatchLoading):
    """One hunt's worth of data in Spark; same interface as :class:`DuckDBEngine`."""

    name = "spark"
    dialect = "spark"
    in_place = False

    def __init__(self, session: Any = None, *, master: str = "local[*]"):
        self._session = session
        self._master = master
        self._pending: dict[str, list[pa.RecordBatch]] = {
            "api_activity_raw": [],
            "http_request": [],
        }
        self._schemas = {"api_activity_raw": API_ACTIVITY, "http_request": HTTP_REQUEST}
        self._registered: set[str] = set()
        self._views_ready = False
        self.duplicate_records = 0

    @property
    def spark(self) -> Any:
        if self._session is None:
            self._session = local_session(self._master)
            self._session.conf.set("spark.sql.session.timeZone", "UTC")
        return self._session

    # -- loading -------------------------------------------------------------------------
    def append(self, table: str, batch: pa.RecordBatch | pa.Table) -> None:
        if table not in self._pending:
            raise EngineError(f"cannot append to {table!r} on Spark; use register_table")
        batches = batch.to_batches() if isinstance(batch, pa.Table) else [batch]
        self._pending[table].extend(b for b in batches if b.num_rows)
        self._views_ready = False

    def _dataframe(self, table: pa.Table) -> Any:
        try:
            return self.spark.createDataFrame(table)  # pyspark >= 4: Arrow tables directly
        except TypeError:  # pyspark 3.5: through pandas, with Arrow enabled
            return self.spark.createDataFrame(table.to_pandas())

    def register_table(self, name: str, table: pa.Table) -> None:
        """Register a reference table (address classes, inventory ...) as a temporary view."""
        self._dataframe(table).createOrReplaceTempView(name)
        self._registered.add(name)
        self._views_ready = False

    def register_dataframe(self, name: str, df: Any) -> None:
        """Register a Spark DataFrame already in canonical form (``api_activity_raw`` ...)."""
        df.createOrReplaceTempView(name)
        self._registered.add(name)
        if name in self._pending:
            self._pending[name] = []
            self._schemas.pop(name, None)
        self._views_ready = False

    def distinct_values(self, table: str, column: str) -> list:
        self.ensure_views()
        rows = self.spark.sql(
            f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL"
        ).collect()
        return [r[0] for r in rows]

    # -- views and queries -----------------------------------------------------------------
    def _flush(self) -> None:
        for name, batches in self._pending.items():
            schema = self._schemas.get(name)
            if schema is None:
                continue  # replaced by register_dataframe
            table = pa.Table.from_batches(batches, schema=schema)
            self._dataframe(table).createOrReplaceTempView(name)
            self._registered.add(name)
        if "ip_class" not in self._registered:
            self.register_table("ip_class", IP_CLASS.empty_table())

    def _run_script(self, sql: str, label: str) -> None:
        for stmt in transpile_script(sql, "spark"):
            try:
                self.spark.sql(stmt)
            except Exception as exc:  # pyspark AnalysisException, ParseException ...
                raise EngineError(f"{label}: {_short(exc)}") from exc

    def ensure_views(self) -> None:
        if self._views_ready:
            return
        self._flush()
        self._run_script((VIEWS_DIR / DEDUP_VIEW_FILE).read_text(), DEDUP_VIEW_FILE)
        # DuckDB materialises the de-duplicated rows; here the view is cached once instead.
        dedup = self.spark.table("api_activity_dedup").cache()
        dedup.createOrReplaceTempView("api_activity")
        raw = self.spark.table("api_activity_raw").count()
        self.duplicate_records = raw - dedup.count()
        for path in view_files():
            self._run_script(path.read_text(), f"view {path.name}")
        self._views_ready = True

    def table_exists(self, name: str) -> bool:
        self.ensure_views()
        return bool(self.spark.catalog.tableExists(name))

    def query(self, sql: str, *, label: str = "query") -> pa.Table:
        """Run Spark SQL (already in Spark's dialect) and return an Arrow table."""
        self.ensure_views()
        try:
            df = self.spark.sql(sql)
            to_arrow = getattr(df, "toArrow", None)
            if to_arrow is not None:  # pyspark >= 4
                return to_arrow()
            return pa.Table.from_pandas(df.toPandas(), preserve_index=False)
        except Exception as exc:
            raise EngineError(f"{label}: {_short(exc)}") from exc

    def scalar(self, sql: str) -> Any:
        self.ensure_views()
        return self.spark.sql(sql).collect()[0][0]

    def close(self) -> None:
        """Drop this engine's views; the session stays (it may be the caller's)."""
        if self._session is not None:
            for name in self._registered:
                self._session.catalog.dropTempView(name)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
