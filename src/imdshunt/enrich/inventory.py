"""The organisation's inventory: which addresses, VPC endpoints and accounts are ours.

Accepts the JSON the AWS CLI prints (pages merged, ``ResponseMetadata`` absent) for:

* ``aws ec2 describe-instances`` (``{"Reservations": [...]}``): each instance's private and
  public IPv4 addresses and IPv6 addresses, on every network interface, with its VPC
  (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html);
* ``aws ec2 describe-nat-gateways`` (``{"NatGateways": [...]}``): every public and private
  address of each NAT gateway (a NAT gateway can carry several Elastic IPs;
  https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-scaling.html). The response
  carries no owner account id;
* ``aws ec2 describe-addresses`` (``{"Addresses": [...]}``): Elastic IPs and what they are
  associated with;
* ``aws ec2 describe-network-interfaces`` (``{"NetworkInterfaces": [...]}``): every ENI's
  addresses and the instance it is attached to, which also covers NAT gateway, Lambda and
  endpoint interfaces that describe-instances does not list;
* ``aws ec2 describe-vpc-endpoints`` (``{"VpcEndpoints": [...]}``): which VPC each endpoint is in;
* ``aws organizations list-accounts`` (``{"Accounts": [...]}``): the organisation's accounts;
* ``aws ecs describe-tasks``, ``kubectl get pods -A -o json`` and ``aws lambda list-functions``:
  the addresses and VPC of each task, pod and function (see
  :mod:`imdshunt.enrich.inventory_workloads`);
* read by ``imdshunt exposure`` only (recognised here, so a collected folder is read whole):
  ``aws elbv2 describe-load-balancers``, ``describe-target-groups``, ``describe-target-health``
  (with ``TargetGroupArn`` beside it), ``aws ec2 describe-security-groups`` (see
  :mod:`imdshunt.exposure.reachability`) and ``aws cloudwatch get-metric-data`` for
  ``MetadataNoToken`` (see :mod:`imdshunt.exposure.metrics`).

The kind of a file is told by its top-level key, never by its name. A folder means every
``*.json`` file under it (recursively); JSON in a folder that is none of these (for example the
IAM ``get-account-authorization-details`` that ``imdshunt exposure`` reads from the same folder)
is listed in :attr:`Inventory.skipped` with the reason, never silently dropped. A file named
directly whose content is none of these is an :class:`~imdshunt.errors.InputError`.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from imdshunt.enrich import inventory_workloads as workloads
from imdshunt.errors import InputError, UsageError, not_json
from imdshunt.schema import INVENTORY_ADDRESS, INVENTORY_VPCE, INVENTORY_WORKLOAD, ORG_ACCOUNT

#: Top-level key of each AWS CLI response this module reads, and what it is.
KINDS_BY_KEY = {
    "Reservations": "describe-instances",
    "NatGateways": "describe-nat-gateways",
    "Addresses": "describe-addresses",
    "NetworkInterfaces": "describe-network-interfaces",
    "VpcEndpoints": "describe-vpc-endpoints",
    "Accounts": "list-accounts",
    "tasks": "ecs-describe-tasks",
    "Functions": "lambda-list-functions",
    # read by `imdshunt exposure` (imdshunt.exposure), not by the hunt's address tables
    "MetricDataResults": "cloudwatch-get-metric-data",
    "LoadBalancers": "elbv2-describe-load-balancers",
    "TargetGroups": "elbv2-describe-target-groups",
    "TargetHealthDescriptions": "elbv2-describe-target-health",
    "SecurityGroups": "ec2-describe-security-groups",
}
#: Kinds the hunt's address inventory has no use for (``imdshunt exposure`` reads them).
NOT_ADDRESSES = frozenset(
    {
        "cloudwatch-get-metric-data",
        "elbv2-describe-load-balancers",
        "elbv2-describe-target-groups",
        "elbv2-describe-target-health",
        "ec2-describe-security-groups",
    }
)


@dataclass
class Inventory:
    """Addresses, VPC endpoints and accounts of the organisation, ready to register."""

    addresses: list[dict[str, Any]] = field(default_factory=list)
    vpc_endpoints: list[dict[str, Any]] = field(default_factory=list)
    org_accounts: set[str] = field(default_factory=set)
    #: Tasks, pods and functions (rows of inventory_workload before ENIs are resolved).
    workloads: list[dict[str, Any]] = field(default_factory=list)
    #: ENI id -> its addresses, VPC, account and region (describe-network-interfaces).
    enis: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # path -> kind
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why (folder walks only)

    @property
    def empty(self) -> bool:
        return not (self.addresses or self.vpc_endpoints or self.org_accounts or self.workloads)

    def workload_rows(self) -> list[dict[str, Any]]:
        """Workload addresses with what describe-network-interfaces and the address inventory add.

        A task's ENI gives its public address and VPC; a pod's or task's address found on an
        ENI or instance of the inventory gives its VPC (and account, which kubectl does not
        print). A workload row with neither address nor ENI (a function) stays as it is.
        """
        vpc_of = {a["address"]: a for a in self.addresses if a.get("vpc_id")}
        out = []
        for row in self.workloads:
            row = dict(row)
            eni = self.enis.get(row.pop("eni_id", None) or "")
            host = row.pop("host_ip", None)
            if eni is not None:
                for address in eni["addresses"]:
                    out.append(
                        row
                        | {
                            "address": address,
                            "vpc_id": row["vpc_id"] or eni["vpc_id"],
                            "account_id": row["account_id"] or eni["account_id"],
                            "region": row["region"] or eni["region"],
                        }
                    )
                continue
            if row["address"] is None and row["workload_type"] != workloads.LAMBDA:
                continue  # an ENI that no describe-network-interfaces file lists
            known = vpc_of.get(row["address"] or "") or vpc_of.get(host or "")
            if known is not None:
                row["vpc_id"] = row["vpc_id"] or known["vpc_id"]
                row["account_id"] = row["account_id"] or known.get("account_id")
                row["region"] = row["region"] or known.get("region")
            out.append(row)
        # a task's ENI address also comes from describe-tasks: keep the resolved (fuller) row
        return _dedupe(
            sorted(out, key=lambda r: r["vpc_id"] is None),
            ("address", "workload_type", "workload_id", "namespace"),
        )

    def workload_table(self) -> pa.Table:
        return pa.Table.from_pylist(self.workload_rows(), schema=INVENTORY_WORKLOAD)

    def workload_by_ip(self) -> dict[str, set[str]]:
        """Each task or pod address -> the workloads holding it, as chain keys
        (:func:`imdshunt.correlate.workload_key`)."""
        from imdshunt.correlate import workload_key

        out: dict[str, set[str]] = {}
        for r in self.workload_rows():
            if r["address"] and r["workload_type"] in (workloads.ECS_TASK, workloads.EKS_POD):
                key = workload_key(r["workload_type"], r["workload_id"], r["namespace"])
                out.setdefault(r["address"], set()).add(key)
        return out

    def address_table(self) -> pa.Table:
        rows = _dedupe(self.addresses, tuple(INVENTORY_ADDRESS.names[:6]))
        return pa.Table.from_pylist(rows, schema=INVENTORY_ADDRESS)

    def vpce_table(self) -> pa.Table:
        rows = _dedupe(self.vpc_endpoints, tuple(INVENTORY_VPCE.names))
        return pa.Table.from_pylist(rows, schema=INVENTORY_VPCE)

    def org_account_table(self) -> pa.Table:
        return pa.Table.from_pylist(
            [{"account_id": a} for a in sorted(self.org_accounts)], schema=ORG_ACCOUNT
        )

    def instance_by_ip(self) -> dict[str, str]:
        """Each address that belongs to exactly one instance (e.g. an ALB target's private IP)."""
        owners: dict[str, set[str]] = {}
        for a in self.addresses:
            if a.get("instance_id"):
                owners.setdefault(a["address"], set()).add(a["instance_id"])
        return {ip: next(iter(ids)) for ip, ids in owners.items() if len(ids) == 1}

    def summary(self) -> str:
        instances = {a["instance_id"] for a in self.addresses if a.get("instance_id")}
        kinds: dict[str, set] = {}
        for w in self.workloads:
            kinds.setdefault(w["workload_type"], set()).add((w["namespace"], w["workload_id"]))
        held = "".join(
            f", {len(kinds[k])} {name}"
            for k, name in (
                (workloads.ECS_TASK, "ECS tasks"),
                (workloads.EKS_POD, "pods"),
                (workloads.LAMBDA, "functions"),
            )
            if kinds.get(k)
        )
        return (
            f"inventory: {len(self.files)} files, {len(instances)} instances{held}, "
            f"{len(self.addresses)} addresses, {len(self.vpc_endpoints)} VPC endpoints, "
            f"{len(self.org_accounts)} org accounts"
            + (f"; {len(self.skipped)} other JSON files skipped" if self.skipped else "")
        )


def _dedupe(rows: list[dict], key: tuple[str, ...]) -> list[dict]:
    seen: dict[tuple, dict] = {}
    for r in rows:
        seen.setdefault(tuple(r.get(k) for k in key), r)
    return list(seen.values())


def normalise_account_id(value: Any, where: str = "--org-accounts") -> str:
    """A 12-digit AWS account id as a string (TOML and JSON may hand us an int)."""
    text = str(value).strip()
    if text.isdigit() and len(text) < 12:
        text = text.zfill(12)
    if not (text.isdigit() and len(text) == 12):
        raise UsageError(f"{where}: {value!r} is not a 12-digit AWS account id")
    return text


def _region_of_az(az: str | None) -> str | None:
    """``us-east-1a`` -> ``us-east-1``; Local Zones (``us-west-2-lax-1a``) keep their parent."""
    if not az:
        return None
    parts = az.split("-")
    if len(parts) > 3:  # local / wavelength zone: us-west-2-lax-1a
        return "-".join(parts[:3])
    return az[:-1] if az[-1].isalpha() else az


def _addr(
    out: list,
    address: str | None,
    kind: str,
    *,
    instance_id=None,
    account_id=None,
    vpc_id=None,
    region=None,
    source_file=None,
) -> None:
    if not address:
        return
    try:
        address = str(ipaddress.ip_address(address))  # canonical form, as CloudTrail writes it
    except ValueError:
        return
    out.append(
        {
            "address": address,
            "kind": kind,
            "instance_id": instance_id.lower() if instance_id else None,
            "account_id": account_id,
            "vpc_id": vpc_id,
            "region": region,
            "source_file": source_file,
        }
    )


def _parse_instances(doc: dict, inv: Inventory, src: str) -> None:
    for res in doc.get("Reservations") or []:
        owner = res.get("OwnerId")
        for ins in res.get("Instances") or []:
            iid = ins.get("InstanceId")
            vpc = ins.get("VpcId")
            region = _region_of_az((ins.get("Placement") or {}).get("AvailabilityZone"))
            kw = dict(instance_id=iid, account_id=owner, vpc_id=vpc, region=region, source_file=src)
            _addr(inv.addresses, ins.get("PrivateIpAddress"), "instance-private", **kw)
            _addr(inv.addresses, ins.get("PublicIpAddress"), "instance-public", **kw)
            _addr(inv.addresses, ins.get("Ipv6Address"), "instance-ipv6", **kw)
            for eni in ins.get("NetworkInterfaces") or []:
                ekw = dict(kw, vpc_id=eni.get("VpcId") or vpc)
                for p in eni.get("PrivateIpAddresses") or []:
                    _addr(inv.addresses, p.get("PrivateIpAddress"), "instance-private", **ekw)
                    pub = (p.get("Association") or {}).get("PublicIp")
                    _addr(inv.addresses, pub, "instance-public", **ekw)
                pub = (eni.get("Association") or {}).get("PublicIp")
                _addr(inv.addresses, pub, "instance-public", **ekw)
                for v6 in eni.get("Ipv6Addresses") or []:
                    _addr(inv.addresses, v6.get("Ipv6Address"), "instance-ipv6", **ekw)


def _parse_nat_gateways(doc: dict, inv: Inventory, src: str) -> None:
    for nat in doc.get("NatGateways") or []:
        kw = dict(vpc_id=nat.get("VpcId"), source_file=src)
        for a in nat.get("NatGatewayAddresses") or []:
            _addr(inv.addresses, a.get("PublicIp"), "nat-gateway", **kw)
            _addr(inv.addresses, a.get("PrivateIp"), "nat-gateway", **kw)


def _parse_addresses(doc: dict, inv: Inventory, src: str) -> None:
    for a in doc.get("Addresses") or []:
        _addr(
            inv.addresses,
            a.get("PublicIp"),
            "elastic-ip",
            instance_id=a.get("InstanceId") or None,
            account_id=a.get("NetworkInterfaceOwnerId"),
            region="-".join((a.get("NetworkBorderGroup") or "").split("-")[:3]) or None,
            source_file=src,
        )


def _parse_network_interfaces(doc: dict, inv: Inventory, src: str) -> None:
    for eni in doc.get("NetworkInterfaces") or []:
        iid = (eni.get("Attachment") or {}).get("InstanceId")
        start = len(inv.addresses)
        kw = dict(
            instance_id=iid,
            account_id=eni.get("OwnerId"),
            vpc_id=eni.get("VpcId"),
            region=_region_of_az(eni.get("AvailabilityZone")),
            source_file=src,
        )
        for p in eni.get("PrivateIpAddresses") or []:
            _addr(inv.addresses, p.get("PrivateIpAddress"), "eni", **kw)
            _addr(inv.addresses, (p.get("Association") or {}).get("PublicIp"), "eni", **kw)
        _addr(inv.addresses, eni.get("PrivateIpAddress"), "eni", **kw)
        _addr(inv.addresses, (eni.get("Association") or {}).get("PublicIp"), "eni", **kw)
        for v6 in eni.get("Ipv6Addresses") or []:
            _addr(inv.addresses, v6.get("Ipv6Address"), "eni", **kw)
        if eni.get("NetworkInterfaceId"):
            inv.enis[eni["NetworkInterfaceId"]] = {
                "addresses": sorted({a["address"] for a in inv.addresses[start:]}),
                "vpc_id": kw["vpc_id"],
                "account_id": kw["account_id"],
                "region": kw["region"],
            }


def _parse_vpc_endpoints(doc: dict, inv: Inventory, src: str) -> None:
    for ep in doc.get("VpcEndpoints") or []:
        if not ep.get("VpcEndpointId"):
            continue
        inv.vpc_endpoints.append(
            {
                "vpce_id": ep["VpcEndpointId"],
                "vpc_id": ep.get("VpcId"),
                "account_id": ep.get("OwnerId"),
                "service_name": ep.get("ServiceName"),
                "region": _service_region(ep.get("ServiceName")),
            }
        )


def _service_region(name: str | None) -> str | None:
    # com.amazonaws.us-east-1.s3
    parts = (name or "").split(".")
    return parts[2] if len(parts) > 3 and parts[0] == "com" else None


def _parse_accounts(doc: dict, inv: Inventory, src: str) -> None:
    for acct in doc.get("Accounts") or []:
        if acct.get("Id"):
            inv.org_accounts.add(normalise_account_id(acct["Id"], src))


def _parse_ecs_tasks(doc: dict, inv: Inventory, src: str) -> None:
    inv.workloads.extend(workloads.parse_ecs_tasks(doc, src))


def _parse_kubectl_pods(doc: dict, inv: Inventory, src: str) -> None:
    inv.workloads.extend(workloads.parse_kubectl_pods(doc, src))


def _parse_lambda_functions(doc: dict, inv: Inventory, src: str) -> None:
    inv.workloads.extend(workloads.parse_lambda_functions(doc, src))


_PARSERS = {
    "describe-instances": _parse_instances,
    "describe-nat-gateways": _parse_nat_gateways,
    "describe-addresses": _parse_addresses,
    "describe-network-interfaces": _parse_network_interfaces,
    "describe-vpc-endpoints": _parse_vpc_endpoints,
    "list-accounts": _parse_accounts,
    "ecs-describe-tasks": _parse_ecs_tasks,
    "kubectl-pods": _parse_kubectl_pods,
    "lambda-list-functions": _parse_lambda_functions,
}


def detect_kind(doc: Any) -> str | None:
    """Which AWS CLI response ``doc`` is, by its top-level key; None when it is none of them."""
    if not isinstance(doc, dict):
        return None
    for key, kind in KINDS_BY_KEY.items():
        if isinstance(doc.get(key), list):
            return kind
    if workloads.is_kubectl_pods(doc):
        return "kubectl-pods"
    return None


def iter_inventory_files(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, bool]]:
    """``(file, named directly)`` for ``paths``; a folder stands for every ``*.json`` under it."""
    out: list[tuple[Path, bool]] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend((q, False) for q in sorted(path.rglob("*.json")) if q.is_file())
        elif path.is_file():
            out.append((path, True))
        else:
            raise InputError(str(path), "inventory file or folder not found")
    return out


