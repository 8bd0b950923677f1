"""Specification of the web log sources (issue 6, part 1)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from isal import igzip

from imdshunt.errors import InputError, UsageError
from imdshunt.schema import HTTP_REQUEST
from imdshunt.sources.weblogs import ParseAccounting, read_web_log, read_web_logs, sniff_web_log

DATA = Path(__file__).parent / "data" / "weblogs"
CLF = b'1.2.3.4 - - [10/Oct/2025:13:55:36 +0000] "GET / HTTP/1.1" 200 1\n'
SAMPLES = "web-log-format-samples"
UTC = dt.UTC

ALB_2024 = (
    "https 2024-05-01T10:00:00.123456Z app/web/50dc6c495c0c9188 203.0.113.9:51000 10.0.1.17:8080 "
    '0.000 0.002 0.000 200 200 120 512 "GET https://shop.example.com:443/fetch?url=http://'
    '0xa9fea9fe/latest/meta-data/ HTTP/1.1" "python-requests/2.31.0" ECDHE-RSA-AES128-GCM-SHA256 '
    "TLSv1.2 arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web/73e2d6bc24d8a067 "
    '"Root=1-6632123a-1234567890abcdef12345678" "shop.example.com" '
    '"arn:aws:acm:us-east-1:111122223333:certificate/abc" 0 2024-05-01T10:00:00.120000Z '
    '"forward" "-" "-" "10.0.1.17:8080" "200" "-" "-" TID_1234567890abcdef "-" "-" "-"'
)


def _rows(path, **kw):
    acc = ParseAccounting()
    batches = list(read_web_log(path, accounting=acc, **kw))
    table = pa.Table.from_batches(batches, schema=HTTP_REQUEST)
    return table.to_pylist(), acc


# ------------------------------------------------------------------ ALB


def test_alb_documented_examples_parse_every_line(realdata):
    rows, acc = _rows(realdata / SAMPLES / "alb-access-log-examples.awsdocs.log")
    assert acc.lines_read == 7 and acc.rows == 7 and acc.lines_skipped == 0
    first = rows[0]
    assert first["log_type"] == "alb"
    assert first["time"] == dt.datetime(2018, 7, 2, 22, 23, 0, 186641, tzinfo=UTC)
    assert first["client_ip"] == "192.168.131.39" and first["target_ip"] == "10.0.0.1"
    assert first["url"] == "http://www.example.com:80/" and first["host"] == "www.example.com"
    assert first["method"] == "GET" and first["status"] == 200
    assert rows[5]["target_ip"] is None  # Lambda target logs "-"
    assert rows[6]["status"] == 502
    assert [r["line_number"] for r in rows] == list(range(1, 8))


def test_alb_newer_trailing_fields_are_tolerated_in_the_s3_layout_gzip(tmp_path):
    folder = tmp_path / "AWSLogs/111122223333/elasticloadbalancing/us-east-1/2024/05/01"
    folder.mkdir(parents=True)
    name = (
        "111122223333_elasticloadbalancing_us-east-1_app.web.50dc6c495c0c9188_"
        "20240501T1000Z_10.0.0.5_abc.log.gz"
    )
    path = folder / name
    path.write_bytes(igzip.compress((ALB_2024 + "\n").encode()))
    assert sniff_web_log(path, path.read_bytes()[:4096]) == "alb"
    rows, acc = _rows(path)
    assert acc.rows == 1
    assert rows[0]["target_ip"] == "10.0.1.17" and rows[0]["client_ip"] == "203.0.113.9"
    assert rows[0]["url"].endswith("url=http://0xa9fea9fe/latest/meta-data/")
    assert rows[0]["user_agent"] == "python-requests/2.31.0"


def test_alb_bad_lines_are_counted_with_file_line_and_reason(tmp_path):
    path = tmp_path / "alb.log"
    path.write_text(
        ALB_2024 + "\n"
        "https 2024-05-01T10:00:01Z app/web/1 203.0.113.9:1 10.0.1.17:80 0.0 0.0\n"
        + ALB_2024.replace('"python-requests/2.31.0"', '"python-requests/2.31.0')
        + "\n\n"
    )
    rows, acc = _rows(path, log_type="alb")
    assert acc.lines_read == 3 and acc.rows == 1 and acc.blank_lines == 1
    assert acc.skipped == {"too few fields": 1, "broken quoting": 1}
    ex = acc.examples["too few fields"][0]
    assert (ex.source_file, ex.line_number) == (str(path), 2)
    assert acc.examples["broken quoting"][0].line_number == 3


# ------------------------------------------------------------------ CloudFront


def test_cloudfront_fields_header_drives_columns_and_user_agent_is_decoded(realdata):
    rows, acc = _rows(realdata / SAMPLES / "cloudfront-standard-log-examples.awsdocs.log")
    assert acc.rows == 6 and acc.header_lines == 2 and acc.lines_skipped == 0
    r = rows[0]
    assert r["log_type"] == "cloudfront" and r["client_ip"] == "192.0.2.100"
    assert r["time"] == dt.datetime(2019, 12, 4, 21, 2, 31, tzinfo=UTC)
    assert r["url"] == "/index.html" and r["status"] == 200
    assert r["user_agent"].startswith("Mozilla/5.0 (Windows NT 10.0; Win64; x64)")
    assert rows[3]["host"] == "www.example.com"  # x-host-header, not the distribution domain


def test_cloudfront_query_is_joined_and_reordered_fields_follow_the_header(tmp_path):
    path = tmp_path / "E2EXAMPLE.2024-05-01-10.abcd1234"
    path.write_text(
        "#Version: 1.0\n"
        "#Fields: c-ip date time cs-uri-query cs-uri-stem sc-status cs(User-Agent)\n"
        "198.51.100.3\t2024-05-01\t10:00:00\turl=http%253A%252F%252F169.254.169.254\t/fetch\t200\tcurl/8\n"
    )
    rows, _ = _rows(path)
    assert rows[0]["url"] == "/fetch?url=http%253A%252F%252F169.254.169.254"
    assert rows[0]["client_ip"] == "198.51.100.3"


def test_cloudfront_data_before_any_fields_header_is_skipped_with_a_reason(tmp_path):
    path = tmp_path / "cf.log"
    path.write_text("2024-05-01\t10:00:00\tLAX1\t1\t198.51.100.3\tGET\n")
    rows, acc = _rows(path, log_type="cloudfront")
    assert rows == [] and acc.skipped == {"no #Fields header before data": 1}


# ------------------------------------------------------------------ WAF


def test_waf_documented_examples(realdata):
    rows, acc = _rows(realdata / SAMPLES / "waf-log-examples.awsdocs.jsonl")
    assert acc.rows == 6 and acc.lines_skipped == 0
    r = rows[0]
    assert r["log_type"] == "waf" and r["client_ip"] == "1.1.1.1"
    assert r["time"] == dt.datetime(2019, 12, 13, 23, 40, 12, 771000, tzinfo=UTC)
    assert r["url"] == "/myUri" and r["host"] == "localhost:1989" and r["status"] is None
    assert json.loads(r["headers"])["x-stm-test"] == "10 AND 1=1"
    assert rows[5]["status"] == 405  # responseCodeSent


def test_waf_args_become_the_query_and_bad_json_is_counted(tmp_path):
    rec = {
        "timestamp": 1714557600000,
        "webaclId": "arn:aws:wafv2:us-east-1:111122223333:regional/webacl/w/1",
        "action": "ALLOW",
        "httpRequest": {
            "clientIp": "203.0.113.9",
            "headers": [{"name": "Host", "value": "169.254.169.254"}],
            "uri": "/fetch",
            "args": "url=http://2852039166/",
            "httpMethod": "GET",
        },
    }
    path = tmp_path / "waf.jsonl"
    path.write_text(json.dumps(rec) + "\n{not json\n")
    rows, acc = _rows(path)
    assert (
        rows[0]["url"] == "/fetch?url=http://2852039166/" and rows[0]["host"] == "169.254.169.254"
    )
    assert acc.skipped == {"invalid JSON": 1}


# ------------------------------------------------------------------ nginx / Apache


def test_nginx_combined_fixture():
    rows, acc = _rows(DATA / "nginx_combined.log")
    assert acc.lines_read == 7 and acc.blank_lines == 1
    assert acc.skipped == {"not combined log format": 1, "broken quoting": 1}
    assert acc.rows == 5 and {r["log_type"] for r in rows} == {"nginx"}
    second = rows[1]
    assert second["time"] == dt.datetime(2025, 10, 10, 11, 55, 37, tzinfo=UTC)  # +0200 -> UTC
    assert second["url"].startswith("/fetch?url=http%3A%2F%2F169.254.169.254")
    assert rows[2]["method"] is None  # TLS bytes sent to a plain-HTTP port are kept, raw
    assert rows[3]["url"] == '/q?text=say "hi"'  # nginx \x22 escape
    assert rows[4]["client_ip"] == "2001:db8::5" and rows[4]["line_number"] == 8


@pytest.mark.parametrize(
    ("log_type", "logged", "url"),
    [
        # raw UTF-8 in the request: nginx and Apache log each byte as \xHH
        ("nginx", r"/p?u=http://\xE2\x91\xA0\xE2\x91\xA5\xE2\x91\xA8.254", "/p?u=http://①⑥⑨.254"),
        ("apache", r"/p?u=169\xe3\x80\x82254", "/p?u=169。254"),
        # one pass: nginx's escaped backslash then quote is a backslash and a quote
        ("nginx", r"/p?q=\x5C\x22", '/p?q=\\"'),
        ("apache", r"/p?q=\\\"x\"", '/p?q=\\"x"'),
        # bytes that are not UTF-8 stay as the log wrote them
        ("nginx", r"/p?q=\xFF\xFEok", r"/p?q=\xff\xfeok"),
    ],
)
def test_combined_log_escapes_are_undone_as_bytes(tmp_path, log_type, logged, url):
    path = tmp_path / "access.log"
    line = f'192.0.2.1 - - [10/Oct/2025:13:55:36 +0000] "GET {logged} HTTP/1.1" 200 1 "-" "x"\n'
    path.write_text(line, encoding="ascii")
    rows, acc = _rows(path, log_type=log_type)
    assert acc.rows == 1 and rows[0]["url"] == url


def test_only_the_combined_formats_undo_backslash_x_escapes(tmp_path):
    """ALB and CloudFront do not escape that way: a logged \\xE3 stays text."""
    path = tmp_path / "alb.log"
    path.write_text(ALB_2024.replace("/fetch?url=", "/fetch?x=\\xE3\\x80\\x82&url=") + "\n")
    rows, _ = _rows(path, log_type="alb")
    assert "/fetch?x=\\xE3\\x80\\x82&url=" in rows[0]["url"]


def test_apache_vhost_combined_and_common_log_format():
    rows, acc = _rows(DATA / "apache_vhost_combined.log")
    assert {r["log_type"] for r in rows} == {"apache"}  # the file name says apache
    assert rows[0]["host"] == "shop.example.com" and rows[0]["client_ip"] == "192.0.2.44"
    assert rows[0]["user_agent"] == 'Mozilla/5.0 "quoted" agent'
    assert rows[2]["user_agent"] is None and rows[2]["status"] == 200
    assert acc.skipped == {"bad timestamp": 1}


# ------------------------------------------------------------------ detection and forcing


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("x.log", b"#Version: 1.0\n#Fields: date time\n", "cloudfront"),
        ("x.log", b'{"timestamp":1,"webaclId":"a","httpRequest":{}}\n', "waf"),
        ("x.log", ALB_2024.encode() + b"\n", "alb"),
        ("access.log", CLF, "nginx"),
        ("/var/log/httpd/access_log", CLF, "apache"),
        ("AWSLogs/1/elasticloadbalancing/us-east-1/2024/05/01/a.log.gz", b"", "alb"),
        ("AWSLogs/1/WAFLogs/us-east-1/acl/2024/05/01/10/00/a.log.gz", b"", "waf"),
        ("x.log", b'{"Records": []}', None),
        ("x.log", b"hello world\n", None),
    ],
)
def test_sniff_by_content_then_layout(name, head, expected):
    assert sniff_web_log(name, head) == expected


def test_sniff_reads_through_gzip():
    assert sniff_web_log("a.gz", igzip.compress(b"#Version: 1.0\n")) == "cloudfront"


def test_an_unrecognised_file_is_an_input_error_and_a_forced_type_must_exist(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(InputError):
        list(read_web_log(path))
    with pytest.raises(UsageError):
        list(read_web_log(path, "iis"))


def test_forcing_a_type_overrides_sniffing(tmp_path):
    path = tmp_path / "access.log"
    path.write_text((DATA / "nginx_combined.log").read_text())
    rows, _ = _rows(path, log_type="apache")
    assert {r["log_type"] for r in rows} == {"apache"}


def test_a_truncated_gzip_keeps_what_was_read_and_records_the_error(tmp_path):
    line = '1.2.3.4 - - [10/Oct/2025:13:55:36 +0000] "GET / HTTP/1.1" 200 1 "-" "x"\n'
    blob = igzip.compress((line * 2000).encode())
    path = tmp_path / "access.log.gz"
    path.write_bytes(blob[: len(blob) // 2])
    rows, acc = _rows(path)
    assert 0 < acc.rows < 2000 and len(acc.file_errors) == 1


def test_read_web_logs_walks_folders_and_accounts_for_every_line():
    table, acc = read_web_logs([DATA])
    assert table.schema == HTTP_REQUEST
    assert acc.files == 2
    assert acc.lines_read == acc.rows + acc.lines_skipped == 11
