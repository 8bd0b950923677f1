"""DuckDB parses delivered CloudTrail itself: Python only inflates and moves bytes.

CloudTrail delivers each log file as one line, ``{"Records":[{"eventVersion":...},{...}]}``
(https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-log-file-examples.html),
and every record begins with ``eventVersion``. Decoder workers inflate the files (ISA-L) and turn
each such file into newline-delimited JSON with byte operations only: the envelope is stripped and
the files are split where one record ends and the next begins (``},{"eventVersion":``). DuckDB then
parses the chunk in parallel with ``read_json(format='newline_delimited', columns=...)`` over the
one declared narrow record (:func:`imdshunt.schema.duckdb_columns`), and the projection shared
with Spark (``cloudtrail_record.sql``) turns it into canonical ``api_activity`` rows, written as
scratch Parquet that the engine scans in place as before. Inflating and splitting the next chunks
(in the workers) overlaps parsing the current one (in DuckDB's threads).

Why the split is exact or loudly wrong, never silently wrong: inside a JSON string every ``"`` is
escaped, so ``},{"eventVersion":`` cannot occur inside one; a split inside a nested object leaves
the record's braces unbalanced, so the line is not JSON and DuckDB rejects the chunk. A chunk
DuckDB rejects is read again by the exact decoder (:mod:`imdshunt.sources.cloudtrail`), and so is
every file not in the delivered layout (pretty-printed, JSON lines, arrays, EventBridge): an
attacker can force the slow path, never a wrong row.

One difference is known and left: a narrow *string* field holding a number, boolean, object or
array (which CloudTrail never writes) is read by DuckDB as that value's JSON text, where the exact
decoder skips the record ("record field has an unexpected type"). Finding it in Python costs more
than the whole parse (a regular expression over every byte ran at under 30 MB/s), and DuckDB's
reader has no strict mode; a field of the wrong *shape* (an object expected) is rejected.

Each record's 1-based index in its file (``source_record``, the evidence's address) is carried
through the parse as a number written in front of ``eventVersion``: one ordinal per record of the
chunk, the separators built once per ordinal and interleaved by C code (``bytes.join`` over
``zip``), so no Python runs per record. A small manifest (file, first ordinal) maps it back.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
from isal import igzip
from isal.igzip_lib import IsalError

from imdshunt.schema import duckdb_columns
from imdshunt.sources import cloudtrail
from imdshunt.sources.discover import GZIP_MAGIC, RunStats, _read_error_reason

#: ``IMDSHUNT_CLOUDTRAIL_PARSER=exact`` turns the native parse off (benchmarks, comparisons).
PARSER_ENV = "IMDSHUNT_CLOUDTRAIL_PARSER"

#: DuckDB's memory while it parses one chunk (a streaming read and Parquet write).
PARSE_MEMORY_LIMIT = "256MB"

_HEAD = b'{"Records":['
_FIRST = b'{"eventVersion":'
_GAP = b'},{"eventVersion":'
_TAIL = b"]}"
#: The injected ordinal's key: no CloudTrail field begins with an underscore.
ORDINAL = "_imdshunt_ordinal"
_ORD = ORDINAL.encode()

#: ``_SEPS[k]`` ends record k-1 and begins record k of a chunk (built once per ordinal).
_SEPS: list[bytes] = [b""]


def _separators(upto: int) -> list[bytes]:
    while len(_SEPS) < upto:
        _SEPS.append(b'}\n{"' + _ORD + b'":%d,"eventVersion":' % len(_SEPS))
    return _SEPS


def enabled() -> bool:
    return os.environ.get(PARSER_ENV, "native").lower() != "exact"


def delivered_records(text: bytes) -> list[bytes] | None:
    """The pieces of a file in the delivered layout, split between records; None otherwise.

    Piece 0 lacks its opening ``{"eventVersion":``, every piece but the last its closing brace.
    """
    if not text.startswith(_HEAD + _FIRST):
        return None
    end = len(text)
    while end and text[end - 1] in b" \t\r\n":
        end -= 1
    if not text.endswith(b"}" + _TAIL, 0, end):
        return None
    return text[len(_HEAD) + len(_FIRST) : end - len(_TAIL)].split(_GAP)


@dataclass
class SplitChunk:
    """What a worker made of a chunk: an NDJSON spool of the delivered files (with their first
    ordinals and record counts), Parquet of the files it decoded exactly, the accounting."""

    spool: str | None
    manifest: list[tuple[str, int, int]]
    files: list[tuple[str, int]]
    stats: RunStats
    sources: list[str] = field(default_factory=list)


def _inflate(item: cloudtrail.Item, stats: RunStats) -> bytes | None:
    source = cloudtrail._item_source(item)
    try:
        if isinstance(item, str):
            return cloudtrail.read_bytes(item)
        payload = item[1]
        if isinstance(payload, str):  # the fetch failed
            stats.skip_file(source, payload)
            return None
        return igzip.decompress(payload) if payload.startswith(GZIP_MAGIC) else payload
    except (OSError, EOFError, ValueError, IsalError) as exc:
        stats.skip_file(source, _read_error_reason(exc))
        return None


def _split_chunk(job: tuple[list[cloudtrail.Item], str, bool]) -> SplitChunk:
    """Worker: inflate a chunk; delivered files to one NDJSON spool, the others decoded
    (into Hive ``date=``/``account=`` folders with ``partition``)."""
    items, out_dir, partition = job
    stats = RunStats()
    sources = [cloudtrail._item_source(i) for i in items]
    pieces: list[bytes] = []
    manifest: list[tuple[str, int, int]] = []
    exact: list[cloudtrail.Item] = []
    k = 0
    for item, source in zip(items, sources, strict=True):
        data = _inflate(item, stats)
        if data is None:
            continue
        parts = delivered_records(data)
        if parts is None:
            exact.append((source, data))
            continue
        n = len(parts)
        seps = _separators(k + n)
        pieces.append(b'{"' + _ORD + b'":%d,"eventVersion":' % k)
        # every piece but the last, each followed by the next record's separator
        pieces.extend(itertools.chain.from_iterable(zip(parts, seps[k + 1 : k + n], strict=False)))
        pieces.append(parts[-1])
        pieces.append(b"\n")
        manifest.append((source, k, n))
        k += n
    spool = None
    if pieces:
        spool = os.path.join(out_dir, f"spool-{uuid.uuid4().hex}.ndjson")
        with open(spool, "wb") as fh:
            fh.writelines(pieces)
    files = _decode_exactly(exact, out_dir, stats, partition) if exact else []
    return SplitChunk(spool, manifest, files, stats, sources)


def _decode_exactly(
    items: list, out_dir: str, stats: RunStats, partition: bool = False
) -> list[tuple[str, int]]:
    tables = list(cloudtrail._chunk_tables(items, stats))
    if not tables:
        return []
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    return cloudtrail.write_parquet(table, out_dir, partition=partition)


def _partitioned(part: str, out_dir: str) -> list[tuple[str, int]]:
    """The rows of the Parquet file ``part`` written again into a compiled store's Hive
    folders (the exact decoder's :func:`~imdshunt.sources.cloudtrail.write_parquet`, so both
    paths name and split partitions alike); Arrow moves them, no Python runs per record."""
    import pyarrow.parquet as pq

    try:
        return cloudtrail.write_parquet(pq.read_table(part), out_dir, partition=True)
    finally:
        os.remove(part)


def _pipelined(fn: Callable, jobs: Iterable, workers: int) -> Iterator[tuple]:
    """(job, fn(job)) in order; at most ``2 * workers`` jobs in flight, so the parent's work
    on one result overlaps the workers' on the next."""
    import multiprocessing as mp

    it = iter(jobs)
    if workers <= 1:
        for job in it:
            yield job, fn(job)
        return
    ctx = mp.get_context("forkserver")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending = [(job, pool.submit(fn, job)) for job in itertools.islice(it, 2 * workers)]
        while pending:
            job, fut = pending.pop(0)
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(fn, nxt)))
            yield job, fut.result()


