"""Amazon Security Lake: OCSF 1.x API Activity parquet -> the canonical ``api_activity`` view.

Security Lake stores CloudTrail management events as OCSF *API Activity* (``class_uid`` 6003)
in parquet (https://docs.aws.amazon.com/security-lake/latest/userguide/open-cybersecurity-schema-framework.html;
source version 2 writes OCSF 1.1). Field mapping, after OCSF's own CloudTrail mapping
(ocsf/examples, ``mappings/markdown/AWS/v1.1.0/CloudTrail``):

canonical column <- OCSF field (CloudTrail field):

- event_time <- ``time`` (epoch ms) or ``time_dt`` (CloudTrail eventTime)
- event_id <- ``metadata.uid`` (CloudTrail eventID)
- event_type <- ``unmapped['eventType']`` (CloudTrail eventType)
- event_source <- ``api.service.name`` (CloudTrail eventSource)
- event_name <- ``api.operation`` (CloudTrail eventName)
- account_id <- ``cloud.account.uid`` (CloudTrail recipientAccountId)
- region <- ``cloud.region`` (CloudTrail awsRegion)
- actor_type <- ``actor.user.type`` (CloudTrail userIdentity.type)
- actor_arn <- ``actor.user.uid`` (CloudTrail userIdentity.arn)
- actor_account_id <- ``actor.user.account.uid`` (CloudTrail userIdentity.accountId)
- principal_id <- ``actor.user.uid_alt`` (CloudTrail userIdentity.principalId)
- access_key_id <- ``actor.user.credential_uid`` (CloudTrail userIdentity.accessKeyId)
- role_arn <- ``actor.session.issuer`` (CloudTrail sessionIssuer.arn)
- role_name, session_name <- parsed from ``actor.user.uid`` (assumed-role ARN) (as for CloudTrail)
- session_created <- ``actor.session.created_time_dt`` (CloudTrail attributes.creationDate)
- role_delivery <- ``unmapped['userIdentity.sessionContext.ec2RoleDelivery']``
- web_id_provider <- ``actor.idp.name`` (CloudTrail webIdFederationData)
- source_identity <- ``unmapped['userIdentity.sessionContext.sourceIdentity']``
- invoked_by <- ``actor.invoked_by`` (CloudTrail userIdentity.invokedBy)
- src_ip <- ``src_endpoint.ip``, else ``src_endpoint.domain`` (CloudTrail sourceIPAddress)
- user_agent <- ``http_request.user_agent`` (CloudTrail userAgent)
- vpce_id <- ``src_endpoint.uid`` (CloudTrail vpcEndpointId)
- vpce_account_id <- ``unmapped['vpcEndpointAccountId']`` (CloudTrail vpcEndpointAccountId)
- error_code <- ``api.response.error`` (CloudTrail errorCode)
- req_* / resp_* / eks / k8s <- ``api.request.data`` / ``api.response.data``
  (CloudTrail requestParameters / responseElements, decoded as for CloudTrail)

Surprises: a ``sourceIPAddress`` that is a service name (``ec2.amazonaws.com``) is not an IP, so
OCSF puts it in ``src_endpoint.domain``, not ``src_endpoint.ip``. Fields OCSF has no place for
(``ec2RoleDelivery``, ``sourceIdentity``, ``vpcEndpointAccountId``) are kept in the ``unmapped``
map under their CloudTrail path; when a writer drops them, EC2 instance credentials are still
recognised by their session name and key provenance. Rows of any other class are skipped and
counted.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from imdshunt.schema import LINEAGE_EVENT_NAMES
from imdshunt.sources.cloudtrail import (
    _NO_VEND,
    BATCH_ROWS,
    VENDING_EVENTS,
    FileResult,
    _Record,
    _vending,
    lineage_raw,
    rows_to_batch,
)
from imdshunt.sources.discover import RunStats

API_ACTIVITY_CLASS_UID = 6003
PARQUET_MAGIC = b"PAR1"


def is_parquet(head: bytes) -> bool:
    return head.startswith(PARQUET_MAGIC)


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if d is None:
            return None
        if isinstance(d, dict):
            d = d.get(p)
        elif isinstance(d, list):  # a map column read by pyarrow: list of (key, value)
            d = dict(d).get(p)
        else:
            return None
    return d


def _unmapped(row: dict, key: str) -> Any:
    u = row.get("unmapped")
    if u is None:
        return None
    if isinstance(u, str):
        try:
            u = json.loads(u)
        except ValueError:
            return None
    if isinstance(u, list):
        u = dict(u)
    return u.get(key) if isinstance(u, dict) else None


def _time(row: dict) -> str | None:
    t = row.get("time_dt") or row.get("time")
    if t is None:
        return None
    if isinstance(t, int | float):
        t = dt.datetime.fromtimestamp(t / 1000, tz=dt.UTC)
    if isinstance(t, dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(t)


def _json_text(v: Any) -> bytes | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode()
    return json.dumps(v).encode()


def ocsf_row(row: dict, source_file: str, index: int) -> tuple | None:
    """One OCSF API Activity record (as a dict) -> a canonical row tuple."""
    user = _get(row, "actor", "user") or {}
    arn = _get(user, "uid")
    session_name = None
    issuer = _get(row, "actor", "session", "issuer")
    role_name = issuer.rsplit("/", 1)[-1] if issuer and ":role/" in issuer else None
    if arn and ":assumed-role/" in arn:
        parts = arn.split(":assumed-role/", 1)[1].split("/", 1)
        if len(parts) == 2:
            session_name = parts[1]
            if role_name is None:
                role_name = parts[0]
    event_name = _get(row, "api", "operation")
    vend: tuple = _NO_VEND
    raw: tuple = (None, None)
    if event_name in VENDING_EVENTS or event_name in LINEAGE_EVENT_NAMES:
        rec = _Record(
            eventName=event_name,
            requestParameters=_raw(_get(row, "api", "request", "data")),
            responseElements=_raw(_get(row, "api", "response", "data")),
        )
        if event_name in VENDING_EVENTS:
            vend = _vending(rec)
        raw = lineage_raw(rec)
    created = _get(row, "actor", "session", "created_time_dt") or _get(
        row, "actor", "session", "created_time"
    )
    if isinstance(created, int | float):
        created = dt.datetime.fromtimestamp(created / 1000, tz=dt.UTC)
    if isinstance(created, dt.datetime):
        created = created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    src = _get(row, "src_endpoint") or {}
    return (
        _time(row),
        _get(row, "metadata", "uid"),
        _unmapped(row, "eventType") or "AwsApiCall",
        _get(row, "api", "service", "name"),
        event_name,
        _get(row, "cloud", "account", "uid"),
        _get(row, "cloud", "region"),
        _get(user, "type"),
        arn,
        _get(user, "account", "uid"),
        _get(user, "uid_alt"),
        _get(user, "credential_uid"),
        role_name,
        issuer,
        session_name,
        created,
        _unmapped(row, "userIdentity.sessionContext.ec2RoleDelivery"),
        _get(row, "actor", "idp", "name"),
        _unmapped(row, "userIdentity.sessionContext.sourceIdentity"),
        _get(row, "actor", "invoked_by"),
        _get(src, "ip") or _get(src, "domain"),
        _get(row, "http_request", "user_agent"),
        _get(src, "uid"),
        _unmapped(row, "vpcEndpointAccountId"),
        _get(row, "api", "response", "error"),
        *vend,
        *raw,
        source_file,
        index,
    )


def _raw(v: Any):
    import msgspec

    text = _json_text(v)
    return msgspec.Raw(text) if text else None


def decode_parquet(data: bytes | str | os.PathLike, source: str) -> FileResult:
    """Decode one Security Lake parquet file (bytes or a path). Never raises on bad content."""
    stats = RunStats()
    rows: list[tuple] = []
    try:
        pf = pq.ParquetFile(io.BytesIO(data) if isinstance(data, bytes) else data)
        table = pf.read()
    except (pa.ArrowException, OSError) as exc:
        stats.skip_file(source, f"unreadable parquet ({exc})")
        return FileResult(rows, stats)
    if "class_uid" not in table.column_names:
        stats.skip_file(source, "parquet that is not OCSF")
        return FileResult(rows, stats)
    for i, rec in enumerate(table.to_pylist(), 1):
        if rec.get("class_uid") != API_ACTIVITY_CLASS_UID:
            stats.skip_records("OCSF record of another class than API Activity (6003)")
            continue
        row = ocsf_row(rec, source, i)
        if row is None or row[0] is None:
            stats.skip_records("record without time", example=f"{source}:{i}")
            continue
        rows.append(row)
    stats.files_read += 1
    stats.records_read = len(rows)
    return FileResult(rows, stats)


def iter_batches(paths: Iterable[str | os.PathLike], stats: RunStats) -> Iterator[pa.RecordBatch]:
    pending: list[tuple] = []
    for p in paths:
        res = decode_parquet(p, str(p))
        stats.merge(res.stats)
        pending.extend(res.rows)
        if len(pending) >= BATCH_ROWS:
            yield rows_to_batch(pending)
            pending = []
    if pending:
        yield rows_to_batch(pending)
