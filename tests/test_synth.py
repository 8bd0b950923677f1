"""The synthetic organisation generator: deterministic, real-shaped, and consistent."""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import json
import re
from pathlib import Path

import pytest

from imdshunt.synth import GroundTruth, generate_org

SIZE = {"records": 4_000, "days": 2, "seed": 11}


@pytest.fixture(scope="module")
def org(tmp_path_factory) -> tuple[Path, GroundTruth]:
    out = tmp_path_factory.mktemp("synthorg")
    return out, generate_org(out, **SIZE)


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _cloudtrail(root: Path):
    """(file, record) for every CloudTrail log file (digests excluded)."""
    for p in sorted(root.glob("AWSLogs/o-*/*/CloudTrail/*/*/*/*/*.json.gz")):
        for rec in json.loads(gzip.decompress(p.read_bytes()))["Records"]:
            yield str(p.relative_to(root)), rec


def _paths(obj, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            q = f"{prefix}.{k}" if prefix else k
            out.add(q)
            out |= _paths(v, q)
    elif isinstance(obj, list):
        for v in obj:
            out |= _paths(v, prefix + "[]")
    return out


def _ranges(root: Path) -> list:
    doc = json.loads((root / "ip-ranges.json").read_text())
    return [ipaddress.ip_network(p["ip_prefix"]) for p in doc["prefixes"]] + [
        ipaddress.ip_network(p["ipv6_prefix"]) for p in doc["ipv6_prefixes"]
    ]


def _in(ip: str, nets) -> bool:
    a = ipaddress.ip_address(ip)
    return any(a.version == n.version and a in n for n in nets)


def test_generation_is_deterministic_for_a_seed_and_independent_of_workers(tmp_path):
    a = generate_org(tmp_path / "a", records=1500, days=1, seed=5, workers=1)
    b = generate_org(tmp_path / "b", records=1500, days=1, seed=5, workers=2)
    assert a == b
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    c = generate_org(tmp_path / "c", records=1500, days=1, seed=6)
    assert c.org_id != a.org_id


def test_planted_attacks_stay_the_same_as_the_volume_grows(tmp_path):
    small = generate_org(tmp_path / "s", records=1000, days=2, seed=3)
    big = generate_org(tmp_path / "b", records=8000, days=2, seed=3)

    def strip(gt):
        return [{k: v for k, v in a.items() if k != "files"} for a in gt.attacks]

    assert strip(small) == strip(big)
    assert big.events_unique > small.events_unique * 3


def test_layout_is_the_s3_delivery_layout(org):
    root, gt = org
    name = re.compile(r"^\d{12}_CloudTrail_[a-z0-9-]+_\d{8}T\d{4}Z_[A-Za-z0-9]{16}\.json\.gz$")
    files = list(root.glob(f"AWSLogs/{gt.org_id}/*/CloudTrail/*/*/*/*/*.json.gz"))
    assert len(files) == gt.files["cloudtrail"]
    for p in files:
        assert name.match(p.name), p.name
        acct, _, region, y, m, d = p.parts[-7:-1]
        assert p.name.startswith(f"{acct}_CloudTrail_{region}_{y}{m}{d}T")
        recs = json.loads(gzip.decompress(p.read_bytes()))["Records"]
        assert 0 < len(recs) <= 500
    digests = list(root.glob(f"AWSLogs/{gt.org_id}/*/CloudTrail-Digest/*/*/*/*/*.json.gz"))
    assert len(digests) == gt.files["cloudtrail_digest"] >= 2
    for p in digests:
        assert re.match(
            r"^\d{12}_CloudTrail-Digest_[a-z0-9-]+_org-trail_[a-z0-9-]+_"
            r"\d{8}T\d{6}Z\.json\.gz$",
            p.name,
        )
        doc = json.loads(gzip.decompress(p.read_bytes()))
        assert "Records" not in doc and "logFiles" in doc


def test_every_record_is_shaped_like_the_real_samples(org, realdata):
    root, _ = org
    samples = realdata / "cloudtrail-samples"
    real = {f.name: json.loads(f.read_text())["Records"] for f in samples.glob("*.json")}
    known = set().union(*(_paths(r) for recs in real.values() for r in recs))
    # Documented CloudTrail fields the real samples happen not to carry.
    newer = {"sessionCredentialFromConsole"}
    free = ("requestParameters", "responseElements", "additionalEventData", "serviceEventDetails")

    def real_identity(fragment: str, utype: str | None = None) -> set[str]:
        f = next(n for n in real if fragment in n)
        return {
            p
            for r in real[f]
            for p in _paths(r)
            if p.startswith("userIdentity")
            and (utype is None or r["userIdentity"].get("type") == utype)
        }

    expect = {
        "ec2-vend": real_identity("sts-AssumeRole-invokedBy-ec2.amazonaws.com__otrf"),
        "ecs-vend": real_identity("ecs-task-role__sts"),
        "lambda-vend": real_identity("lambda__sts"),
        "pod-vend": real_identity("eks-pod-identity__sts"),
        "ec2-session": real_identity("STOLEN-used-from-attacker__otrf"),
        "irsa-session": real_identity("eks-irsa__session"),
        "web-identity": real_identity("assumerolewithwebidentity"),
        "iam-user": real_identity("sts-AssumeRole__cross-account", "IAMUser"),
        "aws-internal": real_identity("AWS-Internal"),
    }
    seen: dict[str, int] = {}
    top_real = {p for n, recs in real.items() for r in recs for p in r if "@" not in p}
    for _, rec in _cloudtrail(root):
        paths = _paths(rec)
        extra = {p for p in paths - known if not p.startswith(free)} - newer
        assert not extra, (extra, rec["eventName"])
        assert set(rec) - newer <= top_real
        ui = rec["userIdentity"]
        kind = None
        if ui.get("type") == "AWSService":
            kind = {
                "ec2.amazonaws.com": "ec2-vend",
                "ecs-tasks.amazonaws.com": "ecs-vend",
                "lambda.amazonaws.com": "lambda-vend",
                "pods.eks.amazonaws.com": "pod-vend",
            }[ui["invokedBy"]]
        elif "ec2RoleDelivery" in ui.get("sessionContext", {}):
            kind = "ec2-session"
        elif "webIdFederationData" in ui.get("sessionContext", {}):
            kind = "irsa-session"
        elif ui.get("type") in ("WebIdentityUser", "IAMUser"):
            kind = "web-identity" if ui["type"] == "WebIdentityUser" else "iam-user"
        elif ui.get("invokedBy") == "AWS Internal":
            kind = "aws-internal"
        if kind:
            seen[kind] = seen.get(kind, 0) + 1
            got = {p for p in paths if p.startswith("userIdentity")}
            # principalId etc. may be absent from doc examples; every real key must be present
            assert expect[kind] - {
                "userIdentity.sessionContext.webIdFederationData.attributes"
            } <= got | {"userIdentity.accessKeyId"}, kind
        assert rec["eventVersion"] in ("1.08", "1.09", "1.10")
        assert re.fullmatch(
            r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
            r"[0-9a-f]{12}",
            rec["eventID"],
        )
    assert set(seen) == set(expect)


def test_ground_truth_matches_the_logs(org):
    root, gt = org
    assert GroundTruth.load(root / "ground_truth.json") == gt
    by_id: dict[str, list[tuple[str, dict]]] = {}
    vended: dict[str, dict] = {}
    naive_nets = _ranges(root)
    naive = 0
    for f, rec in _cloudtrail(root):
        by_id.setdefault(rec["eventID"], []).append((f, rec))
        resp = rec.get("responseElements") or {}
        if isinstance(resp, dict) and "credentials" in resp:
            vended[resp["credentials"]["accessKeyId"]] = rec
    for occ in by_id.values():
        rec = occ[0][1]
        src = rec["sourceIPAddress"]
        if rec["userIdentity"].get("type") == "AssumedRole":
            try:
                a = ipaddress.ip_address(src)
            except ValueError:
                continue
            if not a.is_private and not _in(src, naive_nets):
                naive += 1
    assert naive == gt.naive_rule["count"]
    assert naive > gt.events_unique // 8, "the naive rule must drown in benign traffic"
    assert len(by_id) == gt.events_unique == sum(gt.populations.values())
    assert sum(len(v) for v in by_id.values()) == gt.records_delivered
    dups = {e for e, occ in by_id.items() if len(occ) > 1}
    assert dups == {d["event_id"] for d in gt.duplicates} and dups
    for d in gt.duplicates:
        assert sorted(f for f, _ in by_id[d["event_id"]]) == sorted(d["files"])
    kinds = {a["kind"] for a in gt.attacks}
    assert kinds == {
        "ec2_outside_aws",
        "ec2_other_aws_account",
        "ec2_foreign_vpc_endpoint",
        "ec2_cross_instance_public_ip",
        "ec2_cross_instance_own_vpce",
        "ecs_outside_aws",
        "eks_pod_identity_outside_aws",
        "eks_irsa_outside_aws",
        "lambda_outside_aws",
        "ecs_other_aws_account",
        "eks_pod_identity_foreign_vpc_endpoint",
        "lambda_foreign_vpc_endpoint",
    }
    for atk in gt.attacks:
        for eid in atk["event_ids"]:
            ((f, rec),) = by_id[eid]
            assert f in atk["files"]
            assert rec["sourceIPAddress"] == atk["source_ip"]
            ui = rec["userIdentity"]
            assert ui["accessKeyId"] in atk["access_keys"]
            assert ui["arn"].endswith(f"/{atk['role']}/{atk['credential_id']}")
            assert rec.get("vpcEndpointId") in (atk["vpc_endpoint_ids"] or [None])
            assert rec.get("vpcEndpointAccountId") == atk["vpc_endpoint_account_id"]
        for key in atk["access_keys"]:
            v = vended[key]
            assert v["requestParameters"]["roleSessionName"] == atk["credential_id"]
            assert v["eventTime"] <= atk["first_seen"]
            # the victim also uses the same key legitimately from its own network
            own = [
                r
                for occ in by_id.values()
                for _, r in occ[:1]
                if r["userIdentity"].get("accessKeyId") == key
                and r["eventID"] not in atk["event_ids"]
            ]
            assert own, atk["id"]
        ip = atk["source_ip"]
        if atk["network"] == "internet":
            assert not _in(ip, naive_nets) and not ipaddress.ip_address(ip).is_private
        elif atk["network"].startswith("aws:"):
            assert _in(ip, naive_nets)
        else:
            assert ipaddress.ip_address(ip).is_private
    foreign = next(a for a in gt.attacks if a["kind"] == "ec2_foreign_vpc_endpoint")
    assert foreign["vpc_endpoint_account_id"] not in {a["id"] for a in gt.accounts}
    own = next(a for a in gt.attacks if a["kind"] == "ec2_cross_instance_own_vpce")
    assert own["vpc_endpoint_account_id"] == own["account"]


def test_workload_addresses_are_inside_the_ranges_and_people_are_outside(org):
    root, gt = org
    nets = _ranges(root)
    w = gt.workload_addresses
    for k in (
        "instance_public_ips",
        "nat_gateway_ips",
        "lambda_egress_ips",
        "instance_ipv6",
        "other_aws_account_ips",
    ):
        assert all(_in(ip, nets) for ip in w[k]), k
    for k in ("corporate_ips", "home_ips", "ci_runner_ips", "attacker_ips"):
        for ip in w[k]:
            a = ipaddress.ip_address(ip)
            assert a.is_global and not _in(ip, nets), ip
            assert not any(
                a in ipaddress.ip_network(n)
                for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
            )
    doc = json.loads((root / "ip-ranges.json").read_text())
    assert set(doc) == {"syncToken", "createDate", "prefixes", "ipv6_prefixes"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d", doc["createDate"])
    assert set(doc["prefixes"][0]) == {"ip_prefix", "region", "service", "network_border_group"}


def test_people_and_attackers_are_outside_the_real_aws_ranges_too(org, realdata):
    _, gt = org
    doc = json.loads((realdata / "aws-ip-ranges" / "ip-ranges.json").read_text())
    nets = [ipaddress.ip_network(p["ip_prefix"]) for p in doc["prefixes"]]
    for k in ("corporate_ips", "home_ips", "ci_runner_ips", "attacker_ips"):
        for ip in gt.workload_addresses[k]:
            assert not _in(ip, nets), ip


def test_inventory_parses_and_agrees_with_the_logs(org):
    root, gt = org
    inv = root / "inventory"
    instances = {}
    nat_ips, vpces, eips = set(), set(), set()
    for p in inv.glob("*/*/describe-instances.json"):
        for res in json.loads(p.read_text())["Reservations"]:
            for i in res["Instances"]:
                instances[i["InstanceId"]] = i
                assert {
                    "PrivateIpAddress",
                    "VpcId",
                    "SubnetId",
                    "IamInstanceProfile",
                    "MetadataOptions",
                    "Tags",
                    "State",
                    "NetworkInterfaces",
                } <= set(i)
                assert i["NetworkInterfaces"][0]["Ipv6Addresses"][0]["Ipv6Address"]
    for p in inv.glob("*/*/describe-nat-gateways.json"):
        for n in json.loads(p.read_text())["NatGateways"]:
            nat_ips |= {a["PublicIp"] for a in n["NatGatewayAddresses"]}
    for p in inv.glob("*/*/describe-addresses.json"):
        eips |= {a["PublicIp"] for a in json.loads(p.read_text())["Addresses"]}
    for p in inv.glob("*/*/describe-vpc-endpoints.json"):
        vpces |= {e["VpcEndpointId"] for e in json.loads(p.read_text())["VpcEndpoints"]}
    enis = [
        e
        for p in inv.glob("*/*/describe-network-interfaces.json")
        for e in json.loads(p.read_text())["NetworkInterfaces"]
    ]
    assert {e["InterfaceType"] for e in enis} == {"interface", "nat_gateway"}
    accounts = {
        a["Id"]
        for a in json.loads((inv / "organizations-list-accounts.json").read_text())["Accounts"]
    }
    assert accounts == {a["id"] for a in gt.accounts}
    assert nat_ips <= eips
    eni_public = {
        p["Association"]["PublicIp"]
        for e in enis
        for p in e["PrivateIpAddresses"]
        if "Association" in p
    }
    org_public = (
        nat_ips | eips | eni_public | {i.get("PublicIpAddress") for i in instances.values()}
    )
    for atk in gt.attacks:
        if atk["kind"] in ("ec2_other_aws_account", "ecs_other_aws_account"):
            assert atk["source_ip"] not in org_public
        if atk["kind"].endswith("_foreign_vpc_endpoint"):
            assert atk["vpc_endpoint_account_id"] not in accounts
        if atk["kind"] == "ec2_cross_instance_public_ip":
            assert instances[atk["source_instance_id"]]["PublicIpAddress"] == atk["source_ip"]
        if atk["kind"] == "ec2_cross_instance_own_vpce":
            src = instances[atk["source_instance_id"]]
            assert src["PrivateIpAddress"] == atk["source_ip"]
            assert src["VpcId"] == instances[atk["instance_id"]]["VpcId"]
            assert set(atk["vpc_endpoint_ids"]) <= vpces
        if atk["kind"] == "ec2_foreign_vpc_endpoint":
            assert atk["vpc_endpoint_id"] not in vpces
    attack_ids = {e for a in gt.attacks for e in a["event_ids"]}
    delivery: dict[str, set[str]] = {}
    sources: dict[str, set[str]] = {}
    for _, rec in _cloudtrail(root):
        assert rec["recipientAccountId"] in accounts
        ctx = rec["userIdentity"].get("sessionContext", {})
        if (
            "ec2RoleDelivery" in ctx
            and rec["eventID"] not in attack_ids
            and "invokedBy" not in rec["userIdentity"]
        ):
            iid = rec["userIdentity"]["arn"].rsplit("/", 1)[1]
            assert iid in instances
            delivery.setdefault(iid, set()).add(ctx["ec2RoleDelivery"])
            sources.setdefault(iid, set()).add(rec["sourceIPAddress"])
            if "vpcEndpointId" in rec:
                assert rec["vpcEndpointId"] in vpces
                assert rec["vpcEndpointAccountId"] == rec["recipientAccountId"]
    for iid, srcs in sources.items():
        i = instances[iid]
        own = {i["PrivateIpAddress"], i.get("PublicIpAddress"), i["Ipv6Address"]} | nat_ips
        assert srcs <= own, iid
    v1 = {x["instance_id"] for x in gt.imdsv1_instances}
    assert v1 == {i for i, d in delivery.items() if "1.0" in d}
    for iid in v1:
        assert instances[iid]["MetadataOptions"]["HttpTokens"] == "optional"
    unused = {x["instance_id"] for x in gt.imds_optional_without_v1_use}
    assert unused and not unused & v1
    assert all(instances[i]["MetadataOptions"]["HttpTokens"] == "optional" for i in unused)


def test_iam_details_rank_admin_reader_and_harmless_roles(org):
    root, gt = org
    kinds = {}
    for p in (root / "inventory").glob("*/get-account-authorization-details.json"):
        doc = json.loads(p.read_text())
        assert set(doc) == {"UserDetailList", "GroupDetailList", "RoleDetailList", "Policies"}
        policies = {x["Arn"]: x for x in doc["Policies"]}
        for r in doc["RoleDetailList"]:
            stmts = [s for ip in r["RolePolicyList"] for s in ip["PolicyDocument"]["Statement"]]
            for ap in r["AttachedManagedPolicies"]:
                pv = policies[ap["PolicyArn"]]["PolicyVersionList"][0]["Document"]
                stmts += pv["Statement"]
            kinds[r["Arn"]] = stmts
    v1 = {x["role_kind"]: x["role_arn"] for x in gt.imdsv1_instances}
    assert {"admin", "data-reader", "harmless"} <= set(v1)
    assert {"Effect": "Allow", "Action": "*", "Resource": "*"} in kinds[v1["admin"]]
    assert any(
        "s3:GetObject" in s["Action"] and s["Resource"] == "*" for s in kinds[v1["data-reader"]]
    )
    assert kinds[v1["harmless"]] == [
        {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"}
    ]


ALB_FIELD = re.compile(r'"[^"]*"|\S+')


def test_alb_documented_examples_have_the_fields_before_conn_trace_id(realdata):
    sample = realdata / "web-log-format-samples" / "alb-access-log-examples.awsdocs.log"
    for line in sample.read_text().splitlines():
        if line.strip():
            assert len(ALB_FIELD.findall(line)) == 29  # the 2023 list, before conn_trace_id


def test_alb_lines_have_the_documented_fields_and_hold_every_attempt(org):
    root, gt = org
    files = list(root.glob("AWSLogs/*/elasticloadbalancing/*/*/*/*/*.log.gz"))
    assert len(files) == gt.files["alb"]
    name = re.compile(
        r"^\d{12}_elasticloadbalancing_[a-z0-9-]+_app\.[a-z-]+\.[0-9a-f]{16}_"
        r"\d{8}T\d{4}Z_[\d.]+_[a-z0-9]{8}\.log\.gz$"
    )
    lines = {}
    for p in files:
        assert name.match(p.name), p.name
        for n, line in enumerate(gzip.decompress(p.read_bytes()).decode().splitlines(), 1):
            fields = ALB_FIELD.findall(line)
            assert len(fields) == gt.ssrf["alb"]["field_count"] == 30, line
            assert fields[-1].startswith("TID_")
            lines[(str(p.relative_to(root)), n)] = fields
    encodings = {a["encoding"] for a in gt.ssrf["attempts"]}
    assert {
        "plain",
        "integer",
        "hex",
        "octal",
        "short_three_part",
        "short_two_part",
        "ipv4_mapped_ipv6",
        "ipv6",
        "double_percent_encoded",
        "dns_name",
        "nip_io",
        "ecs_credentials",
        "eks_pod_identity",
    } <= encodings
    for item in gt.ssrf["attempts"] + gt.ssrf["decoys"]:
        f = lines[(item["file"], item["line"])]
        assert f[12].split(" ")[1] == item["request_url"]
        assert f[3].rsplit(":", 1)[0] == item["client_ip"]
        assert f[4].rsplit(":", 1)[0] == item["target_ip"]
    assert {d["encoding"] for d in gt.ssrf["decoys"]} == {
        "decimal_query_value",
        "near_miss_address",
        "hyphenated_slug",
    }
    chain, task_chain = gt.ssrf["chains"]
    task_theft = next(a for a in gt.attacks if a["id"] == task_chain["attack_id"])
    assert task_theft["kind"] == "ecs_outside_aws"
    assert task_theft["credential_id"] == task_chain["task_id"]
    assert all(at["time"] < task_theft["first_seen"] for at in task_chain["attempts"])
    assert {a["endpoint"] for a in gt.ssrf["attempts"] if a.get("target_task")} == {
        "ecs-credentials"
    }
    theft = next(a for a in gt.attacks if a["id"] == chain["attack_id"])
    assert theft["instance_id"] == chain["instance_id"]
    for at in chain["attempts"]:
        assert at["time"] < theft["first_seen"]
    late = [
        a
        for a in gt.ssrf["attempts"]
        if a["target_instance"] == theft["instance_id"] and a["chain_attack_id"] is None
    ]
    assert all(a["time"] < "2026-11-01T09:00" or a["time"] > theft["first_seen"] for a in late)


def test_synth_command_writes_an_organisation_and_its_help_has_an_example(tmp_path):
    from click.testing import CliRunner

    from imdshunt.commands.synth import synth

    runner = CliRunner()
    res = runner.invoke(synth, ["--help"])
    assert res.exit_code == 0 and "Example:" in res.output and "imdshunt synth --out" in res.output
    res = runner.invoke(synth, ["--out", str(tmp_path), "--records", "500", "--days", "1"])
    assert res.exit_code == 0, res.output
    gt = GroundTruth.load(tmp_path / "ground_truth.json")
    assert gt.records_requested == 500 and len(gt.attacks) == 14
    assert "planted attacks" in res.output


def test_slicing_days_for_big_outputs_keeps_every_attack_and_stays_deterministic(
    tmp_path, monkeypatch
):
    import imdshunt.synth.generate as gen

    monkeypatch.setattr(gen, "SLICE_RECORDS", 400)
    a = generate_org(tmp_path / "a", records=3000, days=1, seed=2, workers=1)
    b = generate_org(tmp_path / "b", records=3000, days=1, seed=2, workers=2)
    assert a == b and _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    ids = {rec["eventID"] for _, rec in _cloudtrail(tmp_path / "a")}
    assert all(e in ids for atk in a.attacks for e in atk["event_ids"])
    assert abs(a.events_unique - 3000) < 600


def test_workload_inventory_places_tasks_and_pods_where_their_calls_come_from(org):
    from imdshunt.enrich.inventory import load_inventory

    root, gt = org
    inv = load_inventory([root / "inventory"])
    rows = inv.workload_rows()
    own: dict[str, set[str]] = {}
    for r in rows:
        if r["address"]:
            own.setdefault(r["workload_id"], set()).add(r["address"])
    assert {r["workload_type"] for r in rows} == {"ecs-task", "eks-pod", "lambda"}
    assert all(r["vpc_id"] for r in rows if r["workload_type"] != "lambda")
    nat_ips = set(gt.workload_addresses["nat_gateway_ips"])
    pods = {w["pod"] for w in _pods(root)}
    attack_ids = {e for a in gt.attacks for e in a["event_ids"]}
    public_task_calls = endpoint_pod_calls = 0
    for _, rec in _cloudtrail(root):
        ui = rec["userIdentity"]
        if ui.get("type") != "AssumedRole" or rec["eventID"] in attack_ids:
            continue
        session = ui["arn"].rsplit("/", 1)[1]
        if session in own and rec["sourceIPAddress"] not in nat_ips:
            # a Fargate task on its own public IP (on its ENI)
            assert rec["sourceIPAddress"] in own[session], rec
            public_task_calls += 1
        if "vpcEndpointId" in rec and "-payments-" in session:
            assert rec["vpcEndpointAccountId"] == rec["recipientAccountId"]
            endpoint_pod_calls += 1
    assert public_task_calls and endpoint_pod_calls and pods


def _pods(root: Path) -> list[dict]:
    return [
        {"pod": item["metadata"]["name"], "ip": item["status"]["podIP"]}
        for p in root.glob("inventory/*/*/kubectl-get-pods.json")
        for item in json.loads(p.read_text())["items"]
    ]
