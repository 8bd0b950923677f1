"""Credential paths end to end on a synthetic organisation (skipped until imdshunt.synth exists).

The organisation runs ECS services, EKS Pod Identity and IRSA workloads and Lambda functions
next to people, CI and instances; one theft per path is planted (ground_truth.json).
"""

from __future__ import annotations

import json

import pytest

from imdshunt import api
from imdshunt.enrich.ipranges import load_classifier

synth = pytest.importorskip("imdshunt.synth")

WORKLOAD_DETECTIONS = (
    "ecs_task_credential_outside_aws",
    "eks_pod_credential_outside_aws",
    "lambda_credential_outside_aws",
)
VENDING = "('AssumeRole', 'AssumeRoleWithWebIdentity')"


@pytest.fixture(scope="module")
def org(tmp_path_factory):
    out = tmp_path_factory.mktemp("org")
    synth.generate_org(out, seed=7, records=20_000, workers=1)
    truth = json.loads((out / "ground_truth.json").read_text())
    result = api.hunt(
        [out / "AWSLogs"],
        ip_ranges=out / "ip-ranges.json",
        workers=1,
        fetch_ip_ranges=False,
        kinds=("credential",),
    )
    return out, truth, result


def _planted(truth):
    return [a for a in truth["attacks"] if a["detection"] in WORKLOAD_DETECTIONS]


def _key(d):
    return (d["detection"], d["credential_id"], d["source_ip"])


def _workload_findings(findings):
    return [f for f in findings if f["detection"] in WORKLOAD_DETECTIONS]


def test_each_planted_workload_theft_is_found_and_nothing_else(org):
    _, truth, result = org
    planted = _planted(truth)
    assert {a["credential_type"] for a in planted} == {
        "ecs-task",
        "eks-pod-identity",
        "eks-irsa",
        "lambda",
    }
    found = _workload_findings(result.findings)
    assert sorted(map(_key, found)) == sorted(map(_key, planted))


def test_workload_findings_carry_the_planted_pivot_data(org):
    _, truth, result = org
    found = {_key(f): f for f in _workload_findings(result.findings)}
    for a in _planted(truth):
        f = found[_key(a)]
        assert f["credential_type"] == a["credential_type"]
        assert f["account_id"] == a["account"] and f["role"] == a["role"]
        assert f["access_key_ids"] == sorted(a["access_keys"])
        assert f["actions"] == a["actions"] and f["event_count"] == a["event_count"]
        assert sorted(f["event_ids"]) == sorted(a["event_ids"])
        assert (f["first_seen"], f["last_seen"]) == (a["first_seen"], a["last_seen"])
        assert f["key_issued_at"] == a["key_issued_at"]
        if a["credential_type"] == "eks-pod-identity":
            assert (f["eks_cluster"], f["k8s_namespace"], f["k8s_pod"]) == (
                a["cluster"],
                a["namespace"],
                a["pod"],
            )
        if a["credential_type"] == "eks-irsa":
            assert f["k8s_namespace"] == a["namespace"]
            assert f["k8s_service_account"] == a["service_account"]


def test_without_any_vending_event_the_session_markers_still_find_every_theft(org):
    """Trails that miss STS management events: drop every AssumeRole* and hunt again."""
    out, truth, _ = org
    engine, _ = api.load_cloudtrail([out / "AWSLogs"], workers=1)
    engine.materialize()  # api_activity reads files in place; make it a table to edit it
    engine.query(
        "DELETE FROM api_activity WHERE event_source = 'sts.amazonaws.com' "
        f"AND event_name IN {VENDING}",
        label="drop vending events",
    )
    api.classify_addresses(engine, load_classifier(out / "ip-ranges.json", fetch=False))
    found = _workload_findings(api.run_detections(engine, kinds=("credential",)))
    assert sorted(map(_key, found)) == sorted(map(_key, _planted(truth)))
    assert all(f["vending_event_missing"] for f in found)
    assert all("is not in the logs" in f["reasons"][1] for f in found)
