"""Can an SSRF reach the instance from the internet? From the inventory's AWS CLI JSON.

Two ways in are recognised:

* **A load balancer**: the instance is a registered target (``aws elbv2
  describe-target-health``) of a target group (``describe-target-groups``) forwarded to by a load
  balancer whose ``Scheme`` is ``internet-facing`` (``describe-load-balancers``). A target group
  of ``TargetType`` ``instance`` names the instance id; of type ``ip``, its private address.
  When the load balancer has security groups (every ALB; NLBs may have none) and the inventory
  holds them, one of them must admit ``0.0.0.0/0`` or ``::/0``. Shown as ``alb:<name>`` or
  ``nlb:<name>``.
* **A public address and an open security group**: the instance has a public IPv4 address and
  one of its security groups admits ``0.0.0.0/0``, or an IPv6 address and a group admits
  ``::/0`` (``aws ec2 describe-security-groups``). Shown as ``public-ip+sg:<group>:<ports>``
  (``ipv6+sg:...`` for IPv6), ports ``80``, ``8000-8080`` or ``all``.

AWS's data, and its surprises:

* ``describe-target-health`` prints no target group ARN: the AWS CLI output is one group's
  targets, for the ``--target-group-arn`` asked. ``imdshunt inventory collect`` writes that ARN
  beside the output (``TargetGroupArn``); a hand-run file without it cannot be tied to a load
  balancer and is listed in :attr:`Reachability.notes`.
* An ``IpProtocol`` of ``-1`` means every protocol and port (no ``FromPort``/``ToPort``).
* Security groups are only part of the path: network ACLs, route tables (a public address
  in a subnet without an internet gateway route), WAF rules and listener rules are not read, so
  ``true`` means "exposed by its load balancer or security groups", not a proven path.

``reachable_from_internet`` is ``True`` when a way in is found, ``False`` when the inventory
holds the instance's security groups and load balancers and none lets the internet in, and
``None`` (unknown) otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from imdshunt.enrich.inventory import documents_of_kind
from imdshunt.enrich.inventory_ec2 import Ec2Instance

ANYWHERE_V4, ANYWHERE_V6 = "0.0.0.0/0", "::/0"


def _ports(perm: dict[str, Any]) -> str:
    if str(perm.get("IpProtocol")) == "-1":
        return "all"
    lo, hi = perm.get("FromPort"), perm.get("ToPort")
    if lo is None or (lo in (0, -1) and hi in (65535, -1)):
        return "all"
    return str(lo) if lo == hi else f"{lo}-{hi}"


def open_ports(group: dict[str, Any]) -> dict[str, list[str]]:
    """``{"ipv4": [ports...], "ipv6": [...]}`` a security group admits from anywhere."""
    out: dict[str, list[str]] = {"ipv4": [], "ipv6": []}
    for perm in group.get("IpPermissions") or []:
        if any(r.get("CidrIp") == ANYWHERE_V4 for r in perm.get("IpRanges") or []):
            out["ipv4"].append(_ports(perm))
        if any(r.get("CidrIpv6") == ANYWHERE_V6 for r in perm.get("Ipv6Ranges") or []):
            out["ipv6"].append(_ports(perm))
    return out


@dataclass
class Reachability:
    """The load balancers, target groups, targets and security groups of the inventory."""

    load_balancers: dict[str, dict[str, Any]] = field(default_factory=dict)  # ARN -> LB
    target_groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # ARN -> TG
    targets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # TG ARN -> targets
    security_groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> group
    notes: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, paths: Iterable[str | os.PathLike]) -> Reachability:
        """Read the elbv2 and security-group files among inventory files and folders."""
        paths = list(paths)
        r = cls()
        for doc in documents_of_kind(paths, "elbv2-describe-load-balancers"):
            for lb in doc["LoadBalancers"]:
                if lb.get("LoadBalancerArn"):
                    r.load_balancers[lb["LoadBalancerArn"]] = lb
        for doc in documents_of_kind(paths, "elbv2-describe-target-groups"):
            for tg in doc["TargetGroups"]:
                if tg.get("TargetGroupArn"):
                    r.target_groups[tg["TargetGroupArn"]] = tg
        untied = 0
        for doc in documents_of_kind(paths, "elbv2-describe-target-health"):
            arn = doc.get("TargetGroupArn")
            if not arn:
                untied += 1
                continue
            r.targets.setdefault(arn, []).extend(
                d.get("Target") or {} for d in doc["TargetHealthDescriptions"]
            )
        if untied:
            r.notes.append(
                f"{untied} describe-target-health file(s) without TargetGroupArn (as the AWS CLI "
                "prints it) cannot be tied to a load balancer: use 'imdshunt inventory collect'"
            )
        for doc in documents_of_kind(paths, "ec2-describe-security-groups"):
            for g in doc["SecurityGroups"]:
                if g.get("GroupId"):
                    r.security_groups[g["GroupId"]] = g
        return r

    @property
    def has_load_balancers(self) -> bool:
        return bool(self.load_balancers or self.target_groups)

    def _lb_open(self, lb: dict[str, Any]) -> bool | None:
        groups = lb.get("SecurityGroups") or []
        if not groups:
            return True  # an NLB without security groups lets every client through
        known = [self.security_groups.get(g) for g in groups]
        if any(g is not None and (open_ports(g)["ipv4"] or open_ports(g)["ipv6"]) for g in known):
            return True
        return None if any(g is None for g in known) else False

    def assess(self, inst: Ec2Instance) -> tuple[bool | None, list[str], list[str]]:
        """(reachable_from_internet, how, reasons) for one instance."""
        via: list[str] = []
        reasons: list[str] = []
        unknown = False
        for tg_arn, tg in sorted(self.target_groups.items()):
            if tg_arn not in self.targets:
                if any(
                    self.load_balancers.get(a, {}).get("Scheme") == "internet-facing"
                    for a in tg.get("LoadBalancerArns") or []
                ) and tg.get("VpcId") in (None, inst.vpc_id):
                    unknown = True  # its targets were not listed
                continue
            ids = {t.get("Id") for t in self.targets[tg_arn]}
            if not ({inst.instance_id, inst.private_ip} & ids):
                continue
            for lb_arn in tg.get("LoadBalancerArns") or []:
                lb = self.load_balancers.get(lb_arn)
                if lb is None:
                    unknown = True
                    continue
                if lb.get("Scheme") != "internet-facing":
                    continue
                kind = {"application": "alb", "network": "nlb"}.get(lb.get("Type"), "elb")
                is_open = self._lb_open(lb)
                if is_open:
                    via.append(f"{kind}:{lb.get('LoadBalancerName')}")
                elif is_open is None:
                    unknown = True
        groups = list(inst.security_group_ids)
        missing = [g for g in groups if g not in self.security_groups]
        for g in groups:
            if g in missing:
                continue
            ports = open_ports(self.security_groups[g])
            if inst.public_ip:
                via.extend(f"public-ip+sg:{g}:{p}" for p in ports["ipv4"])
            if inst.ipv6_addresses:
                via.extend(f"ipv6+sg:{g}:{p}" for p in ports["ipv6"])
        via = list(dict.fromkeys(via))
        if via:
            reasons.append("reachable from the internet: " + ", ".join(via))
            return True, via, reasons
        if missing or not groups or not self.has_load_balancers or unknown:
            lacking = []
            if missing or not groups:
                lacking.append("its security groups")
            if not self.has_load_balancers or unknown:
                lacking.append("its load balancers and targets")
            reasons.append(
                "reachability unknown: the inventory lacks " + " and ".join(lacking)
                + " (imdshunt inventory collect gathers them)"
            )  # fmt: skip
            return None, [], reasons
        reasons.append(
            "not reachable from the internet by its load balancers or security groups "
            "(network ACLs and routes not read)"
        )
        return False, [], reasons
