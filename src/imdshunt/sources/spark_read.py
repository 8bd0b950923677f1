"""Raw logs read by Spark's executors: the driver lists keys and reads no log bytes.

:class:`~imdshunt.engine.spark.SparkEngine` declares ``reads_raw_logs``; each source's ``load``
then hands its files here instead of decoding them on the driver:

* **CloudTrail as delivered** (``{"Records": [...]}`` on one line, gzip or not): Spark's JSON
  reader parses it with the one declared narrow record (:func:`imdshunt.schema.spark_schema`),
  ``posexplode(Records)`` numbers the records (``source_record``, 1-based, as the exact decoder
  does), and the one projection shared with DuckDB (``sources/cloudtrail_record.sql``, through
  :func:`imdshunt.engine.portable.transpile`) makes the canonical rows. Small files share
  partitions (``spark.sql.files.openCostInBytes``, see :data:`READ_CONF`).
* **Every other file of CloudTrail** (pretty-printed, JSON lines, EventBridge or Firehose
  concatenations, CloudTrail Lake arrays, and any file whose line Spark could not parse whole:
  ``_corrupt_record``, a null element, more than one line, unreadable gzip) is found by a
  per-file summary computed on the executors, and decoded **on the executors** by the exact
  decoder (:func:`imdshunt.sources.cloudtrail.read_item`) through ``mapInArrow`` over Spark's
  ``binaryFile`` source. Nothing is dropped: each file's accounting comes back as a row.
* **Security Lake** (OCSF Parquet) and **web logs** are decoded on the executors by the
  project's own decoders (:func:`imdshunt.sources.securitylake.decode_parquet`,
  :func:`imdshunt.sources.weblogs.read_web_log`) the same way: their mappings stay one
  definition, and the bytes never reach the driver.

The accounting (:class:`RunStats`) is the exact decoder's, file by file, merged in the order
the files were listed, so a Spark run and a DuckDB run of the same files account alike.

Where the executors run another Python than the driver's (a cluster), ``imdshunt`` must be
installed there too (the same wheel in the executors' image, or ``--py-files``).

Known difference from the exact decoder, for forged files only: a field the narrow record
declares as a string but that holds a number or an object is read by Spark as its JSON text,
where the exact decoder skips that record as "record field has an unexpected type" (DuckDB's
``read_json`` with the declared columns reads it as Spark does).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from imdshunt.schema import API_ACTIVITY, HTTP_REQUEST
from imdshunt.sources.discover import RunStats, SkippedFile
from imdshunt.sources.inputs import InputFile

#: File-source settings for reading many small log files (a CloudTrail file is typically a few
#: KB to a few MB of gzip): Spark pads every file with ``openCostInBytes`` when it packs files
#: into partitions, and the default (4 MB) puts only a few dozen small files in each task, so a
#: day of an organisation becomes thousands of tiny tasks. 256 KB lets hundreds share one;
#: ``maxPartitionBytes`` (64 MB of stored bytes, ~0.5 GB of JSON at CloudTrail's usual 8:1)
#: keeps each task's memory moderate. Applied by :func:`imdshunt.engine.spark.local_session`;
#: on a cluster, set them on the application's session.
READ_CONF = {
    "spark.sql.files.openCostInBytes": str(256 << 10),
    "spark.sql.files.maxPartitionBytes": str(64 << 20),
}

#: The exact decoder's reason for a record that has no time.
NO_TIME = "record without eventTime"

_STATS = "_imdshunt_stats"  # the column that carries a file's accounting back to the driver


def hadoop_path(f: InputFile) -> str:
    """The path Spark is given for ``f``: absolute local paths, ``s3a://`` for S3 (Hadoop's S3
    connector). Glob characters are escaped: Spark expands globs in the paths it is given."""
    if f.is_s3:
        path = "s3a://" + f.uri[len("s3://") :]
    else:
        path = os.path.abspath(f.uri)
    return "".join("\\" + c if c in "*?[]{}\\" else c for c in path)


def file_key(f: InputFile) -> str:
    """The key a file is matched by, to what Spark reports as its path (see :func:`_key_col`)."""
    return f.uri if f.is_s3 else os.path.abspath(f.uri)


def _key_col(path_col: Any, *, encoded: bool) -> Any:
    """Spark's name of a file -> :func:`file_key`. ``_metadata.file_path`` is a URI (``%20``
    for a space, ``%25`` for ``%``; ``+`` left as is, which ``url_decode`` would turn into a
    space); ``binaryFile``'s ``path`` is not encoded."""
    from pyspark.sql import functions as F

    col = path_col
    if encoded:
        col = F.url_decode(F.replace(col, F.lit("+"), F.lit("%2B")))
    col = F.regexp_replace(col, r"^s3a?://", "s3://")
    return F.regexp_replace(col, r"^file:(//)?", "")


