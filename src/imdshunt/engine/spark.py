"""Apache Spark engine: the same views and detections over Spark SQL (pyspark, optional extra).

Install with ``pip install 'imdshunt[spark]'``. By default a local session (``local[*]``) is
started on first use; on a cluster, pass the application's own ``SparkSession``. Canonical rows
are registered as temporary views (``api_activity_raw``, ``http_request``, ``ip_class``, any
reference table); the shared views (``views/api_activity.sql`` de-duplication, then
``views/NN_*.sql`` in name order) and every detection are transpiled from DuckDB's dialect with
:func:`imdshunt.engine.portable.transpile` and run as Spark SQL. Results come back as Arrow.

Raw logs are read by Spark's executors, never by the driver (``reads_raw_logs``): each source
hands its listed files to :mod:`imdshunt.sources.spark_read` (CloudTrail as delivered through
Spark's JSON reader and the projection shared with DuckDB; every other layout, Security Lake
OCSF and web logs through the project's own decoders run on the executors), and the resulting
DataFrames are added with :meth:`SparkEngine.append_dataframe`. Data already in canonical form in
Spark (a DataFrame with the columns of :data:`imdshunt.schema.API_ACTIVITY`) is registered with
:meth:`SparkEngine.register_dataframe` and never passes through the driver either.

Views that DuckDB materialises (``-- imdshunt: materialize <view>`` in a view file, and the
de-duplicated ``api_activity``) are checkpointed here, before the views that read them are
created: a Spark temporary view keeps the whole plan it was created with, so without this each
detection would re-plan and re-run the chain of shared views (minutes on 2 cores even for a few
hundred records). ``api_activity`` is computed once the rows are loaded, the marked views at
the first query after a table changed.

The session time zone is set to UTC: CloudTrail times are UTC and Spark would otherwise render
timestamps in the JVM's zone.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlglot.expressions as exp

from imdshunt.engine.base import BatchLoading, Engine, EngineOptions
from imdshunt.engine.duckdb import DEDUP_VIEW_FILE, MATERIALIZE, VIEWS_DIR, view_files
from imdshunt.engine.portable import parse_statements, transpile
from imdshunt.errors import EngineError
from imdshunt.schema import API_ACTIVITY, HTTP_REQUEST, IP_CLASS

#: Settings for a local session over small inputs (tests, demos, a few thousand records), where
#: planning, code generation and the JVM's own compilation of Spark take most of a hunt: one
#: shuffle partition, expressions interpreted rather than compiled to Java (Janino), and the
#: JVM's quick compiler only. Measured on 2 cores: a hunt of the detection fixtures ~40% faster.
#: Not for large inputs, where generated code and the optimising compiler pay for themselves.
SMALL_INPUT_CONF = {
    "spark.sql.shuffle.partitions": "1",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}
SMALL_INPUT_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def local_session(
    master: str = "local[*]",
    app_name: str = "imdshunt",
    *,
    small_inputs: bool = False,
    conf: dict[str, str] | None = None,
) -> Any:
    """A local SparkSession (few shuffle partitions, no UI, UTC).

    ``small_inputs`` applies :data:`SMALL_INPUT_CONF` and :data:`SMALL_INPUT_JAVA_OPTIONS`
    (for tests and demos); ``conf`` adds or overrides settings. JVM options only apply when
    this call starts Spark's JVM, not to a session already running in the process.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise EngineError(
            "the Spark engine needs pyspark: pip install 'imdshunt[spark]' (and Java 17+)"
        ) from exc
    settings = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    }
    if small_inputs:
        settings.update(SMALL_INPUT_CONF)
        settings["spark.driver.extraJavaOptions"] += " " + SMALL_INPUT_JAVA_OPTIONS
    from imdshunt.sources.spark_read import READ_CONF

    settings.update(READ_CONF)
    settings.update(conf or {})
    # The executors of a local session run this Python (the sources' decoders run there, see
    # imdshunt.sources.spark_read); pyspark would otherwise start the first python3 on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


