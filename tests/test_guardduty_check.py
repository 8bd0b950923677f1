"""GuardDuty readiness check against a moto server, and the findings comparison.

moto 5.2 implements ListDetectors, GetDetector, CreateFilter and GetFilter but not
ListFilters (the server answers 500), so the live check reports the filters as not checked;
the suppression verdict is tested on a filter moto stores and returns through GetFilter.
"""

from __future__ import annotations

import json

import boto3
import pytest

from imdshunt.respond.guardduty import (
    EXFIL_INSIDE,
    EXFIL_OUTSIDE,
    check_region,
    compare_findings,
    filter_suppresses,
)

pytestmark = pytest.mark.moto


def test_enabled_detector_and_routing_rule_are_found(aws_env):
    region = "eu-west-1"
    session = boto3.Session(region_name=region)
    detector = session.client("guardduty").create_detector(Enable=True)["DetectorId"]
    events = session.client("events")
    events.put_rule(Name="gd-to-sns", EventPattern=json.dumps({"source": ["aws.guardduty"]}))
    events.put_targets(
        Rule="gd-to-sns", Targets=[{"Id": "1", "Arn": "arn:aws:sns:eu-west-1:123456789012:sec"}]
    )
    events.put_rule(Name="unrelated", EventPattern=json.dumps({"source": ["aws.ec2"]}))

    res = check_region(session, region)

    assert res.detector_id == detector and res.detector_status == "ENABLED"
    assert res.routing_rules == ["gd-to-sns"]
    assert not res.filters_checked
    assert any("ListFilters" in e for e in res.errors), "moto lacks ListFilters: reported"


def test_region_without_detector_or_routing_is_a_problem(aws_env):
    res = check_region(boto3.Session(region_name="ap-south-1"), "ap-south-1")

    assert "no GuardDuty detector" in res.problems
    assert any("EventBridge" in p for p in res.problems)
    assert not res.ok


def test_archive_filter_on_the_exfiltration_type_is_a_suppression(aws_env):
    gd = boto3.Session(region_name="eu-central-1").client("guardduty")
    detector = gd.create_detector(Enable=True)["DetectorId"]
    gd.create_filter(
        DetectorId=detector,
        Name="hide-exfil",
        Action="ARCHIVE",
        FindingCriteria={"Criterion": {"type": {"Equals": [EXFIL_OUTSIDE]}}},
    )
    record = gd.get_filter(DetectorId=detector, FilterName="hide-exfil")

    assert filter_suppresses(record) == {EXFIL_OUTSIDE: "yes"}


def test_filters_that_do_not_archive_or_have_no_type_criterion():
    noop = {"Action": "NOOP", "FindingCriteria": {"Criterion": {"type": {"Eq": [EXFIL_INSIDE]}}}}
    broad = {"Action": "ARCHIVE", "FindingCriteria": {"Criterion": {"severity": {"Lt": 4}}}}
    neq = {"Action": "ARCHIVE", "FindingCriteria": {"Criterion": {"type": {"Neq": ["Recon:X"]}}}}
    assert filter_suppresses(noop) == {}
    assert filter_suppresses(broad) == {EXFIL_OUTSIDE: "possibly", EXFIL_INSIDE: "possibly"}
    assert filter_suppresses(neq) == {EXFIL_OUTSIDE: "yes", EXFIL_INSIDE: "yes"}


def _gd(
    fid, key, instance, first="2026-11-27T10:05:00Z", last="2026-11-27T10:20:00Z", t=EXFIL_OUTSIDE
):
    return {
        "Id": fid,
        "Type": t,
        "Resource": {
            "AccessKeyDetails": {"AccessKeyId": key, "PrincipalId": f"AROAX:{instance}"},
            "InstanceDetails": {"InstanceId": instance},
        },
        "Service": {"EventFirstSeen": first, "EventLastSeen": last},
    }


def _ours(instance, key, first="2026-11-27T10:00:00Z", last="2026-11-27T11:00:00Z"):
    return {
        "detection": "ec2_instance_credential_outside_aws",
        "credential_id": instance,
        "access_key_ids": [key],
        "source_ip": "203.0.113.50",
        "first_seen": first,
        "last_seen": last,
    }


def test_comparison_sorts_findings_into_both_only_guardduty_only_imdshunt():
    gd = [
        _gd("g1", "ASIAKEY1", "i-1"),
        _gd("g2", "ASIAOTHER", "i-2"),  # same instance as ours, other key, window overlaps
        _gd("g3", "ASIAKEY9", "i-9"),  # only GuardDuty
        _gd("g4", "ASIAOLD", "i-1", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"),
        _gd("g5", "ASIAKEY1", "i-1", t="Recon:IAMUser/MaliciousIPCaller"),
    ]
    ours = [_ours("i-1", "ASIAKEY1"), _ours("i-2", "ASIAKEY2"), _ours("i-3", "ASIAKEY3")]

    c = compare_findings(gd, ours)

    assert [x["guardduty_id"] for x in c.both] == ["g1", "g2"]
    assert [x["guardduty_id"] for x in c.only_guardduty] == ["g3"]
    assert [x["credential_id"] for x in c.only_imdshunt] == ["i-3"]
    assert c.outside_window == 1 and c.other_guardduty_types == 1
    assert c.window == ("2026-11-27T10:00:00Z", "2026-11-27T11:00:00Z")
