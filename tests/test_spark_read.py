"""Spark reads the logs on its executors (``pytest -m spark``): the driver lists keys and reads
no log bytes, and every layout is read and accounted exactly as the DuckDB path reads it.

Delivered CloudTrail goes through Spark's JSON reader and the record projection shared with
DuckDB; every other layout (pretty-printed, JSON lines, EventBridge/Firehose, CloudTrail Lake
arrays, lines Spark cannot parse whole, broken gzip) through the exact decoder run on the
executors; Security Lake through the OCSF mapping run on the executors.
"""

from __future__ import annotations

import copy
import gzip
import json
import shutil
from pathlib import Path

import pytest

from imdshunt import api
from imdshunt.detect import load_detections

pytestmark = pytest.mark.spark
pyspark = pytest.importorskip("pyspark", reason="pyspark not installed (pip install '.[spark]')")

HERE = Path(__file__).resolve().parent
RANGES = HERE / "data" / "ip-ranges.fixture.json"
KW = dict(ip_ranges=RANGES, allowlist=["203.0.113.0/24"], workers=1, fetch_ip_ranges=False)
FIXTURE = (
    load_detections()["ec2_instance_credential_outside_aws"].folder
    / "tests"
    / "match_imdsv1_session_used_from_internet.json"
)
#: A CloudTrail delivery's folder and name (sources/discover.py: _CT_NAME, _CT_LAYOUT).
DELIVERED = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01"


def _both(spark, paths, **kw):
    from imdshunt.engine.spark import SparkEngine

    duck = api.hunt(paths, **kw)
    engine = SparkEngine(spark)
    try:
        sp = api.hunt(paths, engine=engine, **kw)
    finally:
        engine.close()
    return duck, sp


def _accounting(stats) -> dict:
    """What a run read and skipped, and why. Which of an engine's own parsers read a record
    (``records_parsed_natively``: DuckDB sends a whole chunk to the exact decoder when one file
    in it is odd, Spark decides file by file) is the engine's business, not the accounting."""
    d = stats.to_dict()
    d.pop("records_parsed_natively")
    return d


def _records(n: int) -> list[dict]:
    """The fixture's records, ``n`` times over with eventIDs unique to each copy."""
    base = json.loads(FIXTURE.read_text())["Records"]
    out = []
    for i in range(n):
        for j, rec in enumerate(base):
            rec = copy.deepcopy(rec)
            rec["eventID"] = f"{i:08d}-0000-4000-8000-{j:012d}"
            out.append(rec)
    return out


def _delivered_name(n: int) -> str:
    return f"111122223333_CloudTrail_us-east-1_20240501T00{n:02d}Z_abcdefgh{n:08d}.json.gz"


def test_every_layout_is_read_and_accounted_as_duckdb_reads_it(spark, tmp_path):
    recs = iter(_records(12))
    logs = tmp_path / "logs"
    day = logs / DELIVERED
    day.mkdir(parents=True)

    def delivered(n: int, records: list) -> Path:
        path = day / _delivered_name(n)
        path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
        return path

    first = delivered(1, [next(recs), next(recs)])
    shutil.copyfile(first, day / _delivered_name(2))  # a repeated delivery: duplicates
    no_time = next(recs)
    del no_time["eventTime"]
    delivered(3, [next(recs), no_time, next(recs)])  # Spark reads it; one record skipped
    delivered(4, [None, next(recs)])  # a null element: the exact decoder's reasons
    odd = next(recs)
    odd["userIdentity"] = "not an object"  # Spark cannot parse the line whole
    delivered(5, [odd, next(recs)])
    (day / _delivered_name(6)).write_bytes(
        gzip.compress(json.dumps({"Records": [next(recs)]}).encode())[:-20]
    )  # truncated gzip
    (day / _delivered_name(7)).write_bytes(b"")  # empty
    other = logs / "exports"
    other.mkdir()
    (other / "pretty.json").write_text(json.dumps({"Records": [next(recs)]}, indent=2))
    (other / "lines.jsonl").write_text(
        json.dumps(next(recs)) + "\n{not json\n" + json.dumps(next(recs)) + "\n"
    )
    (other / "lake.json").write_text(json.dumps([next(recs), next(recs)]))
    event = {"detail-type": "AWS API Call via CloudTrail", "account": "1", "region": "x"}
    (other / "firehose.json").write_text(
        "".join(json.dumps({**event, "detail": next(recs)}) for _ in range(2))
    )
    digest = logs / "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/05/01"
    digest.mkdir(parents=True)
    (digest / "111122223333_CloudTrail-Digest_us-east-1_x_20240501T0100Z.json.gz").write_bytes(
        gzip.compress(b"{}")
    )

    duck, sp = _both(spark, [logs], kinds=("credential",), **KW)
    want = _accounting(duck.stats)
    assert want["records_skipped"] and want["files_skipped"] and want["duplicate_records"]
    assert _accounting(sp.stats) == want
    assert 0 < sp.stats.records_parsed_natively < sp.stats.records_read
    assert sorted(sp.findings, key=lambda f: f["finding_id"]) == sorted(
        duck.findings, key=lambda f: f["finding_id"]
    )
    assert any(f["detection"] == "ec2_instance_credential_outside_aws" for f in duck.findings)
    assert sorted(f.uri for f in sp.files_done) == sorted(f.uri for f in duck.files_done)


def test_the_driver_reads_no_log_bytes_of_delivered_cloudtrail_or_security_lake(
    spark, tmp_path, monkeypatch
):
    """The driver's decoders and readers fail if called: the executors (other processes, which
    the patch does not reach) must read every byte, and the findings are DuckDB's."""
    from imdshunt.sources import cloudtrail, securitylake
    from imdshunt.sources.inputs import Reader
    from imdshunt.synth import generate_org
    from tests.test_securitylake_source import write_ocsf

    generate_org(tmp_path / "org", seed=5, records=600, workers=1)
    trail = next((tmp_path / "org" / "AWSLogs").glob("o-*"))  # CloudTrail (and its digests)
    lake = tmp_path / "lake"
    lake.mkdir()
    write_ocsf(_records(3), lake / "part-0.parquet")
    kw = dict(
        KW,
        ip_ranges=tmp_path / "org" / "ip-ranges.json",
        inventory=[tmp_path / "org" / "inventory"],
        kinds=("credential",),
    )
    duck = api.hunt([trail, lake], **kw)

    def no_bytes_here(*args, **kwargs):
        raise AssertionError("the driver read log bytes")

    for owner, name in (
        (cloudtrail, "read_item"),
        (cloudtrail, "read_file"),
        (cloudtrail, "read_bytes"),
        (cloudtrail, "decode_records"),
        (securitylake, "decode_parquet"),
        (Reader, "read"),
        (Reader, "head"),
        (Reader, "fetch_all"),
    ):
        monkeypatch.setattr(owner, name, no_bytes_here)
    from imdshunt.engine.spark import SparkEngine

    engine = SparkEngine(spark)
    try:
        sp = api.hunt([trail, lake], engine=engine, **kw)
    finally:
        engine.close()
    assert duck.stats.files_read > 100 and duck.findings
    assert _accounting(sp.stats) == _accounting(duck.stats)
    # every delivered file went through Spark's JSON reader on the executors
    assert sp.stats.records_parsed_natively == duck.stats.records_parsed_natively > 0
    assert sorted(sp.findings, key=lambda f: f["finding_id"]) == sorted(
        duck.findings, key=lambda f: f["finding_id"]
    )
