"""--format ocsf and --format asff: records that standard tools ingest, checked against schemas.

OCSF records are validated with py-ocsf-models (the OCSF 1.5.0 Detection Finding model that
prowler maintains) and must carry no attribute the model does not know. ASFF documents are
validated against tests/fixtures/standards/asff-batch-import.schema.json, built from AWS's
documented required attributes and limits (sources cited inside the file).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import jsonschema
import pytest
from py_ocsf_models.events.findings.detection_finding import DetectionFinding

from imdshunt.findings import Finding
from imdshunt.outputs import OUTPUTS, RunContext
from imdshunt.outputs.asff import batches, to_asff
from imdshunt.outputs.ocsf import to_ocsf
from tests import report_support as rs

ASFF_SCHEMA = json.loads(
    (Path(__file__).parent / "fixtures" / "standards" / "asff-batch-import.schema.json").read_text()
)


@pytest.fixture(scope="module")
def hunted(tmp_path_factory):
    return rs.hunt_org(tmp_path_factory.mktemp("org"))


@pytest.fixture(scope="module")
def all_kinds(hunted):
    theft = hunted.findings[0]
    return [theft, rs.web_finding(), rs.chain_for(theft)]


def _render(fmt, findings, **extra):
    buf = io.StringIO()
    OUTPUTS[fmt]().write(findings, buf, RunContext(extra=extra))
    return buf.getvalue()


def _unknown_keys(record, known, path=""):
    """Attributes of ``record`` that the validated model dropped: not in the OCSF class."""
    out = []
    if isinstance(record, dict):
        for k, v in record.items():
            if k == "unmapped" or v is None:
                continue
            if not isinstance(known, dict) or k not in known:
                out.append(f"{path}.{k}")
            else:
                out.extend(_unknown_keys(v, known[k], f"{path}.{k}"))
    elif isinstance(record, list) and isinstance(known, list):
        for i, (a, b) in enumerate(zip(record, known, strict=False)):
            out.extend(_unknown_keys(a, b, f"{path}[{i}]"))
    return out


def assert_valid_ocsf(record: dict) -> None:
    model = DetectionFinding.model_validate(record)
    dumped = model.model_dump(mode="json", exclude_none=True)
    assert _unknown_keys(record, dumped) == []


def test_the_hunt_finds_the_planted_theft(hunted):
    assert [f["credential_id"] for f in hunted.findings] == [rs.INSTANCE]


def test_every_kind_of_finding_is_a_valid_ocsf_detection_finding(all_kinds):
    lines = _render("ocsf", all_kinds).splitlines()
    assert len(lines) == 3
    for line in lines:
        assert_valid_ocsf(json.loads(line))


def test_the_ocsf_check_rejects_attributes_outside_the_class(hunted):
    record = to_ocsf(hunted.findings[0])
    record["finding_info"]["not_an_ocsf_attribute"] = 1
    with pytest.raises(AssertionError):
        assert_valid_ocsf(record)
    del record["finding_info"]["not_an_ocsf_attribute"]
    del record["finding_info"]["uid"]
    with pytest.raises(ValueError):  # pydantic: a required attribute is missing
        assert_valid_ocsf(record)


def test_ocsf_record_carries_class_severity_attack_and_pivots(hunted):
    f = hunted.findings[0]
    r = to_ocsf(f)
    assert (r["class_uid"], r["category_uid"], r["activity_id"], r["type_uid"]) == (
        2004, 2, 1, 200401,
    )  # fmt: skip
    assert (r["severity_id"], r["severity"]) == (4, "High")
    assert r["finding_info"]["uid"] == f["finding_id"]
    assert r["finding_info"]["first_seen_time"] == int(
        dt.datetime(2026, 11, 2, 9, 35, tzinfo=dt.UTC).timestamp() * 1000
    )
    techniques = {a.get("sub_technique", {}).get("uid") for a in r["finding_info"]["attacks"]}
    assert "T1552.005" in techniques
    assert r["cloud"]["account"]["uid"] == rs.ACCOUNT
    assert {"type": "AWS::EC2::Instance", "uid": rs.INSTANCE}.items() <= r["resources"][1].items()
    assert {o["value"] for o in r["observables"]} >= {rs.THIEF_IP, *f["access_key_ids"]}
    assert r["unmapped"]["actions"] == f["actions"]


def test_ocsf_lines_keep_hostile_text_as_escaped_data(hunted):
    f = Finding(dict(hunted.findings[0], role="web\x1b[2J\u202e"))
    out = _render("ocsf", [f])
    assert "\x1b" not in out and "\u202e" not in out  # controls are JSON escapes
    rec = json.loads(out)  # and the values round-trip exactly
    assert rec["unmapped"]["role"] == "web\x1b[2J\u202e"
    assert rec["unmapped"]["user_agents"] == [rs.HOSTILE_UA]


def test_asff_document_validates_against_the_batch_import_schema(all_kinds):
    doc = json.loads(_render("asff", all_kinds))
    jsonschema.validate(doc, ASFF_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert len(doc["Findings"]) == 2  # the web finding has no AWS account: left out


def test_asff_takes_the_account_for_web_findings_from_the_caller(all_kinds):
    doc = json.loads(_render("asff", all_kinds, aws_account_id="444455556666"))
    jsonschema.validate(doc, ASFF_SCHEMA, format_checker=jsonschema.FormatChecker())
    web = [f for f in doc["Findings"] if f["GeneratorId"] == "imdshunt/imds_ssrf_attempt"]
    assert web[0]["AwsAccountId"] == "444455556666"


def test_asff_finding_maps_severity_times_and_resources(hunted):
    f = hunted.findings[0]
    r = to_asff(f)
    assert r["Severity"]["Label"] == "HIGH"
    assert r["CreatedAt"] == "2026-11-02T09:35:00.000Z"
    assert r["UpdatedAt"] == "2026-11-02T09:51:00.000Z"
    acct = rs.ACCOUNT
    assert r["ProductArn"] == f"arn:aws:securityhub:us-east-1:{acct}:product/{acct}/default"
    ids = {res["Id"] for res in r["Resources"]}
    assert f"arn:aws:ec2:us-east-1:{rs.ACCOUNT}:instance/{rs.INSTANCE}" in ids
    assert f["role_arn"] in ids
    assert r["Network"] == {"Direction": "IN", "SourceIpV4": rs.THIEF_IP}
    assert "TTPs/Credential Access/Unsecured Credentials: Cloud Instance Metadata API" in r["Types"]


def test_asff_clips_title_and_description_to_aws_limits(hunted):
    f = Finding(dict(hunted.findings[0], title="T" * 600, reasons=["R" * 5000]))
    doc = {"Findings": [to_asff(f)]}
    jsonschema.validate(doc, ASFF_SCHEMA)
    assert len(doc["Findings"][0]["Title"]) == 256


def test_the_asff_schema_rejects_a_finding_missing_a_required_attribute(hunted):
    record = to_asff(hunted.findings[0])
    del record["GeneratorId"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"Findings": [record]}, ASFF_SCHEMA)


def test_asff_batches_hold_at_most_100_findings(hunted):
    records = [to_asff(hunted.findings[0])] * 250
    assert [len(b["Findings"]) for b in batches(records)] == [100, 100, 50]


def test_a_hunt_with_an_ssrf_chain_exports_valid_ocsf_and_asff(tmp_path):
    result = rs.hunt_org(tmp_path, with_web=True)
    kinds = sorted(f["kind"] for f in result.findings)
    assert kinds == ["correlation", "credential", "web"]
    for line in _render("ocsf", result.findings).splitlines():
        assert_valid_ocsf(json.loads(line))
    doc = json.loads(_render("asff", result.findings, aws_account_id=rs.ACCOUNT))
    jsonschema.validate(doc, ASFF_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert len(doc["Findings"]) == 3
