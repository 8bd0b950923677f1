"""CloudTrail read where it lies: ``s3://bucket/prefix`` listed with boto3, fetched in parallel.

Objects are fetched with threads and decoded by the same code as local files
(:func:`imdshunt.sources.cloudtrail.decode_records`), so a hunt over ``s3://...`` gives the same
rows as a hunt over a local mirror of the bucket. DuckDB's httpfs extension is not used: it is
downloaded at run time and must match the DuckDB version, so it cannot be relied on offline.

The client comes from a :class:`boto3.Session` given by the caller (the standard credential
chain when none is given). botocore itself honours ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_S3`` (https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html),
which is how tests point it at a moto server and how users point it at S3-compatible stores.

Pruning follows CloudTrail's key layout,
``AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/<file>.json.gz``
(https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-find-log-files.html):
the listing descends folder by folder (``Delimiter='/'``) and never lists an account, region or
day outside the filter. ``CloudTrail-Digest`` and ``CloudTrail-Insight`` folders are not listed
at all (one skip line each). The window is a window of *delivery folders*, the same unit Athena's
partition projection prunes by: a file delivered in the first minutes of a day can hold events
of the previous day.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import pyarrow as pa

from imdshunt.errors import InputError, UsageError
from imdshunt.sources.cloudtrail import BATCH_ROWS, FileResult, decode_records, rows_to_batch
from imdshunt.sources.discover import (
    _SNIFF_BYTES,
    CLOUDTRAIL,
    GZIP_MAGIC,
    RunStats,
    classify_file,
)

_ACCOUNT = re.compile(r"^\d{12}$")
_ORG = re.compile(r"^o-[a-z0-9]{10,32}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def is_s3_uri(path: Any) -> bool:
    return isinstance(path, str) and path.startswith("s3://")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix)."""
    if not is_s3_uri(uri):
        raise UsageError(f"not an s3:// URI: {uri!r}")
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise UsageError(f"no bucket in {uri!r}")
    return bucket, prefix


@dataclass(frozen=True)
class KeyFilter:
    """Which delivery folders to read: days (inclusive), accounts and regions (None = all)."""

    since: dt.date | None = None
    until: dt.date | None = None
    accounts: frozenset[str] | None = None
    regions: frozenset[str] | None = None

    @classmethod
    def make(
        cls,
        since: dt.date | str | None = None,
        until: dt.date | str | None = None,
        accounts: Iterable[str] | None = None,
        regions: Iterable[str] | None = None,
    ) -> KeyFilter:
        return cls(
            _as_date(since),
            _as_date(until),
            frozenset(accounts) if accounts else None,
            frozenset(regions) if regions else None,
        )

    @property
    def is_empty(self) -> bool:
        return not (self.since or self.until or self.accounts or self.regions)

    def _date_ok(self, parts: list[str]) -> bool:
        """Could a folder YYYY[/MM[/DD]] hold a day inside the window?"""
        try:
            y = int(parts[0])
            m = int(parts[1]) if len(parts) > 1 else None
            d = int(parts[2]) if len(parts) > 2 else None
            lo = dt.date(y, m or 1, d or 1)
            if d is not None:
                hi = lo
            elif m is not None:
                hi = (dt.date(y + (m == 12), m % 12 + 1, 1)) - dt.timedelta(days=1)
            else:
                hi = dt.date(y, 12, 31)
        except ValueError:
            return True  # not a date folder: do not prune what we do not understand
        return not ((self.since and hi < self.since) or (self.until and lo > self.until))

    def keep(self, segments: list[str]) -> tuple[bool, str | None]:
        """Decide on a folder from its path segments after ``AWSLogs/``.

        Returns (keep, skip_reason); skip_reason is set only for folders skipped on purpose
        that are worth a line in the accounting (digests, Insights).
        """
        segs = list(segments)
        if segs and _ORG.match(segs[0]):
            segs = segs[1:]
        if not segs:
            return True, None
        if _ACCOUNT.match(segs[0]) and self.accounts is not None and segs[0] not in self.accounts:
            return False, None
        if len(segs) < 2:
            return True, None
        service = segs[1]
        if service == "CloudTrail-Digest":
            return False, "CloudTrail digest file"
        if service == "CloudTrail-Insight":
            return False, "CloudTrail Insights file"
        if service != "CloudTrail":
            return False, None  # other services' logs under AWSLogs/ (ELB, VPC flow logs ...)
        if len(segs) < 3:
            return True, None
        if self.regions is not None and segs[2] not in self.regions:
            return False, None
        if len(segs) < 4:
            return True, None
        return self._date_ok(segs[3:6]), None


def _as_date(value: dt.date | str | None) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError as exc:
        raise UsageError(f"not a date (YYYY-MM-DD): {value!r}") from exc


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    size: int = 0

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def _segments_after_awslogs(key_prefix: str) -> list[str] | None:
    parts = [p for p in key_prefix.split("/") if p]
    if "AWSLogs" not in parts:
        return None
    return parts[parts.index("AWSLogs") + 1 :]


def _depth_complete(segs: list[str]) -> bool:
    """True at the day folder (or below): list everything beneath without a delimiter."""
    if segs and _ORG.match(segs[0]):
        segs = segs[1:]
    return len(segs) >= 6


