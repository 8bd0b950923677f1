"""One organisation, every mode, the same findings and the same accounting.

A synthetic organisation (CloudTrail in the S3 delivery layout with redeliveries and digests,
ALB access logs with SSRF attempts, and its inventory) is hunted

* as local files,
* with ``--state`` from an empty state,
* through ``ingest --store`` then ``hunt --store`` (ALB logs beside the store),
* from ``s3://`` on moto's server (over HTTP), and
* from ``s3://`` with ``--state``,

and each mode must give the same findings (same ids, counts and evidence, chains included) and
account for the same records. Amazon Security Lake OCSF parquet made from the same CloudTrail
must give the same credential findings.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import boto3
import pytest

from imdshunt import api, store
from imdshunt.state import hunt_incremental
from imdshunt.synth import generate_org
from tests.conftest import upload_tree

RECORDS = 3000


@pytest.fixture(scope="module")
def org(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("org")
    generate_org(root, seed=11, records=RECORDS, workers=1)
    return root


def _kw(root: Path) -> dict:
    return dict(
        ip_ranges=root / "ip-ranges.json",
        inventory=[root / "inventory"],
        fetch_ip_ranges=False,
        workers=1,
    )


def _normalised(value, roots: tuple[str, ...]):
    """Findings with the place the files were read from replaced by one name."""
    if isinstance(value, str):
        for r in roots:
            if value.startswith(r):
                return "<root>" + value[len(r) :]
        return value
    if isinstance(value, list):
        return [_normalised(v, roots) for v in value]
    if isinstance(value, dict):
        return {k: _normalised(v, roots) for k, v in value.items()}
    return value


def _comparable(findings, *roots):
    return sorted(
        (_normalised(f.to_dict(), tuple(str(r) for r in roots)) for f in findings),
        key=lambda f: f["finding_id"],
    )


def _accounting(stats) -> tuple[int, int]:
    return stats.records_present, stats.duplicate_records


@pytest.fixture(scope="module")
def local(org):
    return api.hunt([org / "AWSLogs"], **_kw(org))


def test_the_organisation_exercises_every_part_of_the_pipeline(local):
    fired = {d for f in local.findings for d in f.get("detections", [f["detection"]])}
    assert "imds_theft_chain" in fired, "an SSRF attempt leads to a planted theft"
    assert {"imds_ssrf_attempt", "ec2_instance_credential_outside_aws"} <= fired
    assert any(f.get("target_instance") for f in local.findings if f.get("kind") == "web")
    assert local.stats.duplicate_records > 0, "the organisation redelivers files"
    assert local.stats.web_files_read > 0
    assert any("digest" in s.reason for s in local.stats.files_skipped)


def test_state_from_empty_equals_the_plain_hunt(org, local, tmp_path):
    inc = hunt_incremental([org / "AWSLogs"], tmp_path / "state", **_kw(org))
    assert _comparable(inc.findings) == _comparable(local.findings)
    assert {f["finding_id"] for f in inc.new} == {f["finding_id"] for f in local.findings}
    assert _accounting(inc.stats) == _accounting(local.stats)
    assert inc.naive == local.naive and inc.notes == local.notes
    again = hunt_incremental([org / "AWSLogs"], tmp_path / "state", **_kw(org))
    assert again.new == [] and again.updated == [] and again.stats.records_read == 0
    assert _comparable(again.findings) == _comparable(local.findings)


def test_store_equals_the_plain_hunt(org, local, tmp_path):
    compiled = store.ingest([org / "AWSLogs"], tmp_path / "store", workers=1)
    web = sorted(p for p in (org / "AWSLogs").glob("*/elasticloadbalancing"))
    assert web, "the organisation writes ALB logs"
    hunted = api.hunt(web, store=tmp_path / "store", **_kw(org))
    assert _comparable(hunted.findings) == _comparable(local.findings)
    # what ingest skipped (digests, records without a time) plus what the hunt read
    present = hunted.stats.records_present + sum(compiled.stats.records_skipped.values())
    assert (present, hunted.stats.duplicate_records) == _accounting(local.stats)
    assert hunted.naive == local.naive


@pytest.fixture()
def bucket(org, aws_env, tmp_path):
    name = f"org-{tmp_path.name.lower().replace('_', '-')[:40]}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=name)
    upload_tree(client, name, org / "AWSLogs", org)
    return f"s3://{name}/"


@pytest.mark.moto
def test_s3_equals_the_plain_hunt(org, local, bucket):
    remote = api.hunt([bucket + "AWSLogs/"], **_kw(org))
    assert _comparable(remote.findings, bucket) == _comparable(local.findings, f"{org}/")
    assert _accounting(remote.stats) == _accounting(local.stats)
    assert remote.stats.web_files_read == local.stats.web_files_read
    assert remote.naive == local.naive


@pytest.mark.moto
def test_s3_with_state_equals_the_plain_hunt_and_reads_nothing_twice(org, local, bucket, tmp_path):
    inc = hunt_incremental([bucket + "AWSLogs/"], tmp_path / "state", **_kw(org))
    assert _comparable(inc.findings, bucket) == _comparable(local.findings, f"{org}/")
    assert _accounting(inc.stats) == _accounting(local.stats)
    again = hunt_incremental([bucket + "AWSLogs/"], tmp_path / "state", **_kw(org))
    assert again.stats.records_read == 0 and again.new == [] and again.updated == []
    assert again.files_already_processed == inc.stats.files_read + inc.stats.web_files_read


def test_security_lake_gives_the_credential_findings_of_its_cloudtrail(org, local, tmp_path):
    from tests.test_securitylake_source import write_ocsf

    records = []
    for p in sorted((org / "AWSLogs").rglob("*.json.gz")):
        if "CloudTrail-Digest" in p.parts:
            continue
        records.extend(json.loads(gzip.decompress(p.read_bytes()))["Records"])
    lake = tmp_path / "lake"
    lake.mkdir()
    write_ocsf(records, lake / "part-0.parquet")
    hunted = api.hunt([lake], kinds=("credential",), **_kw(org))
    expected = [f for f in local.findings if f["kind"] == "credential"]
    assert expected
    assert _comparable(hunted.findings) == _comparable(expected)
