"""Every AWS call a command makes is declared beside it: run respond, guardduty check and
inventory collect against the moto server, record each call botocore makes (its
``before-call`` event), and compare with the policy ``--print-iam-policy`` prints."""

from __future__ import annotations

import json

import boto3
import pytest
from click.testing import CliRunner

from imdshunt.cli import cli
from imdshunt.permissions import NO_PERMISSION_NEEDED, declared_permissions
from tests.respond_world import make_world

pytestmark = pytest.mark.moto

#: Signing names that are not the service's IAM prefix.
IAM_PREFIX = {"monitoring": "cloudwatch"}


@pytest.fixture()
def recorded_calls(monkeypatch, aws_env):
    """The IAM action (``service:Operation``) of every call made through any boto3 session."""
    calls: set[str] = set()

    def record(model, **_kwargs):
        # The signing name is the IAM service prefix (EventBridge signs as "events"), except
        # CloudWatch's: it signs as "monitoring", its IAM actions are "cloudwatch:...".
        prefix = model.service_model.signing_name
        calls.add(f"{IAM_PREFIX.get(prefix, prefix)}:{model.name}")

    class RecordingSession(boto3.Session):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.events.register("before-call", record)

    monkeypatch.setattr(boto3, "Session", RecordingSession)
    return calls


def _printed_policy(*args: str) -> set[str]:
    out = CliRunner().invoke(cli, [*args, "--print-iam-policy"])
    assert out.exit_code == 0, out.output
    return {a for st in json.loads(out.stdout)["Statement"] for a in st["Action"]}


def _undeclared(calls: set[str], command: str) -> set[str]:
    declared = {p.action for p in declared_permissions([command])}
    return calls - declared - NO_PERMISSION_NEEDED


def test_respond_plan_and_apply_with_pinning_call_only_what_is_declared(recorded_calls, tmp_path):
    world = make_world("perm")
    findings = tmp_path / "findings.jsonl"
    findings.write_text(json.dumps(world.finding(world.victim)) + "\n")
    recorded_calls.clear()  # the set-up's own calls are not the command's
    args = ["respond", "--from", str(findings), "--finding", world.victim, "--margin", "0"]
    args += ["--region", "us-east-1", "--pin", "--audit-log", str(tmp_path / "audit.jsonl")]
    plan = CliRunner().invoke(cli, args)
    assert plan.exit_code == 0, plan.output
    applied = CliRunner().invoke(cli, [*args, "--apply"])
    assert applied.exit_code == 0, applied.output
    role_wide = CliRunner().invoke(cli, [*args, "--role-wide"])
    assert role_wide.exit_code == 0, role_wide.output
    # the run reached every kind of step: revoke, fresh credentials, IMDSv2, pinning
    assert {
        "iam:PutRolePolicy",
        "ec2:ReplaceIamInstanceProfileAssociation",
        "ec2:ModifyInstanceMetadataOptions",
        "ec2:DescribeNatGateways",
    } <= recorded_calls
    assert _undeclared(recorded_calls, "respond") == set()
    assert recorded_calls - NO_PERMISSION_NEEDED <= _printed_policy("respond")


def test_guardduty_check_calls_only_what_is_declared(recorded_calls):
    session = boto3.Session(region_name="eu-west-1")
    session.client("guardduty").create_detector(Enable=True)
    events = session.client("events")
    events.put_rule(Name="gd-to-sns", EventPattern=json.dumps({"source": ["aws.guardduty"]}))
    events.put_targets(
        Rule="gd-to-sns", Targets=[{"Id": "1", "Arn": "arn:aws:sns:eu-west-1:123456789012:sec"}]
    )
    recorded_calls.clear()  # the set-up's own calls are not the command's
    out = CliRunner().invoke(cli, ["guardduty", "check", "--format", "json"])
    assert out.exit_code == 1, out.output  # other regions have no detector: problems
    assert {
        "ec2:DescribeRegions",
        "guardduty:GetDetector",
        "guardduty:ListFilters",
        "events:ListTargetsByRule",
    } <= recorded_calls
    assert _undeclared(recorded_calls, "guardduty") == set()
    assert recorded_calls <= _printed_policy("guardduty", "check")


def test_inventory_collect_calls_only_what_is_declared(recorded_calls, tmp_path):
    ec2 = boto3.Session(region_name="us-east-1").client("ec2")
    ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
    recorded_calls.clear()
    out = CliRunner().invoke(cli, ["inventory", "collect", "--out", str(tmp_path), "-q"])
    assert out.exit_code == 0, out.output
    assert {"ec2:DescribeRegions", "ec2:DescribeVpcEndpoints"} <= recorded_calls
    assert "organizations:ListAccounts" in recorded_calls
    assert _undeclared(recorded_calls, "collect") == set()
    assert recorded_calls - NO_PERMISSION_NEEDED <= _printed_policy("inventory", "collect")


def test_exposure_cloudwatch_calls_only_what_is_declared(recorded_calls, tmp_path):
    ec2 = boto3.Session(region_name="us-east-1").client("ec2")
    ec2.run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1, MetadataOptions={"HttpTokens": "optional"}
    )
    doc = ec2.describe_instances()
    doc.pop("ResponseMetadata")
    (tmp_path / "inv.json").write_text(json.dumps(doc, default=str))
    (tmp_path / "trail").mkdir()
    (tmp_path / "trail" / "t.json").write_text('{"Records": []}')
    recorded_calls.clear()
    args = [str(tmp_path / "trail"), "--inventory", str(tmp_path / "inv.json"), "--cloudwatch"]
    args += ["--ip-ranges", "tests/data/ip-ranges.fixture.json", "--workers", "1"]
    out = CliRunner().invoke(cli, ["exposure", *args])
    assert out.exit_code == 1, out.output  # instances listed
    assert "cloudwatch:GetMetricData" in recorded_calls
    assert _undeclared(recorded_calls, "exposure") == set()
    assert recorded_calls - NO_PERMISSION_NEEDED <= _printed_policy("exposure")


def test_an_undeclared_call_is_caught(recorded_calls):
    # the check itself can fail: a call no declaration covers shows up
    boto3.Session(region_name="us-east-1").client("ec2").describe_vpcs()
    assert _undeclared(recorded_calls, "collect") == {"ec2:DescribeVpcs"}
