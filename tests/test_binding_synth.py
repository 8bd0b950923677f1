"""The binding detections on the project's synthetic organisation (imdshunt.synth): instances on
public IPs, behind shared NAT gateways and calling through their own VPC endpoints over IPv4 and
IPv6, plus the planted thefts of every binding kind."""

from __future__ import annotations

import pytest

from imdshunt import api
from imdshunt.synth import generate_org

BINDING_KINDS = {
    "ec2_other_aws_account",
    "ec2_foreign_vpc_endpoint",
    "ec2_cross_instance_public_ip",
    "ec2_cross_instance_own_vpce",
    "ecs_other_aws_account",
    "eks_pod_identity_foreign_vpc_endpoint",
    "lambda_foreign_vpc_endpoint",
}


@pytest.fixture(scope="module")
def org(tmp_path_factory):
    root = tmp_path_factory.mktemp("binding-org")
    truth = generate_org(root, seed=5, records=20_000)
    runs = {
        name: api.hunt(
            [root / "AWSLogs"],
            ip_ranges=root / "ip-ranges.json",
            fetch_ip_ranges=False,
            workers=2,
            kinds=("credential",),
            inventory=inventory,
        )
        for name, inventory in (("learned", []), ("inventory", [root / "inventory"]))
    }
    return truth, runs, root


@pytest.mark.parametrize("run", ["learned", "inventory"])
def test_legitimate_instance_traffic_yields_no_finding(org, run):
    truth, runs, _ = org
    planted = {(a["credential_id"], a["source_ip"]) for a in truth.attacks}
    # what the thieves minted with stolen credentials and used later is planted too
    planted |= {
        (d["credential_id"], d["source_ip"]) for a in truth.attacks for d in a.get("derived", [])
    }
    for f in runs[run].findings:
        assert (f["credential_id"], f["source_ip"]) in planted, f"false positive: {f}"


@pytest.mark.parametrize("run", ["learned", "inventory"])
def test_every_planted_binding_theft_is_found_with_its_address_and_key(org, run):
    truth, runs, _ = org
    found = {(f["credential_id"], f["source_ip"]): f for f in runs[run].findings}
    attacks = [a for a in truth.attacks if a["kind"] in BINDING_KINDS]
    assert {a["kind"] for a in attacks} == BINDING_KINDS
    for a in attacks:
        f = found.get((a["credential_id"], a["source_ip"]))
        assert f is not None, f"{run}: missed {a['kind']} {a['credential_id']}"
        assert f["detection"] == a["detection"], (a["kind"], f["detections"])
        assert set(a["access_keys"]) <= set(f["access_key_ids"])
        assert f["key_issued_at"] is not None
        assert f["confidence"] == ("high" if run == "inventory" else "medium")
        if a.get("source_instance_id"):
            assert f["other_instance_id"] == a["source_instance_id"].lower()


def test_outside_aws_thefts_are_reported_once_each(org):
    truth, runs, _ = org
    for run in runs.values():
        keys = [(f["credential_id"], f["source_ip"]) for f in run.findings]
        assert len(keys) == len(set(keys))


def test_incremental_hunt_with_inventory_equals_the_one_shot_hunt(org, tmp_path):
    from imdshunt.state import hunt_incremental

    _, runs, root = org
    kw = dict(ip_ranges=root / "ip-ranges.json", fetch_ip_ranges=False, workers=2)
    state = tmp_path / "state"
    first = hunt_incremental(
        [root / "AWSLogs"], state, kinds=("credential",), inventory=[root / "inventory"], **kw
    )
    assert first.findings == runs["inventory"].findings
    assert any("inventory" in n for n in first.notes)
    # The next run has no inventory: binding rests on learned egress again, and the findings
    # whose confidence dropped are reported as updated, not silently kept at "high".
    second = hunt_incremental([root / "AWSLogs"], state, kinds=("credential",), **kw)
    assert second.findings == runs["learned"].findings
    binding_ids = {
        f["finding_id"] for f in runs["learned"].findings if f.get("confidence") == "medium"
    }
    assert binding_ids and binding_ids <= {f["finding_id"] for f in second.updated}
