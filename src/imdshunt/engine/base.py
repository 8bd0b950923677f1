"""What every engine offers (DuckDB, Spark, Athena): a structural type, no base class to inherit.

:func:`imdshunt.api.run_detections` needs only these members. ``dialect`` is the sqlglot dialect
detections are transpiled to (:func:`imdshunt.engine.portable.transpile`); ``in_place`` engines
(Athena) query the logs where they lie and are driven by :func:`imdshunt.api.hunt_in_place`.
"""

from __future__ import annotations

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
