"""Container and function credentials bound like instance credentials (issue 18): inventory of
tasks, pods and functions, and SSRF-to-theft chains for tasks and pods."""

from __future__ import annotations

import json
from pathlib import Path

from imdshunt import api
from imdshunt.correlate import correlate_chains, theft_keys, workload_key
from imdshunt.enrich.inventory import detect_kind, load_inventory
from tests.test_detection_fixtures import RANGES

DETECTIONS = Path(__file__).resolve().parents[1] / "src" / "imdshunt" / "detections"
OTHER = DETECTIONS / "workload_credential_other_aws_account" / "tests"
FOREIGN = DETECTIONS / "workload_credential_foreign_vpc_endpoint" / "tests"
FARGATE = OTHER / "nomatch_fargate_tasks_on_their_own_public_ips.inventory"
PODS = FOREIGN / "nomatch_pods_through_the_orgs_own_endpoint.inventory"
TASK = "4f1c9a2e-7b3d-4e8a-9c61-2d5e8f0a1b37"


def test_task_inventory_joins_describe_tasks_to_the_eni_for_public_address_and_vpc():
    inv = load_inventory([FARGATE])
    assert sorted(set(inv.files.values())) == ["describe-network-interfaces", "ecs-describe-tasks"]
    rows = [r for r in inv.workload_rows() if r["workload_id"] == TASK]
    assert {r["address"] for r in rows} == {"10.9.2.11", "35.170.10.20"}
    assert {(r["cluster"], r["service"], r["account_id"], r["region"]) for r in rows} == {
        ("orders", "orders-api", "111122223333", "us-east-1")
    }
    assert {r["vpc_id"] for r in rows} == {"vpc-0a1b2c3d4e5f6a7b8"}
    # the task ENI's public address is an org address for every binding detection
    assert any(a["address"] == "35.170.10.20" and a["kind"] == "eni" for a in inv.addresses)
    assert inv.workload_by_ip()["10.9.2.11"] == {TASK}


def test_kubectl_pods_are_placed_in_a_vpc_by_their_address_on_the_node_eni():
    inv = load_inventory([PODS])
    assert "kubectl-pods" in inv.files.values()
    [pod] = [r for r in inv.workload_rows() if r["workload_type"] == "eks-pod"]
    assert (pod["namespace"], pod["workload_id"], pod["service"]) == (
        "payments",
        "payments-api-7d9c6b5f4-x2x8k",
        "payments-api",
    )
    assert pod["address"] == "10.9.1.45" and pod["vpc_id"] == "vpc-0a1b2c3d4e5f6a7b8"
    assert inv.workload_by_ip()["10.9.1.45"] == {"pod/payments/payments-api-7d9c6b5f4-x2x8k"}


def test_host_network_pods_are_not_given_their_nodes_address(tmp_path):
    doc = json.loads((PODS / "kubectl-get-pods.json").read_text())
    doc["items"][0]["spec"]["hostNetwork"] = True
    doc["items"][0]["status"]["podIP"] = doc["items"][0]["status"]["hostIP"]
    (tmp_path / "pods.json").write_text(json.dumps(doc))
    assert load_inventory([tmp_path / "pods.json"]).workload_rows() == []


def test_lambda_functions_carry_their_vpc_only_when_attached():
    inv = load_inventory(
        [OTHER / "match_vpc_attached_function_used_from_aws_address_not_in_inventory.inventory"]
    )
    [fn] = [r for r in inv.workload_rows() if r["workload_type"] == "lambda"]
    assert (fn["workload_id"], fn["vpc_id"], fn["address"]) == (
        "invoice-renderer",
        "vpc-0a1b2c3d4e5f6a7b8",
        None,
    )
    outside = load_inventory(
        [OTHER / "nomatch_lambda_outside_a_vpc_calls_from_shared_addresses.inventory"]
    )
    assert [r["vpc_id"] for r in outside.workload_rows()] == [None]


