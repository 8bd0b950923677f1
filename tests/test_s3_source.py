"""``s3://`` sources are read in place (moto server over real HTTP) and equal the local hunt."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import boto3
import pytest

from imdshunt import api
from imdshunt.detect import load_detections
from imdshunt.errors import InputError
from imdshunt.sources.discover import RunStats
from imdshunt.sources.s3 import list_objects
from imdshunt.window import HuntWindow
from tests.conftest import upload_tree

pytestmark = pytest.mark.moto

HERE = Path(__file__).resolve().parent
RANGES = HERE / "data" / "ip-ranges.fixture.json"
ALLOWLIST = ["203.0.113.0/24"]
ORG = "o-abcde12345"


def _fixtures() -> list[Path]:
    out = []
    for det in load_detections().values():
        out += sorted(p for p in (det.folder / "tests").glob("*_*.json") if "expect" not in p.name)
    return out


def _layout(root: Path) -> Path:
    """Lay every detection fixture out as an organisation trail bucket would hold it."""
    fixtures = _fixtures()
    for i, f in enumerate(fixtures):
        acct = "111122223333" if i % 2 else "444455556666"
        region = "us-east-1" if i % 3 else "eu-west-1"
        day = f"2026/03/{1 + i % 3:02d}"
        d = root / "AWSLogs" / ORG / acct / "CloudTrail" / region / day
        d.mkdir(parents=True, exist_ok=True)
        name = f"{acct}_CloudTrail_{region}_{f.stem}.json.gz"
        (d / name).write_bytes(gzip.compress(f.read_bytes()))
    digest = root / "AWSLogs" / ORG / "111122223333" / "CloudTrail-Digest" / "us-east-1" / "2026"
    digest.mkdir(parents=True)
    (digest / "digest.json.gz").write_bytes(gzip.compress(b'{"digestStartTime": "x"}'))
    return root


def _upload(client, bucket: str, root: Path) -> None:
    client.create_bucket(Bucket=bucket)
    upload_tree(client, bucket, root)


def _keys(findings):
    return sorted(
        (f["detection"], f["account_id"], f["credential_id"], f["source_ip"], f["event_count"])
        for f in findings
    )


@pytest.fixture()
def bucket(aws_env, tmp_path):
    root = _layout(tmp_path / "bucket")
    name = f"trail-{tmp_path.name.lower().replace('_', '-')[:40]}"
    _upload(boto3.client("s3"), name, root)
    return name, root


def test_hunt_s3_equals_local_hunt_on_the_same_files(bucket):
    name, root = bucket
    kw = dict(ip_ranges=RANGES, allowlist=ALLOWLIST, workers=1, fetch_ip_ranges=False)
    local = api.hunt([root / "AWSLogs"], **kw)
    remote = api.hunt([f"s3://{name}/AWSLogs/"], **kw)
    assert local.findings, "fixtures should produce findings"
    assert _keys(remote.findings) == _keys(local.findings)
    strip = {"event_ids"}  # same ids; compare everything else field by field too
    assert [{k: v for k, v in f.items() if k not in strip} for f in remote.findings] == [
        {k: v for k, v in f.items() if k not in strip} for f in local.findings
    ]
    assert remote.stats.records_read == local.stats.records_read
    assert remote.stats.files_read == local.stats.files_read


def test_listing_prunes_accounts_regions_and_days_and_skips_digests(bucket):
    name, _ = bucket
    client = boto3.client("s3")
    stats = RunStats()
    flt = HuntWindow.make("2026-03-02", "2026-03-02", ["111122223333"], ["us-east-1"])
    objs = list_objects(client, f"s3://{name}/", stats, flt)
    assert objs
    for o in objs:
        assert f"/{ORG}/111122223333/CloudTrail/us-east-1/2026/03/02/" in o.key
    assert any("digest" in s.reason for s in stats.files_skipped)
    everything = list_objects(client, f"s3://{name}/", RunStats())
    assert len(everything) > len(objs)


def test_window_gives_same_findings_locally_and_on_s3(bucket):
    name, root = bucket
    kw = dict(
        ip_ranges=RANGES,
        allowlist=ALLOWLIST,
        workers=1,
        fetch_ip_ranges=False,
        since="2026-03-01",
        until="2026-03-02",
        accounts=["111122223333", "444455556666"],
    )
    local = api.hunt([root], **kw)
    remote = api.hunt([f"s3://{name}"], **kw)
    assert _keys(remote.findings) == _keys(local.findings)
    assert remote.stats.records_read == local.stats.records_read


def test_missing_bucket_is_an_input_error(aws_env):
    with pytest.raises(InputError):
        api.hunt(["s3://no-such-bucket-imdshunt/AWSLogs/"], ip_ranges=RANGES, fetch_ip_ranges=False)


def test_s3_hunt_needs_no_local_copy(bucket, tmp_path):
    name, root = bucket
    shutil.rmtree(root)
    res = api.hunt(
        [f"s3://{name}/AWSLogs/{ORG}/"],
        ip_ranges=RANGES,
        allowlist=ALLOWLIST,
        fetch_ip_ranges=False,
    )
    assert res.stats.files_read > 0


def test_hunt_s3_equals_local_on_a_synthetic_organisation(aws_env, tmp_path):
    synth = pytest.importorskip("imdshunt.synth", reason="synthetic organisation generator absent")
    root = tmp_path / "org"
    synth.generate_org(root, seed=5, records=3000, days=1, accounts=2, workers=1)
    client = boto3.client("s3")
    client.create_bucket(Bucket="synthetic-org-trail")
    upload_tree(client, "synthetic-org-trail", root / "AWSLogs", root)
    kw = dict(
        ip_ranges=root / "ip-ranges.json", workers=1, fetch_ip_ranges=False, kinds=("credential",)
    )
    local = api.hunt([root / "AWSLogs"], **kw)
    remote = api.hunt(["s3://synthetic-org-trail/AWSLogs/"], **kw)
    assert local.findings
    assert _keys(remote.findings) == _keys(local.findings)
    assert remote.stats.records_read == local.stats.records_read
