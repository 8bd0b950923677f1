"""The respond and guardduty click commands, driven with CliRunner against the moto server."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from imdshunt.commands.guardduty import guardduty
from imdshunt.commands.respond import respond
from imdshunt.respond.policies import session_policy_name
from tests.respond_world import make_world


def _commands(cmd: click.Command):
    yield cmd
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            yield from _commands(sub)


@pytest.mark.parametrize("command", [respond, guardduty])
def test_every_command_help_carries_an_example(command):
    for cmd in _commands(command):
        assert cmd.help, f"{cmd.name} has no help"
        assert "imdshunt " in (cmd.epilog or ""), f"{cmd.name} help has no example"


def test_print_iam_policy_needs_no_aws():
    result = CliRunner().invoke(respond, ["--print-iam-policy"])
    assert result.exit_code == 0
    policy = json.loads(result.output)
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    assert {"iam:PutRolePolicy", "ec2:ModifyInstanceMetadataOptions"} <= actions
    assert {"ec2:DescribeNatGateways", "guardduty:GetDetector"} <= actions


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--finding", "i-1"],
        ["--role", "web"],
        ["--from", "no-such-file.jsonl"],
    ],
)
def test_usage_errors_exit_2(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(respond, args)
    assert result.exit_code == 2, result.output


@pytest.mark.moto
def test_respond_from_findings_applies_then_is_a_no_op(aws_env, tmp_path):
    world = make_world()
    findings = tmp_path / "findings.jsonl"
    findings.write_text("\n".join(json.dumps(world.finding(i)) for i in world.instances[:2]) + "\n")
    audit = tmp_path / "audit.jsonl"
    args = ["--from", str(findings), "--finding", world.victim, "--margin", "0"]
    args += ["--audit-log", str(audit), "--region", "us-east-1"]

    dry = CliRunner().invoke(respond, args)
    assert dry.exit_code == 0, dry.output
    assert "1. Revoke the stolen session" in dry.output and "run with --apply" in dry.output
    assert not audit.exists()
    as_json = CliRunner().invoke(respond, [*args, "--format", "json"])
    (plan,) = json.loads(as_json.output)
    assert plan["steps"][0]["calls"][0]["call"] == "iam:PutRolePolicy"
    assert plan["steps"][0]["permissions"] == ["iam:PutRolePolicy"]

    first = CliRunner().invoke(respond, [*args, "--apply"])
    assert first.exit_code == 0, first.output
    assert "applied" in first.output
    iam = world.iam()
    assert iam.list_role_policies(RoleName=world.role_name)["PolicyNames"] == [
        session_policy_name(world.victim)
    ]

    second = CliRunner().invoke(respond, [*args, "--apply"])
    assert second.exit_code == 0, second.output
    assert "Nothing changed" in second.output
    assert len(audit.read_text().splitlines()) == 2 * 4


@pytest.mark.moto
def test_service_linked_role_is_refused_with_exit_1(aws_env):
    world = make_world()
    name = "AWSServiceRoleForCli" + world.role_name[-8:]
    world.iam().create_role(
        RoleName=name, Path="/aws-service-role/x.amazonaws.com/", AssumeRolePolicyDocument="{}"
    )
    result = CliRunner().invoke(
        respond, ["--role", name, "--instance", world.victim, "--region", "us-east-1"]
    )
    assert result.exit_code == 1
    assert "service-linked" in result.output


@pytest.mark.moto
def test_guardduty_check_exits_1_on_problems_and_prints_them(aws_env):
    result = CliRunner().invoke(guardduty, ["check", "--region", "sa-east-1"])
    assert result.exit_code == 1
    assert "no GuardDuty detector" in result.output


def test_guardduty_compare_offline(tmp_path):
    gd = tmp_path / "gd.json"
    gd.write_text(json.dumps({"Findings": []}))
    ours = tmp_path / "f.jsonl"
    ours.write_text(json.dumps({"role": "web", "credential_id": "i-1"}) + "\n")
    result = CliRunner().invoke(
        guardduty, ["check", "--offline", "--findings", str(gd), "--from", str(ours)]
    )
    assert result.exit_code == 0, result.output
    assert "only imdshunt: 1" in result.output