def test_workload_documents_are_told_apart_by_content():
    assert detect_kind({"tasks": [], "failures": []}) == "ecs-describe-tasks"
    assert detect_kind({"Functions": []}) == "lambda-list-functions"
    assert detect_kind({"apiVersion": "v1", "kind": "List", "items": []}) == "kubectl-pods"
    # a List of something else is not a pod list
    assert detect_kind({"kind": "List", "items": [{"kind": "Service"}]}) is None


# -- chains -------------------------------------------------------------------------------------
ALB = (
    "https 2026-11-02T09:00:00.000000Z app/orders/50dc6c495c0c9188 198.199.65.17:51000 "
    "{target}:8080 0.000 0.002 0.000 200 200 120 512 "
    '"GET https://orders.example.com:443/preview?url=http://169.254.170.2/v2/credentials/'
    '3d1f0e7a-5b2c-4a9d-8e6f-0c1b2a3d4e5f HTTP/1.1" "python-requests/2.31.0" '
    "ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-1:111122223333:"
    'targetgroup/orders/73e2d6bc24d8a067 "Root=1-58337262-36d228ad5d99923122bbe354" '
    '"orders.example.com" "-" 0 2026-11-02T08:59:59.990000Z "forward" "-" "-" '
    '"{target}:8080" "200" "-" "-"\n'
)
TASK_THEFT = (
    DETECTIONS
    / "ecs_task_credential_outside_aws"
    / "tests"
    / "match_task_credential_used_from_internet.json"
)


def _task_org(tmp_path: Path, *, own_endpoint_call: bool, target: str = "10.9.2.11") -> Path:
    recs = json.loads(TASK_THEFT.read_text())["Records"]
    if own_endpoint_call:  # the task's own call through its VPC endpoint, from its private address
        own = json.loads(json.dumps(recs[1]))
        own.update(
            sourceIPAddress=target,
            vpcEndpointId="vpce-0123456789abcdef0",
            vpcEndpointAccountId="111122223333",
            eventID="9a7e0000-5c1e-4b7a-9e2d-00000000f001",
        )
        recs.append(own)
    ct = tmp_path / "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/02"
    ct.mkdir(parents=True)
    (ct / "111122223333_CloudTrail_us-east-1_20261102T1000Z_x.json").write_text(
        json.dumps({"Records": recs})
    )
    elb = tmp_path / "AWSLogs/111122223333/elasticloadbalancing/us-east-1/2026/11/02"
    elb.mkdir(parents=True)
    (
        elb / "111122223333_elasticloadbalancing_us-east-1_app.orders.50dc6c495c0c9188_"
        "20261102T0900Z_52.0.0.1_abc.log"
    ).write_text(ALB.format(target=target))
    return tmp_path


def _chains(result):
    return [f for f in result.findings if f["detection"] == "imds_theft_chain"]


def test_ssrf_against_a_task_address_learned_from_its_endpoint_calls_chains_its_theft(tmp_path):
    result = api.hunt(
        [_task_org(tmp_path, own_endpoint_call=True)],
        ip_ranges=RANGES,
        workers=1,
        fetch_ip_ranges=False,
    )
    [chain] = _chains(result)
    assert chain["credential_type"] == "ecs-task"
    assert chain["target_workload"] == TASK and chain["target_instance"] is None
    assert chain["credential_id"] == TASK and chain["source_ip"] == "198.199.65.17"
    assert chain["theft_detection"] == "ecs_task_credential_outside_aws"
    assert chain["ssrf_endpoints"] == ["ecs-credentials"]
    assert chain["target_ips"] == ["10.9.2.11"]


def test_ssrf_against_a_task_address_known_from_inventory_chains_its_theft(tmp_path):
    org = _task_org(tmp_path, own_endpoint_call=False)
    plain = api.hunt([org], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)
    assert _chains(plain) == []  # nothing says whose address 10.9.2.11 is
    result = api.hunt(
        [org], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False, inventory=[FARGATE]
    )
    [chain] = _chains(result)
    assert chain["target_workload"] == TASK and chain["credential_type"] == "ecs-task"


def test_ssrf_against_another_tasks_address_is_not_chained(tmp_path):
    org = _task_org(tmp_path, own_endpoint_call=False, target="10.9.2.12")
    result = api.hunt(
        [org], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False, inventory=[FARGATE]
    )
    assert _chains(result) == []


