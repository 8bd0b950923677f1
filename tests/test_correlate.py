"""Specification of imds_theft_chain correlation (issue 6, part 4)."""

from __future__ import annotations

import datetime as dt

import pytest

from imdshunt.correlate import correlate_chains
from imdshunt.errors import UsageError

INSTANCE = "i-0abc1234def567890"
WEB = {
    "finding_id": "w1",
    "detection": "imds_ssrf_attempt",
    "log_type": "alb",
    "time": "2024-05-01T10:00:02.100Z",
    "first_seen": "2024-05-01T10:00:00.100Z",
    "last_seen": "2024-05-01T10:00:04.100Z",
    "client_ip": "203.0.113.9",
    "target_ip": "10.0.1.17",
    "target_instance": None,
    "request_url": "https://shop.example.com:443/fetch?url=http://2852039166/",
    "request_urls": [
        {"url": "https://shop.example.com:443/fetch?url=http://2852039166/", "count": 2},
        {"url": "https://shop.example.com:443/fetch?url=http://0xA9FEA9FE/latest/", "count": 1},
    ],
    "decoded": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "endpoint": "ec2-imds-ipv4",
    "encoding": "dotted,double-percent-encoded,embedded-url",
    "status": 200,
}
THEFT = {
    "finding_id": "t1",
    "detection": "ec2_instance_credential_outside_aws",
    "account_id": "111122223333",
    "role": "web-role",
    "role_arn": "arn:aws:iam::111122223333:role/web-role",
    "credential_type": "ec2-instance",
    "credential_id": INSTANCE,
    "source_ip": "198.51.100.200",
    "network": "internet",
    "access_key_ids": ["ASIAEXAMPLEKEY000001"],
    "event_count": 7,
    "actions": ["s3:ListBuckets", "sts:GetCallerIdentity"],
    "first_seen": "2024-05-01T10:20:00Z",
    "last_seen": "2024-05-01T10:35:00Z",
}
INVENTORY = {"10.0.1.17": INSTANCE}


def test_an_attempt_followed_by_theft_of_the_targets_credential_is_a_chain():
    [chain] = correlate_chains([WEB], [THEFT], INVENTORY)
    assert chain["detection"] == "imds_theft_chain" and chain["severity"] == "critical"
    assert chain["target_instance"] == INSTANCE and chain["target_ips"] == ["10.0.1.17"]
    # both sides' keys
    assert chain["ssrf_client_ips"] == ["203.0.113.9"]
    assert len(chain["ssrf_request_urls"]) == 2 and chain["ssrf_finding_ids"] == ["w1"]
    assert chain["credential_id"] == INSTANCE
    assert chain["access_key_ids"] == ["ASIAEXAMPLEKEY000001"]
    assert chain["source_ip"] == "198.51.100.200"
    assert chain["actions"] == ["s3:ListBuckets", "sts:GetCallerIdentity"]
    # timeline: attempt, first off-box use, what was done
    assert chain["first_attempt"] == "2024-05-01T10:00:00.100Z"
    assert chain["first_off_box_use"] == "2024-05-01T10:20:00Z"
    assert [e["event"] for e in chain["timeline"]] == [
        "ssrf_attempt",
        "first_off_box_use",
        "last_use",
    ]
    assert "s3:ListBuckets" in chain["timeline"][-1]["detail"]
    assert chain["minutes_attempt_to_use"] == pytest.approx(20.0, abs=0.1)


def test_without_inventory_or_target_instance_nothing_is_chained():
    assert correlate_chains([WEB], [THEFT], {}) == []


def test_a_web_finding_that_names_its_instance_needs_no_inventory():
    web = dict(WEB, target_instance=INSTANCE)
    assert len(correlate_chains([web], [THEFT])) == 1


def test_theft_outside_the_window_is_not_chained():
    late = dict(THEFT, first_seen="2024-05-02T10:00:01Z")
    assert correlate_chains([WEB], [late], INVENTORY) == []
    assert correlate_chains([WEB], [late], INVENTORY, window=dt.timedelta(hours=48))


def test_theft_before_the_attempt_is_not_chained_beyond_clock_skew():
    before = dict(THEFT, first_seen="2024-05-01T09:00:00Z")
    assert correlate_chains([WEB], [before], INVENTORY) == []
    skewed = dict(THEFT, first_seen="2024-05-01T09:58:00Z")  # 2 min before: clock skew
    assert len(correlate_chains([WEB], [skewed], INVENTORY)) == 1


def test_theft_of_another_instance_or_another_credential_type_is_not_chained():
    other = dict(THEFT, credential_id="i-0ffff0000ffff0000")
    ecs = dict(THEFT, credential_type="ecs-task")
    assert correlate_chains([WEB], [other, ecs], INVENTORY) == []


def test_several_attempts_on_one_instance_join_one_chain_per_theft():
    web2 = dict(
        WEB,
        finding_id="w2",
        client_ip="192.0.2.5",
        first_seen="2024-05-01T09:00:00Z",
        last_seen="2024-05-01T09:01:00Z",
        request_urls=[{"url": "/proxy/169.254.169.254/latest/meta-data/", "count": 1}],
    )
    [chain] = correlate_chains([WEB, web2], [THEFT], INVENTORY)
    assert chain["ssrf_client_ips"] == ["192.0.2.5", "203.0.113.9"]
    assert chain["first_attempt"] == "2024-05-01T09:00:00Z"
    assert chain["ssrf_finding_ids"] == ["w2", "w1"]
    assert len(chain["ssrf_request_urls"]) == 3


def test_datetimes_are_accepted_and_bad_times_are_a_usage_error():
    web = dict(WEB, first_seen=dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC))
    assert len(correlate_chains([web], [THEFT], INVENTORY)) == 1
    with pytest.raises(UsageError):
        correlate_chains([dict(WEB, first_seen="yesterday")], [THEFT], INVENTORY)
    with pytest.raises(UsageError):
        correlate_chains([WEB], [THEFT], INVENTORY, window=dt.timedelta(0))
