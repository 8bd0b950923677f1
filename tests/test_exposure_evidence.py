"""The IMDSv1 backlog's evidence beyond CloudTrail (issue 26): metadata SSRF attempts from the
web logs, read by the hunt's own pipeline, on the synthetic organisation in every mode."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from imdshunt import api
from imdshunt.exposure import exposure_backlog
from imdshunt.exposure.backlog import IMDS_ENDPOINTS
from imdshunt.synth import generate_org
from imdshunt.synth.truth import GroundTruth
from tests.conftest import upload_tree


@pytest.fixture(scope="module")
def org(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("org")
    generate_org(root, seed=11, records=3000, workers=1)
    return root


@pytest.fixture(scope="module")
def truth(org) -> GroundTruth:
    return GroundTruth.load(org / "ground_truth.json")


def _kw(org: Path) -> dict:
    return dict(
        inventory=[org / "inventory"],
        ip_ranges=org / "ip-ranges.json",
        fetch_ip_ranges=False,
        workers=1,
    )


@pytest.fixture(scope="module")
def local(org):
    return api.exposure([org / "AWSLogs"], **_kw(org))


def _imds_attempts(truth: GroundTruth) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for a in truth.ssrf["attempts"]:
        if a.get("target_instance") and a["endpoint"] in IMDS_ENDPOINTS:
            out.setdefault(a["target_instance"], []).append(a)
    return out


def test_ssrf_attempts_are_counted_exactly_for_the_attacked_v1_instances(local, truth):
    attacked = _imds_attempts(truth)
    v1 = {i["instance_id"] for i in truth.imdsv1_instances} | {
        i["instance_id"] for i in truth.imds_optional_without_v1_use
    }
    by_id = {r["instance_id"]: r for r in local.records}
    assert set(by_id) == v1
    probed = {i for i, r in by_id.items() if r["ssrf_attempts"] > 0}
    assert probed == set(attacked) & v1
    assert probed, "the organisation's web logs attack a v1 instance"
    assert set(attacked) - v1, "and an instance that requires tokens, which is not listed"
    for iid in probed:
        rec, attempts = by_id[iid], attacked[iid]
        assert rec["ssrf_attempts"] == len(attempts)
        assert rec["ssrf_clients"] == sorted({a["client_ip"] for a in attempts})
        last = max(a["time"] for a in attempts)
        assert rec["last_ssrf_attempt"] == last[:19] + "Z"
    for iid in v1 - probed:
        assert (by_id[iid]["ssrf_clients"], by_id[iid]["last_ssrf_attempt"]) == ([], None)


def test_a_probed_instance_ranks_first_in_its_tier_one_severity_step_up(local):
    without_web = {
        r["instance_id"]: r for r in exposure_backlog(local.hunt.engine, inventory_files=[])
    }
    records = local.records
    (probed,) = [r for r in records if r["ssrf_attempts"]]
    tier = probed["privilege_score"] // 1000
    same_tier = [r for r in records if r["privilege_score"] // 1000 == tier]
    assert same_tier[0] is probed
    assert [r["rank"] for r in same_tier] == sorted(r["rank"] for r in same_tier)
    before = without_web[probed["instance_id"]]["severity"]
    steps = ["low", "medium", "high", "critical"]
    assert probed["severity"] == steps[min(steps.index(before) + 1, 3)]
    assert any("SSRF attempt" in x and "raised" in x for x in probed["reasons"])
    for r in records:
        if r is not probed and r["instance_id"] in without_web:
            assert r["severity"] == without_web[r["instance_id"]]["severity"]


def test_a_higher_privilege_tier_still_ranks_above_a_probed_instance(org, local, truth):
    """With the IAM policies, unprobed admin instances of the attacked account outrank the
    probed instance whose role can do less: attempts reorder within a tier, never across."""
    (probed,) = [r for r in local.records if r["ssrf_attempts"]]
    iam = org / "inventory" / probed["account_id"] / "get-account-authorization-details.json"
    ranked = api.exposure([org / "AWSLogs"], iam_file=iam, **_kw(org)).records
    mine = next(r for r in ranked if r["instance_id"] == probed["instance_id"])
    higher = [r for r in ranked if r["privilege_score"] // 1000 > mine["privilege_score"] // 1000]
    assert higher, "the account has roles of a higher tier than the attacked one"
    assert all(r["rank"] < mine["rank"] for r in higher)
    same = [r for r in ranked if r["privilege_score"] // 1000 == mine["privilege_score"] // 1000]
    assert same[0]["instance_id"] == mine["instance_id"]


def _comparable(records):
    return sorted(records, key=lambda r: r["instance_id"])


@pytest.mark.moto
def test_s3_gives_the_records_of_local_files(org, local, aws_env, tmp_path):
    name = f"exposure-{tmp_path.name.lower().replace('_', '-')[:40]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=name)
    upload_tree(s3, name, org / "AWSLogs", org)
    remote = api.exposure([f"s3://{name}/AWSLogs/"], **_kw(org))
    assert _comparable(remote.records) == _comparable(local.records)


def test_the_command_writes_the_records_of_the_library(org, local, tmp_path):
    from click.testing import CliRunner

    from imdshunt.commands.exposure import exposure

    out = tmp_path / "backlog.jsonl"
    result = CliRunner().invoke(
        exposure,
        [str(org / "AWSLogs"), "--inventory", str(org / "inventory"), "--ip-ranges",
         str(org / "ip-ranges.json"), "--workers", "1", "--format", "jsonl", "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert got == json.loads(json.dumps(local.records))


@pytest.mark.spark
def test_spark_gives_the_records_of_duckdb(org, local, spark):
    from imdshunt.engine.spark import SparkEngine

    engine = SparkEngine(spark)
    try:
        sp = api.exposure([org / "AWSLogs"], engine=engine, **_kw(org))
    finally:
        engine.close()
    assert _comparable(sp.records) == _comparable(local.records)


def test_the_html_reports_backlog_counts_the_hunts_ssrf_attempts(local):
    from imdshunt.report import exposure_records

    (probed,) = [r for r in local.records if r["ssrf_attempts"]]
    backlog = exposure_records(local.hunt.engine, local.hunt.findings)
    mine = next(r for r in backlog if r["instance_id"] == probed["instance_id"])
    assert mine["ssrf_attempts"] == probed["ssrf_attempts"]
    assert mine["rank"] == 1
