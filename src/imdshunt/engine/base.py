"""The engine contract: what every engine (DuckDB, Spark, Athena) offers the hunt pipeline.

:class:`Engine` is an abstract base class. The pipeline (:mod:`imdshunt.pipeline`) and the
outputs use nothing else: no caller touches an engine's connection or session. An engine
declares what it can do as class attributes (capabilities), so callers branch on a documented
flag rather than probing members:

``queries_in_place``
    the engine reads CloudTrail where it lies (Athena): nothing is decoded or loaded, the
    hunt window is handed to :meth:`Engine.prepare`, and only credential detections run.
``attaches_files``
    :meth:`Engine.attach_files` lets ``api_activity`` scan decoded Parquet files in place
    (in-memory DuckDB: the decoder writes scratch files, the engine never copies them in).
    Otherwise decoded batches are loaded with :meth:`Engine.load_api_activity`.
``reads_raw_logs``
    the engine reads the listed log files where it runs (Spark's executors): each source hands
    it the files (:mod:`imdshunt.sources.spark_read`) instead of decoding them in this process,
    and the engine adds the resulting rows with ``append_dataframe``.
``binds_params``
    detection SQL runs as written with ``$name`` parameters bound; otherwise the engine runs
    the SQL rendered for its ``dialect`` with the values inlined.
``keeps_state``
    the engine can hunt an incremental state (``--state``, ``watch``): the state's stored call
    groups live in its database. DuckDB only. Such an engine offers what the state needs of
    its database as methods (:class:`StateDatabase`), so :mod:`imdshunt.state` never touches
    a connection: ``execute``/``execute_all`` (statements, a list in one transaction),
    ``attach_database``, ``create_table``, ``insert_arrow``, ``read_arrow`` (rows as held,
    no view built), ``load_query`` (a query's canonical rows appended to a canonical table)
    and ``drop_loaded_rows`` (forget a run's rows once the state kept what it needs).
``hunts_store``
    the engine can hunt a compiled store (``--store``) by attaching its Parquet partitions.
    DuckDB only (in memory, see ``attaches_files``).
``parses_delivered_cloudtrail``
    the engine's own JSON reader parses delivered ``{"Records": [...]}`` files into canonical
    rows (:mod:`imdshunt.sources.cloudtrail_native`: DuckDB's ``read_json`` and the shared record
    projection); the exact Python decoder then reads only the other layouts and rejected chunks.
``inlines_keys``
    the report's session keys are inlined in the query as ``VALUES``, not registered as a
    table (Athena: registering costs an upload and two DDL queries).

How an engine renders SQL for itself is a class method too: :meth:`Engine.view_files` (the
shared view files it runs) and :meth:`Engine.as_sent` (a statement in its dialect as it is
sent), so the SQL printer and the golden files never ask which engine it is by name.

:data:`ENGINES` is the one registry of engines: the CLI's ``--engine`` choices, the SQL
printer (``imdshunt sql --dialect``) and the golden files all read it; the CLI builds the
engine it names with :meth:`Engine.from_options`. No engine name is compared as a string
outside this registry (``tests/test_registries.py`` checks).
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

if TYPE_CHECKING:
    from imdshunt.detect import Detection
    from imdshunt.window import HuntWindow


@dataclass(frozen=True)
class EngineOptions:
    """What the CLI's engine options say (``commands/engines.py``); each engine reads its own."""

    paths: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    athena_output: str | None = None
    athena_database: str = "imdshunt"
    athena_workgroup: str | None = None
    spark_master: str = "local[*]"


