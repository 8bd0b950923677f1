"""On a generated organisation: the naive rule drowns, imdshunt reports only what was planted."""

from __future__ import annotations

import pytest

from imdshunt import api
from imdshunt.detect import load_detections
from imdshunt.synth import generate_org


@pytest.fixture(scope="module")
def org(tmp_path_factory):
    root = tmp_path_factory.mktemp("org")
    truth = generate_org(root, seed=11, records=20_000)
    result = api.hunt(
        [root / "AWSLogs"], ip_ranges=root / "ip-ranges.json", fetch_ip_ranges=False, workers=2
    )
    return truth, result


def _credential_findings(result):
    """The credential findings of thefts (derived credentials have tests of their own)."""
    return [
        f
        for f in result.findings
        if f.get("kind") == "credential" and f["detection"] != "derived_credential_use"
    ]


def test_naive_rule_flags_thousands_and_imdshunt_only_the_thefts(org):
    truth, result = org
    assert result.naive["events"] >= 1000
    planted = {(a["credential_id"], a["source_ip"]) for a in truth.attacks}
    for f in _credential_findings(result):
        assert (f["credential_id"], f["source_ip"]) in planted, f"false positive: {f}"


def test_every_planted_theft_a_loaded_detection_covers_is_found(org):
    truth, result = org
    loaded = set(load_detections())
    found = {(f["credential_id"], f["source_ip"]): f for f in _credential_findings(result)}
    for attack in truth.attacks:
        if attack["detection"] not in loaded:
            continue
        f = found.get((attack["credential_id"], attack["source_ip"]))
        assert f is not None, f"missed {attack['kind']}: {attack['credential_id']}"
        assert set(attack["access_keys"]) <= set(f["access_key_ids"])


def test_no_instance_behind_nat_vpc_endpoint_or_own_public_ip_is_outside_aws(org):
    truth, result = org
    outside = [
        f
        for f in _credential_findings(result)
        if f["network"] != "internet" and f["detection"].endswith("outside_aws")
    ]
    assert outside == []


def test_every_ssrf_attempt_is_found_and_no_decoy(org):
    truth, result = org
    web = [f for f in result.findings if f.get("kind") == "web"]
    seen_urls = {
        u["url"] if isinstance(u, dict) else u
        for f in web
        for u in (f.get("request_urls") or [f.get("request_url")])
    }
    for attempt in truth.ssrf["attempts"]:
        assert attempt["request_url"] in seen_urls, attempt
    for decoy in truth.ssrf["decoys"]:
        assert decoy["request_url"] not in seen_urls, decoy


def test_accounting_adds_up(org):
    truth, result = org
    assert result.stats.records_read == truth.records_delivered
    assert result.stats.duplicate_records == len(truth.duplicates)
    assert sum(result.stats.records_skipped.values()) == 0


def test_every_field_a_finding_carries_is_in_the_contract(org):
    """A new field must be documented in imdshunt.findings before it ships."""
    from imdshunt import findings as contract

    allowed = {
        "credential": set(contract.CREDENTIAL_FIELDS) | set(contract.CREDENTIAL_OPTIONAL_FIELDS),
        "web": set(contract.WEB_FIELDS) | set(contract.WEB_OPTIONAL_FIELDS),
    }
    _, result = org
    kinds = {f["kind"] for f in result.findings}
    assert kinds == {"credential", "web"}
    for f in result.findings:
        undocumented = set(f) - allowed[f["kind"]] - set(contract.COMMON_FIELDS)
        assert not undocumented, f"{f['detection']}: undocumented fields {sorted(undocumented)}"


def test_every_derived_credential_is_reported_with_its_parent_and_no_look_alike(org):
    """A role chain into the admin role people switch into, and a user and key made with the
    stolen session, both used later from other addresses; people switching into that role,
    the victim chaining roles on the box with the stolen key, and a CI user's key from the
    internet stay quiet."""
    truth, result = org
    planted = {
        d["access_key_id"]: (attack, d)
        for attack in truth.attacks
        for d in attack.get("derived", [])
    }
    assert {d["kind"] for _, d in planted.values()} == {"role-session", "access-key"}
    derived = [f for f in result.findings if f["detection"] == "derived_credential_use"]
    assert sorted(f["derived_access_key_id"] for f in derived) == sorted(planted)
    by_id = {f["finding_id"]: f for f in result.findings}
    for f in derived:
        attack, d = planted[f["derived_access_key_id"]]
        parent = by_id[f["parent_finding_id"]]
        assert parent["credential_id"] == attack["credential_id"]
        assert parent["source_ip"] == attack["source_ip"]
        assert f["minting_event_id"] == d["minting_event_id"]
        assert f["minting_event_name"] == d["minting_event_name"]
        assert f["source_ip"] == d["source_ip"] and f["first_seen"] == d["first_seen"]
        assert f["credential_id"] == d["credential_id"]
        assert set(f["event_ids"]) == set(d["event_ids"])
        assert f["finding_id"] in parent["derived_finding_ids"]
        assert {a["event_id"] for a in parent["artifacts"]} == set(attack["artifacts"])