class SparkEngine(BatchLoading, Engine):
    """One hunt's worth of data in Spark; same interface as :class:`DuckDBEngine`."""

    name = "spark"
    dialect = "spark"
    reads_raw_logs = True

    @classmethod
    def from_options(cls, options: EngineOptions) -> SparkEngine:
        return cls(master=options.spark_master)

    @classmethod
    def view_files(cls) -> list[Path]:
        """The de-duplicated ``api_activity`` first, then ``views/NN_*.sql``."""
        return [VIEWS_DIR / DEDUP_VIEW_FILE, *view_files()]

    def __init__(self, session: Any = None, *, master: str = "local[*]"):
        self._session = session
        self._master = master
        self._pending: dict[str, list[pa.RecordBatch]] = {
            "api_activity_raw": [],
            "http_request": [],
        }
        self._schemas = {"api_activity_raw": API_ACTIVITY, "http_request": HTTP_REQUEST}
        #: DataFrames read on the executors, unioned with the Arrow batches at the next flush.
        self._frames: dict[str, list[Any]] = {"api_activity_raw": [], "http_request": []}
        #: DataFrames persisted while loading, released once api_activity is checkpointed.
        self._persisted: list[Any] = []
        self._registered: set[str] = set()  # every temporary view this engine made
        self._base: set[str] = set()  # tables loaded or registered, and api_activity
        self._materialized: dict[str, Any] = {}  # view name -> its checkpointed DataFrame
        #: Canonical tables to (re)load into Spark at the next ensure_views.
        self._changed: set[str] = {"api_activity_raw", "http_request"}
        self._views_ready = False  # the derived views (views/NN_*.sql) are current
        self.duplicate_records = 0
        self.warnings: list[str] = []
        self._s3a: bool | None = None  # can the executors read s3:// (see reads)

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
        self._changed.add(table)
        self._views_ready = False

    def append_dataframe(self, table: str, df: Any, *, persisted: Sequence[Any] = ()) -> None:
        """Add a DataFrame of canonical rows (read on the executors) to ``table``;
        ``persisted``: DataFrames it reads that may be unpersisted once the rows are
        checkpointed."""
        if table not in self._frames:
            raise EngineError(f"cannot append to {table!r} on Spark; use register_table")
        self._frames[table].append(df)
        self._persisted.extend(persisted)
        self._changed.add(table)
        self._views_ready = False

    def reads(self, files: Sequence[Any]) -> bool:
        """Can the executors read these files (local paths; ``s3://`` with Hadoop's S3A
        connector, ``hadoop-aws``, on the classpath)? When not, the source decodes them in this
        process as for DuckDB, and the run says so in its warnings."""
        if not any(f.is_s3 for f in files):
            return True
        if self._s3a is None:
            try:
                jvm = self.spark.sparkContext._jvm
                conf = self.spark.sparkContext._jsc.hadoopConfiguration()
                jvm.org.apache.hadoop.fs.FileSystem.getFileSystemClass("s3a", conf)
                self._s3a = True
            except Exception:  # no S3A connector (or no JVM handle: Spark Connect)
                self._s3a = False
                self.warnings.append(
                    "Spark has no S3A connector (hadoop-aws): the driver read the s3:// "
                    "objects and handed the rows to Spark"
                )
        return self._s3a

    def _dataframe(self, table: pa.Table) -> Any:
        try:
            return self.spark.createDataFrame(table)  # pyspark >= 4: Arrow tables directly
        except TypeError:  # pyspark 3.5: through pandas, with Arrow enabled
            return self.spark.createDataFrame(table.to_pandas())

    def register_table(self, name: str, table: pa.Table, *, scratch: bool = False) -> None:
        """Register a reference table (address classes, inventory ...) as a temporary view."""
        self._dataframe(table).createOrReplaceTempView(name)
        self._registered.add(name)
        self._base.add(name)
        if not scratch:  # a scratch table feeds no shared view: keep them (and checkpoints)
            self._views_ready = False

    def register_dataframe(self, name: str, df: Any) -> None:
        """Register a Spark DataFrame already in canonical form (``api_activity_raw`` ...)."""
        df.createOrReplaceTempView(name)
        self._registered.add(name)
        self._base.add(name)
        if name in self._pending:
            self._pending[name] = []
            self._frames[name] = []
            self._schemas.pop(name, None)
            self._changed.add(name)
        self._views_ready = False

    def distinct_values(self, table: str, column: str) -> list:
        self._ready(table)
        rows = self.spark.sql(
            f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL"
        ).collect()
        return [r[0] for r in rows]

    # -- views and queries -----------------------------------------------------------------
    def _flush(self, names: set[str]) -> None:
        """(Re)create the canonical tables ``names``: their Arrow batches and DataFrames."""
        for name in sorted(names):
            schema = self._schemas.get(name)
            if schema is None:
                continue  # replaced by register_dataframe
            batches = self._pending[name]
            df = None
            if batches or not self._frames[name]:
                df = self._dataframe(pa.Table.from_batches(batches, schema=schema))
            for frame in self._frames[name]:
                frame = frame.select(*schema.names)
                df = frame if df is None else df.unionByName(frame)
            df.createOrReplaceTempView(name)
            self._registered.add(name)
            self._base.add(name)
        if "ip_class" not in self._registered:
            self.register_table("ip_class", IP_CLASS.empty_table())

    def _sql(self, stmt: str, label: str) -> Any:
        try:
            return self.spark.sql(stmt)
        except Exception as exc:  # pyspark AnalysisException, ParseException ...
            raise EngineError(f"{label}: {_short(exc)}") from exc

    def _release(self, name: str) -> None:
        """Free the rows of a view materialised by :meth:`_materialize`."""
        df = self._materialized.pop(name, None)
        if df is not None:
            try:  # the checkpointed RDD under the DataFrame (no public handle to unpersist it)
                df._jdf.queryExecution().analyzed().rdd().unpersist(False)
            except Exception:  # otherwise freed once the JVM collects it
                pass

    def _materialize(self, name: str) -> Any:
        """Replace view ``name`` by its rows, computed now and checkpointed.

        Views created afterwards read the checkpoint instead of carrying the view's whole plan:
        Spark's temporary views keep the plan they were created with, and a chain of views read
        several times each otherwise makes every detection re-analyse, re-optimise and re-run
        the shared views (a ``CACHE TABLE`` does not help: it is not matched inside the plans
        other views captured). Computed when the views are made, at the first query after the
        data last changed (see :meth:`_ready`), so loading steps do not pay for it.

        The checkpoint is local (executors' storage) unless the application set a checkpoint
        directory (``SparkContext.setCheckpointDir``): then it is written there, and survives
        the loss of an executor.
        """
        self._release(name)
        df = self.spark.table(name)
        try:
            reliable = bool(self.spark.sparkContext.getCheckpointDir())
        except Exception:  # no SparkContext in this client (Spark Connect)
            reliable = False
        df = df.checkpoint(eager=True) if reliable else df.localCheckpoint(eager=True)
        df.createOrReplaceTempView(name)
        self._materialized[name] = df
        return df

    def _run_script(self, sql: str, label: str) -> None:
        """Create a view file's views; materialise those it marks ``-- imdshunt: materialize``
        before the views that read them are created."""
        marked = set(MATERIALIZE.findall(sql))
        for name, stmt in _spark_script(sql):
            if name is not None:
                self._release(name)
            self._sql(stmt, label)
            if name is not None:
                self._registered.add(name)
                if name in marked:
                    self._materialize(name)

    def ensure_views(self) -> None:
        """Load the canonical rows into Spark and de-duplicate them into ``api_activity``.

        Only the tables that changed since the last call are made again (rows read on the
        executors are not read twice when web logs are added after API activity). The derived
        views are created at the first query after a table changed (see :meth:`_ready`), not
        here: loading steps call this and then register more tables (``ip_class``), after which
        every derived view would have to be made again.
        """
        if not self._changed:
            return
        changed, self._changed = self._changed, set()
        self._flush(changed)
        if "api_activity_raw" in changed:
            self._run_script((VIEWS_DIR / DEDUP_VIEW_FILE).read_text(), DEDUP_VIEW_FILE)
            # DuckDB materialises the de-duplicated rows; here they are checkpointed once per
            # load.
            self._sql(
                "CREATE OR REPLACE TEMPORARY VIEW api_activity AS SELECT * FROM api_activity_dedup",
                "api_activity",
            )
            self._registered.add("api_activity")
            self._base.add("api_activity")
            kept = self._materialize("api_activity").count()
            if self._schemas.get("api_activity_raw") is not None and not self._frames.get(
                "api_activity_raw"
            ):
                raw = sum(b.num_rows for b in self._pending["api_activity_raw"])
            else:  # DataFrames: counted where they are
                raw = self.spark.table("api_activity_raw").count()
            self.duplicate_records = raw - kept
        if "http_request" in changed and self._frames["http_request"]:
            self._materialize("http_request")  # parsed on the executors: parse once
        for df in self._persisted:  # what the checkpoints were computed from
            df.unpersist()
        self._persisted = []
        self._views_ready = False

    def _ready(self, table: str | None = None) -> None:
        """Make ``table`` (default: every view) queryable: the data, then the derived views."""
        self.ensure_views()
        if self._views_ready or table in self._base:
            return
        # Re-created whenever a table changed: Spark's temporary views keep the plans of the
        # tables they read as they were when the view was created.
        for path in view_files():
            self._run_script(path.read_text(), f"view {path.name}")
        self._views_ready = True

    def table_exists(self, name: str) -> bool:
        self._ready(name)
        return bool(self.spark.catalog.tableExists(name))

    def query(
        self, sql: str, *, label: str = "query", params: dict[str, Any] | None = None
    ) -> pa.Table:
        """Run Spark SQL (already in Spark's dialect) and return an Arrow table."""
        self._ready()
        try:
            df = self.spark.sql(sql)
            to_arrow = getattr(df, "toArrow", None)
            if to_arrow is not None:  # pyspark >= 4
                return to_arrow()
            return pa.Table.from_pandas(df.toPandas(), preserve_index=False)
        except Exception as exc:
            raise EngineError(f"{label}: {_short(exc)}") from exc

    def scalar(self, sql: str) -> Any:
        self._ready()
        return self.spark.sql(sql).collect()[0][0]

    def close(self) -> None:
        """Drop this engine's views; the session stays (it may be the caller's)."""
        if self._session is not None:
            for name in list(self._materialized):
                self._release(name)
            for name in self._registered:
                self._session.catalog.dropTempView(name)

    # -- after a hunt: what outputs read (SQL in imdshunt.engine.queries) -------------------
    def session_calls(self, keys: pa.Table, *, limit: int) -> pa.Table:
        """Every call of each keyed finding's session, at most ``limit`` per finding (see
        :meth:`imdshunt.engine.duckdb.DuckDBEngine.session_calls`); the keys are a temporary
        view for the query only."""
        from imdshunt.engine.queries import (
            SESSION_KEYS_RELATION,
            conform_session_calls,
            session_calls_sql,
        )

        self._ready()
        self._dataframe(keys).createOrReplaceTempView(SESSION_KEYS_RELATION)
        try:
            table = self.query(session_calls_sql(self.dialect, limit=limit), label="session calls")
        finally:
            self.spark.catalog.dropTempView(SESSION_KEYS_RELATION)
        return conform_session_calls([table])


@functools.lru_cache(maxsize=64)
def _spark_script(sql: str) -> tuple[tuple[str | None, str], ...]:
    """A DuckDB-dialect script as Spark SQL: (name of the view it creates or None, statement)."""
    out = []
    for tree in parse_statements(sql):
        name = None
        if isinstance(tree, exp.Create) and (tree.args.get("kind") or "").upper() == "VIEW":
            target = tree.this
            name = (target.this if isinstance(target, exp.Schema) else target).name
        out.append((name, transpile(tree, "spark")))
    return tuple(out)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