class Engine(ABC):
    """What every engine implements. See the module docstring for the capabilities."""

    #: Registry name (``--engine``) and the sqlglot dialect detections are rendered in.
    name: ClassVar[str]
    dialect: ClassVar[str]
    queries_in_place: ClassVar[bool] = False
    attaches_files: ClassVar[bool] = False
    binds_params: ClassVar[bool] = False
    keeps_state: ClassVar[bool] = False
    hunts_store: ClassVar[bool] = False
    inlines_keys: ClassVar[bool] = False
    parses_delivered_cloudtrail: ClassVar[bool] = False
    reads_raw_logs: ClassVar[bool] = False
    #: Detection kinds the engine runs (None: all). Athena has no web logs.
    kinds: ClassVar[tuple[str, ...] | None] = None

    #: Repeated CloudTrail deliveries (one eventID in two files) counted once.
    duplicate_records: int = 0
    #: Things the user should know about the run (e.g. a scan that was not pruned); each
    #: engine sets its own list.
    warnings: list[str]

    @classmethod
    def from_options(cls, options: EngineOptions) -> Engine:
        """The engine the CLI's engine options ask for."""
        return cls()

    # -- rendering SQL (the SQL printer and golden files; classmethods: no engine is made) --
    @classmethod
    @abstractmethod
    def view_files(cls) -> list[Path]:
        """The shared view files (``views/*.sql``) the engine runs, in order."""

    @classmethod
    def as_sent(cls, sql: str) -> str:
        """A statement in the engine's dialect as the engine sends it."""
        return sql

    # -- loading ---------------------------------------------------------------------------
    @abstractmethod
    def load_api_activity(self, batches: Iterable[pa.RecordBatch]) -> int:
        """Append canonical ``api_activity`` batches (see :mod:`imdshunt.schema`); rows loaded."""

    @abstractmethod
    def load_http_requests(self, batches: Iterable[pa.RecordBatch]) -> int:
        """Append canonical ``http_request`` batches; rows loaded."""

    def attach_files(self, files: list[str], *, fmt: str, **kw: Any) -> None:
        """Let ``api_activity`` read decoded Parquet ``files`` in place (``attaches_files``)."""
        from imdshunt.errors import EngineError

        raise EngineError(f"the {self.name} engine cannot read files in place")

    def scratch_dir(self) -> str:
        """A private temporary folder that lives as long as this engine."""
        if getattr(self, "_scratch_dir", None) is None:
            self._scratch_dir = tempfile.mkdtemp(prefix="imdshunt-")
            weakref.finalize(self, shutil.rmtree, self._scratch_dir, True)
        return self._scratch_dir

    def prepare(self, window: HuntWindow) -> None:  # noqa: B027 - optional hook
        """Restrict the canonical views to ``window`` (engines that query in place)."""

    @abstractmethod
    def register_table(self, name: str, table: pa.Table, *, scratch: bool = False) -> None:
        """Create or replace a reference table (``ip_class``, inventory ...) from Arrow.

        ``scratch``: no shared view reads the table (a pipeline step's own working table, such
        as lineage's frontier): the views already computed stay as they are, where a
        reference table would make them be computed again."""

    # -- views and queries -----------------------------------------------------------------
    @abstractmethod
    def ensure_views(self) -> None:
        """Settle ``api_activity`` (each eventID once) before the shared views are read."""

    @abstractmethod
    def table_exists(self, name: str) -> bool:
        """Is there a table or view of this name (shared views included)?"""

    @abstractmethod
    def query(
        self, sql: str, *, label: str = "query", params: dict[str, Any] | None = None
    ) -> pa.Table:
        """Run one statement in the engine's dialect; ``params`` only where ``binds_params``."""

    @abstractmethod
    def scalar(self, sql: str) -> Any:
        """The first column of the first row."""

    @abstractmethod
    def distinct_values(self, table: str, column: str) -> list:
        """The distinct non-null values of a column."""

    def has_rows(self, name: str) -> bool:
        """Does the table or view exist and hold at least one row?"""
        if not self.table_exists(name):
            return False
        return bool(self.scalar(f"SELECT count(*) > 0 FROM (SELECT 1 FROM {name} LIMIT 1) t"))

    def run_detection(self, det: Detection, params: dict[str, Any] | None = None) -> pa.Table:
        """One detection's rows: its SQL as written with bound params, or rendered for the
        engine's dialect with the values inlined."""
        if self.binds_params:
            return self.query(det.sql, label=det.id, params=det.values(params))
        return self.query(det.render_sql(params, dialect=self.dialect), label=det.id)

    # Read by outputs after a hunt (the HTML report's timelines); nothing outside an engine
    # touches its connection.
    @abstractmethod
    def session_calls(self, keys: pa.Table, *, limit: int) -> pa.Table:
        """Every call made with each keyed credential finding's session, from any address.

        ``keys``: one row per finding, columns :data:`imdshunt.engine.queries.SESSION_KEYS`
        (``finding_id``, ``account_id``, ``role``, ``credential_id`` = session name,
        ``source_ip`` = the finding's address). Returns
        :data:`imdshunt.engine.queries.SESSION_CALLS` rows ordered by finding and time: at
        most ``limit`` per finding, off-box calls and calls from the finding's address kept
        first, ``session_call_count`` counting them all. The SQL is
        :data:`imdshunt.engine.queries.SESSION_CALLS_SQL`, transpiled to the engine's dialect.
        """

    # -- after a hunt ----------------------------------------------------------------------
    def cost_summary(self) -> str | None:
        """One line on what the hunt cost where the engine bills by use (Athena), else None."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Release the connection or session, any scratch files, and whatever the engine
        created where it runs (Athena: the run's tables, views and uploads)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except Exception as close_error:  # the run's own error is the one to see
            exc.add_note(f"closing the {self.name} engine failed too: {close_error}")


class StateDatabase(ABC):
    """The database an engine that ``keeps_state`` offers the incremental state
    (:mod:`imdshunt.state`); see the module docstring."""

    @abstractmethod
    def execute(self, sql: str, params: list | None = None) -> list[tuple]:
        """Run a statement on the engine's database; returns its rows."""

    @abstractmethod
    def execute_all(self, statements: Iterable[str]) -> None:
        """Run ``statements`` in order in one transaction: all take effect or none."""

    @abstractmethod
    def attach_database(self, path: str, alias: str, *, block_size: int | None = None) -> None:
        """Attach a database file (created if absent, with ``block_size``) under ``alias``."""

    @abstractmethod
    def create_table(
        self, name: str, schema: pa.Schema, *, temporary: bool = False, replace: bool = False
    ) -> None:
        """Create an empty table of an Arrow ``schema`` (kept if it exists unless ``replace``)."""

    @abstractmethod
    def insert_arrow(self, table: str, rows: pa.Table, *, replace: bool = False) -> None:
        """Insert Arrow rows into a table in one statement (``replace``: on its primary key)."""

    @abstractmethod
    def read_arrow(self, sql: str) -> pa.Table:
        """A statement's rows as Arrow, without settling rows or building shared views."""

    @abstractmethod
    def load_query(self, table: str, sql: str) -> int:
        """Append a query's canonical rows to ``api_activity`` or ``http_request``."""

    @abstractmethod
    def drop_loaded_rows(self) -> None:
        """Forget every loaded or attached row and the views computed over them."""