def list_objects(
    client: Any,
    uri: str,
    stats: RunStats,
    key_filter: KeyFilter | None = None,
) -> list[S3Object]:
    """Every object under ``uri`` worth reading, pruned by the CloudTrail key layout."""
    key_filter = key_filter or KeyFilter()
    bucket, prefix = parse_s3_uri(uri)
    out: list[S3Object] = []
    paginator = client.get_paginator("list_objects_v2")

    def flat(pfx: str) -> None:
        for page in paginator.paginate(Bucket=bucket, Prefix=pfx):
            for o in page.get("Contents", []):
                key = o["Key"]
                if key.endswith("/"):
                    continue
                segs = _segments_after_awslogs(key.rsplit("/", 1)[0])
                if segs is not None:
                    ok, reason = key_filter.keep(segs)
                    if not ok:
                        if reason:
                            stats.skip_file(f"s3://{bucket}/{key}", reason)
                        continue
                out.append(S3Object(bucket, key, int(o.get("Size", 0))))

    def walk(pfx: str) -> None:
        segs = _segments_after_awslogs(pfx)
        if segs is not None and _depth_complete(segs):
            flat(pfx)
            return
        for page in paginator.paginate(Bucket=bucket, Prefix=pfx, Delimiter="/"):
            for o in page.get("Contents", []):
                if not o["Key"].endswith("/"):
                    out.append(S3Object(bucket, o["Key"], int(o.get("Size", 0))))
            for cp in page.get("CommonPrefixes", []):
                sub = cp["Prefix"]
                ssegs = _segments_after_awslogs(sub)
                if ssegs is not None:
                    ok, reason = key_filter.keep(ssegs)
                    if not ok:
                        if reason:
                            stats.skip_file(f"s3://{bucket}/{sub}", reason + " (folder not listed)")
                        continue
                walk(sub)

    try:
        if prefix and not prefix.endswith("/"):
            # A single object or a prefix that is not a folder: list it flat.
            flat(prefix)
        else:
            walk(prefix)
    except client.exceptions.NoSuchBucket as exc:
        raise InputError(uri, "no such bucket") from exc
    except Exception as exc:  # botocore ClientError, EndpointConnectionError ...
        if type(exc).__module__.startswith(("botocore", "boto3")):
            raise InputError(uri, f"cannot list: {exc}") from exc
        raise
    if not out and not stats.files_skipped:
        raise InputError(uri, "no objects under this prefix")
    return out


@dataclass
class FetchedObject:
    obj: S3Object
    data: bytes | None = None
    error: str | None = None


def _fetch(client: Any, obj: S3Object) -> FetchedObject:
    try:
        body = client.get_object(Bucket=obj.bucket, Key=obj.key)["Body"].read()
    except Exception as exc:  # noqa: BLE001 - accounted for, never raised: one bad object
        return FetchedObject(obj, error=f"unreadable ({type(exc).__name__}: {exc})")
    if body.startswith(GZIP_MAGIC):
        from isal import igzip

        try:
            body = igzip.decompress(body)
        except (OSError, EOFError, ValueError) as exc:
            reason = "truncated gzip" if isinstance(exc, EOFError) else f"corrupt gzip ({exc})"
            return FetchedObject(obj, error=reason)
    return FetchedObject(obj, data=body)


def _decode(fetched: FetchedObject) -> FileResult:
    stats = RunStats()
    uri = fetched.obj.uri
    if fetched.error:
        stats.skip_file(uri, fetched.error)
        return FileResult([], stats)
    data = fetched.data or b""
    if data.startswith(b"PAR1"):  # Amazon Security Lake OCSF parquet
        from imdshunt.sources.securitylake import decode_parquet

        return decode_parquet(data, uri)
    kind, reason = classify_file(PurePosixPath(fetched.obj.key), head=data[:_SNIFF_BYTES])
    if kind != CLOUDTRAIL:
        stats.skip_file(uri, reason or "web log on S3 (read web logs from a local copy)")
        return FileResult([], stats)
    return decode_records(data, uri)


def _prefilter(objects: Iterable[S3Object], stats: RunStats) -> list[S3Object]:
    keep = []
    for o in objects:
        kind, reason = classify_file(PurePosixPath(o.key), head=b"{}")
        if kind is None and reason in ("CloudTrail digest file", "CloudTrail Insights file"):
            stats.skip_file(o.uri, reason)
        else:
            keep.append(o)
    return keep


@dataclass
class S3Reader:
    """Fetch and decode objects with ``workers`` threads, yielding canonical batches.

    At most ``2 * workers`` objects are in flight, so memory stays bounded on large buckets.
    """

    client: Any
    workers: int = 16
    _stats: RunStats = field(default_factory=RunStats)

    def iter_batches(
        self, objects: Iterable[S3Object], stats: RunStats
    ) -> Iterator[pa.RecordBatch]:
        objs = _prefilter(objects, stats)
        pending_rows: list[tuple] = []
        it = iter(objs)
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            inflight: dict[Future, int] = {}
            order = 0

            def submit() -> bool:
                nonlocal order
                o = next(it, None)
                if o is None:
                    return False
                inflight[pool.submit(lambda ob: _decode(_fetch(self.client, ob)), o)] = order
                order += 1
                return True

            for _ in range(2 * max(1, self.workers)):
                if not submit():
                    break
            while inflight:
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for fut in done:
                    inflight.pop(fut)
                    res = fut.result()
                    stats.merge(res.stats)
                    pending_rows.extend(res.rows)
                    submit()
                if len(pending_rows) >= BATCH_ROWS:
                    yield rows_to_batch(pending_rows)
                    pending_rows = []
        if pending_rows:
            yield rows_to_batch(pending_rows)


def s3_client(session: Any = None, *, workers: int = 16) -> Any:
    """An S3 client from ``session`` (default: the standard credential chain)."""
    import boto3
    from botocore.config import Config

    session = session or boto3.Session()
    return session.client(
        "s3", config=Config(max_pool_connections=max(10, workers), retries={"mode": "standard"})
    )