def load_inventory(
    paths: Iterable[str | os.PathLike] = (), org_accounts: Iterable[str | int] = ()
) -> Inventory:
    """Parse inventory files and folders, plus account ids given directly.

    Raises :class:`~imdshunt.errors.InputError` for a file that is not JSON, or a file named
    directly that is not one of the responses listed in the module docstring, and
    :class:`~imdshunt.errors.UsageError` for an account id that is not 12 digits.
    """
    inv = Inventory()
    for acct in org_accounts:
        inv.org_accounts.add(normalise_account_id(acct))
    for path, named in iter_inventory_files(paths):
        try:
            doc = json.loads(path.read_bytes())
        except json.JSONDecodeError as exc:
            raise not_json(path, exc) from exc
        except OSError as exc:
            raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc
        except ValueError as exc:  # bytes that are not UTF-8
            raise InputError(path, f"not valid JSON: {exc}") from exc
        kind = detect_kind(doc)
        if kind is None and not named:
            inv.skipped[str(path)] = "JSON that is no inventory this version reads"
            continue
        if kind is None:
            raise InputError(
                str(path),
                "not an inventory file: expected the JSON printed by aws ec2 describe-instances, "
                "describe-nat-gateways, describe-addresses, describe-network-interfaces, "
                "describe-vpc-endpoints, aws organizations list-accounts, aws ecs describe-tasks, "
                "aws lambda list-functions or kubectl get pods -o json",
            )
        if kind not in NOT_ADDRESSES:
            _PARSERS[kind](doc, inv, str(path))
        inv.files[str(path)] = kind
    return inv


def documents_of_kind(paths: Iterable[str | os.PathLike], kind: str) -> list[dict[str, Any]]:
    """The parsed inventory documents of one kind (:data:`KINDS_BY_KEY`) under ``paths``;
    files of other kinds are passed over (:func:`load_inventory` checks every file)."""
    out = []
    for path, _named in iter_inventory_files(paths):
        try:
            doc = json.loads(path.read_bytes())
        except json.JSONDecodeError as exc:
            raise not_json(path, exc) from exc
        except OSError as exc:
            raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise InputError(path, f"not valid JSON: {exc}") from exc
        if detect_kind(doc) == kind:
            out.append(doc)
    return out


def register_inventory(engine: Any, inventory: Inventory) -> None:
    """Register ``inventory_address``, ``inventory_vpce``, ``inventory_workload`` and
    ``org_account`` in ``engine``."""
    engine.register_table("inventory_address", inventory.address_table())
    engine.register_table("inventory_workload", inventory.workload_table())
    engine.register_table("inventory_vpce", inventory.vpce_table())
    engine.register_table("org_account", inventory.org_account_table())
