"""Spark gives exactly DuckDB's findings on every detection's fixtures (``-m spark``).

One local Spark session serves the whole module (starting it costs ~10-30 s); skipped when
pyspark or Java is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from imdshunt import api
from imdshunt.detect import load_detections

pytestmark = pytest.mark.spark
pyspark = pytest.importorskip("pyspark", reason="pyspark not installed (pip install '.[spark]')")

HERE = Path(__file__).resolve().parent
RANGES = HERE / "data" / "ip-ranges.fixture.json"
ALLOWLIST = ["203.0.113.0/24"]
DETECTIONS = load_detections()


def fixture_files(det) -> list[Path]:
    return sorted(
        p
        for p in (det.folder / "tests").glob("*")
        if p.name.startswith(("match_", "nomatch_")) and not p.name.endswith(".expect.json")
    )


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None:
        pytest.skip("no Java runtime for Spark")
    from imdshunt.engine.spark import local_session

    session = local_session("local[2]")
    yield session
    session.stop()


def _hunt(files, engine=None, kinds=("credential", "web")):
    return api.hunt(
        files,
        ip_ranges=RANGES,
        allowlist=ALLOWLIST,
        workers=1,
        fetch_ip_ranges=False,
        engine=engine,
        kinds=kinds,
    )


def _comparable(findings):
    return sorted(findings, key=lambda f: f["finding_id"])


@pytest.mark.parametrize("det_id", sorted(DETECTIONS))
def test_spark_findings_equal_duckdb_on_the_detection_fixtures(det_id, spark):
    from imdshunt.engine.spark import SparkEngine

    files = fixture_files(DETECTIONS[det_id])
    duck = _hunt(files)
    engine = SparkEngine(spark)
    try:
        sp = _hunt(files, engine)
    finally:
        engine.close()
    assert any(f["detection"] == det_id for f in duck.findings)
    assert _comparable(sp.findings) == _comparable(duck.findings)
    assert sp.naive == duck.naive


def test_spark_counts_duplicate_deliveries_like_duckdb(spark, tmp_path):
    from imdshunt.engine.spark import SparkEngine

    det = DETECTIONS["ec2_instance_credential_outside_aws"]
    src = next(p for p in fixture_files(det) if p.name.startswith("match_"))
    (tmp_path / "a.json").write_bytes(src.read_bytes())
    (tmp_path / "b.json").write_bytes(src.read_bytes())
    duck = _hunt([tmp_path])
    engine = SparkEngine(spark)
    sp = _hunt([tmp_path], engine)
    engine.close()
    assert duck.stats.duplicate_records > 0
    assert engine.duplicate_records == duck.stats.duplicate_records
    assert _comparable(sp.findings) == _comparable(duck.findings)


def test_spark_findings_equal_duckdb_on_a_synthetic_organisation(spark, tmp_path):
    synth = pytest.importorskip("imdshunt.synth", reason="synthetic organisation generator absent")
    from imdshunt.engine.spark import SparkEngine

    synth.generate_org(tmp_path, seed=11, records=4000, workers=1)
    kw = dict(
        ip_ranges=tmp_path / "ip-ranges.json",
        allowlist=(),
        workers=1,
        fetch_ip_ranges=False,
        kinds=("credential",),
    )
    duck = api.hunt([tmp_path / "AWSLogs"], **kw)
    engine = SparkEngine(spark)
    sp = api.hunt([tmp_path / "AWSLogs"], engine=engine, **kw)
    engine.close()
    assert duck.findings, "the synthetic organisation plants thefts"
    assert _comparable(sp.findings) == _comparable(duck.findings)
