"""Binding each EC2 instance credential to its instance: specifications on a small organisation
(tests/binding_world.py) with instances on public IPs, behind a NAT gateway with two addresses
and calling through their own VPC endpoints over IPv4 and IPv6, with and without inventory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from imdshunt import api
from imdshunt.cli import cli
from tests import binding_world as world

HERE = Path(__file__).resolve().parent
RANGES = HERE / "data" / "ip-ranges.fixture.json"
BINDING = {
    "ec2_instance_credential_other_aws_account",
    "ec2_instance_credential_foreign_vpc_endpoint",
    "ec2_instance_credential_cross_instance",
    "ec2_instance_key_multiple_networks",
}


_RESULTS: dict = {}


def _hunt(paths, *, inventory=(), org_accounts=()):
    """One hunt per (organisation, inventory, accounts): results are read, never changed."""
    key = (str(paths["logs"]), tuple(map(str, inventory)), tuple(org_accounts))
    if key not in _RESULTS:
        _RESULTS[key] = api.hunt(
            [paths["logs"]],
            ip_ranges=RANGES,
            workers=1,
            fetch_ip_ranges=False,
            inventory=inventory,
            org_accounts=org_accounts,
        )
    return _RESULTS[key]


@pytest.fixture(scope="module")
def legit(tmp_path_factory):
    return world.write_organisation(tmp_path_factory.mktemp("legit"), attacks=False)


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    return world.write_organisation(tmp_path_factory.mktemp("attacked"), attacks=True)


@pytest.mark.parametrize("with_inventory", [False, True], ids=["learned", "inventory"])
def test_legitimate_traffic_on_every_egress_path_yields_no_finding(legit, with_inventory):
    inventory = [legit["inventory"]] if with_inventory else []
    result = _hunt(legit, inventory=inventory)
    assert result.stats.records_read > 60
    assert result.findings == []


@pytest.mark.parametrize("with_inventory", [False, True], ids=["learned", "inventory"])
@pytest.mark.parametrize(
    ("name", "detection", "victim", "address", "key"),
    world.ATTACKS,
    ids=[a[0] for a in world.ATTACKS],
)
def test_each_planted_attack_is_found_with_the_attackers_address_and_key(
    attacked, with_inventory, name, detection, victim, address, key
):
    inventory = [attacked["inventory"]] if with_inventory else []
    result = _hunt(attacked, inventory=inventory)
    [f] = [x for x in result.findings if x["credential_id"] == victim]
    assert f["detection"] == detection
    assert f["source_ip"] == address
    assert f["access_key_ids"] == [key]
    assert f["key_issued_at"] is not None  # the vending AssumeRole names the key's issue time
    if with_inventory:
        assert f["confidence"] == "high" and f["severity"] == "high"
        assert "learned-egress" not in f["evidence"][:1]
    else:
        # no inventory, no org list: the finding says what it rests on and how sure it is
        assert f["confidence"] == "medium" and f["severity"] == "medium"
        assert set(f["evidence"]) & {"learned-egress", "accounts-in-logs"}
        assert any("no inventory" in r or "no org account list" in r for r in f["reasons"])


def test_only_the_planted_attacks_are_reported(attacked):
    result = _hunt(attacked, inventory=[attacked["inventory"]])
    victims = sorted(f["credential_id"] for f in result.findings)
    assert victims == sorted(a[2] for a in world.ATTACKS)


def test_cross_instance_names_the_instance_the_key_was_used_from(attacked):
    result = _hunt(attacked, inventory=[attacked["inventory"]])
    by_victim = {f["credential_id"]: f for f in result.findings}
    assert by_victim[world.C]["other_instance_id"] == world.A  # A's public IP
    assert by_victim[world.D]["other_instance_id"] == world.A  # A's private IP, own endpoint
    assert by_victim[world.D]["vpc_endpoint_id"] == world.OWN_VPCE


def test_without_inventory_the_run_says_what_evidence_it_lacks(attacked):
    notes = _hunt(attacked).notes
    assert any(n.startswith("no instance inventory") for n in notes)
    assert any(n.startswith("no org account list") for n in notes)
    notes = _hunt(attacked, inventory=[attacked["inventory"]]).notes
    assert [n for n in notes if n.startswith("no ")] == []


def test_org_accounts_given_directly_make_the_foreign_endpoint_certain(attacked):
    result = _hunt(attacked, org_accounts=[world.PROD, world.SHARED])
    [f] = [x for x in result.findings if x["credential_id"] == world.B]
    assert f["confidence"] == "high"
    assert f["evidence"][0] == "org-accounts"


def test_every_instance_key_maps_to_its_instance_role_and_issue_time(attacked):
    result = _hunt(attacked)
    keys = {k["access_key_id"]: k for k in api.key_bindings(result.engine)}
    k = keys[world.key(world.A, 1)]
    assert k["instance_id"] == world.A
    assert k["role_name"] == "web-app-role"
    assert k["key_issued_at"] == "2026-11-02T11:00:00Z"
    assert k["binding_evidence"] == "vending AssumeRole by ec2.amazonaws.com"


def test_binding_detections_run_on_empty_inventory_tables_without_error():
    fixture = (
        HERE.parent
        / "src/imdshunt/detections/ec2_instance_credential_outside_aws/tests"
        / "match_imdsv1_session_used_from_internet.json"
    )
    result = api.hunt([fixture], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)
    assert result.engine.scalar("SELECT count(*) FROM inventory_address") == 0
    assert {f["detection"] for f in result.findings} == {"ec2_instance_credential_outside_aws"}


def test_cli_hunt_reads_inventory_and_org_accounts(attacked, tmp_path):
    out = tmp_path / "f.jsonl"
    r = CliRunner().invoke(
        cli,
        [
            "hunt",
            str(attacked["logs"]),
            "--ip-ranges",
            str(RANGES),
            "--workers",
            "1",
            "--inventory",
            str(attacked["inventory"]),
            "--org-accounts",
            f"{world.PROD},{world.SHARED}",
            "--format",
            "jsonl",
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 1, r.output
    findings = [json.loads(line) for line in out.read_text().splitlines()]
    assert {f["confidence"] for f in findings} == {"high"}
    assert "note: inventory: 6 files" in r.output


def test_cli_hunt_takes_inventory_from_the_config_file(attacked, tmp_path):
    cfg = tmp_path / "imdshunt.toml"
    cfg.write_text(f'inventory = ["{attacked["inventory"]}"]\norg_accounts = ["{world.PROD}"]\n')
    out = tmp_path / "f.jsonl"
    r = CliRunner().invoke(
        cli,
        [
            "hunt",
            str(attacked["logs"]),
            "--ip-ranges",
            str(RANGES),
            "--workers",
            "1",
            "--config",
            str(cfg),
            "--format",
            "jsonl",
            "-o",
            str(out),
            "-q",
        ],
    )
    assert r.exit_code == 1, r.output
    findings = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(findings) == 4 and {f["confidence"] for f in findings} == {"high"}


# --- real data ---------------------------------------------------------------------------------
STRATUS = (
    "stratus-red-team-detonation-logs",
    "aws.credential-access.ec2-steal-instance-credentials.json",
)
STRATUS_INSTANCE = "i-786a3A8B5C0d92eF4"


def _stratus(realdata, **kw):
    return api.hunt(
        [realdata.joinpath(*STRATUS)],
        ip_ranges=realdata / "aws-ip-ranges" / "ip-ranges.json",
        workers=1,
        fetch_ip_ranges=False,
        **kw,
    )


def test_stratus_theft_without_inventory_is_invisible_to_learned_egress(realdata):
    """The stolen key's only uses (GetCallerIdentity, DescribeInstances) come from
    18.236.253.47, in AWS's EC2 us-west-2 space after anonymisation, and the instance's own
    calls are not in the file. The first AWS-space address an instance credential is seen
    from is taken to be the instance's own, so learned egress has nothing to compare it with:
    one key, one address, no VPC endpoint. The binding detections report nothing, and the run
    says why (no inventory). This is the blind spot of first-use learning."""
    result = _stratus(realdata)
    assert [f for f in result.findings if f["detection"] in BINDING] == []
    assert any(n.startswith("no instance inventory") for n in result.notes)
    [k] = api.key_bindings(result.engine)
    assert k["access_key_id"] == "ASIAP5CT9NN8EYVU1FXV"
    assert k["instance_id"] == STRATUS_INSTANCE.lower()
    assert k["binding_evidence"] == "session name (no vending event in these logs)"


def test_stratus_theft_with_the_instances_inventory_is_another_accounts_address(realdata, tmp_path):
    """Given an inventory that places the instance elsewhere (as describe-instances would for
    the real instance), 18.236.253.47 is no address of the organisation: other AWS account,
    confidence high."""
    world.instances(
        tmp_path / "describe-instances.json",
        [(STRATUS_INSTANCE, "10.0.1.17", "34.219.20.30", "vpc-0a1b2c3d4e5f6a7b8", None)],
        owner="017622104382",
    )
    result = _stratus(realdata, inventory=[tmp_path])
    [f] = [f for f in result.findings if f["detection"] in BINDING]
    assert f["detection"] == "ec2_instance_credential_other_aws_account"
    assert f["source_ip"] == "18.236.253.47"
    assert f["network"] == "aws:EC2:us-west-2"
    assert f["access_key_ids"] == ["ASIAP5CT9NN8EYVU1FXV"]
    assert f["actions"] == ["ec2:DescribeInstances", "sts:GetCallerIdentity"]
    assert f["confidence"] == "high"


@pytest.mark.parametrize("dialect", ["trino", "spark"])
def test_binding_sql_transpiles_for_athena_and_spark(dialect):
    import sqlglot

    from imdshunt.detect import load_detections
    from imdshunt.engine.duckdb import VIEWS_DIR

    detections = load_detections()
    sqls = [detections[d].render_sql() for d in sorted(BINDING)]
    sqls.append((VIEWS_DIR / "20_instance_binding.sql").read_text())
    for sql in sqls:
        sqlglot.transpile(
            sql, read="duckdb", write=dialect, unsupported_level=sqlglot.ErrorLevel.RAISE
        )


def test_binding_follows_inventory_registered_after_a_first_run(attacked):
    """ec2_place_binding is computed once per data change (engine 'materialize' mark): a new
    inventory registered on the same engine must change the answer, not serve a stale copy."""
    from imdshunt.enrich.inventory import load_inventory, register_inventory

    result = api.hunt([attacked["logs"]], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)
    before = {f["credential_id"]: f["confidence"] for f in result.findings}
    assert before[world.C] == "medium"
    register_inventory(result.engine, load_inventory([attacked["inventory"]]))
    after = {f["credential_id"]: f["confidence"] for f in api.run_detections(result.engine)}
    assert after[world.C] == "high"