@dataclass
class SparkRead:
    """What the executors read: canonical rows (a DataFrame) and each file's accounting."""

    rows: Any  # pyspark DataFrame of the source's canonical table, or None
    stats: dict[str, RunStats]  # by InputFile.uri
    #: DataFrames persisted for this read, to unpersist once the rows are materialised.
    persisted: list


def merge_in_order(files: Sequence[InputFile], per_file: dict[str, RunStats], into: RunStats):
    """Merge each file's accounting into ``into`` in listing order (the first example of a
    reason is the first file's, as when the files are decoded one after another)."""
    for f in files:
        st = per_file.get(f.uri)
        if st is not None:
            into.merge(st)


def stats_to_json(uri: str, stats: RunStats) -> str:
    """One file's accounting as it travels from an executor: ``{"uri": ..., **to_dict()}``."""
    return json.dumps({"uri": uri, **stats.to_dict()})


def stats_from_json(text: str) -> tuple[str, RunStats]:
    d = json.loads(text)
    st = RunStats(
        files_read=d["files_read"],
        records_read=d["records_read"],
        duplicate_records=d["duplicate_records"],
        web_files_read=d["web_files_read"],
        web_lines_read=d["web_lines_read"],
    )
    st.files_skipped = [SkippedFile(s["path"], s["reason"]) for s in d["files_skipped"]]
    st.records_skipped.update(d["records_skipped"])
    st.record_skip_examples.update(d["record_skip_examples"])
    return d["uri"], st


# -- decoding whole files on the executors ---------------------------------------------------
#: A decoder run on the executors: (uri, stored bytes, option) -> (canonical batches, stats).
Decoder = Callable[[str, bytes, Any], tuple[list[pa.RecordBatch], RunStats]]


def decode_cloudtrail(uri: str, data: bytes, _opt: Any) -> tuple[list[pa.RecordBatch], RunStats]:
    """The exact CloudTrail decoder (inflates gzip itself, accounts like a local read)."""
    from imdshunt.sources.cloudtrail import read_item, records_to_batch

    res = read_item((uri, data))
    batches = [records_to_batch([res])] if res.kept else []
    return batches, res.stats


def decode_securitylake(uri: str, data: bytes, _opt: Any) -> tuple[list[pa.RecordBatch], RunStats]:
    from imdshunt.sources.cloudtrail import rows_to_batch
    from imdshunt.sources.securitylake import decode_parquet

    res = decode_parquet(data, uri)
    return ([rows_to_batch(res.rows)] if res.rows else []), res.stats


def decode_web_log(uri: str, data: bytes, log_type: Any) -> tuple[list[pa.RecordBatch], RunStats]:
    """As :class:`imdshunt.sources.registry.WebLogSource` does for one file."""
    import io
    from pathlib import PurePosixPath

    from imdshunt.errors import InputError
    from imdshunt.sources.weblogs import ParseAccounting, read_web_log
    from imdshunt.web import record_accounting

    stats = RunStats()
    mine = ParseAccounting()
    path = PurePosixPath(uri[len("s3://") :].partition("/")[2]) if uri.startswith("s3://") else uri
    try:
        batches = list(
            read_web_log(path, log_type, accounting=mine, fileobj=io.BytesIO(data), source_name=uri)
        )
    except InputError as exc:
        stats.skip_file(uri, exc.message)
        return [], stats
    record_accounting(mine, stats)
    return batches, stats


