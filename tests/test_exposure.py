"""The IMDSv1 exposure backlog (issue 5): classification, ranking, inventory, outputs."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from imdshunt.enrich.inventory_ec2 import load_ec2_inventory, region_from_az
from imdshunt.errors import InputError, UsageError
from imdshunt.exposure import exposure_backlog
from imdshunt.exposure.output import clean_text, csv_cell, render_table, write_csv, write_jsonl
from tests.exposure_support import connect_with, instance_record, records_from_file

FIX = Path(__file__).parent / "fixtures" / "exposure"
IAM = FIX / "authorization-details.json"
INVENTORY = FIX / "describe-instances.json"
ORG = FIX / "cloudtrail-org.json"

ADMIN, READER, HARMLESS = "i-0a1b2c3d4e5f60001", "i-0a1b2c3d4e5f60002", "i-0a1b2c3d4e5f60003"
V2_ONLY, MIGRATED, INVENTORY_ONLY = "i-0a1b2c3d4e5f60004", "i-0a1b2c3d", "i-0a1b2c3d4e5f60005"


def _ids(records):
    return [r["instance_id"] for r in records]


@pytest.fixture()
def org_con():
    return connect_with(records_from_file(ORG))


# ------------------------------------------------------------------ real samples


OTRF_FILE = "ec2_proxy_s3_exfiltration_2020-09-14011940.json"


def _real_records(realdata: Path) -> list[dict]:
    recs: list[dict] = []
    for f in sorted((realdata / "cloudtrail-samples").glob("*.json")):
        recs += records_from_file(f)
    recs += records_from_file(
        realdata
        / "otrf-ec2-proxy-s3-exfiltration"
        / "ec2_proxy_s3_exfiltration_2020-09-14011940.json"
    )
    for f in sorted((realdata / "stratus-red-team-detonation-logs").glob("aws.*.json")):
        recs += records_from_file(f)
    return recs


def test_real_samples_v1_instances_are_listed_and_v2_only_never(realdata):
    records = exposure_backlog(connect_with(_real_records(realdata)))
    by_id = {r["instance_id"]: r for r in records}
    # ec2RoleDelivery "1.0": the OTRF victim, the Stratus victim (mixed-case anonymised id) and
    # the AWS docs example (session name not hex, kept because it carries ec2RoleDelivery).
    assert set(by_id) == {"i-0317f6c6b66ae9c40", "i-786a3A8B5C0d92eF4", "i-exampled859aa775c"}
    # ec2RoleDelivery "2.0" only (EKS node roles): never v1 users.
    for v2 in ("i-064d652934ecf0bfc", "i-07574d724fb843fda", "i-02930ce60274d87a7"):
        assert v2 not in by_id
    otrf = by_id["i-0317f6c6b66ae9c40"]
    assert otrf["status"] == "v1-used"
    assert otrf["delivery_versions"] == ["1.0"]
    # 11 attacker calls; the sample file repeats two of them (same eventID): counted once.
    assert otrf["v1_event_count"] == 11
    assert otrf["last_v1_use"] == "2020-09-14T01:13:20Z"
    assert otrf["role"] == "MordorNginxStack-BankingWAFRole-9S3E0UAE1MM0"
    assert otrf["v1_source_ips"] == ["1.2.3.4"]
    # Without --iam, ranked by what it was seen doing: s3:GetObject is data exfiltration.
    assert otrf["privilege_source"] == "cloudtrail"
    assert "s3:GetObject" in otrf["sensitive_actions_seen"]
    assert otrf["rank"] == 1
    assert "--instance-id i-0317f6c6b66ae9c40 --http-tokens required" in otrf["remediation"]
    assert otrf["remediation"].endswith("--region us-east-1")


def test_real_samples_v2_rows_classified_v2(realdata):
    from imdshunt.exposure import backlog_sql

    con = connect_with(_real_records(realdata))
    rows = con.execute(
        f"SELECT instance_id, delivery_versions, v1_event_count, v2_event_count "
        f"FROM ({backlog_sql()}) ORDER BY instance_id"
    ).fetchall()
    got = {r[0]: (r[1], r[2], r[3]) for r in rows}
    assert got["i-07574d724fb843fda"] == (["2.0"], 0, 1)
    assert got["i-786a3A8B5C0d92eF4"][0] == ["1.0"]
    # Lambda, ECS, SSO, IRSA sessions are not instance sessions.
    assert all(k.lower().startswith("i-") for k in got)


# ------------------------------------------------------------------ synthetic organisation


def test_backlog_lists_exactly_the_v1_instances(org_con):
    records = exposure_backlog(org_con)
    assert sorted(_ids(records)) == sorted([ADMIN, READER, HARMLESS, MIGRATED])
    assert V2_ONLY not in _ids(records)
    assert all(r["v1_event_count"] > 0 and r["status"] == "v1-used" for r in records)
    migrated = next(r for r in records if r["instance_id"] == MIGRATED)
    assert migrated["delivery_versions"] == ["1.0", "2.0"]
    assert (migrated["v1_event_count"], migrated["v2_event_count"]) == (1, 1)
    assert migrated["last_v1_use"] == "2024-05-01T09:00:00Z"


def test_identity_role_and_non_instance_sessions_are_excluded(org_con):
    ids = _ids(exposure_backlog(org_con))
    assert "i-0a1b2c3d4e5f60009" not in ids  # aws:ec2-instance identity role
    assert "deploy-pipeline" not in ids


def test_iam_ranking_admin_first_harmless_last_with_reasons(org_con):
    records = exposure_backlog(org_con, iam_file=IAM)
    ids = _ids(records)
    assert ids[0] == ADMIN
    assert ids[-1] == HARMLESS
    assert ids.index(READER) < ids.index(HARMLESS)
    admin, reader, harmless = (next(r for r in records if r["instance_id"] == i) for i in
                               (ADMIN, READER, HARMLESS))  # fmt: skip
    assert admin["severity"] == "critical"
    assert admin["privilege_source"] == "iam"
    assert admin["privilege_reasons"][0] == 'admin: Action "*" on Resource "*"'
    assert "AdministratorAccess" in admin["privilege_policies"]
    assert "data exfiltration: s3:GetObject on *" in reader["privilege_reasons"]
    assert reader["severity"] == "high"
    assert reader["sensitive_actions_seen"] == ["s3:GetObject"]  # usage shown too
    assert harmless["severity"] == "low"
    assert harmless["privilege_categories"] == []
    assert admin["privilege_score"] > reader["privilege_score"] > harmless["privilege_score"]


def test_privilege_escalation_across_two_policies_is_found():
    from imdshunt.exposure.privilege import IamAuthorizationDetails

    a = IamAuthorizationDetails.load(IAM).assess(None, "ci-launcher", "111122223333")
    assert "privilege escalation: iam:PassRole + ec2:RunInstances (CreateEC2WithExistingIP)" in (
        a.reasons
    )
    assert a.severity == "critical"


def test_without_iam_ranked_by_sensitive_actions_seen(org_con):
    records = exposure_backlog(org_con)
    assert _ids(records)[0] in (READER, MIGRATED)  # s3:GetObject seen: data exfiltration
    reader = next(r for r in records if r["instance_id"] == READER)
    assert reader["privilege_source"] == "cloudtrail"
    assert reader["sensitive_actions_seen"] == ["s3:GetObject"]
    admin = next(r for r in records if r["instance_id"] == ADMIN)
    assert admin["sensitive_actions_seen"] == []  # only Read/List calls were seen
    assert "give --iam" in admin["privilege_reasons"][0]


def test_failed_calls_do_not_count_as_sensitive_use():
    con = connect_with(
        [
            instance_record(
                "i-0123456789abcdef0",
                "r",
                event="iam.amazonaws.com PutRolePolicy",
                error="AccessDenied",
            )  # fmt: skip
        ]
    )
    (rec,) = exposure_backlog(con)
    assert rec["sensitive_actions_seen"] == []
    assert rec["v1_event_count"] == 1


def test_inventory_adds_options_and_inventory_only_v1_instances(org_con):
    records = exposure_backlog(org_con, inventory_files=[INVENTORY], iam_file=IAM)
    by_id = {r["instance_id"]: r for r in records}
    only = by_id[INVENTORY_ONLY]
    assert only["status"] == "v1-allowed"
    assert only["v1_event_count"] == 0
    assert only["role"] == "ci-launcher"  # instance profile -> role via the IAM file
    assert only["region"] == "us-west-2"  # from the Local Zone us-west-2-lax-1a
    assert only["severity"] == "critical"
    # v1 users come with their options from the inventory
    assert by_id[ADMIN]["http_tokens"] == "optional"
    assert by_id[ADMIN]["name"] == "web-admin"
    assert by_id[ADMIN]["state"] == "running"
    assert by_id[HARMLESS]["http_put_response_hop_limit"] == 2
    assert by_id[HARMLESS]["region"] == "eu-west-1"
    # required tokens, disabled endpoint, terminated: not exposed
    for iid in ("i-0a1b2c3d4e5f60006", "i-0a1b2c3d4e5f60007", "i-0a1b2c3d4e5f60010", V2_ONLY):
        assert iid not in by_id
    assert _ids(records)[0] == ADMIN
    assert _ids(records)[-1] == HARMLESS


def test_inventory_only_without_iam_has_unknown_privilege():
    con = connect_with([])
    records = exposure_backlog(con, inventory_files=[INVENTORY])
    assert INVENTORY_ONLY in _ids(records)
    rec = next(r for r in records if r["instance_id"] == INVENTORY_ONLY)
    assert rec["privilege_source"] == "none"
    assert "give --iam" in rec["privilege_reasons"][0]


def test_v1_use_but_inventory_now_required_is_marked_fixed_and_last(org_con):
    records = exposure_backlog(
        org_con, inventory_files=[FIX / "describe-instances-fixed.json"], iam_file=IAM
    )
    assert records[-1]["instance_id"] == MIGRATED
    assert records[-1]["status"] == "v1-used-since-fixed"
    assert records[-1]["remediation"] is None
    assert records[-1]["severity"] == "info"


def test_remediation_is_ready_to_paste(org_con):
    rec = exposure_backlog(org_con, inventory_files=[INVENTORY])[0]
    assert rec["remediation"] == (
        f"aws ec2 modify-instance-metadata-options --instance-id {rec['instance_id']}"
        " --http-tokens required --http-put-response-hop-limit 1 --http-endpoint enabled"
        f" --region {rec['region']}"
    )
    assert "MetadataNoToken" in rec["remediation_caveat"]
    assert "MetadataNoToken" in rec["remediation_check"]
    assert rec["account_remediation"].startswith(
        "aws ec2 modify-instance-metadata-defaults --http-tokens required"
    )


def test_region_guess_is_explained_when_calls_span_regions():
    con = connect_with(
        [
            instance_record("i-0123456789abcdef0", "r", region="eu-west-1"),
            instance_record(
                "i-0123456789abcdef0", "r", region="eu-west-1", time="2024-06-02T00:00:00Z"
            ),
            instance_record(
                "i-0123456789abcdef0", "r", region="us-east-1", time="2024-06-03T00:00:00Z"
            ),
        ]  # fmt: skip
    )
    (rec,) = exposure_backlog(con)
    assert rec["region"] == "eu-west-1"
    assert rec["regions"] == ["eu-west-1", "us-east-1"]
    assert any("guessed" in x for x in rec["reasons"])


def test_missing_api_activity_is_a_usage_error():
    import duckdb

    with pytest.raises(UsageError):
        exposure_backlog(duckdb.connect())


def test_bad_inventory_is_an_input_error(tmp_path, org_con):
    bad = tmp_path / "inv.json"
    bad.write_text('{"Instances": []}')
    with pytest.raises(InputError):
        exposure_backlog(org_con, inventory_files=[bad])
    bad.write_text("{not json")
    with pytest.raises(InputError) as e:
        exposure_backlog(org_con, inventory_files=[bad])
    assert e.value.line == 1


# ------------------------------------------------------------------ inventory parser


def test_inventory_parser_reads_metadata_options_and_tags():
    inv = load_ec2_inventory([INVENTORY])
    i = inv[ADMIN]
    opts = (i.http_tokens, i.http_put_response_hop_limit, i.http_endpoint)
    assert opts == ("optional", 1, "enabled")
    assert i.account_id == "111122223333"
    assert i.instance_profile_arn.endswith("instance-profile/ops-admin")
    assert i.answers_imdsv1
    assert not inv["i-0a1b2c3d4e5f60006"].answers_imdsv1  # endpoint disabled


@pytest.mark.parametrize(
    "az,region",
    [("us-east-1a", "us-east-1"), ("us-west-2-lax-1a", "us-west-2"),
     ("us-gov-west-1b", "us-gov-west-1"), ("eu-central-2c", "eu-central-2"), (None, None)],
)  # fmt: skip
def test_region_from_availability_zone(az, region):
    assert region_from_az(az) == region


# ------------------------------------------------------------------ outputs


def test_table_escapes_hostile_name_tag(org_con):
    records = exposure_backlog(org_con, inventory_files=[INVENTORY], iam_file=IAM)
    buf = io.StringIO()
    render_table(records, Console(file=buf, width=300, force_terminal=True, color_system=None))
    text = buf.getvalue()
    # shown literally (the cell may wrap between "[bold" and "red]"), not run as markup
    assert "[bold" in text and "red]pwn[/]" in text
    assert "\x1b[31m" not in text
    assert "\u202e" not in text
    assert "\\x1b" in text
    assert "How this is ranked" in text
    assert "modify-instance-metadata-defaults" in text
    assert "ec2:MetadataHttpTokens" in text and "ec2:RoleDelivery" in text


def test_csv_neutralises_formulas_and_controls(org_con):
    records = exposure_backlog(org_con, inventory_files=[INVENTORY], iam_file=IAM)
    buf = io.StringIO()
    write_csv(records, buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    reader = next(r for r in rows if r["instance_id"] == READER)
    assert reader["name"].startswith("'=HYPERLINK(")
    assert "\x1b" not in buf.getvalue() and "\u202e" not in buf.getvalue()
    assert int(reader["rank"]) >= 1
    for cell in ("-1", "+x", "@SUM(A1)", "=1+1"):
        assert csv_cell(cell).startswith("'")
    assert csv_cell("\tx") == "\\x09x"  # a leading tab or CR is shown, never kept
    assert csv_cell("\r=1") == "\\x0d=1"
    assert csv_cell(5) == "5"
    assert csv_cell(-5) == "-5"  # numbers are ours, not formulas


def test_jsonl_is_one_documented_record_per_line(org_con):
    records = exposure_backlog(org_con, inventory_files=[INVENTORY], iam_file=IAM)
    buf = io.StringIO()
    write_jsonl(records, buf)
    lines = buf.getvalue().splitlines()
    assert len(lines) == len(records)
    first = json.loads(lines[0])
    assert first["detection"] == "imdsv1_exposure"
    documented = set(re.findall(r"^\| `(\w+)` \|", (Path(__file__).parents[1] / "docs" /
                                                    "exposure.md").read_text(), re.M))  # fmt: skip
    assert set(first) == documented
    for key in ("first_seen", "last_seen", "last_v1_use"):
        assert first[key] is None or first[key].endswith("Z")


def test_clean_text_shows_control_characters():
    assert clean_text("a\x1b[2Jb\x07") == "a\\x1b[2Jb\\x07"
    assert clean_text("x\u202ey") == "x\\u202ey"


# ------------------------------------------------------------------ command


def test_command_runs_on_cloudtrail_with_inventory_and_iam(tmp_path):
    from imdshunt.commands.exposure import exposure

    trail = tmp_path / "trail"
    trail.mkdir()
    (trail / "org.json").write_text(ORG.read_text())
    out = tmp_path / "b.jsonl"
    ranges = Path(__file__).parent / "data" / "ip-ranges.fixture.json"
    result = CliRunner().invoke(
        exposure,
        [str(trail), "--iam", str(IAM), "--inventory", str(INVENTORY), "--format", "jsonl",
         "--ip-ranges", str(ranges), "--workers", "1", "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # instances listed: exit 1, like findings
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert recs[0]["instance_id"] == ADMIN
    assert recs == exposure_backlog(org_con_of(ORG), inventory_files=[INVENTORY], iam_file=IAM)
    result = CliRunner().invoke(
        exposure, [str(trail), "--format", "table", "--ip-ranges", str(ranges), "--workers", "1"]
    )
    assert result.exit_code == 1, result.output
    assert "IMDSv1 exposure backlog" in result.output


def org_con_of(path: Path):
    return connect_with(records_from_file(path))


def test_command_help_has_an_example():
    from imdshunt.commands.exposure import exposure

    result = CliRunner().invoke(exposure, ["--help"])
    assert result.exit_code == 0
    assert "imdshunt exposure" in result.output and "--inventory" in result.output


def test_real_samples_through_the_cloudtrail_ingest(realdata):
    from imdshunt import api

    engine, _ = api.load_cloudtrail(
        [realdata / "cloudtrail-samples", realdata / "otrf-ec2-proxy-s3-exfiltration"], workers=1
    )
    records = exposure_backlog(engine)
    assert {r["instance_id"] for r in records} == {"i-0317f6c6b66ae9c40", "i-786a3A8B5C0d92eF4",
                                                   "i-exampled859aa775c"}  # fmt: skip
    otrf = next(r for r in records if r["instance_id"] == "i-0317f6c6b66ae9c40")
    assert otrf["v1_event_count"] == 11  # the copy in cloudtrail-samples is deduplicated


def test_importing_exposure_does_no_work():
    import subprocess

    code = (
        "import sys, imdshunt.exposure, imdshunt.commands.exposure;"
        "bad = [m for m in ('cloudsplaining', 'policy_sentry') if m in sys.modules];"
        "sys.exit(1 if bad else 0)"
    )
    src = str(Path(__file__).parents[1] / "src")
    proc = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": src}, check=False)
    assert proc.returncode == 0


def test_command_on_real_samples_writes_csv(realdata, tmp_path):
    from imdshunt.commands.exposure import exposure

    out = tmp_path / "backlog.csv"
    result = CliRunner().invoke(
        exposure,
        [str(realdata / "cloudtrail-samples"), "--inventory", str(INVENTORY), "--format", "csv",
         "--ip-ranges", str(realdata / "aws-ip-ranges" / "ip-ranges.json"), "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # instances listed: exit 1, like findings
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    ids = {r["instance_id"] for r in rows}
    assert {"i-0317f6c6b66ae9c40", "i-786a3A8B5C0d92eF4", INVENTORY_ONLY} <= ids
    assert "i-07574d724fb843fda" not in ids  # IMDSv2 only


def test_the_backlog_needs_no_aws_ip_ranges_and_fetches_none(tmp_path, monkeypatch):
    from imdshunt import api
    from imdshunt.enrich import ipranges

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("IMDSHUNT_IP_RANGES", raising=False)

    def no_fetch(*args, **kwargs):
        raise AssertionError("exposure fetched ip-ranges.json")

    monkeypatch.setattr(ipranges, "fetch_ip_ranges", no_fetch)
    result = api.exposure([ORG], inventory=[INVENTORY], iam_file=IAM, workers=1)
    assert result.records == exposure_backlog(
        org_con_of(ORG), inventory_files=[INVENTORY], iam_file=IAM
    )
