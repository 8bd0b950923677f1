"""Credential paths (ECS task, EKS Pod Identity, EKS IRSA, Lambda) on real, public CloudTrail.

Uses ../shared/realdata (skipped when absent): the flaws2.cloud Defender logs, whose Lambda and
ECS task credentials were stolen and used from 104.102.221.250, and cloudtrail-samples, one file
per credential pattern (see its SOURCES.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imdshunt import api
from imdshunt.schema import API_ACTIVITY_COLUMNS
from imdshunt.sources.cloudtrail import read_file

HERE = Path(__file__).resolve().parent
WORKLOAD_DETECTIONS = (
    "ecs_task_credential_outside_aws",
    "eks_pod_credential_outside_aws",
    "lambda_credential_outside_aws",
)
FLAWS2_ATTACKER = "104.102.221.250"
FLAWS2_LAMBDA_RUNTIME = "34.234.236.212"


def _hunt(paths, ranges):
    return api.hunt(paths, ip_ranges=ranges, workers=1, fetch_ip_ranges=False)


@pytest.fixture(scope="module")
def flaws2(realdata):
    return _hunt(
        [realdata / "flaws2-defender-cloudtrail"],
        realdata / "aws-ip-ranges" / "ip-ranges-2018-11-27-02-33-25.json",
    )


def _samples(realdata, *names):
    folder = realdata / "cloudtrail-samples"
    return _hunt([folder / n for n in names], realdata / "aws-ip-ranges" / "ip-ranges.json")


def _sessions(result) -> dict[str, dict]:
    """session name -> its classification, from the credential_activity view."""
    rows = result.engine.query(
        "SELECT session_name, any_value(credential_type) AS credential_type, "
        "bool_and(vending_event_missing) AS vending_event_missing, "
        "any_value(credential_marker) AS credential_marker "
        "FROM credential_activity GROUP BY session_name"
    ).to_pylist()
    return {r["session_name"]: r for r in rows}


def _by_detection(result, det_id):
    return [f for f in result.findings if f["detection"] == det_id]


# ---- flaws2.cloud: the acceptance test ------------------------------------------


def test_flaws2_stolen_lambda_session_level1_is_reported_with_key_and_actions(flaws2):
    (f,) = _by_detection(flaws2, "lambda_credential_outside_aws")
    assert f["credential_type"] == "lambda"
    assert f["credential_id"] == f["lambda_function"] == "level1"
    assert f["role"] == "level1"
    assert f["role_arn"] == "arn:aws:iam::653711331788:role/service-role/level1"
    assert f["source_ip"] == FLAWS2_ATTACKER and f["network"] == "internet"
    assert f["access_key_ids"] == ["ASIAZQNB3KHGIGYQXVVG"]
    assert f["actions"] == [
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:ListImages",
        "s3:ListObjects",
    ]
    assert f["event_count"] == 4  # ground truth: attacker_stolen_lambda_role_credentials
    assert sorted(f["event_ids"]) == sorted(
        [
            "8b3e9429-989c-4e28-92b3-da8df5603f6d",
            "eb0fa4a0-580f-4270-bd37-7e45dfb217aa",
            "b2867f3e-810c-47d1-9657-edb886e03fe6",
            "ff4c72f3-4fbd-45d4-9ee3-3834a78f53de",
        ]
    )
    assert f["vending_event_id"] == "e16db4aa-60e9-4a4b-a907-ccb4fbcd0227"
    assert "vended by sts:AssumeRole from lambda.amazonaws.com" in f["reasons"][1]


def test_flaws2_stolen_ecs_task_session_is_reported_with_key_and_actions(flaws2):
    (f,) = _by_detection(flaws2, "ecs_task_credential_outside_aws")
    assert f["credential_type"] == "ecs-task"
    assert f["credential_id"] == f["ecs_task_id"] == "d190d14a-2404-45d6-9113-4eda22d7f2c7"
    assert f["role"] == "level3"
    assert f["source_ip"] == FLAWS2_ATTACKER
    assert f["access_key_ids"] == ["ASIAZQNB3KHGNXWXBSJS"]
    assert f["actions"] == ["s3:ListBuckets"]
    assert f["event_ids"] == ["65e111a0-83ae-4ba8-9673-16291a804873"]
    assert f["key_issued_at"] == "2018-11-28T22:31:59Z"
    assert "vended by sts:AssumeRole from ecs-tasks.amazonaws.com" in f["reasons"][1]


def test_flaws2_benign_lambda_runtime_calls_from_aws_are_not_reported(flaws2):
    assert all(f["source_ip"] != FLAWS2_LAMBDA_RUNTIME for f in flaws2.findings)
    # ... although they are recognised as the same Lambda credential
    rows = flaws2.engine.query(
        "SELECT DISTINCT credential_type, network FROM credential_activity "
        f"WHERE src_ip = '{FLAWS2_LAMBDA_RUNTIME}'"
    ).to_pylist()
    assert rows == [{"credential_type": "lambda", "network": "aws:EC2:us-east-1"}]


def test_flaws2_yields_exactly_the_two_stolen_workload_credentials(flaws2):
    assert sorted((f["detection"], f["credential_id"]) for f in flaws2.findings) == [
        ("ecs_task_credential_outside_aws", "d190d14a-2404-45d6-9113-4eda22d7f2c7"),
        ("lambda_credential_outside_aws", "level1"),
    ]


# ---- cloudtrail-samples: each path classifies -------------------------------------------

ECS_VEND = "ecs-task-role__sts-AssumeRole-invokedBy-ecs-tasks.amazonaws.com__flaws2.json"
ECS_STOLEN = "ecs-task-role__session-used-from-outside-AWS__STOLEN__flaws2.json"
LAMBDA_VEND = "lambda__sts-AssumeRole-invokedBy-lambda.amazonaws.com__flaws2.json"
LAMBDA_RUNTIME = "lambda__execution-role-session-from-lambda-runtime__flaws2.json"
LAMBDA_STOLEN = "lambda__execution-role-session-used-from-outside-AWS__STOLEN__flaws2.json"
POD_VEND = "eks-pod-identity__sts-AssumeRole-invokedBy-pods.eks.amazonaws.com__aws-samples.json"
POD_NODE = (
    "eks-pod-identity__eks-auth-AssumeRoleForPodIdentity-by-node-instance-role-"
    "ec2RoleDelivery-2.0__aws-samples.json"
)
IRSA_SESSION = "eks-irsa__session-webIdFederationData-oidc.eks__awsdocs-marketplace.json"
GOOGLE_WEB_ID = "assumerolewithwebidentity__WebIdentityUser-google__awsdocs-iam.json"


def test_ecs_task_session_is_classified_by_its_vending_event(realdata):
    s = _sessions(_samples(realdata, ECS_VEND, ECS_STOLEN))
    task = s["d190d14a-2404-45d6-9113-4eda22d7f2c7"]
    assert task["credential_type"] == "ecs-task" and not task["vending_event_missing"]


def test_ecs_task_session_without_its_vending_event_is_classified_by_task_id(realdata):
    result = _samples(realdata, ECS_STOLEN)
    task = _sessions(result)["d190d14a-2404-45d6-9113-4eda22d7f2c7"]
    assert task["credential_type"] == "ecs-task" and task["vending_event_missing"]
    (f,) = _by_detection(result, "ecs_task_credential_outside_aws")
    assert "is not in the logs" in f["reasons"][1]


def test_lambda_session_is_classified_by_its_vending_event(realdata):
    result = _samples(realdata, LAMBDA_VEND, LAMBDA_STOLEN)
    level1 = _sessions(result)["level1"]
    assert level1["credential_type"] == "lambda" and not level1["vending_event_missing"]
    assert len(_by_detection(result, "lambda_credential_outside_aws")) == 1


def test_lambda_session_without_its_vending_event_is_classified_by_runtime_user_agent(realdata):
    result = _samples(realdata, LAMBDA_RUNTIME, LAMBDA_STOLEN)
    level1 = _sessions(result)["level1"]
    assert level1["credential_type"] == "lambda" and level1["vending_event_missing"]
    assert "runtime user agent" in level1["credential_marker"]
    (f,) = _by_detection(result, "lambda_credential_outside_aws")
    assert f["source_ip"] == FLAWS2_ATTACKER


def test_lambda_runtime_calls_alone_are_lambda_and_not_reported(realdata):
    result = _samples(realdata, LAMBDA_RUNTIME)
    assert _sessions(result)["level1"]["credential_type"] == "lambda"
    assert result.findings == []


def test_stolen_lambda_session_alone_carries_no_marker_and_is_not_classified(realdata):
    """Documented limit: a function-named session seen only from the attacker, with neither the
    vending event nor a runtime call in the logs, cannot be told from any other session."""
    result = _samples(realdata, LAMBDA_STOLEN)
    assert _sessions(result)["level1"]["credential_type"] is None
    assert not any(f["detection"] in WORKLOAD_DETECTIONS for f in result.findings)


def test_pod_identity_vending_event_carries_cluster_namespace_service_account_and_pod(realdata):
    result = _samples(realdata, POD_VEND)
    rows = result.engine.query(
        "SELECT access_key_id, vended_by, vended_type, eks_cluster, k8s_namespace, "
        "k8s_service_account, k8s_pod FROM key_provenance ORDER BY access_key_id"
    ).to_pylist()
    assert rows == [
        {
            "access_key_id": "ASIA37QFXJP5M2XCT3LV",
            "vended_by": "pods.eks.amazonaws.com",
            "vended_type": "eks-pod-identity",
            "eks_cluster": "eksworkshop-eksctl",
            "k8s_namespace": "app1",
            "k8s_service_account": "default",
            "k8s_pod": "app1-v1-56b9f94b4-dvd5c",
        },
        {
            "access_key_id": "ASIA37QFXJP5MQOWRZ6Q",
            "vended_by": "pods.eks.amazonaws.com",
            "vended_type": "eks-pod-identity",
            "eks_cluster": "eksworkshop-eksctl",
            "k8s_namespace": "ns-a",
            "k8s_service_account": "sa1",
            "k8s_pod": "app1",
        },
    ]


def test_pod_identity_session_names_have_the_documented_shape(realdata):
    result = _samples(realdata, POD_VEND)
    names = result.engine.query(
        "SELECT req_session_name AS n, regexp_full_match(req_session_name, "
        "'eks-.+-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}') AS ok "
        "FROM credential_vending"
    ).to_pylist()
    assert len(names) == 2 and all(r["ok"] for r in names)


def test_eks_node_role_calling_eks_auth_is_an_instance_credential_not_a_pod_one(realdata):
    sessions = _sessions(_samples(realdata, POD_NODE))
    assert {s["credential_type"] for s in sessions.values()} == {"ec2-instance"}


def test_irsa_session_is_classified_by_its_eks_oidc_provider(realdata):
    result = _samples(realdata, IRSA_SESSION)
    s = _sessions(result)["botocore-session-1111111111"]
    assert s["credential_type"] == "eks-irsa" and s["vending_event_missing"]
    (f,) = _by_detection(result, "eks_pod_credential_outside_aws")
    assert f["eks_oidc_provider"].endswith(
        "oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLEFA1C58F08CDB049167EXAMPLE"
    )


def test_web_identity_from_a_non_eks_provider_is_not_irsa(realdata):
    result = _samples(realdata, GOOGLE_WEB_ID)
    row = result.engine.query("SELECT vended_by, vended_type FROM key_provenance").to_pylist()
    assert row == [{"vended_by": "accounts.google.com", "vended_type": None}]


def test_other_identities_in_the_samples_are_never_a_workload_path(realdata):
    folder = realdata / "cloudtrail-samples"
    others = [
        p.name
        for p in folder.glob("*.json")
        if p.name.startswith(
            ("iam-identity-center", "assumerolewithsaml", "sts-AssumeRole__", "service-originated")
        )
    ]
    sessions = _sessions(_samples(realdata, *others))
    assert sessions and all(
        s["credential_type"] not in ("ecs-task", "eks-pod-identity", "eks-irsa", "lambda")
        for s in sessions.values()
    )


# ---- decoder ------------------------------------------------------------------------------


def test_irsa_vending_event_decodes_provider_and_service_account():
    fixture = (
        HERE.parent
        / "src/imdshunt/detections/eks_pod_credential_outside_aws/tests"
        / "match_irsa_credential_used_from_internet.json"
    )
    rows = read_file(fixture).rows
    vend = [dict(zip(API_ACTIVITY_COLUMNS, r, strict=True)) for r in rows][0]
    assert vend["event_name"] == "AssumeRoleWithWebIdentity"
    assert "oidc.eks.us-east-1.amazonaws.com" in vend["resp_web_id_provider"]
    assert vend["resp_web_id_subject"] == "system:serviceaccount:reports:report-builder"
    assert (vend["k8s_namespace"], vend["k8s_service_account"]) == ("reports", "report-builder")