POD_WEB = {
    "finding_id": "w1",
    "detection": "imds_ssrf_attempt",
    "first_seen": "2026-11-02T09:00:00Z",
    "client_ip": "198.199.65.17",
    "target_ip": "10.9.1.45",
    "request_url": "https://pay.example.com/fetch?u=http://169.254.170.23/v1/credentials",
    "endpoint": "eks-pod-identity",
    "encoding": "plain",
    "status": 200,
}
POD_THEFT = {
    "finding_id": "t1",
    "detection": "eks_pod_credential_outside_aws",
    "credential_type": "eks-pod-identity",
    "credential_id": "eks-prod-east--payments-a-498124c2-a555-40bf-9059-ca9a26821eb0",
    "k8s_namespace": "payments",
    "k8s_pod": "payments-api-7d9c6b5f4-x2x8k",
    "source_ip": "198.199.65.17",
    "first_seen": "2026-11-02T09:30:00Z",
}


def test_a_pod_chain_matches_the_pod_named_by_the_vending_event():
    pod_key = workload_key("eks-pod", "payments-api-7d9c6b5f4-x2x8k", "payments")
    assert pod_key in theft_keys(POD_THEFT)
    [chain] = correlate_chains([POD_WEB], [POD_THEFT], {}, workload_by_ip={"10.9.1.45": {pod_key}})
    assert chain["credential_type"] == "eks-pod-identity"
    assert chain["target_workload"] == "payments/payments-api-7d9c6b5f4-x2x8k"
    # another pod in the same namespace is not this pod
    other = {"10.9.1.45": {workload_key("eks-pod", "payments-api-7d9c6b5f4-zzzzz", "payments")}}
    assert correlate_chains([POD_WEB], [POD_THEFT], {}, workload_by_ip=other) == []


def test_lambda_thefts_are_never_chained_to_a_target_address():
    theft = dict(POD_THEFT, credential_type="lambda", credential_id="invoice-renderer")
    wl = {"10.9.1.45": {"invoice-renderer"}}
    assert correlate_chains([POD_WEB], [theft], {}, workload_by_ip=wl) == []


def test_synthetic_organisation_chains_the_ssrf_through_a_task_to_its_stolen_credential(tmp_path):
    from imdshunt.synth import generate_org

    truth = generate_org(tmp_path, seed=3, records=3_000, days=2, workers=1)
    task_chain = next(c for c in truth.ssrf["chains"] if "task_id" in c)
    kw = dict(ip_ranges=tmp_path / "ip-ranges.json", fetch_ip_ranges=False, workers=1)
    # the task reaches AWS through a NAT gateway: only inventory says whose address it is
    assert not [c for c in _chains(api.hunt([tmp_path / "AWSLogs"], **kw)) if c["target_workload"]]
    result = api.hunt([tmp_path / "AWSLogs"], inventory=[tmp_path / "inventory"], **kw)
    chains = [c for c in _chains(result) if c["target_workload"]]
    # the planted internet theft, and the same task's key replayed from another AWS account
    assert {c["theft_detection"] for c in chains} == {
        "ecs_task_credential_outside_aws",
        "workload_credential_other_aws_account",
    }
    for chain in chains:
        assert chain["credential_type"] == "ecs-task"
        assert chain["target_workload"] == task_chain["task_id"]
        assert chain["target_ips"] == [task_chain["target_ip"]]
        assert chain["theft_finding_id"] in {f["finding_id"] for f in result.findings}


def test_the_run_says_what_workload_evidence_was_missing():
    fixture = OTHER / "nomatch_fargate_tasks_on_their_own_public_ips.json"
    kw = dict(ip_ranges=RANGES, workers=1, fetch_ip_ranges=False, kinds=("credential",))
    bare = api.hunt([fixture], **kw).notes
    assert any("no describe-network-interfaces for account(s) 111122223333" in n for n in bare)
    assert any(n.startswith("no task, pod or function inventory") for n in bare)
    given = api.hunt([fixture], inventory=[FARGATE], **kw).notes
    assert not any("describe-network-interfaces" in n or "no task, pod" in n for n in given)
