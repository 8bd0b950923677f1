"""Lineage: what a stolen credential minted (chained sessions, keys, users) and changed
(policies, trust), followed from the credential findings, and the use of what it minted.

Fixtures are the derived_credential_use detection's own raw CloudTrail files."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

from imdshunt import api
from imdshunt.detect import load_detections
from imdshunt.findings import ARTIFACT_FIELDS
from imdshunt.lineage import _ARTIFACT_FIELDS
from imdshunt.outputs.base import RunContext
from imdshunt.outputs.jsonl import JsonlOutput

HERE = Path(__file__).resolve().parent
RANGES = HERE / "data" / "ip-ranges.fixture.json"
FIXTURES = (
    Path(__file__).resolve().parent.parent / "src/imdshunt/detections/derived_credential_use/tests"
)
STOLEN_KEY = "ASIA5FLZVX4OPVKKAAAA"


def hunt(path: Path, **kw):
    return api.hunt(
        [path],
        ip_ranges=RANGES,
        allowlist=["203.0.113.0/24"],
        workers=1,
        fetch_ip_ranges=False,
        kinds=("credential",),
        **kw,
    )


def by_detection(findings: list[dict], det: str) -> list[dict]:
    return [f for f in findings if f["detection"] == det]


def test_raw_parameters_are_kept_for_lineage_events_only():
    res = hunt(FIXTURES / "match_user_and_key_created_with_the_stolen_session.json")
    rows = res.engine.query(
        "SELECT event_name, request_parameters, response_elements FROM api_activity "
        "ORDER BY event_time"
    ).to_pylist()
    kept = {r["event_name"] for r in rows if r["request_parameters"] or r["response_elements"]}
    assert kept == {"CreateUser", "CreateAccessKey", "CreateLoginProfile", "AttachUserPolicy"}
    (key,) = [r for r in rows if r["event_name"] == "CreateAccessKey"]
    assert json.loads(key["response_elements"])["accessKey"]["accessKeyId"] == (
        "AKIA5FLZVX4OBACKUP01"
    )


def test_artifacts_of_the_stolen_use_are_on_the_parent_finding_in_jsonl():
    res = hunt(FIXTURES / "match_user_and_key_created_with_the_stolen_session.json")
    out = io.StringIO()
    JsonlOutput().write(res.findings, out, RunContext())
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    (root,) = by_detection(records, "ec2_instance_credential_outside_aws")
    arts = {(a["type"], a["event_name"]): a for a in root["artifacts"]}
    assert set(arts) == {
        ("user", "CreateUser"),
        ("access-key", "CreateAccessKey"),
        ("login-profile", "CreateLoginProfile"),
        ("user-policy", "AttachUserPolicy"),
    }
    assert arts[("user", "CreateUser")]["principal_arn"] == (
        "arn:aws:iam::111122223333:user/svc-backup"
    )
    assert arts[("access-key", "CreateAccessKey")]["access_key_id"] == "AKIA5FLZVX4OBACKUP01"
    assert arts[("user-policy", "AttachUserPolicy")]["policy_arn"] == (
        "arn:aws:iam::aws:policy/AdministratorAccess"
    )
    for a in root["artifacts"]:
        assert a["by_access_key_id"] == STOLEN_KEY and a["source_ip"] == "198.199.65.17"
        assert a["event_id"] and a["time"].endswith("Z") and a["depth"] == 1
    (derived,) = by_detection(records, "derived_credential_use")
    assert root["derived_finding_ids"] == [derived["finding_id"]]
    assert derived["parent_finding_id"] == root["finding_id"]
    assert derived["minting_event_id"] == arts[("access-key", "CreateAccessKey")]["event_id"]
    assert derived["parent_session"].endswith("assumed-role/web-app-role/i-0a1b2c3d4e5f60718")
    assert derived["first_seen"] == "2026-11-03T11:30:00Z"


def test_a_chained_session_that_makes_a_key_is_followed_transitively():
    res = hunt(FIXTURES / "match_chained_role_session_used_the_next_day_from_another_address.json")
    (root,) = by_detection(res.findings, "ec2_instance_credential_outside_aws")
    derived = {f["derived_kind"]: f for f in by_detection(res.findings, "derived_credential_use")}
    session, key = derived["role-session"], derived["access-key"]
    assert session["lineage_depth"] == 1 and key["lineage_depth"] == 2
    assert session["parent_finding_id"] == root["finding_id"]
    assert key["parent_finding_id"] == session["finding_id"]
    assert key["root_finding_id"] == root["finding_id"]
    assert key["parent_access_key_id"] == "ASIA5FLZVX4OCHAINED1"
    assert sorted(root["derived_finding_ids"]) == sorted([session["finding_id"], key["finding_id"]])
    # the root lists its whole tree; the chained session lists what it made itself
    assert [a["event_name"] for a in root["artifacts"]] == ["AssumeRole", "CreateAccessKey"]
    assert [a["event_name"] for a in session["artifacts"]] == ["CreateAccessKey"]
    assert session["severity"] == "high" and session["source_ips"] == ["185.220.101.5"]
    assert key["credential_type"] == "iam-user-key" and key["derived_user_name"] == "ci-deploy"


def test_the_workloads_own_chaining_on_the_box_is_not_the_thiefs():
    res = hunt(FIXTURES / "nomatch_workload_chains_roles_on_the_box.json")
    (root,) = res.findings
    assert "artifacts" not in root and "derived_finding_ids" not in root


def _records(name: str) -> list[dict]:
    return json.loads((FIXTURES / name).read_text())["Records"]


def test_a_trust_change_carries_the_policy_it_replaced(tmp_path):
    recs = _records("match_user_and_key_created_with_the_stolen_session.json")
    stolen, create_user = recs[0], recs[2]
    before = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    after = before.replace(
        '{"Service": "ec2.amazonaws.com"}', '{"AWS": "arn:aws:iam::999988887777:root"}'
    )
    created = copy.deepcopy(create_user)
    created.update(
        eventName="CreateRole",
        eventTime="2026-10-01T08:00:00Z",
        eventID="0d7e4c1a-0000-4000-8000-00000000c0de",
        sourceIPAddress="203.0.113.10",
        requestParameters={"roleName": "backup-runner", "assumeRolePolicyDocument": before},
        responseElements={
            "role": {
                "roleName": "backup-runner",
                "arn": "arn:aws:iam::111122223333:role/backup-runner",
            }
        },
    )
    created["userIdentity"] = dict(created["userIdentity"], accessKeyId="ASIA5FLZVX4OADMIN001")
    changed = copy.deepcopy(create_user)
    changed.update(
        eventName="UpdateAssumeRolePolicy",
        eventID="0d7e4c1a-0000-4000-8000-00000000c0df",
        requestParameters={"roleName": "backup-runner", "policyDocument": after},
        responseElements=None,
    )
    path = tmp_path / "111122223333_CloudTrail_us-east-1_20261102T1015Z_trust.json"
    path.write_text(json.dumps({"Records": [stolen, created, changed]}))
    (root,) = hunt(path).findings
    (art,) = root["artifacts"]
    assert art["type"] == "trust-policy" and art["role_name"] == "backup-runner"
    assert json.loads(art["trust_policy_before"]) == json.loads(before)
    assert json.loads(art["trust_policy_after"]) == json.loads(after)


def test_without_the_lineage_detection_artifacts_are_still_on_the_parent():
    dets = {
        k: v for k, v in load_detections().items() if k == "ec2_instance_credential_outside_aws"
    }
    res = hunt(
        FIXTURES / "match_user_and_key_created_with_the_stolen_session.json", detections=dets
    )
    (root,) = res.findings
    assert len(root["artifacts"]) == 4 and "derived_finding_ids" not in root


def test_every_artifact_field_is_documented():
    assert set(_ARTIFACT_FIELDS) == set(ARTIFACT_FIELDS)


def test_a_key_minted_in_one_scheduled_run_and_used_in_a_later_one_is_tied(tmp_path):
    from imdshunt.state import hunt_incremental

    recs = _records("match_user_and_key_created_with_the_stolen_session.json")
    minting, use = recs[:-1], recs[-1:]
    logs, state = tmp_path / "logs", tmp_path / "state"
    day = logs / "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11"
    (day / "02").mkdir(parents=True)
    (day / "02/111122223333_CloudTrail_us-east-1_20261102T1015Z_mint.json").write_text(
        json.dumps({"Records": minting})
    )
    kw = dict(ip_ranges=RANGES, workers=1, fetch_ip_ranges=False, kinds=("credential",))
    first = hunt_incremental([logs], state, **kw)
    assert by_detection(first.findings, "derived_credential_use") == []
    (day / "03").mkdir()
    (day / "03/111122223333_CloudTrail_us-east-1_20261103T1135Z_use.json").write_text(
        json.dumps({"Records": use})
    )
    second = hunt_incremental([logs], state, **kw)
    assert second.stats.records_read == 1
    (derived,) = by_detection(second.new, "derived_credential_use")
    assert derived["derived_access_key_id"] == "AKIA5FLZVX4OBACKUP01"
    assert derived["minting_event_name"] == "CreateAccessKey"
    whole = hunt(FIXTURES / "match_user_and_key_created_with_the_stolen_session.json")
    assert second.findings == whole.findings


def test_lineage_is_shown_in_every_output_and_valid_in_the_standard_formats():
    import csv

    import jsonschema

    from imdshunt.outputs import OUTPUTS
    from imdshunt.outputs.asff import to_asff
    from imdshunt.outputs.ocsf import to_ocsf
    from tests.test_standard_outputs import ASFF_SCHEMA, assert_valid_ocsf

    res = hunt(FIXTURES / "match_chained_role_session_used_the_next_day_from_another_address.json")
    findings = res.findings
    (root,) = by_detection(findings, "ec2_instance_credential_outside_aws")
    minted = "AKIA5FLZVX4OMINTED01"
    rendered = {}
    for fmt in ("table", "jsonl", "csv", "html", "ocsf", "asff"):
        buf = io.StringIO()
        OUTPUTS[fmt]().write(findings, buf, RunContext())
        rendered[fmt] = buf.getvalue()
        assert minted in rendered[fmt], fmt
        assert "ASIA5FLZVX4OCHAINED1" in rendered[fmt], fmt
    assert "made or changed: role-session OrgAdmin/jdoe" in rendered["table"]
    assert "minted by AssumeRole" in rendered["table"]
    rows = list(csv.DictReader(io.StringIO(rendered["csv"])))
    (root_row,) = [r for r in rows if r["finding_id"] == root["finding_id"]]
    assert root_row["artifacts"].startswith("role-session OrgAdmin/jdoe key ASIA5FLZVX4OCHAINED1")
    for line in rendered["ocsf"].splitlines():
        assert_valid_ocsf(json.loads(line))
    jsonschema.validate(
        json.loads(rendered["asff"]), ASFF_SCHEMA, format_checker=jsonschema.FormatChecker()
    )
    ocsf_root = to_ocsf(root)
    assert {"name": "minted_access_key_id", "type": "Resource UID", "type_id": 10,
            "value": minted} in ocsf_root["observables"]  # fmt: skip
    asff_root = to_asff(root)
    assert {"Type": "AwsIamAccessKey", "Id": minted, "Partition": "aws",
            "Region": "us-east-1"} in asff_root["Resources"]  # fmt: skip
    assert "imdshunt/artifacts" in asff_root["ProductFields"]
