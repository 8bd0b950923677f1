"""``AWS/EC2`` ``MetadataNoToken`` (issue 26): which IMDSv1 instances are safe to switch today,
and what ``respond`` breaks when it requires tokens. On moto's server over HTTP: the metric is
put with ``PutMetricData`` and read back with batched ``GetMetricData``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from click.testing import CliRunner

from imdshunt import api
from imdshunt.exposure import metrics
from tests.respond_world import make_world

pytestmark = pytest.mark.moto

RANGES = "tests/data/ip-ranges.fixture.json"


def _put_calls(instance_id: str, values: list[float], *, hours_ago: int = 30) -> None:
    """What EC2 publishes for an instance: MetadataNoToken data points per period."""
    cw = boto3.client("cloudwatch")
    now = datetime.now(UTC)
    cw.put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "MetadataNoToken",
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                "Timestamp": now - timedelta(hours=hours_ago + n),
                "Value": v,
                "Unit": "Count",
            }
            for n, v in enumerate(values)
        ],
    )


def _v1_instances(n: int) -> list[str]:
    ec2 = boto3.client("ec2")
    res = ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=n,
        MaxCount=n,
        MetadataOptions={"HttpTokens": "optional", "HttpEndpoint": "enabled"},
    )
    return [i["InstanceId"] for i in res["Instances"]]


@pytest.fixture()
def inventory_world(aws_env, tmp_path):
    """Three instances answering IMDSv1: one still calls v1, one does not, one has no data;
    the inventory is moto's describe-instances output, as the CLI prints it."""
    calling, quiet, silent = _v1_instances(3)
    _put_calls(calling, [3, 0, 2])
    _put_calls(quiet, [0, 0, 0])
    doc = boto3.client("ec2").describe_instances(InstanceIds=[calling, quiet, silent])
    doc.pop("ResponseMetadata", None)
    inv = tmp_path / "inventory" / "describe-instances.json"
    inv.parent.mkdir()
    inv.write_text(json.dumps(doc, default=str))
    trail = tmp_path / "trail"
    trail.mkdir()
    (trail / "empty.json").write_text('{"Records": []}')
    return dict(calling=calling, quiet=quiet, silent=silent, inventory=inv.parent, trail=trail)


def test_safe_to_enforce_only_where_the_metric_was_read_and_is_zero(inventory_world):
    w = inventory_world
    result = api.exposure(
        [w["trail"]],
        inventory=[w["inventory"]],
        ip_ranges=RANGES,
        fetch_ip_ranges=False,
        workers=1,
        cloudwatch=boto3.Session(),
    )
    by_id = {r["instance_id"]: r for r in result.records}
    assert by_id[w["calling"]]["metadata_no_token_calls"] == 5
    assert by_id[w["calling"]]["safe_to_enforce"] is False
    assert any("upgrade it" in x for x in by_id[w["calling"]]["reasons"])
    assert by_id[w["quiet"]]["metadata_no_token_calls"] == 0
    assert by_id[w["quiet"]]["safe_to_enforce"] is True
    assert by_id[w["silent"]]["metadata_no_token_calls"] is None
    assert by_id[w["silent"]]["safe_to_enforce"] is False
    assert any("no MetadataNoToken data point" in x for x in by_id[w["silent"]]["reasons"])
    start, end = by_id[w["quiet"]]["metadata_no_token_window"].split("/")
    days = datetime.fromisoformat(end[:-1]) - datetime.fromisoformat(start[:-1])
    assert days == timedelta(days=14)
    assert result.metric_errors == []


def test_without_cloudwatch_nothing_is_safe(inventory_world):
    w = inventory_world
    records = api.exposure(
        [w["trail"]], inventory=[w["inventory"]], ip_ranges=RANGES, fetch_ip_ranges=False,
        workers=1,
    ).records  # fmt: skip
    assert records and all(
        r["metadata_no_token_calls"] is None and r["safe_to_enforce"] is False for r in records
    )


