"""``generate_org``: write a whole synthetic organisation and its ground truth."""

from __future__ import annotations

import calendar
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from isal import igzip

from ..errors import UsageError
from .alb import TaskTarget, write_alb_logs
from .attacks import plan_attacks
from .cloudtrail import DAY, ChunkResult, ChunkSpec, generate_chunk, org_for
from .inventory import write_iam, write_inventory
from .model import (
    ATTACKER_IPS,
    CI_RUNNER_IPS,
    CORPORATE_IPS,
    HOME_IPS,
    ip_ranges_document,
    stable_hex,
)
from .truth import FORMAT, GroundTruth

#: Slice counts that divide a day into whole 5-minute windows.
SLICE_COUNTS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 72, 96, 144, 288)
SLICE_RECORDS = 60_000

POPULATION_DOC = {
    "sso": "IAM Identity Center users (AWSReservedSSO_* roles) from office/home addresses",
    "role_switch": "humans assuming roles (from IAM users or SSO sessions) and their sessions",
    "ci_oidc": "GitHub Actions via OIDC (AssumeRoleWithWebIdentity) and their sessions",
    "ec2_workload": "instance-profile sessions from own public IPs, NAT EIPs, own VPC endpoints",
    "invoked_by": "instance-role calls made by a service on its behalf (invokedBy athena)",
    "service": "AWS Internal and service-principal (service-linked role) events",
    "eks_node": "EKS node instance-role calls, including eks-auth:AssumeRoleForPodIdentity",
    "ecs_task": "ECS task-role sessions from the NAT EIPs",
    "eks_pod_identity": "EKS Pod Identity sessions from the node egress",
    "eks_irsa": "IRSA sessions (webIdFederationData oidc.eks) from the node egress",
    "lambda": "Lambda runtime sessions from AWS addresses",
    "vending_ec2": "sts:AssumeRole by ec2.amazonaws.com vending instance credentials",
    "vending_ecs": "sts:AssumeRole by ecs-tasks.amazonaws.com",
    "vending_lambda": "sts:AssumeRole by lambda.amazonaws.com",
    "vending_eks_pod_identity": "sts:AssumeRole by pods.eks.amazonaws.com with session tags",
    "vending_eks_irsa": "AssumeRoleWithWebIdentity from the oidc.eks provider",
    "attack": "planted attack records",
    "victim_baseline": "planted legitimate uses of each stolen key by its victim, pre-theft",
}


