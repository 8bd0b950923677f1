"""Collect the organisation's inventory with boto3, in the AWS CLI's own JSON shapes.

Every call is read-only (``Describe*``, ``List*``, ``sts:GetCallerIdentity``); the caller
passes a :class:`boto3.Session` (nothing here creates credentials). Files are written as the
AWS CLI prints them: all pages merged into one document, ``ResponseMetadata`` and
``NextToken`` dropped, times in ISO 8601. So ``imdshunt hunt --inventory DIR`` reads a
collected folder and a folder of hand-run ``aws ec2 describe-instances > x.json`` alike.

Layout::

    DIR/<account>/<region>/ec2-describe-instances.json
    DIR/<account>/<region>/ec2-describe-nat-gateways.json
    DIR/<account>/<region>/ec2-describe-addresses.json
    DIR/<account>/<region>/ec2-describe-network-interfaces.json
    DIR/<account>/<region>/ec2-describe-vpc-endpoints.json
    DIR/<account>/<region>/ecs-describe-tasks.json          (running tasks of every cluster)
    DIR/<account>/<region>/lambda-list-functions.json
    DIR/<account>/<region>/ec2-describe-security-groups.json
    DIR/<account>/<region>/elbv2-describe-load-balancers.json
    DIR/<account>/<region>/elbv2-describe-target-groups.json
    DIR/<account>/<region>/elbv2-describe-target-health/<target group name>.json
                    (one per target group, with its TargetGroupArn beside the CLI's output)
    DIR/<account>/<region>/cloudwatch-get-metric-data.json
                    (AWS/EC2 MetadataNoToken of the instances answering IMDSv1, with the
                    request's StartTime/EndTime; each query's Label is its instance id)
    DIR/<account>/organizations-list-accounts.json   (only where Organizations answers)

The IAM permissions are declared beside each call (:mod:`imdshunt.permissions`);
``imdshunt inventory collect --print-iam-policy`` prints them. ``organizations:ListAccounts``
is optional: it answers only in the management or a delegated administrator account
(https://docs.aws.amazon.com/organizations/latest/APIReference/API_ListAccounts.html).
Pods are not collected: ``kubectl get pods -A -o json`` needs each cluster's Kubernetes
credentials, not AWS ones.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imdshunt.errors import AwsActionError
from imdshunt.permissions import declare, needs

COLLECT = ("collect",)

#: (file stem, client method, result list key, IAM action) of each EC2 call made per region.
EC2_CALLS: tuple[tuple[str, str, str, str], ...] = (
    ("ec2-describe-instances", "describe_instances", "Reservations", "ec2:DescribeInstances"),
    ("ec2-describe-nat-gateways", "describe_nat_gateways", "NatGateways",
     "ec2:DescribeNatGateways"),
    ("ec2-describe-addresses", "describe_addresses", "Addresses", "ec2:DescribeAddresses"),
    ("ec2-describe-network-interfaces", "describe_network_interfaces", "NetworkInterfaces",
     "ec2:DescribeNetworkInterfaces"),
    ("ec2-describe-vpc-endpoints", "describe_vpc_endpoints", "VpcEndpoints",
     "ec2:DescribeVpcEndpoints"),
    # reachability from the internet (imdshunt exposure): open ingress rules
    ("ec2-describe-security-groups", "describe_security_groups", "SecurityGroups",
     "ec2:DescribeSecurityGroups"),
)  # fmt: skip
declare(COLLECT, (action for *_, action in EC2_CALLS))
#: Tasks and functions (their credentials are bound like instances', docs/binding.md).
declare(
    COLLECT,
    ("ecs:ListClusters", "ecs:ListTasks", "ecs:DescribeTasks", "lambda:ListFunctions"),
)
_DROP = ("ResponseMetadata", "NextToken")
#: DescribeTasks takes at most 100 task ARNs per call
#: (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeTasks.html).
_DESCRIBE_TASKS_MAX = 100


@dataclass
class CollectResult:
    account_id: str
    regions: list[str]
    files: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "region: call: message"

    def summary(self) -> str:
        return (
            f"account {self.account_id}: {len(self.files)} files from {len(self.regions)} "
            f"regions" + (f", {len(self.errors)} calls failed" if self.errors else "")
        )


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _all_pages(client: Any, method: str, key: str) -> dict[str, Any]:
    """The response as the AWS CLI prints it: pages merged under ``key``."""
    if client.can_paginate(method):
        merged: dict[str, Any] = {key: []}
        for page in client.get_paginator(method).paginate():
            merged[key].extend(page.get(key) or [])
            for k, v in page.items():
                if k != key and k not in _DROP:
                    merged.setdefault(k, v)
        return merged
    response = getattr(client, method)()
    return {k: v for k, v in response.items() if k not in _DROP}


def _ecs_tasks(client: Any) -> dict[str, Any]:
    """``aws ecs describe-tasks`` over the running tasks of every cluster, as one document."""
    doc: dict[str, Any] = {"tasks": [], "failures": []}
    clusters = _all_pages(client, "list_clusters", "clusterArns")["clusterArns"]
    for cluster in clusters:
        arns: list[str] = []
        for page in client.get_paginator("list_tasks").paginate(cluster=cluster):
            arns.extend(page.get("taskArns") or [])
        for i in range(0, len(arns), _DESCRIBE_TASKS_MAX):
            part = client.describe_tasks(cluster=cluster, tasks=arns[i : i + _DESCRIBE_TASKS_MAX])
            doc["tasks"].extend(part.get("tasks") or [])
            doc["failures"].extend(part.get("failures") or [])
    return doc


@needs(
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    commands=COLLECT,
)
def _load_balancers(client: Any) -> list[tuple[str, dict[str, Any]]]:
    """(file stem, document) of the load balancers, target groups and each group's targets:
    which instances an internet-facing load balancer exposes (imdshunt exposure)."""
    lbs = _all_pages(client, "describe_load_balancers", "LoadBalancers")
    tgs = _all_pages(client, "describe_target_groups", "TargetGroups")
    out = [("elbv2-describe-load-balancers", lbs), ("elbv2-describe-target-groups", tgs)]
    for tg in tgs["TargetGroups"]:
        health = client.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])
        doc = {"TargetGroupArn": tg["TargetGroupArn"]}  # the CLI prints no group ARN
        doc |= {k: v for k, v in health.items() if k not in _DROP}
        out.append((f"elbv2-describe-target-health/{tg['TargetGroupName']}", doc))
    return out


def _metadata_no_token(
    session: Any, region: str, instances_doc: dict[str, Any], days: int
) -> dict[str, Any] | None:
    """``MetadataNoToken`` of the region's instances that answer IMDSv1 (the only ones the
    metric decides anything for), as ``get-metric-data`` prints it, with its window."""
    from imdshunt.enrich.inventory_ec2 import parse_describe_instances
    from imdshunt.exposure import metrics

    ids = [i.instance_id for i in parse_describe_instances(instances_doc) if i.answers_imdsv1]
    if not ids:
        return None
    start, end = metrics.default_window(days=days)
    client = session.client("cloudwatch", region_name=region)
    results, _labels = metrics.read_region(client, ids, start, end)
    return {"StartTime": start, "EndTime": end, "MetricDataResults": results, "Messages": []}


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=4, default=_json_default) + "\n", encoding="utf-8")
    return path


@needs("ec2:DescribeRegions", commands=COLLECT)
def _enabled_regions(session: Any) -> list[str]:
    from botocore.exceptions import BotoCoreError, ClientError

    home = session.region_name or "us-east-1"
    try:
        described = session.client("ec2", region_name=home).describe_regions()
    except (ClientError, BotoCoreError) as exc:
        raise AwsActionError(f"cannot list regions (ec2:DescribeRegions): {exc}") from exc
    return sorted(r["RegionName"] for r in described.get("Regions", []))


@needs("organizations:ListAccounts", commands=COLLECT)
def _org_accounts(session: Any) -> dict[str, Any]:
    org = session.client("organizations", region_name=session.region_name or "us-east-1")
    return _all_pages(org, "list_accounts", "Accounts")


def collect_inventory(
    session: Any,
    out: str | os.PathLike,
    *,
    regions: Sequence[str] | None = None,
    organizations: bool = True,
    progress: Callable[[str], None] | None = None,
    metric_days: int | None = 14,
) -> CollectResult:
    """Write the inventory of the session's account (every enabled region) under ``out``.

    ``regions`` defaults to the regions ``ec2:DescribeRegions`` lists as enabled for the
    account. A call refused in one region is recorded in :attr:`CollectResult.errors` and the
    collection goes on; :class:`~imdshunt.errors.AwsActionError` is raised only when the
    account cannot be identified or nothing at all could be collected. ``metric_days`` is the
    window of ``MetadataNoToken`` read for instances answering IMDSv1 (None: not read).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    out = Path(out)
    try:
        account = session.client("sts").get_caller_identity()["Account"]
    except (ClientError, BotoCoreError) as exc:
        raise AwsActionError(f"cannot identify the account (sts:GetCallerIdentity): {exc}") from exc
    if regions is None:
        regions = _enabled_regions(session)
    result = CollectResult(account_id=account, regions=list(regions))
    for region in regions:
        client = session.client("ec2", region_name=region)
        instances_doc = None
        for stem, method, key, _action in EC2_CALLS:
            if progress:
                progress(f"{region} {method}")
            try:
                doc = _all_pages(client, method, key)
            except (ClientError, BotoCoreError) as exc:
                result.errors.append(f"{region}: {method}: {exc}")
                continue
            if key == "Reservations":
                instances_doc = doc
            result.files.append(write_json(out / account / region / f"{stem}.json", doc))
        if progress:
            progress(f"{region} elbv2")
        try:
            for stem, doc in _load_balancers(session.client("elbv2", region_name=region)):
                result.files.append(write_json(out / account / region / f"{stem}.json", doc))
        except (ClientError, BotoCoreError) as exc:
            result.errors.append(f"{region}: elbv2: {exc}")
        if metric_days and instances_doc is not None:
            if progress:
                progress(f"{region} MetadataNoToken")
            try:
                doc = _metadata_no_token(session, region, instances_doc, metric_days)
            except (ClientError, BotoCoreError) as exc:
                result.errors.append(f"{region}: cloudwatch get_metric_data: {exc}")
                doc = None
            if doc is not None:
                path = out / account / region / "cloudwatch-get-metric-data.json"
                result.files.append(write_json(path, doc))
        # tasks and functions: their credentials are bound like instances' (docs/binding.md)
        for stem, fetch in (
            ("ecs-describe-tasks", lambda r: _ecs_tasks(session.client("ecs", region_name=r))),
            (
                "lambda-list-functions",
                lambda r: _all_pages(
                    session.client("lambda", region_name=r), "list_functions", "Functions"
                ),
            ),
        ):
            if progress:
                progress(f"{region} {stem}")
            try:
                doc = fetch(region)
            except (ClientError, BotoCoreError) as exc:
                result.errors.append(f"{region}: {stem}: {exc}")
                continue
            result.files.append(write_json(out / account / region / f"{stem}.json", doc))
    if organizations:
        try:
            doc = _org_accounts(session)
            result.files.append(write_json(out / account / "organizations-list-accounts.json", doc))
        except (ClientError, BotoCoreError) as exc:
            result.errors.append(f"organizations: list_accounts: {exc}")
    if not result.files:
        raise AwsActionError("nothing collected: " + "; ".join(result.errors[:3]))
    return result
