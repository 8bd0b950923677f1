"""The source registry: what each kind of log is, how it is recognised, decoded and accounted.

Every mode (a plain hunt, ``--state``/``watch``, ``ingest``, local paths and ``s3://``) asks
:func:`sort_inputs` what each :class:`~imdshunt.sources.inputs.InputFile` is, then asks that
file's source to load it into an engine (:meth:`Source.load`). A source fills one canonical
table (``api_activity`` or ``http_request``, see :mod:`imdshunt.schema`) and accounts in
:class:`~imdshunt.sources.discover.RunStats` for every file and record it read or skipped.

To add a source: write a :class:`Source` subclass (``claim`` and ``load``), add it to
:data:`SOURCES` in the order it should be asked. Nothing else lists sources.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from imdshunt.sources.discover import (
    _SNIFF_BYTES,
    CLOUDTRAIL,
    WEB,
    RunStats,
    _read_error_reason,
    classify_file,
)
from imdshunt.sources.inputs import InputFile, Reader

#: Called as files are done: (files done, files in total, records so far).
Progress = Callable[[int, int, int], None]

#: A claim: True (the file is this source's), None (ask the next source), or a reason the file
#: is this source's kind but is skipped (a CloudTrail digest, JSON that is not CloudTrail ...).
Claim = bool | str | None


@dataclass
class LoadContext:
    """What loading needs beyond the files: how to read them, where to count, how fast."""

    reader: Reader
    stats: RunStats
    workers: int | None = None
    web_log_type: str | None = None
    progress: Progress | None = None
    #: Files each source read completely, by identity; incremental runs mark only these.
    done: list[InputFile] = field(default_factory=list)


class Source:
    """One kind of log. Subclasses set ``name`` and ``table`` and implement the two methods."""

    name: ClassVar[str]
    #: The canonical table this source fills: ``api_activity`` or ``http_request``.
    table: ClassVar[str]
    #: It implements :meth:`compile` (its files can go into a store; ``ingest`` skips the
    #: files of a source that cannot, with that reason).
    compiles: ClassVar[bool] = False

    def claim(self, f: InputFile, head: bytes | None) -> Claim:
        """Is ``f`` this source's? ``head`` is its first bytes, inflated (None: not read yet;
        claim by name and layout alone, or return None to have the head read)."""
        raise NotImplementedError

    def load(self, files: Sequence[InputFile], engine: Any, ctx: LoadContext) -> None:
        """Decode ``files`` into ``engine``'s canonical table, accounting in ``ctx.stats``."""
        raise NotImplementedError

    def compile(
        self,
        files: Sequence[InputFile],
        out_dir: str,
        ctx: LoadContext,
        on_files: Callable[[list[InputFile], int, int], None],
    ) -> None:
        """Write ``files`` as canonical Parquet partitioned by date and account (a compiled
        store, :mod:`imdshunt.store`). ``on_files(done, records, parquet_files)`` is called as
        files are written. Only ``api_activity`` sources can be compiled."""
        raise NotImplementedError(f"{self.name} logs are not compiled into a store")


class SecurityLakeSource(Source):
    """Amazon Security Lake OCSF API Activity parquet (see :mod:`imdshunt.sources.securitylake`)."""

    name = "securitylake"
    table = "api_activity"
    compiles = True

    def claim(self, f: InputFile, head: bytes | None) -> Claim:
        if head is None:
            return True if str(f.path).endswith(".parquet") else None
        return True if head.startswith(b"PAR1") else None

    def _tables(self, files: Sequence[InputFile], ctx: LoadContext):
        """(file, canonical table) per file read; failures are accounted and left out."""
        from imdshunt.sources.cloudtrail import rows_to_batch
        from imdshunt.sources.securitylake import decode_parquet

        for f, data in ctx.reader.fetch_all(files):
            if isinstance(data, str):
                ctx.stats.skip_file(f.uri, data)
                continue
            res = decode_parquet(data, f.uri)
            ctx.stats.merge(res.stats)
            if res.stats.files_skipped:
                continue
            ctx.done.append(f)
            yield f, pa.Table.from_batches([rows_to_batch(res.rows)]) if res.rows else None

    def load(self, files: Sequence[InputFile], engine: Any, ctx: LoadContext) -> None:
        if engine.reads_raw_logs and engine.reads(files):
            from imdshunt.sources.spark_read import read_securitylake

            return _load_on_engine(read_securitylake(engine.spark, files), files, engine, ctx, self)
        engine.load_api_activity(
            b for _, t in self._tables(files, ctx) if t is not None for b in t.to_batches()
        )

    def compile(self, files, out_dir, ctx, on_files) -> None:
        from imdshunt.sources.cloudtrail import write_parquet

        for f, table in self._tables(files, ctx):
            written = write_parquet(table, out_dir, partition=True) if table is not None else []
            on_files([f], table.num_rows if table is not None else 0, len(written))


