"""One declared narrow CloudTrail record (schema.CLOUDTRAIL_RECORD), three readers derived from it.

The exact msgspec decoder, DuckDB's ``read_json(columns=)`` and Spark's JSON reader must read the
same fields with the same values from the same delivered files; otherwise the engines would hunt
different data.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import msgspec
import pytest

from imdshunt.schema import CLOUDTRAIL_RECORD, RAW_JSON, duckdb_columns
from imdshunt.sources.cloudtrail import RECORD_STRUCTS, _Envelope


def _leaf_paths(fields: dict, prefix: tuple = ()) -> list[tuple[tuple, str]]:
    out = []
    for key, kind in fields.items():
        if isinstance(kind, dict):
            out += _leaf_paths(kind, prefix + (key,))
        else:
            out.append((prefix + (key,), kind))
    return out


LEAVES = _leaf_paths(CLOUDTRAIL_RECORD)


def _get(obj, path: tuple):
    for key in path:
        if obj is None:
            return None
        obj = obj.get(key) if isinstance(obj, dict) else getattr(obj, key.lstrip("@"))
    return obj


def _normal(value, kind: str):
    """Raw JSON compared as parsed values (readers differ in white space); absent == null."""
    if kind == RAW_JSON:
        if value is None:
            return None
        text = bytes(value) if isinstance(value, msgspec.Raw) else value
        return json.loads(text) if text else None
    return value


def _records_files(realdata: Path) -> list[Path]:
    files = sorted((realdata / "cloudtrail-samples").glob("*.json"))
    return [f for f in files if json.loads(f.read_bytes()).get("Records")]


def test_msgspec_structs_are_the_declaration():
    def walk(fields: dict, path: str):
        struct = RECORD_STRUCTS[path]
        infos = {f.encode_name: f for f in msgspec.structs.fields(struct)}
        assert set(infos) == set(fields), path
        for key, kind in fields.items():
            if isinstance(kind, dict):
                walk(kind, f"{path}.{key}" if path else key)

    walk(CLOUDTRAIL_RECORD, "")


def test_duckdb_columns_are_the_declaration():
    con = duckdb.connect()
    struct = "STRUCT(" + ", ".join(f'"{k}" {t}' for k, t in duckdb_columns().items()) + ")"
    described = con.sql(f"SELECT NULL::{struct} AS r").types[0]
    names = [name for name, _ in described.children]
    assert names == list(CLOUDTRAIL_RECORD)


def test_duckdb_reads_what_the_exact_decoder_reads(realdata):
    files = _records_files(realdata)
    assert len(files) >= 10
    con = duckdb.connect()
    record = "STRUCT(" + ", ".join(f'"{k}" {t}' for k, t in duckdb_columns().items()) + ")"
    for f in files:
        exact = msgspec.json.decode(f.read_bytes(), type=_Envelope).Records
        rows = con.execute(
            "SELECT r FROM (SELECT unnest(Records) AS r FROM read_json(?, "
            f"columns={{'Records': '{record}[]'}}, format='auto', maximum_object_size=1e9))",
            [str(f)],
        ).fetchall()
        assert len(rows) == len(exact), f.name
        for (row,), rec in zip(rows, exact, strict=True):
            for path, kind in LEAVES:
                assert _normal(_get(row, path), kind) == _normal(_get(rec, path), kind), (
                    f.name,
                    path,
                )


@pytest.mark.spark
def test_spark_reads_what_the_exact_decoder_reads(realdata, tmp_path, spark):
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from imdshunt.schema import spark_schema

    files = _records_files(realdata)
    # Spark's JSON reader wants one document a line: the delivered files are (one line each).
    for f in files:
        (tmp_path / f.name).write_text(json.dumps(json.loads(f.read_bytes())))
    envelope = T.StructType([T.StructField("Records", T.ArrayType(spark_schema()))])
    df = (
        spark.read.schema(envelope)
        .json(str(tmp_path))
        .select(F.input_file_name().alias("file"), F.posexplode("Records").alias("i", "r"))
    )
    got = {(Path(row.file).name, row.i): row.r.asDict(recursive=True) for row in df.collect()}
    for f in files:
        exact = msgspec.json.decode(f.read_bytes(), type=_Envelope).Records
        for i, rec in enumerate(exact):
            row = got[(f.name, i)]
            for path, kind in LEAVES:
                assert _normal(_get(row, path), kind) == _normal(_get(rec, path), kind), (
                    f.name,
                    path,
                )
