"""The planted attacks: a fixed, small set that does not grow with the benign volume."""

from __future__ import annotations

from .cloudtrail import (
    DAY,
    PERIOD,
    _inst_identity,
    _inst_source,
    cred_offset,
    key_period,
    workload_identity,
)
from .lineage import plan_lineage
from .model import ATTACKER_IPS, Instance, Org, access_key, stable_rng
from .records import UA_ATTACKER, UA_ECS, UA_IRSA, UA_LAMBDA, UA_WORKLOAD, Builder, iso

DETECTION = {
    "ec2_outside_aws": "ec2_instance_credential_outside_aws",
    "ec2_other_aws_account": "ec2_instance_credential_other_aws_account",
    "ec2_foreign_vpc_endpoint": "ec2_instance_credential_foreign_vpc_endpoint",
    "ec2_cross_instance_public_ip": "ec2_instance_credential_cross_instance",
    "ec2_cross_instance_own_vpce": "ec2_instance_credential_cross_instance",
    "ecs_outside_aws": "ecs_task_credential_outside_aws",
    "eks_pod_identity_outside_aws": "eks_pod_credential_outside_aws",
    "eks_irsa_outside_aws": "eks_pod_credential_outside_aws",
    "lambda_outside_aws": "lambda_credential_outside_aws",
    "ecs_other_aws_account": "workload_credential_other_aws_account",
    "eks_pod_identity_foreign_vpc_endpoint": "workload_credential_foreign_vpc_endpoint",
    "lambda_foreign_vpc_endpoint": "workload_credential_foreign_vpc_endpoint",
}
ACTIONS = {
    "outside": [
        "sts:GetCallerIdentity",
        "s3:ListBuckets",
        "s3:ListObjects",
        "s3:GetObject",
        "s3:GetObject",
        "secretsmanager:ListSecrets",
    ],
    "recon": ["sts:GetCallerIdentity", "s3:ListBuckets", "iam:ListRoles", "ec2:DescribeInstances"],
    "vpce": [
        "sts:GetCallerIdentity",
        "secretsmanager:ListSecrets",
        "secretsmanager:GetSecretValue",
        "ssm:GetParametersByPath",
    ],
    "container": [
        "sts:GetCallerIdentity",
        "s3:ListBuckets",
        "s3:GetObject",
        "secretsmanager:ListSecrets",
    ],
}
FOREIGN_PRIVATE_IP = "172.31.44.201"


