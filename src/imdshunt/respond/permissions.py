"""The least-privilege IAM policy imdshunt itself needs, derived from what each action declares.

``sts:GetCallerIdentity`` (used for the audit record) needs no permission and cannot be denied
(https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html), so it is not
listed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from imdshunt.respond.actions import ACTIONS, PLANNING_PERMISSIONS
from imdshunt.respond.plan import Permission

#: Read-only calls of the inventory collector (``imdshunt collect``), declared here so the
#: policy covers it; the collector is to import this constant.
INVENTORY_COLLECT_PERMISSIONS: tuple[Permission, ...] = (
    Permission.of("ec2:DescribeInstances"),
    Permission.of("ec2:DescribeNatGateways"),
    Permission.of("ec2:DescribeAddresses"),
    Permission.of("ec2:DescribeNetworkInterfaces"),
    Permission.of("ec2:DescribeRegions"),
    Permission.of("organizations:ListAccounts"),
)

#: Read-only calls of ``imdshunt guardduty check``.
GUARDDUTY_CHECK_PERMISSIONS: tuple[Permission, ...] = (
    Permission.of("guardduty:ListDetectors"),
    Permission.of("guardduty:GetDetector"),
    Permission.of("guardduty:ListFilters"),
    Permission.of("guardduty:GetFilter"),
    Permission.of("events:ListRules"),
    Permission.of("events:ListTargetsByRule"),
    Permission.of("ec2:DescribeRegions"),
)

#: Which permission sets make up each part of the tool.
PARTS = ("respond", "collect", "guardduty")


def respond_permissions() -> list[Permission]:
    """Everything respond declares: planning reads plus each action's apply and read-back."""
    perms: list[Permission] = list(PLANNING_PERMISSIONS)
    for action in ACTIONS.values():
        perms.extend(action.permissions)
        perms.extend(action.read_permissions)
    return perms


def declared_permissions(parts: Iterable[str] = PARTS) -> list[Permission]:
    parts = list(parts)
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    perms: list[Permission] = []
    if "respond" in parts:
        perms.extend(respond_permissions())
    if "collect" in parts:
        perms.extend(INVENTORY_COLLECT_PERMISSIONS)
    if "guardduty" in parts:
        perms.extend(GUARDDUTY_CHECK_PERMISSIONS)
    return perms


def _sid(actions: list[str], n: int) -> str:
    services = sorted({a.split(":")[0] for a in actions})
    return "Imdshunt" + "".join(s.capitalize() for s in services) + str(n)


def iam_policy(parts: Iterable[str] = PARTS) -> dict[str, Any]:
    """Group the declared permissions by (resource, condition) into one policy document.

    A permission needed both unscoped (``"*"``) and scoped is kept only in its broader form.
    """
    perms = set(declared_permissions(parts))
    unscoped = {p.action for p in perms if p.resource == "*" and p.condition_json is None}
    groups: dict[tuple[str, str | None], set[str]] = {}
    for p in perms:
        if p.action in unscoped and not (p.resource == "*" and p.condition_json is None):
            continue
        groups.setdefault((p.resource, p.condition_json), set()).add(p.action)
    statements = []
    for n, ((resource, cond), actions) in enumerate(
        sorted(groups.items(), key=lambda kv: (kv[0][0] != "*", kv[0][0], kv[0][1] or "")), 1
    ):
        acts = sorted(actions)
        st: dict[str, Any] = {
            "Sid": _sid(acts, n),
            "Effect": "Allow",
            "Action": acts,
            "Resource": resource,
        }
        if cond:
            st["Condition"] = json.loads(cond)
        statements.append(st)
    return {"Version": "2012-10-17", "Statement": statements}


def print_iam_policy(parts: Iterable[str] = PARTS) -> str:
    """The policy of :func:`iam_policy` as indented JSON text (what the CLI prints)."""
    return json.dumps(iam_policy(parts), indent=2)
