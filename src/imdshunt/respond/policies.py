"""IAM policy documents written by the respond steps. Pure functions: no AWS calls.

References (AWS documentation):

- Revoking role sessions, the ``AWSRevokeOlderSessions`` inline policy:
  https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_revoke-sessions.html
- ``aws:userId`` for an assumed role is ``<role unique id>:<role session name>``; EC2 uses the
  instance id as the session name of instance-profile credentials:
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html#principaltable
- ``aws:TokenIssueTime``, ``aws:SourceVpc``, ``aws:VpcSourceIp``, ``aws:SourceIp``,
  ``aws:Ec2InstanceSourceVpc``, ``aws:Ec2InstanceSourcePrivateIPv4``, ``aws:ViaAWSService``:
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

#: The name the IAM console gives the role-wide revoke policy ("Revoke active sessions").
ROLE_WIDE_POLICY_NAME = "AWSRevokeOlderSessions"
#: Prefix of the per-session revoke policies imdshunt writes.
SESSION_POLICY_PREFIX = "imdshunt-revoke-"
#: Name of the optional pinning policy.
PIN_POLICY_NAME = "imdshunt-pin-instance-credentials"

_POLICY_NAME_UNSAFE = re.compile(r"[^\w+=,.@-]")


def iso_z(when: datetime) -> str:
    """Format a time as IAM and the findings contract want it: ISO 8601 UTC, seconds, ``Z``."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time (``Z`` or offset); naive times are taken as UTC."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def session_policy_name(session_name: str) -> str:
    """Inline policy name for the revoke of one session (IAM allows ``[\\w+=,.@-]``, 128 chars)."""
    return (SESSION_POLICY_PREFIX + _POLICY_NAME_UNSAFE.sub("-", session_name))[:128]


def session_revoke_policy(role_id: str, session_name: str, cutoff: datetime) -> dict[str, Any]:
    """Deny everything to one role session whose token was issued before ``cutoff``.

    ``aws:userId`` of an assumed-role session is ``<role unique id>:<session name>`` (the
    ``AROA...`` id, not the role name), so the condition matches the stolen session and no
    other instance or task that shares the role. ``aws:TokenIssueTime`` lets the victim keep
    working with credentials issued after the cut-off.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ImdshuntRevokeStolenSession",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"aws:userId": f"{role_id}:{session_name}"},
                    "DateLessThan": {"aws:TokenIssueTime": iso_z(cutoff)},
                },
            }
        ],
    }


def role_wide_revoke_policy(cutoff: datetime) -> dict[str, Any]:
    """AWS's own ``AWSRevokeOlderSessions`` document: deny all sessions issued before ``cutoff``."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": ["*"],
                "Resource": ["*"],
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": iso_z(cutoff)}},
            }
        ],
    }


def revoke_policy_cutoff(document: dict[str, Any] | str | None) -> datetime | None:
    """The ``aws:TokenIssueTime`` cut-off of a revoke document, or None if it has none."""
    if document is None:
        return None
    if isinstance(document, str):
        document = json.loads(document)
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    cutoffs = []
    for st in statements:
        if st.get("Effect") != "Deny":
            continue
        value = st.get("Condition", {}).get("DateLessThan", {}).get("aws:TokenIssueTime")
        if isinstance(value, list):
            value = value[0] if value else None
        if value:
            cutoffs.append(parse_time(value))
    return min(cutoffs) if cutoffs else None


def revoke_policy_user_id(document: dict[str, Any] | str | None) -> str | None:
    """The ``aws:userId`` a session revoke document targets, or None."""
    if document is None:
        return None
    if isinstance(document, str):
        document = json.loads(document)
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    for st in statements:
        value = st.get("Condition", {}).get("StringEquals", {}).get("aws:userId")
        if value:
            return value[0] if isinstance(value, list) else value
    return None


def _cidr(address: str) -> str:
    net = ipaddress.ip_network(address, strict=False)
    return str(net)


def pin_policy(egress_addresses: Iterable[str]) -> dict[str, Any]:
    """Deny the role's *EC2 instance* credentials when used outside the instance's own network.

    Three deny statements, each limited to instance credentials (``ec2:SourceInstanceARN``
    present) and to calls the principal makes itself (``aws:ViaAWSService`` false, so AWS
    services calling on its behalf keep working):

    1. Through a VPC endpoint (``aws:SourceVpc`` present): deny when the endpoint's VPC is not
       the instance's VPC (``aws:Ec2InstanceSourceVpc`` vs ``${aws:SourceVpc}``).
    2. Through a VPC endpoint (``aws:VpcSourceIp`` present): deny when the caller's private
       address is not the instance's primary private IPv4 (``aws:Ec2InstanceSourcePrivateIPv4``
       vs ``${aws:VpcSourceIp}``).
    3. Not through a VPC endpoint (``aws:SourceVpc`` absent): deny unless ``aws:SourceIp`` is one
       of the network's public egress addresses (NAT gateways, public and Elastic IPs).

    AWS's sample policy has only statements 1 and 2 without the ``Null`` guards on
    ``aws:SourceVpc``/``aws:VpcSourceIp``; ``StringNotEquals`` on an absent key matches, so the
    sample denies the instance's own calls that leave through a NAT or internet gateway. The
    guards below restrict each statement to the path it can judge.
    """
    cidrs = sorted({_cidr(a) for a in egress_addresses})
    common = {
        "Null": {"ec2:SourceInstanceARN": "false"},
        "BoolIfExists": {"aws:ViaAWSService": "false"},
    }
    statements: list[dict[str, Any]] = [
        {
            "Sid": "DenyInstanceCredentialsViaOtherVpcEndpoint",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "StringNotEquals": {"aws:Ec2InstanceSourceVpc": "${aws:SourceVpc}"},
                "Null": {"ec2:SourceInstanceARN": "false", "aws:SourceVpc": "false"},
                "BoolIfExists": common["BoolIfExists"],
            },
        },
        {
            "Sid": "DenyInstanceCredentialsFromOtherPrivateAddress",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "StringNotEquals": {"aws:Ec2InstanceSourcePrivateIPv4": "${aws:VpcSourceIp}"},
                "Null": {"ec2:SourceInstanceARN": "false", "aws:VpcSourceIp": "false"},
                "BoolIfExists": common["BoolIfExists"],
            },
        },
    ]
    if cidrs:
        statements.append(
            {
                "Sid": "DenyInstanceCredentialsOutsideEgressAddresses",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {
                    "NotIpAddress": {"aws:SourceIp": cidrs},
                    "Null": {"ec2:SourceInstanceARN": "false", "aws:SourceVpc": "true"},
                    "BoolIfExists": common["BoolIfExists"],
                },
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def same_document(a: dict[str, Any] | str | None, b: dict[str, Any] | str | None) -> bool:
    """True when two policy documents are equal as JSON (IAM returns them URL-decoded)."""
    if a is None or b is None:
        return a is b
    a = json.loads(a) if isinstance(a, str) else a
    b = json.loads(b) if isinstance(b, str) else b
    return a == b
