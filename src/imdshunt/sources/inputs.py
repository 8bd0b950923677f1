"""What a hunt reads: local files and ``s3://`` objects as one kind of thing, :class:`InputFile`.

Every mode lists its inputs here, prunes them by the hunt's window
(:class:`imdshunt.window.HuntWindow`) and hands them to the source registry
(:mod:`imdshunt.sources.registry`), which decides what each file is and decodes it. Local files
and S3 objects then go through the same decoders: only :meth:`Reader.read` differs.

:class:`InputFile` itself lives in :mod:`imdshunt.sources.input_file`, below this module and
:mod:`imdshunt.sources.s3` (which lists objects as InputFiles), so that neither imports the
other back; it is re-exported here.

An input's :attr:`InputFile.identity` and :attr:`InputFile.version` are what incremental runs
remember (``--state``): the resolved path and ``size:mtime_ns`` of a local file, the URI and
``size:ETag`` of an S3 object. A changed version means the file is read again.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from imdshunt.sources import s3 as s3src
from imdshunt.sources.discover import GZIP_MAGIC, RunStats, iter_files
from imdshunt.sources.input_file import InputFile
from imdshunt.window import EVERYTHING, HuntWindow

__all__ = ["InputFile", "Listing", "Reader", "fetch_threads", "list_inputs"]


@dataclass
class Listing:
    """The inputs under a hunt's paths, and the S3 client that reads those on S3."""

    files: list[InputFile] = field(default_factory=list)
    s3_client: Any = None


def list_inputs(
    paths: Iterable[str | os.PathLike],
    stats: RunStats,
    *,
    window: HuntWindow = EVERYTHING,
    session: Any = None,
    s3_client: Any = None,
    workers: int | None = None,
) -> Listing:
    """Every file under ``paths`` (folders walked, ``s3://`` prefixes listed) inside ``window``.

    Digest and Insights folders are skipped with a line in ``stats``; folders outside the
    window are not read and not counted (they were not asked for).
    """
    out = Listing(s3_client=s3_client)
    local: list[str | os.PathLike] = []
    for p in paths:
        if s3src.is_s3_uri(p):
            if out.s3_client is None:
                out.s3_client = s3src.s3_client(session, workers=fetch_threads(workers))
            out.files.extend(s3src.list_objects(out.s3_client, str(p), stats, window))
        else:
            local.append(p)
    for path in iter_files(local, stats):
        keep, reason = window.keep_path(path.as_posix())
        if not keep:
            if reason:
                stats.skip_file(path, reason)
            continue  # outside the requested accounts/regions/days: not read, not counted
        try:
            out.files.append(InputFile.local(path))
        except OSError as exc:
            stats.skip_file(path, f"unreadable ({exc.strerror})")
    return out


def fetch_threads(workers: int | None) -> int:
    """Fetch threads for S3: I/O bound, so several per core."""
    return max(4, 4 * (workers or os.cpu_count() or 1))


@dataclass
class Reader:
    """Reads inputs' bytes: local files from disk, S3 objects with ``s3_client``."""

    s3_client: Any = None
    threads: int = 16

    def read(self, f: InputFile) -> bytes:
        """The file's stored bytes (gzip left as is). Raises OSError on failure."""
        if not f.is_s3:
            with open(f.uri, "rb") as fh:
                return fh.read()
        bucket, _, key = f.uri[len("s3://") :].partition("/")
        try:
            return self.s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:  # botocore errors, connection errors: one object, accounted
            raise OSError(f"{type(exc).__name__}: {exc}") from exc

    def head(self, f: InputFile, n: int = 4096) -> bytes:
        """The first ``n`` stored bytes (a ranged GET on S3)."""
        if not f.is_s3:
            with open(f.uri, "rb") as fh:
                return fh.read(n)
        bucket, _, key = f.uri[len("s3://") :].partition("/")
        try:
            body = self.s3_client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{n - 1}")
            return body["Body"].read()
        except Exception as exc:  # accounted by the caller
            raise OSError(f"{type(exc).__name__}: {exc}") from exc

    def fetch_all(self, files: Iterable[InputFile]) -> Iterator[tuple[InputFile, bytes | str]]:
        """(file, bytes) for each file, or (file, reason) when it cannot be read; S3 objects
        are fetched by ``threads`` threads with at most ``2 * threads`` in flight, in order."""
        files = list(files)
        if not any(f.is_s3 for f in files):
            for f in files:
                yield f, self._read_or_reason(f)
            return
        with ThreadPoolExecutor(max_workers=max(1, self.threads)) as pool:
            window = 2 * max(1, self.threads)
            futures = []
            it = iter(files)
            for f in it:
                futures.append((f, pool.submit(self._read_or_reason, f)))
                if len(futures) >= window:
                    break
            while futures:
                f, fut = futures.pop(0)
                nxt = next(it, None)
                if nxt is not None:
                    futures.append((nxt, pool.submit(self._read_or_reason, nxt)))
                yield f, fut.result()

    def _read_or_reason(self, f: InputFile) -> bytes | str:
        try:
            return self.read(f)
        except PermissionError:
            return "unreadable (permission denied)"
        except OSError as exc:
            return f"unreadable ({exc.strerror or exc})"


def is_gzip(data: bytes) -> bool:
    return data[:2] == GZIP_MAGIC
