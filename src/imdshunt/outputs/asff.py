"""AWS Security Finding Format (ASFF) for Security Hub's ``BatchImportFindings``.

The output is one JSON document ``{"Findings": [...]}``, the request shape of
``aws securityhub batch-import-findings --cli-input-json file://findings.json``. AWS accepts at
most 100 findings per request (BatchImportFindings API reference); :func:`batches` splits.

Required top-level attributes (Security Hub User Guide, "Required top-level ASFF attributes"):
``AwsAccountId``, ``CreatedAt``, ``Description``, ``GeneratorId``, ``Id``, ``ProductArn``,
``Resources``, ``SchemaVersion`` (``2018-10-08``), ``Severity``, ``Title``, ``Types``,
``UpdatedAt``. ``ProductArn`` of a customer's own findings is
``arn:aws:securityhub:<region>:<account>:product/<account>/default``. ``Types`` follow the
``namespace/category/classifier`` taxonomy ("TTPs/Credential Access/...").

Web findings carry no AWS account: give one with ``RunContext.extra["aws_account_id"]``
(and ``"aws_region"``); without it they are left out (ASFF cannot hold them).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any, TextIO

from imdshunt.findings import Finding, FindingKind
from imdshunt.outputs.base import Output, RunContext
from imdshunt.outputs.common import (
    artifact_summary,
    first_time,
    iso_ms,
    last_time,
    one_line_description,
    techniques_of,
    title_of,
)

SCHEMA_VERSION = "2018-10-08"
MAX_PER_REQUEST = 100
TITLE_MAX, DESCRIPTION_MAX = 256, 1024
SEVERITY_LABEL = {
    "info": "INFORMATIONAL",
    "low": "LOW",
    "medium": "MEDIUM",
    "high": "HIGH",
    "critical": "CRITICAL",
}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _types(finding: Finding) -> list[str]:
    out = []
    for t in techniques_of(finding):
        parent = t.get("parent")
        name = f"{parent['name']}: {t['name']}" if parent else t["name"]
        tactics = t.get("tactics") or [{"name": "Credential Access"}]
        out.append(f"TTPs/{tactics[0]['name']}/{name}")
    if finding.kind is FindingKind.CREDENTIAL:
        out.append("Unusual Behaviors/User/Credential used outside its workload")
    return out or ["TTPs/Credential Access/Unsecured Credentials: Cloud Instance Metadata API"]


def _resources(f: Finding, account: str, region: str) -> list[dict[str, Any]]:
    res: list[dict[str, Any]] = []
    subject = f.get("credential_id") or f.get("target_instance")
    if subject and (f.get("credential_type") in (None, "ec2-instance")):
        res.append(
            {
                "Type": "AwsEc2Instance",
                "Id": f"arn:aws:ec2:{region}:{account}:instance/{subject}",
                "Partition": "aws",
                "Region": region,
            }
        )
    elif subject:
        res.append({"Type": "Other", "Id": str(subject), "Partition": "aws", "Region": region})
    if f.get("role_arn"):
        res.append(
            {"Type": "AwsIamRole", "Id": f["role_arn"], "Partition": "aws", "Region": region}
        )
    for key in f.get("access_key_ids") or []:
        res.append({"Type": "AwsIamAccessKey", "Id": key, "Partition": "aws", "Region": region})
    for a in f.get("artifacts") or []:  # what the stolen use minted (docs/lineage.md)
        if a.get("access_key_id"):
            res.append(
                {"Type": "AwsIamAccessKey", "Id": a["access_key_id"], "Partition": "aws",
                 "Region": region}
            )  # fmt: skip
        elif a.get("type") == "user" and a.get("principal_arn"):
            res.append(
                {"Type": "AwsIamUser", "Id": a["principal_arn"], "Partition": "aws",
                 "Region": region}
            )  # fmt: skip
    res = res[:32]  # ASFF allows at most 32 resources per finding
    if not res:
        target = f.get("target_ip") or f.get("client_ip") or "unknown"
        res.append({"Type": "Other", "Id": str(target), "Partition": "aws", "Region": region})
    return res


def to_asff(
    finding: Finding,
    *,
    aws_account_id: str | None = None,
    aws_region: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any] | None:
    """One findings-contract record as an ASFF finding; None when no account is known."""
    f = finding
    account = str(f.get("account_id") or aws_account_id or "")
    if not account:
        return None
    region = (f.get("regions") or [None])[0] or aws_region or "us-east-1"
    detection = str(f.get("detection") or "imdshunt")
    now_iso = iso_ms(now or dt.datetime.now(dt.UTC))
    created = iso_ms(first_time(f)) or now_iso
    updated = iso_ms(last_time(f)) or created
    product_fields = {
        "imdshunt/detection": detection,
        "imdshunt/finding_id": str(f.get("finding_id") or ""),
        "imdshunt/kind": f.kind.value,
    }
    for key in ("credential_type", "credential_id", "network", "event_count", "source_ip"):
        if f.get(key) is not None:
            product_fields[f"imdshunt/{key}"] = _clip(str(f[key]), 1024)
    if f.get("actions"):
        product_fields["imdshunt/actions"] = _clip(", ".join(map(str, f["actions"])), 1024)
    for key in ("parent_finding_id", "parent_access_key_id", "minting_event_id",
                "minting_event_name"):  # fmt: skip
        if f.get(key):
            product_fields[f"imdshunt/{key}"] = _clip(str(f[key]), 1024)
    if f.get("artifacts"):
        product_fields["imdshunt/artifacts"] = _clip(
            "; ".join(artifact_summary(a) for a in f["artifacts"]), 1024
        )
    record: dict[str, Any] = {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": f"imdshunt/{detection}/{f.get('finding_id')}",
        "ProductArn": f"arn:aws:securityhub:{region}:{account}:product/{account}/default",
        "ProductName": "imdshunt",
        "CompanyName": "imdshunt",
        "GeneratorId": f"imdshunt/{detection}",
        "AwsAccountId": account,
        "Types": _types(f),
        "CreatedAt": created,
        "UpdatedAt": updated,
        "FirstObservedAt": created,
        "LastObservedAt": updated,
        "Severity": {
            "Label": SEVERITY_LABEL.get(str(f.get("severity")), "INFORMATIONAL"),
            "Original": str(f.get("severity")),
        },
        "Title": _clip(title_of(f), TITLE_MAX),
        "Description": _clip(one_line_description(f), DESCRIPTION_MAX),
        "Resources": _resources(f, account, region),
        "ProductFields": product_fields,
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "NEW"},
    }
    src = f.get("source_ip") or f.get("client_ip")
    if src:
        family = "SourceIpV6" if ":" in str(src) else "SourceIpV4"
        record["Network"] = {"Direction": "IN", family: str(src)}
    return record


def batches(records: list[dict[str, Any]], size: int = MAX_PER_REQUEST) -> Iterator[dict]:
    """``BatchImportFindings`` request bodies of at most ``size`` findings each."""
    for i in range(0, len(records), size):
        yield {"Findings": records[i : i + size]}


class AsffOutput(Output):
    """One ``{"Findings": [...]}`` document for Security Hub ``BatchImportFindings``."""

    name = "asff"

    def write(self, findings: list[dict], stream: TextIO, context: RunContext) -> None:
        extra = context.extra or {}
        records = [
            r
            for r in (
                to_asff(
                    f,
                    aws_account_id=extra.get("aws_account_id"),
                    aws_region=extra.get("aws_region"),
                )
                for f in findings
            )
            if r is not None
        ]
        json.dump({"Findings": records}, stream, ensure_ascii=True, indent=1, default=str)
        stream.write("\n")
