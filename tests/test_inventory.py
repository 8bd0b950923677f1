"""Inventory: the AWS CLI's JSON in, address/endpoint/account tables out; collection with boto3."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from imdshunt.cli import cli
from imdshunt.engine.duckdb import DuckDBEngine
from imdshunt.enrich.collect import collect_inventory
from imdshunt.enrich.inventory import detect_kind, load_inventory, register_inventory
from imdshunt.errors import InputError, UsageError

DETECTIONS = Path(__file__).resolve().parents[1] / "src" / "imdshunt" / "detections"
CROSS = DETECTIONS / "ec2_instance_credential_cross_instance" / "tests"
OTHER = DETECTIONS / "ec2_instance_credential_other_aws_account" / "tests"
FOREIGN = DETECTIONS / "ec2_instance_credential_foreign_vpc_endpoint" / "tests"


def _rows(inv, **match):
    return [a for a in inv.addresses if all(a.get(k) == v for k, v in match.items())]


def test_describe_instances_gives_each_instance_private_public_and_ipv6_addresses_and_vpc():
    inv = load_inventory(
        [CROSS / "nomatch_instances_on_their_own_public_and_ipv6_addresses.inventory"]
    )
    a = _rows(inv, instance_id="i-0a1b2c3d4e5f60718")
    kinds = {(r["address"], r["kind"]) for r in a}
    assert ("10.0.1.10", "instance-private") in kinds
    assert ("35.170.10.20", "instance-public") in kinds
    # IPv6 is stored in canonical form, as CloudTrail records it
    assert ("2600:1f18:4a3:6b00:8c2e:1d4f:9a7b:2c10", "instance-ipv6") in kinds
    assert {r["vpc_id"] for r in a} == {"vpc-0a1b2c3d4e5f6a7b8"}
    assert {r["account_id"] for r in a} == {"111122223333"}
    assert {r["region"] for r in a} == {"us-east-1"}


def test_nat_gateway_addresses_are_org_egress_without_an_instance():
    inv = load_inventory([OTHER / "nomatch_instance_behind_nat_gateway_in_inventory.inventory"])
    nat = _rows(inv, kind="nat-gateway")
    assert {r["address"] for r in nat} >= {"34.230.1.1", "34.230.1.2"}
    assert all(r["instance_id"] is None for r in nat)


def test_kind_is_told_by_content_not_by_file_name(tmp_path):
    (tmp_path / "whatever.json").write_text(
        json.dumps(
            {
                "Addresses": [
                    {
                        "PublicIp": "52.1.2.3",
                        "AllocationId": "eipalloc-1",
                        "InstanceId": "i-0ABCDEF0123456789",
                        "NetworkInterfaceOwnerId": "111122223333",
                        "NetworkBorderGroup": "us-east-1",
                    }
                ]
            }
        )
    )
    (tmp_path / "x.json").write_text(
        json.dumps(
            {
                "NetworkInterfaces": [
                    {
                        "NetworkInterfaceId": "eni-1",
                        "OwnerId": "111122223333",
                        "VpcId": "vpc-1",
                        "AvailabilityZone": "eu-west-1b",
                        "InterfaceType": "nat_gateway",
                        "PrivateIpAddresses": [
                            {
                                "PrivateIpAddress": "10.1.0.5",
                                "Association": {"PublicIp": "54.2.3.4"},
                            }
                        ],
                    }
                ]
            }
        )
    )
    inv = load_inventory([tmp_path])
    assert set(inv.files.values()) == {"describe-addresses", "describe-network-interfaces"}
    eip = _rows(inv, kind="elastic-ip")[0]
    assert eip["instance_id"] == "i-0abcdef0123456789"  # lower case, like the session name
    assert eip["region"] == "us-east-1"
    assert {r["address"] for r in _rows(inv, kind="eni")} == {"10.1.0.5", "54.2.3.4"}
    assert {r["region"] for r in _rows(inv, kind="eni")} == {"eu-west-1"}


def test_vpc_endpoints_and_org_accounts():
    inv = load_inventory(
        [
            CROSS / "match_private_ip_of_another_instance_through_own_endpoint.inventory",
            FOREIGN / "match_endpoint_of_an_account_outside_the_org.inventory",
        ],
        org_accounts=["777788889999"],
    )
    assert inv.vpc_endpoints == [
        {
            "vpce_id": "vpce-0a1b2c3d4e5f6a7b8",
            "vpc_id": "vpc-0a1b2c3d4e5f6a7b8",
            "account_id": "111122223333",
            "service_name": "com.amazonaws.us-east-1.s3",
            "region": "us-east-1",
        }
    ]
    assert inv.org_accounts == {"111122223333", "444455556666", "777788889999"}


def test_a_file_that_is_not_inventory_is_refused_with_its_path(tmp_path):
    bad = tmp_path / "trail.json"
    bad.write_text(json.dumps({"Records": []}))
    with pytest.raises(InputError, match="not an inventory file") as exc:
        load_inventory([bad])
    assert exc.value.path == str(bad)
    # inside a folder, other JSON (IAM authorization details for 'exposure') is skipped and named
    assert load_inventory([tmp_path]).skipped == {
        str(bad): "JSON that is no inventory this version reads"
    }
    (tmp_path / "trail.json").write_text("{not json")
    with pytest.raises(InputError, match=r"trail.json:1: not valid JSON"):
        load_inventory([tmp_path])
    with pytest.raises(InputError, match="not found"):
        load_inventory([tmp_path / "missing"])


def test_org_account_ids_must_be_twelve_digits():
    assert load_inventory(org_accounts=[12345678901]).org_accounts == {"012345678901"}
    with pytest.raises(UsageError):
        load_inventory(org_accounts=["prod"])


def test_detect_kind_recognises_every_supported_response():
    for key in (
        "Reservations",
        "NatGateways",
        "Addresses",
        "NetworkInterfaces",
        "VpcEndpoints",
        "Accounts",
    ):
        assert detect_kind({key: []}) is not None
    assert detect_kind({"Records": []}) is None
    assert detect_kind([]) is None


def test_engine_has_empty_inventory_tables_until_one_is_registered():
    engine = DuckDBEngine()
    for name in ("inventory_address", "inventory_vpce", "org_account"):
        assert engine.table_exists(name)
        assert engine.scalar(f"SELECT count(*) FROM {name}") == 0
    register_inventory(
        engine,
        load_inventory([CROSS / "match_public_ip_of_another_instance_in_inventory.inventory"]),
    )
    assert engine.scalar("SELECT count(DISTINCT instance_id) FROM inventory_address") == 2
    engine.ensure_views()  # the binding views load over registered tables too


@pytest.mark.moto
def test_collect_writes_cli_shaped_files_that_load_back(aws_env, tmp_path):
    session = boto3.Session(region_name="us-east-1")
    ec2 = session.client("ec2")
    run = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.micro")
    instance = run["Instances"][0]
    subnet = instance["SubnetId"]
    vpc = instance["VpcId"]
    eip = ec2.allocate_address(Domain="vpc")
    ec2.create_nat_gateway(SubnetId=subnet, AllocationId=eip["AllocationId"])
    endpoint = ec2.create_vpc_endpoint(VpcId=vpc, ServiceName="com.amazonaws.us-east-1.s3")
    try:
        session.client("organizations").create_organization(FeatureSet="ALL")
    except session.client("organizations").exceptions.AlreadyInOrganizationException:
        pass

    ecs = session.client("ecs")
    ecs.create_cluster(clusterName="orders")
    lam_role = session.client("iam").create_role(
        RoleName="fn-role", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
    )["Role"]["Arn"]
    session.client("lambda").create_function(
        FunctionName="invoice-renderer",
        Runtime="python3.12",
        Role=lam_role,
        Handler="app.handler",
        Code={"ZipFile": _zip_of("def handler(e, c):\n    return e\n")},
        VpcConfig={"SubnetIds": [subnet], "SecurityGroupIds": []},
    )

    result = collect_inventory(session, tmp_path, regions=["us-east-1", "eu-west-1"])
    acct = result.account_id
    assert result.errors == []
    tasks = json.loads((tmp_path / acct / "us-east-1" / "ecs-describe-tasks.json").read_text())
    assert tasks == {"tasks": [], "failures": []}  # the CLI's shape, even with no task
    names = {p.relative_to(tmp_path).as_posix() for p in result.files}
    assert f"{acct}/us-east-1/ec2-describe-instances.json" in names
    assert f"{acct}/eu-west-1/ec2-describe-nat-gateways.json" in names
    assert f"{acct}/organizations-list-accounts.json" in names
    doc = json.loads((tmp_path / acct / "us-east-1" / "ec2-describe-instances.json").read_text())
    assert set(doc) == {"Reservations"}  # no ResponseMetadata, no NextToken: the CLI's shape

    inv = load_inventory([tmp_path])
    iid = instance["InstanceId"]
    mine = {(a["address"], a["kind"]) for a in inv.addresses if a["instance_id"] == iid}
    assert (instance["PrivateIpAddress"], "instance-private") in mine
    assert (instance["PublicIpAddress"], "instance-public") in mine
    assert eip["PublicIp"] in {a["address"] for a in inv.addresses if a["kind"] == "nat-gateway"}
    assert endpoint["VpcEndpoint"]["VpcEndpointId"] in {e["vpce_id"] for e in inv.vpc_endpoints}
    assert acct in inv.org_accounts
    [fn] = [r for r in inv.workload_rows() if r["workload_type"] == "lambda"]
    assert fn["workload_id"] == "invoice-renderer" and fn["account_id"] == acct
    # moto leaves VpcConfig.VpcId out (AWS sets it); the collected file keeps what was answered
    doc = json.loads((tmp_path / acct / "us-east-1" / "lambda-list-functions.json").read_text())
    assert set(doc) == {"Functions"}
    assert doc["Functions"][0]["VpcConfig"]["SubnetIds"] == [subnet]


def _zip_of(source: str) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", source)
    return buf.getvalue()


@pytest.mark.moto
def test_cli_inventory_collect_then_show(aws_env, tmp_path):
    runner = CliRunner()
    out = tmp_path / "inv"
    r = runner.invoke(
        cli, ["inventory", "collect", "--out", str(out), "--region", "us-west-2", "-q"]
    )
    assert r.exit_code == 0, r.output
    assert "files from 1 regions" in r.output
    r = runner.invoke(cli, ["inventory", "show", str(out)])
    assert r.exit_code == 0, r.output
    assert "describe-instances" in r.output and "inventory:" in r.output


def test_cli_inventory_show_refuses_a_non_inventory_file(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    r = CliRunner().invoke(cli, ["inventory", "show", str(bad)])
    assert r.exit_code == 2
    assert "not an inventory file" in r.output
