"""Reachability from the internet in the IMDSv1 backlog (issue 26): internet-facing load
balancers and their targets, public addresses and open security groups, from the inventory's
AWS CLI JSON (fixtures) and from ``imdshunt inventory collect`` on moto's server."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from imdshunt import api
from imdshunt.enrich.collect import collect_inventory
from imdshunt.enrich.inventory import load_inventory
from imdshunt.exposure import exposure_backlog
from tests.exposure_support import connect_with

REACH = Path(__file__).parent / "fixtures" / "exposure" / "reachability"
RANGES = Path(__file__).parent / "data" / "ip-ranges.fixture.json"


def _by_name(records):
    return {r["name"]: r for r in records}


def test_each_way_in_is_named_and_closed_instances_are_not_reachable():
    recs = _by_name(exposure_backlog(connect_with([]), inventory_files=[REACH]))
    got = {n: (r["reachable_from_internet"], r["reachable_via"]) for n, r in recs.items()}
    assert got == {
        "public-web": (True, ["public-ip+sg:sg-0aa1111111111111a:443"]),
        "public-closed": (False, []),
        "behind-alb": (True, ["alb:shop-public"]),
        "behind-internal-alb": (False, []),
        "nlb-ip-target": (True, ["nlb:api-nlb"]),  # an ip target: its private address
        "ipv6-ssh": (True, ["ipv6+sg:sg-0bb2222222222222b:22"]),
        "wide-open": (True, ["public-ip+sg:sg-0ee5555555555555e:all"]),  # IpProtocol -1
        "unknown-group": (None, []),  # its security group is not in the inventory
    }
    assert any("security groups" in x for x in recs["unknown-group"]["reasons"])
    assert any("network ACLs" in x for x in recs["public-closed"]["reasons"])


def test_reachable_instances_rank_first_within_a_tier():
    records = exposure_backlog(connect_with([]), inventory_files=[REACH])
    assert {r["privilege_score"] for r in records} == {0}  # one tier: no role known
    order = [r["reachable_from_internet"] for r in records]
    assert order == sorted(order, key={True: 0, None: 1, False: 2}.get)


def test_without_load_balancers_and_security_groups_reachability_is_unknown():
    records = exposure_backlog(
        connect_with([]), inventory_files=[REACH / "describe-instances.json"]
    )
    assert records and all(r["reachable_from_internet"] is None for r in records)
    public = _by_name(records)["public-web"]
    assert any("lacks its security groups and its load balancers" in x for x in public["reasons"])


def test_target_health_without_its_group_arn_leaves_the_target_unknown(tmp_path):
    inv = tmp_path / "inv"
    shutil.copytree(REACH, inv)
    health = inv / "target-health-shop-web.json"
    doc = json.loads(health.read_text())
    del doc["TargetGroupArn"]  # as `aws elbv2 describe-target-health` prints it
    health.write_text(json.dumps(doc))
    recs = _by_name(exposure_backlog(connect_with([]), inventory_files=[inv]))
    assert recs["behind-alb"]["reachable_from_internet"] is None
    assert recs["public-web"]["reachable_from_internet"] is True


def test_the_hunts_inventory_reads_a_folder_holding_the_new_files():
    inv = load_inventory([REACH])
    kinds = set(inv.files.values())
    assert {"elbv2-describe-load-balancers", "elbv2-describe-target-groups",
            "elbv2-describe-target-health", "ec2-describe-security-groups"} <= kinds  # fmt: skip
    assert "i-0f00000000000a001" in {a["instance_id"] for a in inv.addresses}


# ------------------------------------------------------------------ collected on moto


def _group(ec2, vpc: str, name: str, cidr: str, port: int) -> str:
    gid = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=gid,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": cidr}]}
        ],
    )
    return gid


@pytest.mark.moto
def test_collect_gathers_load_balancers_groups_and_the_metric_that_exposure_reads(
    aws_env, tmp_path
):
    session = boto3.Session(region_name="us-east-1")
    ec2, elb, cw = session.client("ec2"), session.client("elbv2"), session.client("cloudwatch")
    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])
    subnets = sorted(subnets["Subnets"], key=lambda s: s["AvailabilityZone"])[:2]
    vpc = subnets[0]["VpcId"]
    tag = tmp_path.name[-12:].replace("_", "-")
    open_sg = _group(ec2, vpc, f"open-{tag}", "0.0.0.0/0", 443)
    closed_sg = _group(ec2, vpc, f"closed-{tag}", "10.0.0.0/8", 8080)

    def instance(group: str) -> str:
        res = ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnets[0]["SubnetId"],
            SecurityGroupIds=[group], MetadataOptions={"HttpTokens": "optional"},
        )  # fmt: skip
        return res["Instances"][0]["InstanceId"]

    public_open, public_closed, behind_alb = (
        instance(open_sg),
        instance(closed_sg),
        instance(closed_sg),
    )
    lb = elb.create_load_balancer(
        Name=f"shop-{tag}", Subnets=[s["SubnetId"] for s in subnets], SecurityGroups=[open_sg],
        Scheme="internet-facing", Type="application",
    )["LoadBalancers"][0]  # fmt: skip
    tg = elb.create_target_group(
        Name=f"web-{tag}", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="instance"
    )["TargetGroups"][0]
    elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )  # fmt: skip
    elb.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": behind_alb}])
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    for iid, value in ((public_open, 0.0), (public_closed, 6.0)):
        cw.put_metric_data(
            Namespace="AWS/EC2",
            MetricData=[
                {
                    "MetricName": "MetadataNoToken",
                    "Value": value,
                    "Timestamp": an_hour_ago,
                    "Dimensions": [{"Name": "InstanceId", "Value": iid}],
                }
            ],
        )

    out = tmp_path / "inventory"
    result = collect_inventory(session, out, regions=["us-east-1"], organizations=False)
    assert result.errors == []
    region = out / result.account_id / "us-east-1"
    for stem in ("ec2-describe-security-groups", "elbv2-describe-load-balancers",
                 "elbv2-describe-target-groups", "cloudwatch-get-metric-data"):  # fmt: skip
        assert (region / f"{stem}.json").is_file(), stem
    health = json.loads((region / "elbv2-describe-target-health" / f"web-{tag}.json").read_text())
    assert health["TargetGroupArn"] == tg["TargetGroupArn"]
    assert [d["Target"]["Id"] for d in health["TargetHealthDescriptions"]] == [behind_alb]

    trail = tmp_path / "trail"
    trail.mkdir()
    (trail / "t.json").write_text('{"Records": []}')
    records = api.exposure(
        [trail], inventory=[out], ip_ranges=RANGES, fetch_ip_ranges=False, workers=1
    ).records
    by_id = {r["instance_id"]: r for r in records}
    assert by_id[public_open]["reachable_via"] == [f"public-ip+sg:{open_sg}:443"]
    assert by_id[public_closed]["reachable_from_internet"] is False
    assert by_id[behind_alb]["reachable_via"] == [f"alb:shop-{tag}"]
    # the metric collected with the inventory: no --cloudwatch needed
    assert (
        by_id[public_open]["metadata_no_token_calls"],
        by_id[public_open]["safe_to_enforce"],
    ) == (0, True)
    assert by_id[public_closed]["metadata_no_token_calls"] == 6
    assert by_id[behind_alb]["metadata_no_token_calls"] is None