def parse_iso(s: str) -> float:
    """``YYYY-MM-DDTHH:MM:SSZ`` to epoch seconds."""
    import calendar
    import time

    return float(calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ")))


def _pick(org: Org, account: str, region: str, pred) -> Instance:
    cands = [i for i in org.instances if i.account == account and i.region == region and pred(i)]
    return cands[0]


def plan_attacks(
    org: Org, seed: int, start: float, days: int
) -> tuple[list[dict], dict[tuple[str, str, int], list]]:
    """Build the attack records and their ground truth.

    Returns the ground-truth entries and the planted ``(time, record)`` pairs keyed by
    ``(account, region, day)``.
    """
    accts = [x.account_id for x in org.accounts]
    regs = org.regions
    a0, a1, a2 = accts[0], accts[min(1, len(accts) - 1)], accts[min(2, len(accts) - 1)]
    r0, r1 = regs[0], regs[min(1, len(regs) - 1)]
    day = min(1, days - 1)
    base = start + day * DAY + 9 * 3600
    vpc = org.vpcs

    web01 = _pick(org, a0, r0, lambda i: i.web and i.delivery == "1.0")
    cross_src_pub = _pick(org, a0, r0, lambda i: i.web and i is not web01)
    vpce_host = _pick(org, a0, r0, lambda i: i.egress == "vpce")
    plans = [
        ("ec2_outside_aws", web01, ATTACKER_IPS[0], "internet", None, "outside", UA_ATTACKER[0]),
        (
            "ec2_outside_aws",
            _pick(org, a1, r1, lambda i: i.role.kind == "admin"),
            ATTACKER_IPS[1],
            "internet",
            None,
            "recon",
            UA_ATTACKER[2],
        ),
        (
            "ec2_outside_aws",
            _pick(org, a2, r0, lambda i: i.role.kind == "data-reader"),
            ATTACKER_IPS[2],
            "internet",
            None,
            "outside",
            UA_ATTACKER[1],
        ),
        (
            "ec2_other_aws_account",
            _pick(org, a0, r0, lambda i: i.eip_alloc is not None),
            org.other_account_ips[0],
            f"aws:EC2:{r0}",
            None,
            "recon",
            UA_ATTACKER[1],
        ),
        (
            "ec2_foreign_vpc_endpoint",
            _pick(org, a1, r0, lambda i: i.egress == "vpce"),
            FOREIGN_PRIVATE_IP,
            "private",
            (org.foreign_vpce, org.foreign_account),
            "vpce",
            UA_ATTACKER[3],
        ),
        (
            "ec2_cross_instance_public_ip",
            _pick(org, a0, r0, lambda i: i.egress == "nat" and not i.eks_node),
            cross_src_pub.public_ip,
            f"aws:EC2:{r0}",
            None,
            "outside",
            UA_ATTACKER[1],
        ),
        (
            "ec2_cross_instance_own_vpce",
            [
                i
                for i in org.instances
                if i.account == a0 and i.region == r0 and i.egress == "nat" and not i.eks_node
            ][1],
            vpce_host.private_ip,
            "private",
            "own",
            "vpce",
            UA_ATTACKER[3],
        ),
    ]
    wl = org.workloads
    wplans = [
        (
            "ecs_outside_aws",
            next(w for w in wl if w.kind == "ecs-task" and w.account == a0),
            ATTACKER_IPS[3],
            UA_ATTACKER[0],
        ),
        (
            "eks_pod_identity_outside_aws",
            next(w for w in wl if w.kind == "eks-pod-identity" and w.account == a0),
            ATTACKER_IPS[4],
            UA_ATTACKER[2],
        ),
        (
            "eks_irsa_outside_aws",
            next(w for w in wl if w.kind == "eks-irsa" and w.account == a1),
            ATTACKER_IPS[5],
            UA_ATTACKER[1],
        ),
        (
            "lambda_outside_aws",
            next(w for w in wl if w.kind == "lambda" and w.account == a0),
            ATTACKER_IPS[6],
            UA_ATTACKER[0],
        ),
    ]
    # Stolen container and function keys replayed from inside AWS: from the thief's own EC2
    # instance, and through the thief's own VPC endpoint.
    bplans = [
        (
            "ecs_other_aws_account",
            next(w for w in wl if w.kind == "ecs-task" and w.account == a0),
            org.other_account_ips[1],
            f"aws:EC2:{r0}",
            None,
            UA_ATTACKER[1],
        ),
        (
            "eks_pod_identity_foreign_vpc_endpoint",
            next(w for w in wl if w.kind == "eks-pod-identity" and w.account == a1),
            FOREIGN_PRIVATE_IP,
            "private",
            (org.foreign_vpce, org.foreign_account),
            UA_ATTACKER[3],
        ),
        (
            "lambda_foreign_vpc_endpoint",
            next(
                w
                for w in wl
                if w.kind == "lambda" and w.account == a0 and w.cred_id != "thumbnailer"
            ),
            FOREIGN_PRIVATE_IP,
            "private",
            (org.foreign_vpce, org.foreign_account),
            UA_ATTACKER[3],
        ),
    ]
    truth: list[dict] = []
    planted: dict[tuple[str, str, int], list] = {}
    identities: dict[str, dict] = {}  # attack id -> the stolen session's userIdentity
    n = 0

    def emit(
        kind,
        account,
        region,
        ident,
        src,
        ua,
        acts,
        vpce,
        extra,
        t0,
        cred_type,
        role,
        cred_id,
        key,
        issued,
        network,
        baseline,
    ):
        nonlocal n
        rng = stable_rng(seed, "attack", n)
        b = Builder(rng, account, region)
        # The victim itself uses the same key from its own network before the theft, so that
        # "same key, two networks" is always visible whatever the benign volume.
        vend_t = parse_iso(issued)
        own_src, own_ua, own_act, own_vpce = baseline
        for frac in (0.2, 0.4):
            bt = vend_t + (t0 - vend_t) * frac
            rec = b.call(bt, iso(bt), ident, own_act, own_src, own_ua, vpce=own_vpce)
            d = int((bt - start) // DAY)
            planted.setdefault((account, region, d), []).append((bt, rec, "victim_baseline"))
        t = t0
        recs, times = [], []
        for act in acts:
            err = "AccessDenied" if act == "iam:ListRoles" and role.kind != "admin" else None
            vp = None
            if vpce == "own":
                vp = (vpc[(account, region)].vpce_ids[act.split(":")[0]], account)
            elif vpce is not None:
                vp = vpce
            rec = b.call(t, iso(t), ident, act, src, ua, vpce=vp, error=err)
            recs.append(rec)
            times.append(t)
            t += rng.randrange(15, 95)
        d = int((times[0] - start) // DAY)
        planted.setdefault((account, region, d), []).extend(
            (x, r, "attack") for x, r in zip(times, recs, strict=True)
        )
        entry = {
            "id": f"A{n:02d}",
            "kind": kind,
            "detection": DETECTION[kind],
            "credential_type": cred_type,
            "account": account,
            "region": region,
            "role": role.name,
            "role_arn": role.arn,
            "credential_id": cred_id,
            "source_ip": src,
            "network": network,
            "vpc_endpoint_id": recs[0].get("vpcEndpointId"),
            "vpc_endpoint_ids": sorted({r["vpcEndpointId"] for r in recs if "vpcEndpointId" in r}),
            "vpc_endpoint_account_id": recs[0].get("vpcEndpointAccountId"),
            "access_keys": [key],
            "key_issued_at": issued,
            "first_seen": iso(times[0]),
            "last_seen": iso(times[-1]),
            "actions": sorted({a for a in acts}),
            "event_count": len(recs),
            "user_agent": ua,
            "event_ids": [r["eventID"] for r in recs],
        }
        entry.update(extra)
        truth.append(entry)
        identities[entry["id"]] = ident
        n += 1

    for kind, inst, src, network, vpce, acts, ua in plans:
        t0 = base + n * 37 * 60
        k = key_period(t0, start, inst.vend_offset, PERIOD["ec2-instance"])
        ident = _inst_identity(seed, inst, k, start)
        extra = {"instance_id": inst.instance_id, "imds_delivery": inst.delivery}
        if kind == "ec2_cross_instance_public_ip":
            extra["source_instance_id"] = cross_src_pub.instance_id
        if kind == "ec2_cross_instance_own_vpce":
            extra["source_instance_id"] = vpce_host.instance_id
        if network == "internet" or kind == "ec2_other_aws_account":
            extra["victim_usual_source"] = _inst_source(
                inst, {g.nat_id: g.public_ip for g in org.nats}
            )
        if inst.egress == "vpce":
            v = vpc[(inst.account, inst.region)]
            baseline = (
                inst.private_ip,
                UA_WORKLOAD[0],
                "ssm:GetParameter",
                (v.vpce_ids["ssm"], inst.account),
            )
        else:
            baseline = (
                _inst_source(inst, {g.nat_id: g.public_ip for g in org.nats}),
                UA_WORKLOAD[0],
                "ssm:GetParameter",
                None,
            )
        emit(
            kind,
            inst.account,
            inst.region,
            ident,
            src,
            ua,
            ACTIONS[acts],
            vpce,
            extra,
            t0,
            "ec2-instance",
            inst.role,
            inst.instance_id,
            access_key(seed, inst.instance_id, k),
            ident["sessionContext"]["attributes"]["creationDate"],
            network,
            baseline,
        )
    types = {
        "ecs_outside_aws": "ecs-task",
        "eks_pod_identity_outside_aws": "eks-pod-identity",
        "eks_irsa_outside_aws": "eks-irsa",
        "lambda_outside_aws": "lambda",
    }
    types.update(
        {
            "ecs_other_aws_account": "ecs-task",
            "eks_pod_identity_foreign_vpc_endpoint": "eks-pod-identity",
            "lambda_foreign_vpc_endpoint": "lambda",
        }
    )
    all_plans = [(k, w, src, "internet", None, ua) for k, w, src, ua in wplans] + bplans
    for kind, w, src, network, vpce, ua in all_plans:
        t0 = base + n * 37 * 60
        per = PERIOD[w.kind]
        k = key_period(t0, start, cred_offset(seed, w.cred_id, per), per)
        ident = workload_identity(seed, w, k, start)
        extra = {
            key: val
            for key, val in w.extra.items()
            if key in ("cluster", "namespace", "pod", "service_account", "provider", "service")
        }
        emit(
            kind,
            w.account,
            w.region,
            ident,
            src,
            ua,
            ACTIONS["vpce" if vpce else "container"],
            vpce,
            extra,
            t0,
            types[kind],
            w.role,
            w.cred_id,
            access_key(seed, w.cred_id, k),
            ident["sessionContext"]["attributes"]["creationDate"],
            network,
            (
                w.egress_ips[0],
                UA_LAMBDA if w.kind == "lambda" else UA_ECS if w.kind == "ecs-task" else UA_IRSA,
                "s3:GetObject",
                None,
            ),
        )
    # What the thief minted with one stolen admin credential, and its look-alikes.
    plan_lineage(org, seed, start, days, truth, planted, identities)
    return truth, planted
