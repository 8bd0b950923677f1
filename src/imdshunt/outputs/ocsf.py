"""OCSF Detection Finding (class 2004) records, one JSON object per line.

Mapping (OCSF 1.5.0, schema.ocsf.io/1.5.0/classes/detection_finding):

* ``class_uid`` 2004, ``category_uid`` 2 (Findings), ``activity_id`` 1 (Create),
  ``type_uid`` = class_uid * 100 + activity_id = 200401.
* ``severity_id``: info 1, low 2, medium 3, high 4, critical 5.
* ``finding_info``: ``uid`` is our stable ``finding_id``, ``title``, ``desc`` (the reasons),
  ``types`` (the detection id), first/last seen, ``analytic`` (the detection as a rule) and
  ``attacks`` (the MITRE ATT&CK techniques the finding carries, with their names).
* The ``cloud`` profile: ``cloud.provider`` AWS, the account and first region.
* ``resources``: the role and the instance (or task / pod / function) whose credential it is;
  for web findings the targeted instance or address.
* ``observables``: source / client addresses (type 2), access key ids (type 10, resource uid).
* ``unmapped``: the whole findings-contract record, so nothing is lost.
"""

from __future__ import annotations

import json
import time as _time
from typing import Any, TextIO

from imdshunt import __version__
from imdshunt.findings import Finding, FindingKind
from imdshunt.outputs.base import Output, RunContext
from imdshunt.outputs.common import (
    epoch_ms,
    first_time,
    last_time,
    one_line_description,
    techniques_of,
    title_of,
)

OCSF_VERSION = "1.5.0"
CLASS_UID = 2004
ACTIVITY_CREATE = 1
SEVERITY_ID = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
SEVERITY_NAME = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
# OCSF observable type ids
_IP_ADDRESS, _RESOURCE_UID = 2, 10


def _attacks(finding: Finding) -> list[dict[str, Any]]:
    """One OCSF ``attack`` per (technique, tactic), named from the finding's ``mitre``."""
    out = []
    for t in techniques_of(finding):
        own = {"uid": t["id"], "name": t.get("name") or t["id"]}
        parent = t.get("parent")
        technique = {"uid": parent["id"], "name": parent["name"]} if parent else own
        for tactic in t.get("tactics") or [None]:
            attack: dict[str, Any] = {"technique": technique}
            if tactic:
                attack["tactic"] = {"uid": tactic["id"], "name": tactic["name"]}
            if parent:
                attack["sub_technique"] = own
            out.append(attack)
    return out


def _resources(f: Finding) -> list[dict[str, Any]]:
    region = (f.get("regions") or [None])[0]
    res: list[dict[str, Any]] = []
    if f.get("role_arn") or f.get("role"):
        res.append(
            {
                "type": "AWS::IAM::Role",
                "uid": f.get("role_arn") or f.get("role"),
                "name": f.get("role"),
            }
        )
    subject = f.get("credential_id") or f.get("target_instance")
    if subject:
        kind = {
            "ec2-instance": "AWS::EC2::Instance",
            "ecs-task": "AWS::ECS::Task",
            "lambda": "AWS::Lambda::Function",
        }.get(f.get("credential_type") or "ec2-instance", "Other")
        res.append({"type": kind, "uid": subject, "name": subject})
    elif f.get("target_ip"):
        res.append({"type": "Other", "uid": f["target_ip"], "name": f["target_ip"]})
    for a in f.get("artifacts") or []:  # users and roles the stolen use made or changed
        if a.get("type") in ("user", "role", "trust-policy", "login-profile") and (
            a.get("principal_arn") or a.get("user_name") or a.get("role_name")
        ):
            kind = "AWS::IAM::User" if a.get("user_name") else "AWS::IAM::Role"
            name = a.get("user_name") or a.get("role_name")
            res.append({"type": kind, "uid": a.get("principal_arn") or name, "name": name})
    for r in res:
        if region:
            r["region"] = region
        r["cloud_partition"] = "aws"
    return res


def _observables(f: Finding) -> list[dict[str, Any]]:
    obs = []
    for name in ("source_ip", "client_ip", "target_ip"):
        if f.get(name):
            obs.append(
                {"name": name, "type": "IP Address", "type_id": _IP_ADDRESS, "value": f[name]}
            )
    for key in f.get("access_key_ids") or []:
        obs.append(
            {"name": "access_key_id", "type": "Resource UID", "type_id": _RESOURCE_UID,
             "value": key}
        )  # fmt: skip
    # what the stolen use minted (docs/lineage.md)
    for a in f.get("artifacts") or []:
        for name in ("access_key_id", "principal_arn"):
            if a.get(name):
                obs.append(
                    {"name": f"minted_{name}", "type": "Resource UID",
                     "type_id": _RESOURCE_UID, "value": a[name]}
                )  # fmt: skip
    if f.get("parent_access_key_id"):
        obs.append(
            {"name": "parent_access_key_id", "type": "Resource UID", "type_id": _RESOURCE_UID,
             "value": f["parent_access_key_id"]}
        )  # fmt: skip
    return obs


def to_ocsf(finding: Finding) -> dict[str, Any]:
    """One findings-contract record as an OCSF Detection Finding (class 2004) event."""
    f = finding
    detection = str(f.get("detection") or "imdshunt")
    severity_id = SEVERITY_ID.get(str(f.get("severity")), 0)
    first, last = epoch_ms(first_time(f)), epoch_ms(last_time(f))
    record: dict[str, Any] = {
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": SEVERITY_NAME.get(severity_id, "Unknown"),
        "status_id": 1,
        "status": "New",
        "time": last if last is not None else first,
        "message": title_of(f),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": f.get("finding_id"),
            "product": {
                "name": "imdshunt",
                "vendor_name": "imdshunt",
                "version": __version__,
                "feature": {"name": detection, "uid": detection},
            },
            "profiles": ["cloud"],
        },
        "finding_info": {
            "uid": str(f.get("finding_id") or ""),
            "title": title_of(f),
            "desc": one_line_description(f),
            "types": [detection],
            "analytic": {"uid": detection, "name": detection, "type": "Rule", "type_id": 1},
            "attacks": _attacks(f),
            "data_sources": ["AWS CloudTrail"]
            if f.kind is not FindingKind.WEB
            else [str(f.get("log_type") or "web access log")],
        },
        "cloud": {"provider": "AWS"},
        "resources": _resources(f),
        "observables": _observables(f),
        "unmapped": f.to_dict(),
    }
    if first is not None:
        record["start_time"] = first
        record["finding_info"]["first_seen_time"] = first
    if last is not None:
        record["end_time"] = last
        record["finding_info"]["last_seen_time"] = last
    if f.get("event_count") is not None:
        record["count"] = int(f["event_count"])
    if f.get("account_id"):
        record["cloud"]["account"] = {
            "uid": str(f["account_id"]),
            "name": str(f["account_id"]),
            "type": "AWS Account",
            "type_id": 10,
        }
    if f.get("regions"):
        record["cloud"]["region"] = f["regions"][0]
    if record["time"] is None:  # OCSF requires a time; the finding's creation, then
        record["time"] = int(_time.time() * 1000)
    return record


class OcsfOutput(Output):
    """OCSF Detection Finding (class 2004) records, one JSON object per line."""

    name = "ocsf"

    def write(self, findings: list[Finding], stream: TextIO, context: RunContext) -> None:
        for f in findings:
            stream.write(json.dumps(to_ocsf(f), ensure_ascii=True, default=str) + "\n")