def parse_start(start: str) -> float:
    """``YYYY-MM-DDTHH:MM:SSZ`` to epoch seconds (UTC)."""
    try:
        return float(calendar.timegm(time.strptime(start, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError as e:
        raise UsageError(f"start must look like 2026-11-01T00:00:00Z, not {start!r}") from e


def generate_org(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    records: int = 20_000,
    days: int = 2,
    start: str = "2026-11-01T00:00:00Z",
    accounts: int = 3,
    regions: tuple[str, ...] = ("us-east-1", "eu-west-1"),
    workers: int | None = None,
    alb_lines: int | None = None,
) -> GroundTruth:
    """Write a synthetic AWS organisation under ``out_dir`` and return its ground truth.

    Writes CloudTrail in the S3 delivery layout (``AWSLogs/o-…/<acct>/CloudTrail/…``, plus a
    few ``CloudTrail-Digest`` files and duplicate deliveries), ALB access logs with metadata
    SSRF attempts and decoys, ``inventory/`` (EC2, NAT, EIP, ENI, VPC endpoint, Organizations
    and IAM authorization-details JSON as the AWS CLI prints it), a consistent
    ``ip-ranges.json`` and ``ground_truth.json``.

    The output depends only on the arguments (not on ``workers``). ``records`` sets the benign
    CloudTrail volume (approximately); the planted attacks stay the same at every size.

    Example::

        >>> gt = generate_org("/tmp/org", seed=1, records=5_000, days=1)  # doctest: +SKIP
        >>> [a["kind"] for a in gt.attacks][:2]                            # doctest: +SKIP
        ['ec2_outside_aws', 'ec2_outside_aws']
    """
    if days < 1 or records < 0 or accounts < 1:
        raise UsageError("days and accounts must be at least 1 and records not negative")
    regions = tuple(regions)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = parse_start(start)
    try:
        org = org_for(seed, accounts, regions)
    except ValueError as e:
        raise UsageError(str(e)) from e
    gt_attacks, planted = plan_attacks(org, seed, t_start, days)

    # Budget: the first account and first region carry more traffic.
    shares = {}
    for ai in range(len(org.accounts)):
        for ri in range(len(regions)):
            shares[(ai, ri)] = (1.5 if ai == 0 else 1.0) * (2.0 if ri == 0 else 1.0)
    total_share = sum(shares.values())
    specs = []
    for day in range(days):
        for (ai, ri), sh in shares.items():
            a = org.accounts[ai].account_id
            budget = int(records * sh / total_share / days)
            # Bound memory: at most ~SLICE_RECORDS records are held per slice of a day.
            nsl = next(d for d in SLICE_COUNTS if budget / d <= SLICE_RECORDS or d == 288)
            extra = planted.get((a, regions[ri], day), [])
            for si in range(nsl):
                lo = t_start + day * DAY + si * DAY / nsl
                hi = lo + DAY / nsl
                specs.append(
                    ChunkSpec(
                        seed=seed,
                        accounts=accounts,
                        regions=regions,
                        out_dir=str(out),
                        start=t_start,
                        day=day,
                        account_index=ai,
                        region_index=ri,
                        budget=budget,
                        extra=[x for x in extra if lo <= x[0] < hi],
                        duplicates=1 if (ai + ri + day) % 2 == 0 else 2,
                        digest_hours=2 if (day == 0 and ri == 0) else 0,
                        slices=nsl,
                        slice_index=si,
                    )
                )
    if workers is None:
        workers = 1 if records < 100_000 else min(len(specs), os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            results: list[ChunkResult] = list(ex.map(generate_chunk, specs))
    else:
        results = [generate_chunk(s) for s in specs]

    pops: dict[str, int] = {}
    files = events = delivered = naive = 0
    dupes: list[dict] = []
    event_files: dict[str, str] = {}
    for r in results:
        files += r.files
        events += r.events
        delivered += r.records
        naive += r.naive
        dupes += r.duplicates
        event_files.update(r.event_files)
        for k, v in r.populations.items():
            pops[k] = pops.get(k, 0) + v
    for atk in gt_attacks:
        atk["files"] = sorted({event_files[e] for e in atk["event_ids"]})

    # Digest files (which a hunt must skip).
    digests = 0
    digest_logs: dict[tuple[int, int], list[dict]] = {}
    for spec, r in zip(specs, results, strict=True):
        if not r.digest_files:
            continue
        key = (spec.account_index, spec.region_index)
        digest_logs.setdefault(key, []).extend(r.digest_files)
    for (ai, ri), logs in sorted(digest_logs.items()):
        a = org.accounts[ai].account_id
        digests += _write_digests(out, org.org_id, a, regions[ri], t_start, logs, seed)

    theft = next(x for x in gt_attacks if x["kind"] == "ec2_outside_aws")
    theft_t = parse_start(theft["first_seen"])
    # the stolen ECS task credential also follows an SSRF through that task (an ip target)
    task_theft = next(x for x in gt_attacks if x["kind"] == "ecs_outside_aws")
    task = next(w for w in org.workloads if w.cred_id == task_theft["credential_id"])
    ssrf, alb_files = write_alb_logs(
        org,
        out,
        t_start,
        days,
        alb_lines if alb_lines is not None else max(300, records // 20),
        theft_t,
        theft["id"],
        (
            parse_start(task_theft["first_seen"]),
            task_theft["id"],
            TaskTarget(task.cred_id, task.extra["private_ip"]),
        ),
    )
    write_inventory(org, out)
    write_iam(org, out)
    create = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(t_start - 3 * 3600))
    (out / "ip-ranges.json").write_text(json.dumps(ip_ranges_document(seed, create), indent=2))

    v1 = [
        {
            "instance_id": i.instance_id,
            "account": i.account,
            "region": i.region,
            "name": i.name,
            "role": i.role.name,
            "role_arn": i.role.arn,
            "role_kind": i.role.kind,
            "http_tokens": i.http_tokens,
        }
        for i in org.instances
        if i.delivery == "1.0"
    ]
    optional = [
        {
            "instance_id": i.instance_id,
            "account": i.account,
            "region": i.region,
            "name": i.name,
            "role": i.role.name,
            "role_kind": i.role.kind,
        }
        for i in org.instances
        if i.http_tokens == "optional" and i.delivery == "2.0"
    ]
    nat_ips = [n.public_ip for n in org.nats]
    wl_addrs = {
        "instance_public_ips": sorted(i.public_ip for i in org.instances if i.public_ip),
        "nat_gateway_ips": sorted(nat_ips),
        "instance_private_ips": sorted(i.private_ip for i in org.instances),
        "instance_ipv6": sorted(i.ipv6 for i in org.instances),
        "lambda_egress_ips": sorted({ip for v in org.lambda_ips.values() for ip in v}),
        "corporate_ips": CORPORATE_IPS,
        "home_ips": HOME_IPS,
        "ci_runner_ips": CI_RUNNER_IPS,
        "attacker_ips": sorted(
            {x["source_ip"] for x in gt_attacks if x["network"] == "internet"}
            | {x["client_ip"] for x in ssrf["attempts"]}
        ),
        "other_aws_account_ips": org.other_account_ips,
    }
    gt = GroundTruth(
        format=FORMAT,
        seed=seed,
        start=start,
        end=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start + days * DAY)),
        days=days,
        records_requested=records,
        events_unique=events,
        records_delivered=delivered,
        org_id=org.org_id,
        management_account=org.management,
        accounts=[{"id": x.account_id, "name": x.name, "email": x.email} for x in org.accounts],
        regions=list(regions),
        files={"cloudtrail": files, "cloudtrail_digest": digests, "alb": alb_files},
        populations=dict(sorted(pops.items())),
        naive_rule={
            "description": "records whose userIdentity.type is AssumedRole and whose "
            "sourceIPAddress is an IP in neither ip-ranges.json nor a "
            "private/special range (duplicates counted once)",
            "count": naive,
        },
        duplicates=dupes,
        imdsv1_instances=v1,
        imds_optional_without_v1_use=optional,
        attacks=gt_attacks,
        ssrf=ssrf,
        paths={
            "cloudtrail": f"AWSLogs/{org.org_id}",
            "alb": "AWSLogs",
            "inventory": "inventory",
            "ip_ranges": "ip-ranges.json",
            "iam": "inventory/<account>/get-account-authorization-details.json",
        },
        workload_addresses=wl_addrs,
        notes=[
            "Every key in attacks[].access_keys is vended in the logs by an AWSService "
            "AssumeRole (or AssumeRoleWithWebIdentity for IRSA) before it is misused.",
            "The victim instances also use the same keys legitimately from their own addresses.",
            f"Attacker internet addresses: {', '.join(ATTACKER_IPS)}.",
        ]
        + [f"population {k}: {v}" for k, v in POPULATION_DOC.items()],
    )
    gt.write(out / "ground_truth.json")
    return gt


def _write_digests(
    out: Path, org_id: str, a: str, region: str, start: float, logs: list[dict], seed: int
) -> int:
    """Two hourly CloudTrail digest files (their shape; signatures are not real)."""
    n = 0
    trail = "org-trail"
    prev = None
    for h in (1, 2):
        end = start + h * 3600
        tm = time.gmtime(end)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", tm)
        rel = (
            f"AWSLogs/{org_id}/{a}/CloudTrail-Digest/{region}/{tm.tm_year:04d}/"
            f"{tm.tm_mon:02d}/{tm.tm_mday:02d}/{a}_CloudTrail-Digest_{region}_{trail}_"
            f"{region}_{stamp}.json.gz"
        )
        lo = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end - 3600))
        hi = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end))
        files = [
            {
                "s3Bucket": "anycompany-org-cloudtrail",
                "s3Object": f["s3Object"],
                "hashValue": f["hashValue"],
                "hashAlgorithm": "SHA-256",
                "newestEventTime": f["newestEventTime"],
                "oldestEventTime": f["oldestEventTime"],
            }
            for f in logs
            if lo <= f["oldestEventTime"] < hi
        ]
        doc = {
            "awsAccountId": a,
            "digestStartTime": lo,
            "digestEndTime": hi,
            "digestS3Bucket": "anycompany-org-cloudtrail",
            "digestS3Object": rel,
            "digestPublicKeyFingerprint": stable_hex(32, seed, "fp"),
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": files[-1]["newestEventTime"] if files else None,
            "oldestEventTime": files[0]["oldestEventTime"] if files else None,
            "previousDigestS3Bucket": "anycompany-org-cloudtrail" if prev else None,
            "previousDigestS3Object": prev,
            "previousDigestHashValue": stable_hex(64, seed, rel) if prev else None,
            "previousDigestHashAlgorithm": "SHA-256" if prev else None,
            "previousDigestSignature": stable_hex(64, seed, "sig", rel) * 8 if prev else None,
            "logFiles": files,
        }
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(igzip.compress(json.dumps(doc).encode(), mtime=0))
        prev = rel
        n += 1
    return n