def _executor_decode(
    decoder: Decoder, schema: pa.Schema, by_key: dict[str, str], opt: Any
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function: each ``binaryFile`` row (path, content) decoded; its rows
    yielded with a null stats column, then one row of nulls carrying its accounting."""
    out_schema = schema.append(pa.field(_STATS, pa.string()))

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            paths = batch.column("key").to_pylist()
            contents = batch.column("content")
            for i, key in enumerate(paths):
                uri = by_key.get(key, key)
                decoded, stats = decoder(uri, contents[i].as_py(), opt)
                for b in decoded:
                    if b.num_rows:
                        cols = [b.column(n) for n in schema.names]
                        cols.append(pa.nulls(b.num_rows, pa.string()))
                        yield pa.RecordBatch.from_arrays(cols, schema=out_schema)
                cols = [pa.nulls(1, f.type) for f in schema]
                cols.append(pa.array([stats_to_json(uri, stats)], pa.string()))
                yield pa.RecordBatch.from_arrays(cols, schema=out_schema)

    return run


def map_in_arrow(df: Any, func: Callable, schema: Any) -> Any:
    """``df.mapInArrow(func, schema)``, also where pandas is not installed.

    pyspark checks for pandas before every Arrow map, although ``mapInArrow`` hands the
    function Arrow batches and never uses pandas (it is built on ``pandas_udf``). imdshunt does
    not depend on pandas, so without it the same Arrow map is built from pyspark's own parts
    (the UDF of eval type ``SQL_MAP_ARROW_ITER_UDF`` that ``mapInArrow`` builds, and the JVM
    call it makes).
    """
    try:
        import pandas  # noqa: F401
    except ImportError:
        pass
    else:
        return df.mapInArrow(func, schema)
    from pyspark.sql import DataFrame
    from pyspark.sql.udf import _create_udf
    from pyspark.util import PythonEvalType

    udf = _create_udf(func, schema, PythonEvalType.SQL_MAP_ARROW_ITER_UDF)
    column = udf(*[df[c] for c in df.columns])
    return DataFrame(df._jdf.mapInArrow(column._jc, False, None), df.sparkSession)


def read_whole_files(
    spark: Any, files: Sequence[InputFile], decoder: Decoder, schema: pa.Schema, opt: Any = None
) -> SparkRead:
    """Decode ``files`` on the executors with ``decoder`` (one task reads a file's bytes with
    ``binaryFile`` and decodes them where it runs); only each file's accounting, a few hundred
    bytes, comes back to the driver."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    if not files:
        return SparkRead(None, {}, [])
    by_key = {file_key(f): f.uri for f in files}
    out_schema = from_arrow_schema(schema.append(pa.field(_STATS, pa.string())))
    raw = (
        spark.read.format("binaryFile")
        .option("ignoreMissingFiles", "true")
        .load([hadoop_path(f) for f in files])
        .select(_key_col(F.col("path"), encoded=False).alias("key"), "content")
    )
    func = _executor_decode(decoder, schema, by_key, opt)
    decoded = map_in_arrow(raw, func, out_schema).persist()
    per_file = {}
    for row in decoded.where(F.col(_STATS).isNotNull()).select(_STATS).collect():
        uri, st = stats_from_json(row[0])
        per_file[uri] = st
    seen = set(per_file)
    for f in files:
        if f.uri in seen:
            continue
        if f.size == 0:  # Spark's file sources skip empty files: decoded here, from no bytes
            per_file[f.uri] = decoder(f.uri, b"", opt)[1]
        else:  # gone between listing and reading
            st = RunStats()
            st.skip_file(f.uri, "unreadable (no such file)")
            per_file[f.uri] = st
    rows = decoded.where(F.col(_STATS).isNull()).drop(_STATS)
    return SparkRead(rows, per_file, [decoded])


# -- CloudTrail as delivered: Spark's JSON reader ---------------------------------------------
def _envelope() -> Any:
    from pyspark.sql import types as T

    from imdshunt.schema import spark_schema

    return T.StructType(
        [
            T.StructField("Records", T.ArrayType(spark_schema())),
            T.StructField("_corrupt_record", T.StringType()),
        ]
    )


_PROJECTION_VIEW = "cloudtrail_record"


def _projection() -> str:
    from imdshunt.engine.portable import transpile
    from imdshunt.sources.cloudtrail import record_projection_sql

    global _PROJECTION_SPARK
    if _PROJECTION_SPARK is None:
        _PROJECTION_SPARK = transpile(record_projection_sql(), "spark")
    return _PROJECTION_SPARK


_PROJECTION_SPARK: str | None = None

#: A record the exact decoder keeps: it has a time (``eventTime``, else Logstash's
#: ``@timestamp``), as the projection's WHERE clause says.
_HAS_TIME = "coalesce(nullif(r.eventTime, ''), nullif(r.`@timestamp`, '')) IS NOT NULL"


def read_cloudtrail(spark: Any, files: Sequence[InputFile]) -> SparkRead:
    """CloudTrail files read on the executors (see the module docstring).

    One scan of the JSON (persisted) gives both each file's summary and the records: a file is
    read by Spark only when it is exactly one line that parsed whole into ``{"Records": [...]}``
    with no null element; every other file is decoded by the exact decoder on the executors.
    """
    from pyspark.sql import functions as F

    if not files:
        return SparkRead(None, {}, [])
    listing = spark.createDataFrame(
        [(file_key(f), f.uri) for f in files], "key string, source_file string"
    )
    lines = (
        spark.read.schema(_envelope())
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", "_corrupt_record")
        # A truncated or corrupt gzip must not fail the job: the lines read before the damage
        # (if any) make the file fail the one-whole-line test below, and the exact decoder then
        # accounts it ("truncated gzip", "corrupt gzip ...") as a local read would.
        .option("ignoreCorruptFiles", "true")
        .json([hadoop_path(f) for f in files])
        .select(
            _key_col(F.col("_metadata.file_path"), encoded=True).alias("key"),
            "Records",
            F.col("_corrupt_record").isNotNull().alias("corrupt"),
        )
        .join(F.broadcast(listing), "key")
        .drop("key")
        .persist()
    )
    no_time = F.expr(
        f"filter(transform(Records, (r, i) -> IF({_HAS_TIME}, NULL, i + 1)), i -> i IS NOT NULL)"
    )
    summary = (
        lines.select(
            "source_file",
            "corrupt",
            F.col("Records").isNull().alias("no_records"),
            F.coalesce(F.exists("Records", lambda r: r.isNull()), F.lit(False)).alias("null_rec"),
            F.coalesce(F.size("Records"), F.lit(0)).alias("n"),
            no_time.alias("no_time"),
        )
        .groupBy("source_file")
        .agg(
            F.count(F.lit(1)).alias("lines"),
            F.max(F.col("corrupt") | F.col("no_records") | F.col("null_rec")).alias("odd"),
            F.sum("n").alias("n"),
            F.sum(F.size("no_time")).alias("n_no_time"),
            F.min(F.try_element_at("no_time", F.lit(1))).alias("first_no_time"),
        )
        .collect()
    )
    per_file: dict[str, RunStats] = {}
    delivered: list[str] = []
    for row in summary:
        if row.lines != 1 or row.odd:
            continue
        read = row.n - row.n_no_time
        st = RunStats(files_read=1, records_read=read, records_parsed_natively=read)
        if row.n_no_time:
            example = f"{row.source_file}:{row.first_no_time}"
            st.skip_records(NO_TIME, row.n_no_time, example=example)
        per_file[row.source_file] = st
        delivered.append(row.source_file)
    persisted = [lines]
    frames = []
    if delivered:
        records = (
            lines.join(
                F.broadcast(spark.createDataFrame([(u,) for u in delivered], "source_file string")),
                "source_file",
                "left_semi",
            )
            .select("source_file", F.posexplode("Records").alias("pos", "r"))
            .select("r.*", "source_file", (F.col("pos") + 1).alias("source_record"))
        )
        records.createOrReplaceTempView(_PROJECTION_VIEW)
        try:
            frames.append(spark.sql(_projection()))
        finally:
            spark.catalog.dropTempView(_PROJECTION_VIEW)
    rest = [f for f in files if f.uri not in per_file]
    if rest:
        exact = read_whole_files(spark, rest, decode_cloudtrail, API_ACTIVITY)
        per_file.update(exact.stats)
        persisted += exact.persisted
        if exact.rows is not None:
            frames.append(exact.rows)
    rows = None
    for df in frames:
        df = df.select(*API_ACTIVITY.names)
        rows = df if rows is None else rows.unionByName(df)
    return SparkRead(rows, per_file, persisted)


def read_securitylake(spark: Any, files: Sequence[InputFile]) -> SparkRead:
    """Security Lake OCSF Parquet decoded on the executors by the one OCSF mapping
    (:mod:`imdshunt.sources.securitylake`)."""
    return read_whole_files(spark, files, decode_securitylake, API_ACTIVITY)


def read_web_logs(spark: Any, files: Sequence[InputFile], log_type: str | None) -> SparkRead:
    """Web logs parsed on the executors by the project's parsers (:mod:`.weblogs`)."""
    return read_whole_files(spark, files, decode_web_log, HTTP_REQUEST, log_type)
