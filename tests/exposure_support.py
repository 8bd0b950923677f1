"""Test support for the exposure backlog: CloudTrail records -> an ``api_activity`` table.

A deliberately small stand-in for the real CloudTrail source (``imdshunt.sources``), enough to
fill the columns the backlog query reads, so these tests do not depend on the ingest.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from imdshunt.schema import API_ACTIVITY


def _ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


def row_from_record(rec: dict[str, Any], source_file: str = "", n: int = 0) -> dict[str, Any]:
    ui = rec.get("userIdentity") or {}
    ctx = ui.get("sessionContext") or {}
    issuer = ctx.get("sessionIssuer") or {}
    arn = ui.get("arn") or ""
    session = arn.rsplit("/", 1)[-1] if ":assumed-role/" in arn else None
    row = {name: None for name in API_ACTIVITY.names}
    row.update(
        event_time=_ts(rec.get("eventTime") or rec.get("@timestamp")),
        event_id=rec.get("eventID"),
        event_type=rec.get("eventType"),
        event_source=rec.get("eventSource"),
        event_name=rec.get("eventName"),
        account_id=rec.get("recipientAccountId"),
        region=rec.get("awsRegion"),
        actor_type=ui.get("type"),
        actor_arn=arn or None,
        actor_account_id=ui.get("accountId"),
        principal_id=ui.get("principalId"),
        access_key_id=ui.get("accessKeyId"),
        role_name=issuer.get("userName"),
        role_arn=issuer.get("arn"),
        session_name=session,
        role_delivery=ctx.get("ec2RoleDelivery"),
        src_ip=rec.get("sourceIPAddress"),
        user_agent=rec.get("userAgent"),
        error_code=rec.get("errorCode"),
        source_file=source_file,
        source_record=n,
    )
    return row


def records_from_file(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(doc, dict) and "Records" in doc:
        return doc["Records"]
    return doc if isinstance(doc, list) else [doc]


def connect_with(records: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    """A connection with ``api_activity``; like the canonical view, each eventID once."""
    rows, seen = [], set()
    for i, r in enumerate(records, 1):
        if r.get("eventID") and r["eventID"] in seen:
            continue
        seen.add(r.get("eventID"))
        rows.append(row_from_record(r, n=i))
    table = pa.Table.from_pylist(rows, schema=API_ACTIVITY)
    con = duckdb.connect()
    con.register("api_activity_arrow", table)
    con.execute("CREATE VIEW api_activity AS SELECT * FROM api_activity_arrow")
    return con


def instance_record(
    instance_id: str,
    role: str,
    *,
    delivery: str | None = "1.0",
    event: str = "s3.amazonaws.com ListBuckets",
    time: str = "2024-06-01T12:00:00Z",
    account: str = "111122223333",
    region: str = "us-east-1",
    ip: str = "203.0.113.10",
    error: str | None = None,
) -> dict[str, Any]:
    """A hand-made CloudTrail record of an instance-profile session (real field names)."""
    src, name = event.split(" ")
    ctx: dict[str, Any] = {
        "sessionIssuer": {
            "type": "Role",
            "principalId": "AROAEXAMPLE",
            "arn": f"arn:aws:iam::{account}:role/{role}",
            "accountId": account,
            "userName": role,
        },
        "attributes": {"creationDate": time, "mfaAuthenticated": "false"},
    }
    if delivery:
        ctx["ec2RoleDelivery"] = delivery
    rec = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": f"AROAEXAMPLE:{instance_id}",
            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{instance_id}",
            "accountId": account,
            "accessKeyId": "ASIAEXAMPLE",
            "sessionContext": ctx,
        },
        "eventTime": time,
        "eventSource": src,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": ip,
        "userAgent": "aws-cli/2.15.0",
        "eventID": f"{instance_id}-{name}-{time}",
        "eventType": "AwsApiCall",
        "recipientAccountId": account,
    }
    if error:
        rec["errorCode"] = error
    return rec
