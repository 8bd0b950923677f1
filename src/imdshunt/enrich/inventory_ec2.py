"""EC2 inventory from ``aws ec2 describe-instances`` JSON.

A small reusable parser: one :class:`Ec2Instance` per instance in
``Reservations[].Instances[]``, with the instance metadata options that decide whether the
instance still answers IMDSv1.

AWS's data, and its surprises (see the EC2 API Reference, ``DescribeInstances`` and
``InstanceMetadataOptionsResponse``):

* ``MetadataOptions.HttpTokens`` is ``optional`` (IMDSv1 *and* v2 answer) or ``required``
  (v2 only). ``optional`` is what makes an SSRF to ``169.254.169.254`` hand out the role's
  credentials.
* ``MetadataOptions.HttpEndpoint`` ``disabled`` means no metadata service at all: such an
  instance answers neither version, whatever ``HttpTokens`` says.
* ``MetadataOptions.State`` is ``pending`` while a change is being applied.
* An instance carries no region field; the region is that of its ``Placement.AvailabilityZone``
  (``us-east-1a`` -> ``us-east-1``; Local Zones such as ``us-west-2-lax-1a`` -> ``us-west-2``).
* ``IamInstanceProfile`` names the instance *profile*, not the role; the role behind it is
  found in ``aws iam get-account-authorization-details`` (``RoleDetailList[].InstanceProfileList``).
* ``OwnerId`` is on the reservation, not the instance.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imdshunt.errors import InputError, not_json

_REGION_RE = re.compile(r"^([a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d+)")


@dataclass(frozen=True)
class Ec2Instance:
    """One EC2 instance as ``describe-instances`` described it."""

    instance_id: str
    account_id: str | None = None
    region: str | None = None
    availability_zone: str | None = None
    name: str | None = None
    state: str | None = None
    http_tokens: str | None = None
    http_put_response_hop_limit: int | None = None
    http_endpoint: str | None = None
    instance_profile_arn: str | None = None
    private_ip: str | None = None
    public_ip: str | None = None
    vpc_id: str | None = None
    #: Security groups of the instance and of every network interface attached to it.
    security_group_ids: tuple[str, ...] = ()
    ipv6_addresses: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    source_file: str | None = None

    @property
    def answers_imdsv1(self) -> bool:
        """True when the instance still hands out credentials over IMDSv1.

        ``HttpTokens: optional`` with the endpoint enabled (or not stated). A terminated
        instance answers nothing.
        """
        if self.state in ("terminated", "shutting-down"):
            return False
        if (self.http_endpoint or "enabled").lower() == "disabled":
            return False
        return (self.http_tokens or "").lower() == "optional"


def region_from_az(az: str | None) -> str | None:
    """The region of an availability zone name (``eu-west-1b`` -> ``eu-west-1``)."""
    if not az:
        return None
    m = _REGION_RE.match(az)
    return m.group(1) if m else None


def _int_or_none(v: Any) -> int | None:
    try:
        return int(v) if v is not None and not isinstance(v, bool) else None
    except (TypeError, ValueError):
        return None


def _instance(raw: dict[str, Any], owner: str | None, source: str | None) -> Ec2Instance:
    opts = raw.get("MetadataOptions") or {}
    tags = {
        str(t.get("Key")): str(t.get("Value", ""))
        for t in raw.get("Tags") or []
        if isinstance(t, dict) and t.get("Key") is not None
    }
    az = (raw.get("Placement") or {}).get("AvailabilityZone")
    hop = opts.get("HttpPutResponseHopLimit")
    enis = [e for e in raw.get("NetworkInterfaces") or [] if isinstance(e, dict)]
    groups = [g.get("GroupId") for g in raw.get("SecurityGroups") or [] if isinstance(g, dict)]
    groups += [g.get("GroupId") for e in enis for g in e.get("Groups") or [] if isinstance(g, dict)]
    ipv6 = [a.get("Ipv6Address") for e in enis for a in e.get("Ipv6Addresses") or []]
    public = raw.get("PublicIpAddress") or next(
        (
            (e.get("Association") or {}).get("PublicIp")
            for e in enis
            if (e.get("Association") or {}).get("PublicIp")
        ),
        None,
    )
    return Ec2Instance(
        instance_id=str(raw["InstanceId"]),
        account_id=owner,
        region=region_from_az(az),
        availability_zone=az,
        name=tags.get("Name"),
        state=(raw.get("State") or {}).get("Name"),
        http_tokens=opts.get("HttpTokens"),
        http_put_response_hop_limit=_int_or_none(hop),
        http_endpoint=opts.get("HttpEndpoint"),
        instance_profile_arn=(raw.get("IamInstanceProfile") or {}).get("Arn"),
        private_ip=raw.get("PrivateIpAddress"),
        public_ip=public,
        vpc_id=raw.get("VpcId"),
        security_group_ids=tuple(dict.fromkeys(g for g in groups if g)),
        ipv6_addresses=tuple(dict.fromkeys(a for a in ipv6 if a)),
        tags=tags,
        source_file=source,
    )


def parse_describe_instances(doc: Any, *, source: str | None = None) -> Iterator[Ec2Instance]:
    """Yield the instances of one parsed ``describe-instances`` response.

    Accepts the CLI's output (``{"Reservations": [...]}``), a list of such pages, or a bare
    list of reservations. Raises :class:`~imdshunt.errors.InputError` on any other shape.
    """
    where = source or "<describe-instances>"
    if isinstance(doc, list) and all(isinstance(d, dict) and "Reservations" in d for d in doc):
        for page in doc:
            yield from parse_describe_instances(page, source=source)
        return
    if isinstance(doc, dict) and "Reservations" in doc:
        reservations = doc["Reservations"]
    elif isinstance(doc, list):
        reservations = doc
    else:
        raise InputError(where, "not the output of `aws ec2 describe-instances` (no Reservations)")
    if not isinstance(reservations, list):
        raise InputError(where, "Reservations is not a list")
    for r in reservations:
        if not isinstance(r, dict) or not isinstance(r.get("Instances", []), list):
            raise InputError(where, "a reservation has no Instances list")
        owner = r.get("OwnerId")
        for raw in r.get("Instances", []):
            if not isinstance(raw, dict) or not raw.get("InstanceId"):
                raise InputError(where, "an instance has no InstanceId")
            yield _instance(raw, owner, source)


def _is_reservation_pages(doc: Any) -> bool:
    """A list of ``describe-instances`` pages or reservations (what the parser also takes)."""
    return (
        isinstance(doc, list)
        and bool(doc)
        and all(isinstance(d, dict) and ("Reservations" in d or "Instances" in d) for d in doc)
    )


def load_ec2_inventory(paths: Iterable[str | Path]) -> dict[str, Ec2Instance]:
    """Read ``describe-instances`` JSON files; return the instances by lower-cased id.

    A folder stands for every ``*.json`` under it, as for ``imdshunt hunt --inventory``: the
    other inventory files in it (NAT gateways, load balancers, IAM ...) are not instances and
    are passed over. So is a file named directly that is another inventory kind
    (:func:`imdshunt.enrich.inventory.detect_kind`); any other file must be a
    ``describe-instances`` response. A later file wins when the same instance appears twice.
    """
    from imdshunt.enrich.inventory import detect_kind, iter_inventory_files

    out: dict[str, Ec2Instance] = {}
    for path, named in iter_inventory_files(paths):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise InputError(str(path), f"cannot read: {e.strerror or e}") from e
        except json.JSONDecodeError as e:
            raise not_json(path, e) from e
        except ValueError as e:  # bytes that are not UTF-8
            raise InputError(str(path), f"not valid JSON: {e}") from e
        kind = detect_kind(doc)
        if kind is not None and kind != "describe-instances":
            continue  # another inventory file: read by the inventory, not here
        if kind is None and not named and not _is_reservation_pages(doc):
            continue  # JSON in a folder that is no inventory (IAM authorization details)
        for inst in parse_describe_instances(doc, source=str(path)):
            out[inst.instance_id.lower()] = inst
    return out
