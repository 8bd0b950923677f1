"""Compile once, hunt many: the Parquet store of the canonical api_activity view."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from imdshunt import api, store
from imdshunt.cli import cli
from imdshunt.errors import InputError

DETECTIONS = Path(__file__).resolve().parents[1] / "src/imdshunt/detections"
MATCH = (
    DETECTIONS / "ec2_instance_credential_outside_aws/tests/"
    "match_imdsv1_session_used_from_internet.json"
)
NOMATCH = sorted((DETECTIONS / "ec2_instance_credential_outside_aws/tests").glob("nomatch_*.json"))
RANGES = Path(__file__).resolve().parent / "data" / "ip-ranges.fixture.json"


def _records(path: Path) -> list[dict]:
    doc = json.loads(path.read_text())
    return doc["Records"] if isinstance(doc, dict) else doc


def _deliver(root: Path, name: str, records: list[dict]) -> Path:
    d = root / "AWSLogs" / "111122223333" / "CloudTrail" / "us-east-1" / "2026" / "11" / "02"
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"111122223333_CloudTrail_us-east-1_20261102T0915Z_{name}.json.gz"
    p.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    return p


def _hunt(paths, **kw):
    return api.hunt(paths, ip_ranges=RANGES, workers=1, fetch_ip_ranges=False, **kw)


def test_second_ingest_reads_only_new_files(tmp_path):
    logs, st = tmp_path / "logs", tmp_path / "store"
    _deliver(logs, "a", _records(NOMATCH[0]))
    _deliver(logs, "b", _records(NOMATCH[1]))
    first = store.ingest([logs], st, workers=1)
    assert (first.files_new, first.files_unchanged) == (2, 0)
    _deliver(logs, "c", _records(MATCH))
    second = store.ingest([logs], st, workers=1)
    assert (second.files_new, second.files_unchanged) == (1, 2)
    assert second.records == len(_records(MATCH))
    third = store.ingest([logs], st, workers=1)
    assert (third.files_new, third.files_unchanged, third.records) == (0, 3, 0)


def test_store_is_partitioned_by_date_and_account(tmp_path):
    _deliver(tmp_path / "logs", "a", _records(MATCH))
    store.ingest([tmp_path / "logs"], tmp_path / "store", workers=1)
    parts = sorted(
        p.relative_to(tmp_path / "store").parent.as_posix()
        for p in (tmp_path / "store").rglob("*.parquet")
        if not p.relative_to(tmp_path / "store").as_posix().startswith("_")
    )
    assert parts and all(p.startswith("date=20") and "/account=" in p for p in parts)


def test_hunt_over_store_gives_the_same_findings_as_the_raw_hunt(tmp_path):
    logs = tmp_path / "logs"
    _deliver(logs, "match", _records(MATCH))
    for i, f in enumerate(NOMATCH):
        _deliver(logs, f"nomatch{i}", _records(f))
    store.ingest([logs], tmp_path / "store", workers=1)
    raw = _hunt([logs])
    compiled = _hunt([], store=tmp_path / "store")
    assert raw.findings and compiled.findings == raw.findings
    assert compiled.stats.records_read == raw.stats.records_read


def test_a_redelivered_event_ingested_later_counts_once(tmp_path):
    logs = tmp_path / "logs"
    _deliver(logs, "first", _records(MATCH))
    store.ingest([logs], tmp_path / "store", workers=1)
    _deliver(logs, "again", _records(MATCH))
    store.ingest([logs], tmp_path / "store", workers=1)
    result = _hunt([], store=tmp_path / "store")
    assert result.stats.duplicate_records == len(_records(MATCH))
    assert result.findings == _hunt([logs]).findings


def test_hunting_a_folder_that_is_not_a_store_is_an_input_error(tmp_path):
    with pytest.raises(InputError):
        _hunt([], store=tmp_path)


def test_cli_ingest_then_hunt_store_matches_raw_hunt(tmp_path):
    logs = tmp_path / "logs"
    _deliver(logs, "match", _records(MATCH))
    _deliver(logs, "nomatch", _records(NOMATCH[0]))
    runner = CliRunner()
    st = str(tmp_path / "st")
    res = runner.invoke(cli, ["ingest", str(logs), "--store", st, "--workers", "1"])
    assert res.exit_code == 0, res.output
    common = ["--ip-ranges", str(RANGES), "--format", "jsonl", "-q", "--workers", "1"]
    raw = runner.invoke(cli, ["hunt", str(logs), *common])
    compiled = runner.invoke(cli, ["hunt", "--store", st, *common])
    assert raw.exit_code == compiled.exit_code == 1
    assert compiled.stdout == raw.stdout and raw.stdout.strip()


def test_cli_hunt_needs_paths_or_a_store():
    res = CliRunner().invoke(cli, ["hunt"])
    assert res.exit_code == 2


def test_a_changed_file_is_read_again_and_its_records_count_once(tmp_path):
    import os

    logs = tmp_path / "logs"
    f = _deliver(logs, "a", _records(MATCH))
    store.ingest([logs], tmp_path / "store", workers=1)
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = store.ingest([logs], tmp_path / "store", workers=1)
    assert again.files_new == 1
    result = _hunt([], store=tmp_path / "store")
    assert result.stats.duplicate_records == len(_records(MATCH))
    assert result.findings == _hunt([logs]).findings


def test_derived_views_are_kept_by_ingest_used_by_hunts_and_dropped_when_stale(tmp_path):
    """The call groups and vending events are computed once per ingest; a hunt of the store
    alone reads them, gives the raw hunt's findings, and ignores them when the store's files
    or the view SQL changed since."""
    from imdshunt.engine.duckdb import DuckDBEngine
    from imdshunt.synth import generate_org

    org = tmp_path / "org"
    generate_org(org, seed=5, records=6000, workers=1)
    kw = dict(
        ip_ranges=org / "ip-ranges.json", workers=1, fetch_ip_ranges=False, kinds=("credential",)
    )
    st = tmp_path / "store"
    store.ingest([org / "AWSLogs"], st, workers=1)
    derived = store._load_derived(st)
    assert set(derived) == set(store.DERIVED_VIEWS)

    seen = {}
    real_init = DuckDBEngine.ensure_views

    def spy(self):
        real_init(self)
        seen["provided"] = dict(self._provided)

    raw = api.hunt([org / "AWSLogs"], **kw)
    DuckDBEngine.ensure_views = spy
    try:
        compiled = api.hunt([], store=st, **kw)
        assert seen["provided"] == derived
        assert raw.findings and compiled.findings == raw.findings
        # with raw files beside the store, the store's precomputed views do not hold them all
        extra = tmp_path / "more"
        _deliver(extra, "m", _records(MATCH))
        mixed = api.hunt([extra], store=st, **kw)
        assert seen["provided"] == {}
        assert mixed.findings == api.hunt([org / "AWSLogs", extra], **kw).findings
        # an upgrade that changes the view SQL makes the files stale
        doc = json.loads((st / store.DUPLICATES).read_text())
        doc["views_digest"] = "0" * 64
        (st / store.DUPLICATES).write_text(json.dumps(doc))
        assert store._load_derived(st) == {}
        assert api.hunt([], store=st, **kw).findings == raw.findings
        assert seen["provided"] == {}
    finally:
        DuckDBEngine.ensure_views = real_init


def test_a_store_hunt_keeps_to_the_window_accounts_and_regions(tmp_path):
    """--since/--until/--accounts/--regions restrict a store hunt as they restrict discovery."""
    import datetime as dt

    from imdshunt.synth import generate_org

    org = tmp_path / "org"
    generate_org(org, seed=5, records=6000, days=3, workers=1)
    st = tmp_path / "store"
    store.ingest([org / "AWSLogs"], st, workers=1)
    kw = dict(
        ip_ranges=org / "ip-ranges.json", workers=1, fetch_ip_ranges=False, kinds=("credential",)
    )
    whole = api.hunt([], store=st, **kw)
    days = sorted({p.name.removeprefix("date=") for p in st.glob("date=*")})
    assert len(days) >= 2
    day = dt.date.fromisoformat(days[1])
    window = api.hunt([], store=st, since=day, until=day, **kw)
    assert 0 < window.stats.records_read < whole.stats.records_read
    for f in window.findings:
        assert f["first_seen"][:10] == f["last_seen"][:10] == day.isoformat()

    account = whole.findings[0]["account_id"]
    one = api.hunt([], store=st, accounts=[account], **kw)
    assert one.findings and {f["account_id"] for f in one.findings} == {account}
    region = whole.findings[0]["regions"][0]
    by_region = api.hunt([], store=st, regions=[region], **kw)
    assert 0 < by_region.stats.records_read < whole.stats.records_read
    assert all(f["regions"] == [region] for f in by_region.findings)
