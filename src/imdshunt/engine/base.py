"""What every engine offers (DuckDB, Spark, Athena): a structural type, no base class to inherit.

:func:`imdshunt.api.run_detections` needs only these members. ``dialect`` is the sqlglot dialect
detections are transpiled to (:func:`imdshunt.engine.portable.transpile`); ``in_place`` engines
(Athena) query the logs where they lie and are driven by :func:`imdshunt.api.hunt_in_place`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import pyarrow as pa


class Engine(Protocol):
    name: str
    dialect: str
    duplicate_records: int

    def register_table(self, name: str, table: pa.Table) -> None: ...
    def distinct_values(self, table: str, column: str) -> list: ...
    def ensure_views(self) -> None: ...
    def table_exists(self, name: str) -> bool: ...
    def query(self, sql: str, *, label: str = "query") -> pa.Table: ...
    def scalar(self, sql: str) -> Any: ...
    def close(self) -> None: ...

    # Read by outputs after a hunt (the HTML report's timelines); nothing outside an engine
    # touches its connection.
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
        ...


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