class CloudTrailSource(Source):
    """CloudTrail JSON as delivered to S3, plain, as arrays or as JSON lines: the fast decoder
    of :mod:`imdshunt.sources.cloudtrail`, in worker processes, for local and S3 files alike."""

    name = CLOUDTRAIL
    table = "api_activity"
    compiles = True

    def claim(self, f: InputFile, head: bytes | None) -> Claim:
        kind, reason = classify_file(f.path, head, sniff=False)
        if kind == CLOUDTRAIL:
            return True
        if kind is None and reason:
            return reason
        return None

    def load(self, files: Sequence[InputFile], engine: Any, ctx: LoadContext) -> None:
        if engine.reads_raw_logs and engine.reads(files):  # Spark: its executors read them
            from imdshunt.sources.spark_read import read_cloudtrail

            return _load_on_engine(read_cloudtrail(engine.spark, files), files, engine, ctx, self)
        from imdshunt.sources import cloudtrail, cloudtrail_native

        total = len(files)
        done = 0
        by_uri = {f.uri: f for f in files}

        def on_chunk(sources: list[str], chunk_stats: RunStats, *_: Any) -> None:
            nonlocal done
            failed = {s.path for s in chunk_stats.files_skipped}
            ctx.done.extend(by_uri[s] for s in sources if s not in failed and s in by_uri)
            done += len(sources)
            if ctx.progress is not None:
                ctx.progress(done, total, ctx.stats.records_read)

        items = self._items(files, ctx.reader)
        if (
            engine.attaches_files
            and engine.parses_delivered_cloudtrail
            and cloudtrail_native.enabled()
        ):
            # DuckDB parses the delivered files itself (the exact decoder reads the rest) and
            # writes scratch Parquet that it then scans in place.
            written = cloudtrail_native.write_files(
                items, ctx.stats, engine.scratch_dir(), workers=ctx.workers, on_chunk=on_chunk
            )
            engine.attach_files([p for p, n in written if n], fmt="parquet")
            return
        if engine.attaches_files:
            # Workers write Parquet scratch files that the engine scans in place: only file
            # names travel back between processes and nothing is inserted into a database.
            written = cloudtrail.write_files(
                items,
                ctx.stats,
                engine.scratch_dir(),
                fmt="parquet",
                workers=ctx.workers,
                on_chunk=lambda sources, out: on_chunk(sources, out.stats),
            )
            engine.attach_files([p for p, n in written if n], fmt="parquet")
            return
        engine.load_api_activity(
            cloudtrail.iter_batches(items, ctx.stats, workers=ctx.workers, on_chunk=on_chunk)
        )

    def compile(self, files, out_dir, ctx, on_files) -> None:
        from imdshunt.sources import cloudtrail, cloudtrail_native

        by_uri = {f.uri: f for f in files}

        def on_written(sources: list[str], stats: RunStats, written: list) -> None:
            failed = {s.path for s in stats.files_skipped}
            done = [by_uri[s] for s in sources if s not in failed and s in by_uri]
            ctx.done.extend(done)
            on_files(done, stats.records_read, len(written))

        if cloudtrail_native.enabled():
            # DuckDB parses the delivered files, as for a hunt (the exact decoder reads the rest)
            cloudtrail_native.write_files(
                self._items(files, ctx.reader),
                ctx.stats,
                out_dir,
                workers=ctx.workers,
                partition=True,
                on_chunk=on_written,
            )
            return

        def on_chunk(sources: list[str], out: Any) -> None:
            on_written(sources, out.stats, out.files)

        cloudtrail.write_files(
            self._items(files, ctx.reader),
            ctx.stats,
            out_dir,
            fmt="parquet",
            partition=True,
            workers=ctx.workers,
            on_chunk=on_chunk,
        )

    @staticmethod
    def _items(files: Sequence[InputFile], reader: Reader) -> Iterable:
        """Local files as paths (the workers read them); S3 objects fetched here by threads."""
        if not any(f.is_s3 for f in files):
            return [f.uri for f in files]
        return ((f.uri, data) for f, data in reader.fetch_all(files))


