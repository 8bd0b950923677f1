"""DuckDB parses delivered CloudTrail itself (sources/cloudtrail_native.py), the exact decoder
reads everything else, and a hunt gives the same rows, findings and accounting either way."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from imdshunt import api
from imdshunt.sources import cloudtrail_native
from imdshunt.synth import generate_org
from tests.test_cloudtrail_source import RANGES, _records

COLUMNS = "* EXCLUDE (source_file)"


def _compact(records: list[dict]) -> bytes:
    """A file as CloudTrail delivers it: one line, no spaces, eventVersion first."""
    out = []
    for r in records:
        r = dict(r)
        out.append({"eventVersion": r.pop("eventVersion", "1.08"), **r})
    return json.dumps({"Records": out}, separators=(",", ":")).encode()


def _hunt(paths, monkeypatch, parser: str, **kw):
    monkeypatch.setenv(cloudtrail_native.PARSER_ENV, parser)
    return api.hunt([str(p) for p in paths], fetch_ip_ranges=False, workers=1, **kw)


def _rows(result) -> list[dict]:
    table = result.engine.query(
        "SELECT * FROM api_activity ORDER BY source_file, source_record", label="rows"
    )
    return table.to_pylist()


def _same_hunt(paths, monkeypatch, **kw):
    native = _hunt(paths, monkeypatch, "native", **kw)
    exact = _hunt(paths, monkeypatch, "exact", **kw)
    assert _rows(native) == _rows(exact)
    assert native.findings == exact.findings
    assert native.naive == exact.naive
    n, e = native.stats.to_dict(), exact.stats.to_dict()
    assert n.pop("records_parsed_natively") > 0
    assert e.pop("records_parsed_natively") == 0
    assert n == e
    return native, exact


def test_synthetic_org_gives_the_exact_decoders_rows_and_findings(tmp_path, monkeypatch):
    generate_org(tmp_path, seed=5, records=2500, workers=1)
    kw = dict(ip_ranges=tmp_path / "ip-ranges.json", inventory=[tmp_path / "inventory"])
    native, _ = _same_hunt([tmp_path / "AWSLogs"], monkeypatch, **kw)
    assert native.findings
    # every CloudTrail record of the delivered files was parsed by DuckDB
    assert native.stats.records_parsed_natively == native.stats.records_read
    assert "parsed by the engine's JSON reader, 0 by the exact decoder" in native.stats.summary()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def test_mixed_layouts_duplicates_and_untimed_records_are_read_alike(tmp_path, monkeypatch):
    recs = _records()
    ct = tmp_path / "AWSLogs" / "111122223333" / "CloudTrail" / "us-east-1" / "2026" / "11" / "02"
    untimed = {k: v for k, v in recs[1].items() if k != "eventTime"}
    _write(ct / "a.json.gz", _compact(recs))
    # redelivered in a second file, with a record that has no time
    _write(ct / "b.json.gz", _compact([recs[0], untimed, recs[2]]))
    # the same records pretty-printed and as JSON lines: the exact decoder's
    _write(ct / "c.json", json.dumps({"Records": recs[:2]}, indent=2).encode())
    _write(ct / "d.json", "".join(json.dumps(r) + "\n" for r in recs[2:4]).encode())
    native, _ = _same_hunt([tmp_path], monkeypatch, ip_ranges=RANGES)
    assert native.stats.records_skipped["record without eventTime"] == 1
    assert native.stats.record_skip_examples["record without eventTime"].endswith("b.json.gz:2")
    assert native.stats.duplicate_records > 0
    assert 0 < native.stats.records_parsed_natively < native.stats.records_read


def test_a_chunk_duckdb_rejects_is_read_by_the_exact_decoder(tmp_path, monkeypatch):
    recs = _records()
    ct = tmp_path / "AWSLogs" / "111122223333" / "CloudTrail" / "us-east-1" / "2026" / "11" / "02"
    _write(ct / "good.json.gz", _compact(recs))
    # A record whose first key is not eventVersion: the split leaves it on the line of the
    # one before, which is then not one JSON object, so DuckDB rejects the chunk.
    second = {k: v for k, v in recs[1].items() if k != "eventVersion"}
    second["eventVersion"] = "1.08"
    second = json.dumps(second, separators=(",", ":")).encode()
    _write(ct / "odd.json.gz", _compact(recs[:1])[: -len(b"]}")] + b"," + second + b"]}")
    native = _hunt([tmp_path], monkeypatch, "native", ip_ranges=RANGES)
    exact = _hunt([tmp_path], monkeypatch, "exact", ip_ranges=RANGES)
    assert _rows(native) == _rows(exact)
    assert native.stats.records_read == exact.stats.records_read
    assert native.stats.records_parsed_natively == 0  # the whole chunk went to the exact path


@pytest.mark.parametrize(
    "text, delivered",
    [
        (b'{"Records":[{"eventVersion":"1.08","a":"},{\\"eventVersion\\":"}]}', 1),
        (b'{"Records":[{"eventVersion":"1.08"},{"eventVersion":"1.09"}]}\n', 2),
        (b'{"Records": [{"eventVersion":"1.08"}]}', None),
        (b'{"Records":[]}', None),
        (b'[{"eventVersion":"1.08"}]', None),
        (b'{"Records":[{"eventVersion":"1.08"}],"x":1}', None),
    ],
)
def test_only_the_delivered_layout_is_split(text, delivered):
    parts = cloudtrail_native.delivered_records(text)
    assert (len(parts) if parts is not None else None) == delivered


def _ingest_and_hunt(org: Path, store_dir: Path, monkeypatch, parser: str, **kw):
    from imdshunt import store

    monkeypatch.setenv(cloudtrail_native.PARSER_ENV, parser)
    compiled = store.ingest([org / "AWSLogs"], store_dir, workers=1)
    hunted = api.hunt([], store=store_dir, fetch_ip_ranges=False, workers=1, **kw)
    return compiled, hunted


def test_ingest_parses_delivered_files_natively_into_the_same_store(tmp_path, monkeypatch):
    """``imdshunt ingest`` goes through DuckDB's parse too: the same Hive partitions, rows,
    findings and accounting as the exact decoder's store."""
    org = tmp_path / "org"
    generate_org(org, seed=5, records=2500, workers=1)
    kw = dict(ip_ranges=org / "ip-ranges.json", inventory=[org / "inventory"])
    native, native_hunt = _ingest_and_hunt(org, tmp_path / "native", monkeypatch, "native", **kw)
    exact, exact_hunt = _ingest_and_hunt(org, tmp_path / "exact", monkeypatch, "exact", **kw)

    assert native.stats.records_parsed_natively == native.stats.records_read > 0
    assert exact.stats.records_parsed_natively == 0
    n, e = native.stats.to_dict(), exact.stats.to_dict()
    n.pop("records_parsed_natively"), e.pop("records_parsed_natively")
    assert n == e
    assert native.records == exact.records

    def partitions(root: Path) -> set[str]:
        return {p.parent.relative_to(root).as_posix() for p in root.rglob("*.parquet")}

    assert partitions(tmp_path / "native") == partitions(tmp_path / "exact")
    assert not list((tmp_path / "native").glob("*.parquet"))  # no scratch file left at the root
    assert native_hunt.findings and native_hunt.findings == exact_hunt.findings
    assert _rows(native_hunt) == _rows(exact_hunt)
