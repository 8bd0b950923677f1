"""One finding per (credential, source address): the strongest reason first, every reason kept."""

from __future__ import annotations

from pathlib import Path

from imdshunt import api
from imdshunt.detect import load_detections
from imdshunt.findings import Finding
from imdshunt.merge import merge_findings

HERE = Path(__file__).resolve().parent
DETECTIONS = HERE.parent / "src" / "imdshunt" / "detections"
RANGES = HERE / "data" / "ip-ranges.fixture.json"
CATALOGUE = load_detections()


def _finding(detection, *, severity="high", confidence=None, ip="198.51.100.7", **extra):
    """A credential finding as the detection would make it (with its metadata)."""
    f = {
        "kind": "credential",
        "detection": detection,
        "severity": severity,
        "finding_id": detection[-6:],
        "account_id": "111122223333",
        "role": "web-app-role",
        "credential_id": "i-0a1b2c3d4e5f60718",
        "source_ip": ip,
        "access_key_ids": ["ASIA5FLZVX4OPVKKAAAA"],
        "actions": ["s3:ListBuckets"],
        "event_ids": ["e1"],
        "event_count": 1,
        "first_seen": "2026-11-02T09:10:00Z",
        "last_seen": "2026-11-02T09:10:00Z",
        "reasons": [f"{detection} says so"],
        "mitre": CATALOGUE[detection].techniques(),
        "merge_priority": CATALOGUE[detection].merge_priority,
    }
    if confidence:
        f["confidence"] = confidence
    f.update(extra)
    return Finding(f)


def test_same_credential_and_address_become_one_finding_with_every_reason():
    outside = _finding("ec2_instance_credential_outside_aws")
    multi = _finding(
        "ec2_instance_key_multiple_networks",
        confidence="high",
        access_key_ids=["ASIA5FLZVX4OPVKKBBBB"],
        actions=["sts:GetCallerIdentity"],
        event_ids=["e2"],
        event_count=2,
        last_seen="2026-11-02T10:00:00Z",
        other_sides=[{"source_ip": "35.170.10.20"}],
    )
    [merged] = merge_findings([multi, outside])
    assert merged["detection"] == "ec2_instance_credential_outside_aws"  # strongest leads
    assert merged["detections"] == [
        "ec2_instance_credential_outside_aws",
        "ec2_instance_key_multiple_networks",
    ]
    assert merged["reasons"] == [
        "ec2_instance_credential_outside_aws says so",
        "ec2_instance_key_multiple_networks says so",
    ]
    assert merged["access_key_ids"] == ["ASIA5FLZVX4OPVKKAAAA", "ASIA5FLZVX4OPVKKBBBB"]
    assert merged["actions"] == ["s3:ListBuckets", "sts:GetCallerIdentity"]
    assert merged["event_ids"] == ["e1", "e2"]
    assert merged["event_count"] == 2
    assert merged["last_seen"] == "2026-11-02T10:00:00Z"
    assert merged["other_sides"] == [{"source_ip": "35.170.10.20"}]  # kept from the weaker one
    assert merged["merged_finding_ids"] == [multi["finding_id"]]


def test_the_lowest_merge_priority_leads_and_every_technique_is_kept():
    # detection.yml's merge_priority decides between equally severe, equally confident
    # findings, whatever the detection ids' alphabetical order.
    endpoint = _finding("ec2_instance_credential_foreign_vpc_endpoint", confidence="high")
    cross = _finding("ec2_instance_credential_cross_instance", confidence="high")
    assert endpoint["merge_priority"] > cross["merge_priority"]
    [merged] = merge_findings([endpoint, cross])
    assert merged["detection"] == "ec2_instance_credential_cross_instance"
    [reordered] = merge_findings([Finding({**endpoint, "merge_priority": 0}), cross])
    assert reordered["detection"] == "ec2_instance_credential_foreign_vpc_endpoint"
    ids = [t["id"] for t in merged["mitre"]]
    assert ids == ["T1552.005", "T1078.004", "T1021", "T1090"]  # the leader's first, each once


def test_high_confidence_inventory_evidence_leads_over_a_medium_learned_one():
    learned = _finding(
        "ec2_instance_credential_other_aws_account", severity="medium", confidence="medium"
    )
    inventory = _finding("ec2_instance_credential_cross_instance", confidence="high")
    [merged] = merge_findings([learned, inventory])
    assert merged["detection"] == "ec2_instance_credential_cross_instance"
    assert merged["severity"] == "high" and merged["confidence"] == "high"


def test_different_addresses_or_credentials_stay_apart_and_web_findings_pass_through():
    a = _finding("ec2_instance_credential_outside_aws")
    b = _finding("ec2_instance_credential_outside_aws", ip="198.51.100.8")
    c = _finding("ec2_instance_credential_outside_aws", credential_id="i-0b2c3d4e5f6071829")
    web1 = Finding({"kind": "web", "detection": "imds_ssrf_attempt", "client_ip": "1.2.3.4"})
    web2 = web1.copy()
    out = merge_findings([a, b, c, web1, web2])
    assert len(out) == 5
    assert all("detections" not in f for f in out)


def _hunt_fixture(name, **kw):
    fixture = DETECTIONS / "ec2_instance_key_multiple_networks" / "tests" / name
    return api.hunt([fixture], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False, **kw)


def test_hunt_never_reports_one_stolen_key_from_one_address_twice():
    result = _hunt_fixture("match_key_used_from_instance_and_the_internet.json")
    at = [f for f in result.findings if f["source_ip"] == "198.199.65.17"]
    assert len(at) == 1
    assert at[0]["detection"] == "ec2_instance_credential_outside_aws"
    assert set(at[0]["detections"]) == {
        "ec2_instance_credential_outside_aws",
        "ec2_instance_key_multiple_networks",
    }
    assert at[0]["reasons"][0].endswith("and the allowlisted egress")


def test_run_detections_can_return_the_unmerged_findings():
    result = _hunt_fixture("match_key_used_from_instance_and_the_internet.json")
    raw = api.run_detections(result.engine, merge=False)
    assert sorted(f["detection"] for f in raw if f["source_ip"] == "198.199.65.17") == [
        "ec2_instance_credential_outside_aws",
        "ec2_instance_key_multiple_networks",
    ]


def test_two_findings_of_one_detection_are_never_folded():
    """A detection's own grouping is authoritative (e.g. two IRSA pods sharing a session name)."""
    a = _finding("eks_pod_credential_outside_aws", k8s_service_account="a")
    b = _finding("eks_pod_credential_outside_aws", k8s_service_account="b")
    c = _finding("ec2_instance_key_multiple_networks")
    assert merge_findings([a, b, c]) == [a, b, c]
