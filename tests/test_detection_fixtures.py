"""Every detection's own raw-log fixtures: match_* must fire it, nomatch_* must not.

Fixtures are classified against tests/data/ip-ranges.fixture.json, with 203.0.113.0/24 as the
operator's allowlisted egress. A ``<fixture>.expect.json`` beside a match file lists fields the
finding must carry. A ``<fixture>.inventory/`` folder beside a fixture holds that fixture's own
inventory (AWS CLI JSON: describe-instances, describe-nat-gateways, list-accounts ...); without
one the fixture runs with no inventory at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imdshunt import api
from imdshunt.detect import load_detections
from imdshunt.lineage import is_lineage_detection

HERE = Path(__file__).resolve().parent
RANGES = HERE / "data" / "ip-ranges.fixture.json"
ALLOWLIST = ["203.0.113.0/24"]

DETECTIONS = load_detections()
CASES = [
    (det_id, path)
    for det_id, det in DETECTIONS.items()
    for path in sorted((det.folder / "tests").glob("*"))
    if path.name.startswith(("match_", "nomatch_"))
    and path.is_file()
    and not path.name.endswith(".expect.json")
]


def fixture_inventory(fixture: Path) -> list[Path]:
    """The fixture's own inventory folder, ``<fixture stem>.inventory/``, when it has one."""
    folder = fixture.with_name(fixture.name.split(".")[0] + ".inventory")
    return [folder] if folder.is_dir() else []


def test_every_detection_has_positive_and_negative_fixtures():
    for det_id, det in DETECTIONS.items():
        names = [p.name for p in (det.folder / "tests").glob("*") if p.is_file()]
        assert any(n.startswith("match_") for n in names), f"{det_id} has no match_ fixture"
        assert any(n.startswith("nomatch_") for n in names), f"{det_id} has no nomatch_ fixture"


@pytest.mark.parametrize(("det_id", "fixture"), CASES, ids=[f"{d}/{p.name}" for d, p in CASES])
def test_fixture(det_id, fixture, tmp_path):
    det = DETECTIONS[det_id]
    # A lineage detection's parents are the other detections' findings: they all run.
    result = api.hunt(
        [fixture],
        ip_ranges=RANGES,
        allowlist=ALLOWLIST,
        workers=1,
        detections=DETECTIONS if is_lineage_detection(det) else {det_id: det},
        fetch_ip_ranges=False,
        inventory=fixture_inventory(fixture),
    )
    assert not result.stats.files_skipped, result.stats.summary()
    mine = [f for f in result.findings if f["detection"] == det_id]
    if fixture.name.startswith("nomatch_"):
        assert mine == [], f"{fixture.name} fired: {mine}"
        return
    assert mine, f"{fixture.name} did not fire {det_id}"
    expect = fixture.with_name(fixture.name.split(".")[0] + ".expect.json")
    if expect.exists():
        wanted = json.loads(expect.read_text())
        assert any(all(f.get(k) == v for k, v in wanted.items()) for f in mine), (wanted, mine)


def test_event_ids_are_the_first_in_sort_order_across_call_groups(tmp_path):
    """Calls are grouped before detections run (credential_activity); the evidence a finding
    lists must still be the first max_event_ids event ids of all its calls, whatever group
    (user agent, action, key) each call fell into."""
    import random

    from imdshunt.detect import MAX_EVENT_IDS
    from imdshunt.errors import ConfigError
    from tests.test_cloudtrail_source import RANGES as CT_RANGES
    from tests.test_cloudtrail_source import _layout, _records

    on_box, stolen = _records()[0], _records()[1]
    rng = random.Random(7)
    calls = []
    for i in range(3 * MAX_EVENT_IDS):
        rec = dict(stolen, eventID=f"{rng.getrandbits(128):032x}")
        # three user agents and two actions: six groups of one credential and address
        rec["userAgent"] = f"{stolen.get('userAgent')} variant/{i % 3}"
        rec["eventName"] = ("ListBuckets", "GetObject")[i % 2]
        calls.append(rec)
    _layout(
        tmp_path, "111122223333_CloudTrail_us-east-1_20261102T0915Z_many.json.gz", [on_box, *calls]
    )
    ids = sorted(r["eventID"] for r in calls)
    kw = dict(ip_ranges=CT_RANGES, workers=1, fetch_ip_ranges=False, kinds=("credential",))
    det = "ec2_instance_credential_outside_aws"
    for n in (50, MAX_EVENT_IDS):
        (f,) = api.hunt([tmp_path], params={det: {"max_event_ids": n}}, **kw).findings
        assert f["event_count"] == len(calls)
        assert f["event_ids"] == ids[:n]
    with pytest.raises(ConfigError, match="max_event_ids"):
        api.hunt([tmp_path], params={det: {"max_event_ids": MAX_EVENT_IDS + 1}}, **kw)


def test_the_event_id_cap_is_the_one_the_view_keeps():
    from imdshunt.detect import MAX_EVENT_IDS
    from imdshunt.engine.duckdb import VIEWS_DIR

    sql = (VIEWS_DIR / "10_credential_activity.sql").read_text()
    assert f"FILTER (WHERE event_id IS NOT NULL)), 1, {MAX_EVENT_IDS})" in sql


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda sql: sql.replace("$max_event_ids", "$max_event_idz"), "undeclared param"),
        (lambda sql: sql.replace("$max_event_ids", "50"), "not used by query.sql"),
    ],
)
def test_a_detection_whose_params_do_not_match_its_query_is_refused(tmp_path, edit, message):
    import shutil

    from imdshunt.detect import load_detection
    from imdshunt.errors import DetectionError

    det = DETECTIONS["ec2_instance_credential_outside_aws"]
    folder = tmp_path / det.id
    shutil.copytree(det.folder, folder)
    # a '$' inside a comment or a string literal is no parameter
    sql = edit(det.sql) + "\n-- see $not_a_param\n"
    (folder / "query.sql").write_text(sql.replace("'high' AS confidence", "'$x' AS confidence"))
    with pytest.raises(DetectionError, match=message):
        load_detection(folder)


def test_shared_fragments_are_included_and_an_unknown_one_is_refused(tmp_path):
    import shutil

    from imdshunt.detect import load_detection
    from imdshunt.errors import DetectionError

    det = DETECTIONS["ecs_task_credential_outside_aws"]
    raw = (det.folder / "query.sql").read_text()
    assert "-- imdshunt: include credential_use" in raw
    assert "imdshunt: include" not in det.sql and "AS access_key_ids" in det.sql
    folder = tmp_path / det.id
    shutil.copytree(det.folder, folder)
    (folder / "query.sql").write_text(raw.replace("include credential_use", "include nowhere"))
    with pytest.raises(DetectionError, match="unknown SQL fragment 'nowhere'"):
        load_detection(folder)
