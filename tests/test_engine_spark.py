"""Spark gives exactly DuckDB's findings on the detections' fixtures and on a synthetic
organisation (``pytest -m spark``).

One local Spark session serves the whole module (starting it costs ~10 s), and each Spark hunt
costs tens of seconds on 2 cores however small its input, so the fixtures are hunted together:
every detection's ``match_``/``nomatch_`` files copied into one folder and hunted once, without
inventory (binding on learned egress). Fixtures hunted together interact (some share eventIDs,
which the de-duplication then drops, and instances and addresses): the per-fixture verdicts are
tests/test_detection_fixtures.py's job; here both engines must agree on the combined logs and
every detection must still fire. The synthetic organisation is hunted with its inventory and
its ALB logs (high-confidence binding, SSRF attempts linked to thefts). Skipped when pyspark or
Java is missing.
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
FIXTURE_HUNT = dict(ip_ranges=RANGES, allowlist=ALLOWLIST, workers=1, fetch_ip_ranges=False)
#: Benign CloudTrail records of the synthetic organisation (its attacks are the same at any size).
RECORDS = 4000
#: Copied a second time under another name: a repeated CloudTrail delivery.
REDELIVERED = (
    "ec2_instance_credential_outside_aws",
    "match_imdsv1_session_used_from_internet.json",
)


def fixture_files(det) -> list[Path]:
    return sorted(
        p
        for p in (det.folder / "tests").glob("*")
        if p.name.startswith(("match_", "nomatch_"))
        and p.is_file()
        and not p.name.endswith(".expect.json")
    )


@pytest.fixture(scope="module")
def combined(tmp_path_factory) -> Path:
    """Every detection's fixtures in one folder, named ``<detection>__<fixture>``."""
    out = tmp_path_factory.mktemp("fixtures")
    for det_id, det in sorted(DETECTIONS.items()):
        for src in fixture_files(det):
            shutil.copyfile(src, out / f"{det_id}__{src.name}")
    det_id, name = REDELIVERED
    shutil.copyfile(DETECTIONS[det_id].folder / "tests" / name, out / f"zz_redelivered__{name}")
    return out


def _comparable(findings):
    return sorted(findings, key=lambda f: f["finding_id"])


def _fired(findings) -> set[str]:
    # merged findings name every detection that fired in ``detections`` (imdshunt.merge)
    return {d for f in findings for d in f.get("detections", [f["detection"]])}


def _both(spark, paths, **kw):
    """The same hunt on DuckDB and on Spark: (DuckDB's result, Spark's result, Spark engine)."""
    from imdshunt.engine.spark import SparkEngine

    duck = api.hunt(paths, **kw)
    engine = SparkEngine(spark)
    try:
        sp = api.hunt(paths, engine=engine, **kw)
    finally:
        engine.close()
    return duck, sp, engine


def test_spark_findings_equal_duckdb_on_every_detections_fixtures(spark, combined):
    duck, sp, engine = _both(spark, [combined], **FIXTURE_HUNT)
    assert not duck.stats.files_skipped, duck.stats.summary()
    missing = set(DETECTIONS) - _fired(duck.findings)
    assert not missing, f"no longer fire on the combined fixtures: {sorted(missing)}"
    assert _comparable(sp.findings) == _comparable(duck.findings)
    assert sp.naive == duck.naive
    assert sp.notes == duck.notes
    # repeated deliveries (the copy above, and eventIDs that fixtures share) counted alike
    assert duck.stats.duplicate_records > 0
    assert engine.duplicate_records == sp.stats.duplicate_records == duck.stats.duplicate_records


def test_spark_findings_equal_duckdb_on_a_synthetic_organisation(spark, tmp_path):
    synth = pytest.importorskip("imdshunt.synth", reason="synthetic organisation generator absent")

    synth.generate_org(tmp_path, seed=11, records=RECORDS, workers=1)
    duck, sp, _ = _both(
        spark,
        [tmp_path / "AWSLogs"],  # CloudTrail and ALB logs
        ip_ranges=tmp_path / "ip-ranges.json",
        inventory=[tmp_path / "inventory"],
        allowlist=(),
        workers=1,
        fetch_ip_ranges=False,
    )
    fired = _fired(duck.findings)
    assert "imds_theft_chain" in fired, "the organisation plants an SSRF that leads to a theft"
    assert fired > {"ec2_instance_credential_outside_aws", "imds_ssrf_attempt"}
    assert duck.stats.duplicate_records > 0, "the synthetic organisation redelivers files"
    assert _comparable(sp.findings) == _comparable(duck.findings)
    assert sp.stats.duplicate_records == duck.stats.duplicate_records
    assert sp.naive == duck.naive
    assert sp.notes == duck.notes


# ------------------------------------------------------------------ after the hunt: the report


def test_the_report_reads_spark_through_the_engine_and_gets_duckdbs_timelines(spark, tmp_path):
    """The report's timelines and backlog come through engine methods (no DuckDB connection):
    Spark gives DuckDB's rows."""
    import io

    from imdshunt.engine.spark import SparkEngine
    from imdshunt.outputs import OUTPUTS
    from imdshunt.report import credential_timelines, exposure_records, report_context
    from tests import report_support as rs

    logs = rs.write_org(tmp_path, with_web=True)
    kw = dict(ip_ranges=rs.RANGES, fetch_ip_ranges=False, workers=1)
    duck = api.hunt([logs], **kw)
    engine = SparkEngine(spark)
    try:
        sp = api.hunt([logs], engine=engine, **kw)
        spark_timelines = credential_timelines(engine, sp.findings)
        assert spark_timelines == credential_timelines(duck.engine, duck.findings)
        theft = next(
            f for f in sp.findings if f["kind"] == "credential" and f["source_ip"] == rs.THIEF_IP
        )
        calls = spark_timelines[theft["finding_id"]]
        assert sum(c["this_finding"] for c in calls) == 5 and len(calls) == 36
        assert exposure_records(engine) == exposure_records(duck.engine)
        buf = io.StringIO()
        OUTPUTS["html"]().write(sp.findings, buf, report_context(sp, backlog=True))
    finally:
        engine.close()
    page = buf.getvalue()
    assert 'class="plot timeline"' in page and 'id="backlog"' in page
    assert rs.INSTANCE in page[page.index('id="backlog"') :]


def test_hunt_engine_spark_format_html_writes_the_report(spark, tmp_path):
    from click.testing import CliRunner

    from imdshunt.cli import cli
    from tests import report_support as rs

    logs = rs.write_org(tmp_path)
    out = tmp_path / "r.html"
    res = CliRunner().invoke(
        cli,
        ["hunt", str(logs), "--engine", "spark", "--ip-ranges", str(rs.RANGES),
         "--format", "html", "-o", str(out), "-q"],
    )  # fmt: skip
    assert res.exit_code == 1, res.output  # findings
    assert 'class="plot timeline"' in out.read_text()