class WebLogSource(Source):
    """ALB, CloudFront, nginx/Apache combined and WAF logs (see :mod:`imdshunt.sources.weblogs`);
    the format of each file is decided by its content, then its layout."""

    name = WEB
    table = "http_request"

    def claim(self, f: InputFile, head: bytes | None) -> Claim:
        # Asked last: everything no other source claimed is tried as a web log, and a file that
        # is no known web log is skipped with that reason when it is read.
        return True if head is not None else None

    def load(self, files: Sequence[InputFile], engine: Any, ctx: LoadContext) -> None:
        from imdshunt.errors import InputError
        from imdshunt.sources.weblogs import ParseAccounting, read_web_log
        from imdshunt.web import build_url_class, record_accounting

        if engine.reads_raw_logs and engine.reads(files):
            from imdshunt.sources.spark_read import read_web_logs

            read = read_web_logs(engine.spark, files, ctx.web_log_type)
            _load_on_engine(read, files, engine, ctx, self)
            build_url_class(engine)
            return
        for f, data in ctx.reader.fetch_all(files):
            if isinstance(data, str):
                ctx.stats.skip_file(f.uri, data)
                continue
            mine = ParseAccounting()
            try:
                engine.load_http_requests(
                    read_web_log(
                        f.path,
                        ctx.web_log_type,
                        accounting=mine,
                        fileobj=io.BytesIO(data),
                        source_name=f.uri,
                    )
                )
            except InputError as exc:
                ctx.stats.skip_file(f.uri, exc.message)
                continue
            record_accounting(mine, ctx.stats)
            ctx.done.append(f)
        build_url_class(engine)


def _load_on_engine(read: Any, files: Sequence[InputFile], engine: Any, ctx: LoadContext, source):
    """Rows an engine read itself (a :class:`~imdshunt.sources.spark_read.SparkRead`) added to
    its table; each file's accounting merged in listing order."""
    from imdshunt.sources.spark_read import merge_in_order

    merge_in_order(files, read.stats, ctx.stats)
    ctx.done.extend(f for f in files if not read.stats[f.uri].files_skipped)
    if read.rows is not None:
        table = "api_activity_raw" if source.table == "api_activity" else source.table
        engine.append_dataframe(table, read.rows, persisted=read.persisted)
    if ctx.progress is not None:
        ctx.progress(len(files), len(files), ctx.stats.records_read)


#: Every source, in the order each file is offered to them.
SOURCES: dict[str, Source] = {
    s.name: s for s in (SecurityLakeSource(), CloudTrailSource(), WebLogSource())
}


def _inflated_head(raw: bytes) -> bytes:
    if raw[:2] == b"\x1f\x8b":
        # A prefix of a gzip stream: zlib's streaming decompressor returns what it can.
        try:
            return zlib.decompressobj(wbits=31).decompress(raw, _SNIFF_BYTES)
        except zlib.error as exc:
            raise ValueError(f"corrupt gzip ({exc})") from exc
    return raw[:_SNIFF_BYTES]


def sort_inputs(
    files: Iterable[InputFile], reader: Reader, stats: RunStats, *, kinds: Sequence[str] = ()
) -> dict[str, list[InputFile]]:
    """Which source each file is (by name and layout first, then by its first bytes); files no
    source takes are skipped in ``stats`` with the reason. ``kinds`` (source names or canonical
    tables) keeps only those sources; files of the others are skipped as not asked for."""
    out: dict[str, list[InputFile]] = {name: [] for name in SOURCES}
    for f in files:
        claim, name = _claim(f, None)
        if claim is None:
            try:
                head = _inflated_head(reader.head(f, _SNIFF_BYTES))
            except (OSError, EOFError, ValueError) as exc:
                stats.skip_file(f.uri, _read_error_reason(exc))
                continue
            if not head.strip():
                stats.skip_file(f.uri, "empty file")
                continue
            claim, name = _claim(f, head)
        if claim is True:
            out[name].append(f)
        else:
            stats.skip_file(f.uri, claim if isinstance(claim, str) else "unknown")
    if kinds:
        for name, source in SOURCES.items():
            if name not in kinds and source.table not in kinds:
                for f in out[name]:
                    stats.skip_file(f.uri, f"{name} log (not asked for)")
                out[name] = []
    return out


def _claim(f: InputFile, head: bytes | None) -> tuple[Claim, str]:
    for name, source in SOURCES.items():
        claim = source.claim(f, head)
        if claim is not None:
            return claim, name
    return None, ""
