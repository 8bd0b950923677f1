"""CloudTrail read where it lies: ``s3://bucket/prefix`` listed with boto3, fetched in parallel.

Objects are listed here as :class:`imdshunt.sources.input_file.InputFile` and then go through the
source registry like local files: the same sniffing, the same decoder worker processes (fetched
with threads, decoded in processes), so a hunt over ``s3://...`` gives the same rows as a hunt
over a local mirror of the bucket, web logs and Security Lake parquet included. DuckDB's httpfs
extension is not used: it is downloaded at run time and must match the DuckDB version, so it
cannot be relied on offline.

The client comes from a :class:`boto3.Session` given by the caller (the standard credential
chain when none is given). botocore itself honours ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_S3`` (https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html),
which is how tests point it at a moto server and how users point it at S3-compatible stores.

Pruning follows the delivery key layout (see :class:`imdshunt.window.HuntWindow`): the listing
descends folder by folder (``Delimiter='/'``) and never lists an account, region or day outside
the window. ``CloudTrail-Digest`` and ``CloudTrail-Insight`` folders are not listed at all (one
skip line each).
"""

from __future__ import annotations

from typing import Any

from imdshunt.errors import InputError, UsageError
from imdshunt.sources.discover import RunStats
from imdshunt.sources.input_file import InputFile
from imdshunt.window import EVERYTHING, HuntWindow, segments_after_awslogs


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


def _depth_complete(segs: list[str]) -> bool:
    """True at the day folder (or below): list everything beneath without a delimiter."""
    import re

    if segs and re.match(r"^o-[a-z0-9]{10,32}$", segs[0]):
        segs = segs[1:]
    return len(segs) >= 6


def list_objects(
    client: Any,
    uri: str,
    stats: RunStats,
    window: HuntWindow | None = None,
) -> list[InputFile]:
    """Every object under ``uri`` worth reading, pruned by the delivery key layout."""
    window = window or EVERYTHING
    bucket, prefix = parse_s3_uri(uri)
    out: list[InputFile] = []
    paginator = client.get_paginator("list_objects_v2")

    def add(o: dict) -> None:
        out.append(InputFile.s3(bucket, o["Key"], int(o.get("Size", 0)), o.get("ETag", "")))

    def flat(pfx: str) -> None:
        for page in paginator.paginate(Bucket=bucket, Prefix=pfx):
            for o in page.get("Contents", []):
                key = o["Key"]
                if key.endswith("/"):
                    continue
                segs = segments_after_awslogs(key.rsplit("/", 1)[0])
                if segs is not None:
                    ok, reason = window.keep(segs)
                    if not ok:
                        if reason:
                            stats.skip_file(f"s3://{bucket}/{key}", reason)
                        continue
                add(o)

    def walk(pfx: str) -> None:
        segs = segments_after_awslogs(pfx)
        if segs is not None and _depth_complete(segs):
            flat(pfx)
            return
        for page in paginator.paginate(Bucket=bucket, Prefix=pfx, Delimiter="/"):
            for o in page.get("Contents", []):
                if not o["Key"].endswith("/"):
                    add(o)
            for cp in page.get("CommonPrefixes", []):
                sub = cp["Prefix"]
                ssegs = segments_after_awslogs(sub)
                if ssegs is not None:
                    ok, reason = window.keep(ssegs)
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


def s3_client(session: Any = None, *, workers: int = 16) -> Any:
    """An S3 client from ``session`` (default: the standard credential chain)."""
    import boto3
    from botocore.config import Config

    session = session or boto3.Session()
    return session.client(
        "s3", config=Config(max_pool_connections=max(10, workers), retries={"mode": "standard"})
    )