class BatchLoading:
    """Loading canonical batches through an engine's ``append(table, batch)``."""

    def append(self, table: str, batch: pa.RecordBatch | pa.Table) -> None:  # pragma: no cover
        raise NotImplementedError

    def _load(self, table: str, batches: Iterable[pa.RecordBatch]) -> int:
        n = 0
        for b in batches:
            if b.num_rows:
                self.append(table, b)
                n += b.num_rows
        return n

    def load_api_activity(self, batches: Iterable[pa.RecordBatch]) -> int:
        return self._load("api_activity_raw", batches)

    def load_http_requests(self, batches: Iterable[pa.RecordBatch]) -> int:
        return self._load("http_request", batches)


@dataclass(frozen=True)
class EngineEntry:
    """One engine of the registry; the class is imported only when it is used."""

    name: str
    dialect: str  # sqlglot dialect of its SQL (golden files, ``imdshunt sql``)
    target: str  # "module:Class"
    summary: str
    kinds: tuple[str, ...] | None = None  # detection kinds it runs (None: all)

    def load(self) -> type[Engine]:
        module, _, cls = self.target.partition(":")
        return getattr(importlib.import_module(module), cls)


#: The engine of a hunt that names none; the library makes it (``api.new_engine``, which
#: applies ``--memory-limit``).
DEFAULT_ENGINE = "duckdb"

#: Every engine. Adding one: write the class (an :class:`Engine`), add its entry here.
ENGINES: dict[str, EngineEntry] = {
    e.name: e
    for e in (
        EngineEntry(
            "duckdb",
            "duckdb",
            "imdshunt.engine.duckdb:DuckDBEngine",
            "embedded, no set-up (default)",
        ),
        EngineEntry(
            "spark",
            "spark",
            "imdshunt.engine.spark:SparkEngine",
            "Apache Spark (pip install 'imdshunt[spark]', Java 17+)",
        ),
        EngineEntry(
            "athena",
            "trino",
            "imdshunt.engine.athena:AthenaEngine",
            "Amazon Athena over the trail bucket, in place",
            kinds=("credential",),
        ),
    )
}


def engine_entry(name: str) -> EngineEntry:
    from imdshunt.errors import UsageError

    try:
        return ENGINES[name]
    except KeyError:
        raise UsageError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}") from None


def entry_for(name_or_dialect: str) -> EngineEntry:
    """The engine of this name, or else the engine whose SQL dialect this is (``trino``)."""
    if name_or_dialect in ENGINES:
        return ENGINES[name_or_dialect]
    for entry in ENGINES.values():
        if entry.dialect == name_or_dialect:
            return entry
    return engine_entry(name_or_dialect)  # raises, listing the engines
