from __future__ import annotations

import datetime as dt
import json

import pytest

from imdshunt.enrich.ipranges import (
    AddressClassifier,
    load_allowlist,
    load_classifier,
    parse_ip_ranges,
    resolve_ip_ranges_path,
)
from imdshunt.errors import InputError, IpRangesError


@pytest.fixture()
def classifier(tmp_path):
    from tests.test_detection_fixtures import RANGES

    return load_classifier(RANGES, ["198.51.100.0/24", "2001:db8:beef::/48"], fetch=False)


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("35.174.154.220", "aws:EC2:us-east-1"),  # most specific service wins over AMAZON
        ("52.94.0.9", "aws:AMAZON:us-east-1"),
        ("3.5.1.1", "aws:S3:us-east-1"),
        ("2600:1f18:4000::1", "aws:EC2:us-east-1"),
        ("::ffff:35.174.154.220", "aws:EC2:us-east-1"),  # IPv4-mapped IPv6
        ("10.1.2.3", "private"),
        ("172.31.0.5", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),  # RFC 6598 shared space
        ("127.0.0.1", "private"),
        ("169.254.169.254", "private"),
        ("fd00:ec2::254", "private"),  # IPv6 ULA
        ("fe80::1", "private"),
        ("198.51.100.20", "allowlisted"),
        ("2001:db8:beef::5", "allowlisted"),
        ("AWS Internal", "aws-service"),
        ("ec2.amazonaws.com", "aws-service"),
        ("08.1.250.216", "invalid"),  # Stratus' anonymiser writes such values
        ("255.18.064.253", "invalid"),
        ("", "invalid"),
        ("1.2.3.4", "internet"),
        ("104.102.221.250", "internet"),
    ],
)
def test_address_classification(classifier, address, network):
    assert classifier.classify(address) == network


def test_allowlist_wins_over_aws_ranges():
    c = AddressClassifier([("35.168.0.0/13", "EC2", "us-east-1")], ["35.170.0.0/16"])
    assert c.classify("35.170.1.1") == "allowlisted"
    assert c.classify("35.169.1.1") == "aws:EC2:us-east-1"


def test_real_ranges_classify_the_datasets_addresses(realdata):
    c = load_classifier(realdata / "aws-ip-ranges" / "ip-ranges.json", fetch=False)
    assert c.classify("104.102.221.250") == "internet"
    assert c.classify("34.234.236.212") == "aws:EC2:us-east-1"
    assert c.classify("18.236.253.47") == "aws:EC2:us-west-2"
    assert c.info.sync_token == "1787411825"


def test_classify_table_has_one_row_per_distinct_address(classifier):
    t = classifier.classify_table(["1.2.3.4", "10.0.0.1", "AWS Internal"])
    assert t.column("network_kind").to_pylist() == ["internet", "private", "aws-service"]
    assert t.column("is_aws").to_pylist() == [False, False, True]


def test_info_reports_age(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(
        json.dumps(
            {
                "syncToken": "1",
                "createDate": "2026-10-01-00-00-00",
                "prefixes": [],
                "ipv6_prefixes": [],
            }
        )
    )
    _, info = parse_ip_ranges(p.read_bytes(), str(p))
    now = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    assert int(info.age_days(now)) == 57


def test_not_an_ip_ranges_file_is_a_typed_error(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"hello": 1}')
    with pytest.raises(IpRangesError, match="bad.json"):
        load_classifier(p, fetch=False)


def test_environment_variable_names_the_offline_copy(monkeypatch, tmp_path):
    from tests.test_detection_fixtures import RANGES

    monkeypatch.setenv("IMDSHUNT_IP_RANGES", str(RANGES))
    assert resolve_ip_ranges_path(None, fetch=False) == RANGES


def test_no_copy_and_no_fetch_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.delenv("IMDSHUNT_IP_RANGES", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(IpRangesError, match="ip-ranges update"):
        resolve_ip_ranges_path(None, fetch=False)


def test_allowlist_file_errors_name_file_and_line(tmp_path):
    p = tmp_path / "egress.txt"
    p.write_text("# our NAT\n198.51.100.0/24\nnot-a-cidr\n")
    with pytest.raises(InputError) as exc:
        load_allowlist(p)
    assert exc.value.line == 3 and "egress.txt:3" in str(exc.value)