def _by_ordinal(firsts: list[int], values: list[str], lo: int, hi: int) -> str:
    """SQL: ``values[i]`` of the file ``i`` that holds the record numbered ``ORDINAL``
    (``firsts``: the files' ascending first ordinals), a balanced tree of comparisons."""
    if hi - lo == 1:
        return values[lo]
    mid = (lo + hi) // 2
    return (
        f"CASE WHEN {ORDINAL} < {firsts[mid]} THEN {_by_ordinal(firsts, values, lo, mid)} "
        f"ELSE {_by_ordinal(firsts, values, mid, hi)} END"
    )


def _sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


class Parser:
    """DuckDB parsing spool chunks into canonical Parquet (its own connection, UTC)."""

    def __init__(self, threads: int | None = None, memory_limit: str | None = None):
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")  # a time without an offset is UTC
        # Rows are written in any order: the canonical view orders by file and record.
        self.con.execute("SET preserve_insertion_order = false")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
        columns = {ORDINAL: "BIGINT", **duckdb_columns()}
        self._columns = (
            "{" + ", ".join(f"{_sql_str(k)}: {_sql_str(v)}" for k, v in columns.items()) + "}"
        )
        self._projection = cloudtrail.record_projection_sql()

    def parse(self, spool: str, manifest: list[tuple[str, int, int]], out: str) -> int:
        """Write the canonical rows of ``spool`` to the Parquet file ``out``; rows written.
        Raises duckdb.InvalidInputException when DuckDB rejects the chunk (not JSON where
        the split said a record was, a field of another shape, a record over 16 MB)."""
        firsts = [m[1] for m in manifest]
        names = [_sql_str(m[0]) for m in manifest]
        file_name = _by_ordinal(firsts, names, 0, len(manifest))
        first = _by_ordinal(firsts, [str(f) for f in firsts], 0, len(manifest))
        # Each record's file and first ordinal by a tree of comparisons over the files'
        # first ordinals (a join would copy every parsed record once more).
        self.con.execute(
            "CREATE OR REPLACE TEMP VIEW cloudtrail_record AS "
            f"SELECT * EXCLUDE ({ORDINAL}), {file_name} AS source_file, "
            f"CAST({ORDINAL} - {first} + 1 AS INTEGER) AS source_record "
            f"FROM read_json({_sql_str(spool)}, format = 'newline_delimited', "
            f"columns = {self._columns})"
        )
        rows = self.con.execute(
            f"COPY ({self._projection}) TO {_sql_str(out)} "
            "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE 65536)"
        ).fetchall()[0][0]
        return int(rows)

    def first_without_time(self) -> str | None:
        """``file:record`` of the first record of the last chunk that has no time."""
        row = self.con.execute(
            "SELECT source_file, source_record FROM cloudtrail_record "
            "WHERE nullif(coalesce(nullif(\"eventTime\", ''), \"@timestamp\"), '') IS NULL "
            "ORDER BY source_file, source_record LIMIT 1"
        ).fetchall()
        return f"{row[0][0]}:{row[0][1]}" if row else None

    def close(self) -> None:
        self.con.close()


