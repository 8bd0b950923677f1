"""Policy documents and the tool's own IAM policy: pure functions, no AWS."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from imdshunt.errors import UsageError
from imdshunt.permissions import DECLARED, declared_permissions
from imdshunt.respond import (
    ACTIONS,
    egress_from_inventory,
    iam_policy,
    target_from_finding,
    targets_from_findings,
)
from imdshunt.respond.policies import (
    pin_policy,
    revoke_policy_cutoff,
    role_wide_revoke_policy,
    session_policy_name,
    session_revoke_policy,
)
from imdshunt.respond.targets import select_finding

CUTOFF = datetime(2026, 11, 27, 12, 0, 5, tzinfo=UTC)


def test_session_revoke_targets_role_unique_id_and_session_name():
    doc = session_revoke_policy("AROAEXAMPLE", "i-0abc", CUTOFF)
    cond = doc["Statement"][0]["Condition"]
    assert cond == {
        "StringEquals": {"aws:userId": "AROAEXAMPLE:i-0abc"},
        "DateLessThan": {"aws:TokenIssueTime": "2026-11-27T12:00:05Z"},
    }
    assert revoke_policy_cutoff(doc) == CUTOFF


def test_role_wide_revoke_is_the_consoles_document():
    (st,) = role_wide_revoke_policy(CUTOFF)["Statement"]
    assert st == {
        "Effect": "Deny",
        "Action": ["*"],
        "Resource": ["*"],
        "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2026-11-27T12:00:05Z"}},
    }


def test_session_policy_name_is_a_valid_iam_name():
    assert session_policy_name("i-0abc") == "imdshunt-revoke-i-0abc"
    assert session_policy_name("a b/c") == "imdshunt-revoke-a-b-c"


def test_pin_policy_only_judges_each_path_by_the_keys_it_has():
    doc = pin_policy(["203.0.113.9", "2001:db8::1"])
    by_sid = {s["Sid"]: s["Condition"] for s in doc["Statement"]}
    vpc = by_sid["DenyInstanceCredentialsViaOtherVpcEndpoint"]
    assert vpc["StringNotEquals"] == {"aws:Ec2InstanceSourceVpc": "${aws:SourceVpc}"}
    assert vpc["Null"] == {"ec2:SourceInstanceARN": "false", "aws:SourceVpc": "false"}
    ip = by_sid["DenyInstanceCredentialsFromOtherPrivateAddress"]
    assert ip["StringNotEquals"] == {"aws:Ec2InstanceSourcePrivateIPv4": "${aws:VpcSourceIp}"}
    assert ip["Null"]["aws:VpcSourceIp"] == "false"
    egress = by_sid["DenyInstanceCredentialsOutsideEgressAddresses"]
    assert egress["NotIpAddress"] == {"aws:SourceIp": ["2001:db8::1/128", "203.0.113.9/32"]}
    assert egress["Null"] == {"ec2:SourceInstanceARN": "false", "aws:SourceVpc": "true"}
    for cond in by_sid.values():
        assert cond["BoolIfExists"] == {"aws:ViaAWSService": "false"}


def test_egress_from_inventory_keeps_only_the_instances_networks():
    instances = [
        {"InstanceId": "i-1", "VpcId": "vpc-a", "PublicIpAddress": "198.51.100.1"},
        {
            "InstanceId": "i-2",
            "VpcId": "vpc-a",
            "NetworkInterfaces": [{"Ipv6Addresses": [{"Ipv6Address": "2001:db8::5"}]}],
        },
    ]
    nats = [
        {"VpcId": "vpc-a", "State": "available", "NatGatewayAddresses": [{"PublicIp": "1.2.3.4"}]},
        {"VpcId": "vpc-b", "State": "available", "NatGatewayAddresses": [{"PublicIp": "5.6.7.8"}]},
    ]
    addresses = [{"InstanceId": "i-2", "PublicIp": "9.9.9.9"}, {"PublicIp": "8.8.8.8"}]
    assert egress_from_inventory(instances, nats, addresses) == [
        "1.2.3.4",
        "198.51.100.1",
        "2001:db8::5",
        "9.9.9.9",
    ]


def test_iam_policy_holds_every_declared_permission():
    policy = iam_policy()
    granted = {a for st in policy["Statement"] for a in st["Action"]}
    declared = {p.action for p in declared_permissions()}
    for action in ACTIONS.values():  # each step's permissions are filed under respond
        steps = {p.action for p in action.permissions + action.read_permissions}
        assert steps <= {p.action for p in DECLARED["respond"]}
    assert granted == declared
    assert "organizations:ListAccounts" in granted and "guardduty:ListFilters" in granted
    assert "ec2:DescribeVpcEndpoints" in granted  # inventory collect calls it
    assert all(st["Effect"] == "Allow" for st in policy["Statement"])


def test_iam_policy_scopes_pass_role_to_ec2_and_tags_to_imdshunts_key():
    policy = iam_policy(["respond"])
    (pass_role,) = [s for s in policy["Statement"] if "iam:PassRole" in s["Action"]]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
    (tags,) = [s for s in policy["Statement"] if "ec2:CreateTags" in s["Action"]]
    assert "aws:TagKeys" in tags["Condition"]["ForAllValues:StringEquals"]
    assert "organizations:ListAccounts" not in str(policy)


def test_unknown_policy_part_is_refused():
    with pytest.raises(ValueError):
        iam_policy(["everything"])


def test_finding_is_selected_by_session_key_or_line():
    findings = [
        {"role": "web", "credential_id": "i-1", "access_key_ids": ["ASIA1"], "_line": 1},
        {"role": "web", "credential_id": "i-2", "access_key_ids": ["ASIA2"], "_line": 2},
    ]
    assert select_finding(findings, "i-2") is findings[1]
    assert select_finding(findings, "ASIA1") is findings[0]
    assert select_finding(findings, "2") is findings[1]
    with pytest.raises(UsageError):
        select_finding(findings, "i-9")


def test_target_from_finding_names_other_sessions_of_the_role():
    findings = [
        {"role": "web", "credential_id": "i-1", "last_seen": "2026-11-27T10:00:00Z"},
        {"role": "web", "credential_id": "i-2"},
        {"role": "db", "credential_id": "i-3"},
    ]
    target = target_from_finding(findings[0], findings)
    assert target.instance_id == "i-1" and target.other_sessions == ["i-2"]
    assert target.last_seen == datetime(2026, 11, 27, 10, tzinfo=UTC)


def test_non_credential_finding_is_refused():
    with pytest.raises(UsageError):
        target_from_finding({"detection": "ssrf", "client_ip": "203.0.113.1"})


def test_findings_of_one_session_make_one_target_with_all_its_keys():
    findings = [
        {"role": "web", "credential_id": "i-1", "access_key_ids": ["ASIA1"],
         "first_seen": "2026-11-27T09:00:00Z", "last_seen": "2026-11-27T09:30:00Z"},
        {"role": "web", "credential_id": "i-1", "access_key_ids": ["ASIA2"],
         "first_seen": "2026-11-27T10:00:00Z", "last_seen": "2026-11-27T11:00:00Z"},
        {"role": "web", "credential_id": "i-2", "access_key_ids": ["ASIA3"]},
    ]  # fmt: skip
    targets = {t.session_name: t for t in targets_from_findings(findings)}
    assert set(targets) == {"i-1", "i-2"}
    t = targets["i-1"]
    assert t.access_key_ids == ["ASIA1", "ASIA2"]
    assert t.first_seen == datetime(2026, 11, 27, 9, tzinfo=UTC)
    assert t.last_seen == datetime(2026, 11, 27, 11, tzinfo=UTC)
    assert t.other_sessions == ["i-2"]