def test_the_command_separates_safe_to_switch_from_upgrade_first(inventory_world):
    from imdshunt.commands.exposure import exposure

    w = inventory_world
    result = CliRunner().invoke(
        exposure,
        [str(w["trail"]), "--inventory", str(w["inventory"]), "--ip-ranges", RANGES,
         "--workers", "1", "--cloudwatch"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    safe = text[text.index("Safe to switch now") : text.index("Still calling IMDSv1")]
    assert f"for i in {w['quiet']}; do aws ec2 modify-instance-metadata-options" in safe
    assert "--http-tokens required --http-endpoint enabled --region us-east-1; done" in safe
    assert w["calling"] not in safe and w["silent"] not in safe
    upgrade = text[text.index("Still calling IMDSv1") :]
    assert f"{w['calling']}: 5 IMDSv1 call(s)" in upgrade
    assert "MetadataNoToken unknown for 1 instance(s)" in upgrade


def test_get_metric_data_is_batched_500_queries_a_call(aws_env):
    """501 instances: two calls, ids kept apart across the batches."""
    ids = [f"i-{n:017x}" for n in range(501)]
    _put_calls(ids[0], [4])
    _put_calls(ids[500], [0])
    sent: list[int] = []
    session = boto3.Session()
    session.events.register(
        "provide-client-params.monitoring.GetMetricData",
        lambda params, **_: sent.append(len(params["MetricDataQueries"])),
    )
    start, end = metrics.default_window()
    readings, errors = metrics.read_metadata_no_token(
        session, [("us-east-1", i) for i in ids], start, end
    )
    assert sent == [500, 1] and errors == []
    assert readings[ids[0]].calls == 4 and readings[ids[500]].calls == 0
    assert readings[ids[1]].calls is None


def test_a_long_window_keeps_each_call_under_the_data_point_limit():
    start = datetime(2025, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=400)
    period = metrics.period_for(start, end, 500)
    assert period % 86400 == 0
    assert 500 * (400 * 86400 // period + 1) <= metrics.DATAPOINTS_PER_CALL


# ------------------------------------------------------------------ respond


def _respond_args(world, tmp_path) -> list[str]:
    findings = tmp_path / "findings.jsonl"
    findings.write_text(json.dumps(world.finding(world.victim)) + "\n")
    return [
        "--from", str(findings), "--finding", world.victim, "--margin", "0",
        "--audit-log", str(tmp_path / "audit.jsonl"), "--region", "us-east-1",
    ]  # fmt: skip


def _set_optional(world) -> None:
    world.ec2().modify_instance_metadata_options(
        InstanceId=world.victim, HttpTokens="optional", HttpEndpoint="enabled"
    )


def test_respond_refuses_to_switch_an_instance_still_calling_v1_without_the_flag(aws_env, tmp_path):
    from imdshunt.commands.respond import respond

    world = make_world("v1calls")
    _set_optional(world)
    _put_calls(world.victim, [12, 7])
    args = _respond_args(world, tmp_path)
    dry = CliRunner().invoke(respond, [*args, "--format", "json"])
    assert dry.exit_code == 0, dry.output
    step = next(s for s in json.loads(dry.output)[0]["steps"] if s["action"] == "enforce-imdsv2")
    assert step["status"] == "refused"
    assert step["metadata_no_token_calls"] == 19
    assert "19 IMDSv1 call(s)" in step["warnings"][-1]
    assert "--enforce-imdsv2-despite-v1-calls" in step["warnings"][-1]
    assert "BREAKS" in step["blast_radius"]

    applied = CliRunner().invoke(respond, [*args, "--apply"])
    assert applied.exit_code == 1, applied.output  # a refused AWS action
    assert "refused" in applied.output.lower()
    assert world.metadata_options(world.victim)["HttpTokens"] == "optional"
    # the other steps still ran: the stolen session is revoked
    assert world.iam().list_role_policies(RoleName=world.role_name)["PolicyNames"]
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [a["result"] for a in audit if a["action"] == "enforce-imdsv2"] == ["refused"]

    forced = CliRunner().invoke(respond, [*args, "--apply", "--enforce-imdsv2-despite-v1-calls"])
    assert forced.exit_code == 0, forced.output
    assert world.metadata_options(world.victim)["HttpTokens"] == "required"


def test_respond_switches_an_instance_whose_metric_is_zero(aws_env, tmp_path):
    from imdshunt.commands.respond import respond

    world = make_world("v1quiet")
    _set_optional(world)
    _put_calls(world.victim, [0, 0])
    args = _respond_args(world, tmp_path)
    dry = CliRunner().invoke(respond, args)
    assert dry.exit_code == 0, dry.output
    assert "MetadataNoToken over" in dry.output and ": 0 IMDSv1 calls" in dry.output
    applied = CliRunner().invoke(respond, [*args, "--apply"])
    assert applied.exit_code == 0, applied.output
    assert world.metadata_options(world.victim)["HttpTokens"] == "required"