def write_files(
    items: Iterable[cloudtrail.Item],
    stats: RunStats,
    out_dir: str,
    *,
    workers: int | None = None,
    threads: int | None = None,
    partition: bool = False,
    on_chunk: Callable[[list[str], RunStats, list[tuple[str, int]]], None] | None = None,
) -> list[tuple[str, int]]:
    """Decode CloudTrail ``items`` into canonical Parquet files under ``out_dir`` (rows, like
    :func:`imdshunt.sources.cloudtrail.write_files`): delivered files parsed by DuckDB, the rest
    by the exact decoder. ``stats.records_parsed_natively`` counts the records DuckDB read.
    ``partition``: into Hive ``date=``/``account=`` folders (a compiled store).
    ``on_chunk(sources, stats, files)`` is called as each chunk is written."""
    workers = workers if workers is not None else (os.cpu_count() or 1)
    jobs = ((c, out_dir, partition) for c in cloudtrail._chunks(items))
    parser = Parser(threads=threads or workers, memory_limit=PARSE_MEMORY_LIMIT)
    written: list[tuple[str, int]] = []
    try:
        for (chunk, *_), res in _pipelined(_split_chunk, jobs, workers):
            st = res.stats
            files = list(res.files)
            if res.spool is not None:
                # partitioned: a hidden scratch name, split into the Hive folders once parsed
                hidden = "." if partition else ""
                part = os.path.join(out_dir, f"{hidden}part-{uuid.uuid4().hex}.parquet")
                try:
                    rows = parser.parse(res.spool, res.manifest, part)
                except duckdb.InvalidInputException:
                    # Not JSON where the split said a record was: the exact decoder reads it.
                    if os.path.exists(part):
                        os.remove(part)
                    delivered = {m[0] for m in res.manifest}
                    again = [i for i in chunk if cloudtrail._item_source(i) in delivered]
                    files.extend(_decode_exactly(again, out_dir, st, partition))
                else:
                    present = sum(m[2] for m in res.manifest)
                    st.files_read += len(res.manifest)
                    st.records_read += rows
                    st.records_parsed_natively += rows
                    if present > rows:
                        st.skip_records(
                            "record without eventTime",
                            present - rows,
                            example=parser.first_without_time(),
                        )
                    files.extend(_partitioned(part, out_dir) if partition else [(part, rows)])
                finally:
                    os.remove(res.spool)
            written.extend(files)
            stats.merge(st)
            if on_chunk is not None:
                on_chunk(res.sources, st, files)
    finally:
        parser.close()
    return written
