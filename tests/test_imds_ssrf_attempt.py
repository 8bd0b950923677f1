"""The imds_ssrf_attempt detection, run on DuckDB over its raw-format fixtures.

Until the engine's detection runner is merged, the query runs here directly: ``http_request``
and ``url_class`` are registered from Arrow tables and ``$params`` replaced by their defaults.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import yaml

from imdshunt.schema import HTTP_REQUEST
from imdshunt.sources.weblogs import read_web_log
from imdshunt.ssrf import URL_CLASS, classify_urls

FOLDER = Path(__file__).resolve().parents[1] / "src/imdshunt/detections/imds_ssrf_attempt"
FIXTURES = sorted(
    p for p in (FOLDER / "tests").glob("*match_*") if not p.name.endswith(".expect.json")
)


def run(paths: list[Path], **params) -> list[dict]:
    meta = yaml.safe_load((FOLDER / "detection.yml").read_text())
    values = {k: v["default"] for k, v in meta["params"].items()} | params
    sql = (FOLDER / "query.sql").read_text()
    for k, v in values.items():
        sql = sql.replace(f"${k}", f"'{v}'" if isinstance(v, str) else str(v))
    batches = [b for p in paths for b in read_web_log(p)]
    requests = pa.Table.from_batches(batches, schema=HTTP_REQUEST)
    url_class = classify_urls(requests)
    assert url_class.schema == URL_CLASS
    con = duckdb.connect()
    con.register("http_request", requests)
    con.register("url_class", url_class)
    return con.sql(sql).to_arrow_table().to_pylist()


def test_metadata_declares_what_the_loader_needs():
    meta = yaml.safe_load((FOLDER / "detection.yml").read_text())
    assert meta["id"] == FOLDER.name and meta["kind"] == "web"
    assert {"title", "severity", "mitre", "description", "runbook", "params"} <= set(meta)


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
def test_fixture(path):
    findings = run([path])
    if path.name.startswith("match_"):
        assert findings, f"{path.name} produced no finding"
    else:
        assert findings == [], f"{path.name} produced {findings}"


def test_many_requests_of_one_client_collapse_into_one_finding_listing_every_url():
    [f] = run([FOLDER / "tests/match_alb_one_client_many_encodings.log"])
    assert f["client_ip"] == "203.0.113.9" and f["target_ip"] == "10.0.1.17"
    assert f["endpoint"] == "ec2-imds-ipv4" and f["log_type"] == "alb"
    assert f["request_count"] == 5
    urls = {u["url"]: u["count"] for u in f["request_urls"]}
    assert len(urls) == 4 and urls["https://shop.example.com:443/fetch?url=http://2852039166/"] == 2
    # the representative request is the strongest one (a credentials path), as logged
    assert "security-credentials" in f["decoded"] and "%252F" in f["request_url"]
    assert "double-percent-encoded" in f["encoding"] and f["confidence"] == "high"
    assert f["line_number"] == 4 and f["source_file"].endswith("many_encodings.log")
    assert f["severity"] == "critical"  # a credentials path answered 200
    assert f["target_instance"] is None


def test_host_header_attempt_reports_the_status_and_keeps_high_severity_when_refused():
    [f] = run([FOLDER / "tests/match_alb_host_header.log"])
    assert "host-header" in f["encoding"] and f["status"] == 404 and f["severity"] == "high"


def test_min_confidence_param_filters():
    assert run([FOLDER / "tests/match_nginx_flaws_style_proxy.log"], min_confidence="high")
    assert not run([FOLDER / "tests/match_alb_host_header.log"], min_confidence="high") == []
    low_only = FOLDER / "tests/match_waf_forwarded_host.jsonl"
    assert run([low_only], min_confidence="high") == []


def test_spellings_resolvers_reject_are_medium_even_when_answered():
    """detection.yml: lowered to medium when every request used a spelling resolvers reject;
    a 200 on such a request (425.510.425.510) cannot have returned the credentials."""
    [f] = run([FOLDER / "tests/match_alb_overflowed_address_answered.log"])
    assert "overflow" in f["encoding"] and f["statuses"] == [200]
    assert "security-credentials" in f["decoded"]
    assert f["severity"] == "medium"


def test_one_resolvable_request_keeps_the_client_at_high(tmp_path):
    """The downgrade needs every request to be unreachable: an overflowed spelling answered
    200 next to a plain one that was refused is high (not critical: the plain one got 403)."""
    lines = (FOLDER / "tests/match_alb_overflowed_address_answered.log").read_text().splitlines()
    plain = lines[1].replace("http://7147006462/latest/meta-data/", "http://169.254.169.254/")
    plain = plain.replace(" 200 200 ", " 403 403 ")
    path = tmp_path / "alb.log"
    path.write_text(lines[0] + "\n" + plain + "\n")
    [f] = run([path])
    assert f["statuses"] == [200, 403] and f["severity"] == "high"


def test_raw_utf8_payloads_in_nginx_logs_are_each_found():
    findings = run([FOLDER / "tests/match_nginx_raw_utf8_payloads.log"])
    assert {f["client_ip"] for f in findings} == {"198.51.100.71", "198.51.100.72", "198.51.100.73"}
    assert all(f["decoded"].startswith("http://169.254.169.254/latest/") for f in findings)
    assert all("idna" in f["encoding"] for f in findings)


def test_a_name_on_the_senders_own_wildcard_dns_keeps_its_severity(tmp_path):
    """Unlike an overflowed number, 169.254.169.254.<their domain> may resolve to the
    endpoint (they run that DNS): a credentials path answered 200 stays critical."""
    line = (FOLDER / "tests/match_alb_overflowed_address_answered.log").read_text().splitlines()[0]
    path = tmp_path / "alb.log"
    path.write_text(line.replace("425.510.425.510", "169.254.169.254.rebind.example") + "\n")
    [f] = run([path])
    assert "dns-name" in f["encoding"] and f["confidence"] == "medium"
    assert f["severity"] == "critical"
