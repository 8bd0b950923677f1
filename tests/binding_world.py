"""A small organisation for the binding detections: CloudTrail records shaped like the real
ones (S3 delivery ``{"Records": [...]}``) and its inventory as the AWS CLI prints it.

Also used to write the raw fixtures of the binding detections.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

ACCT = "111122223333"
_n = itertools.count(1)


def call(
    instance,
    ip,
    t,
    *,
    key="ASIA5FLZVX4OPVKKAAAA",
    role="web-app-role",
    source="s3.amazonaws.com",
    name="ListBuckets",
    vpce=None,
    vpce_acct=None,
    region="us-east-1",
    ua="[aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.amzn.2023]",
    acct=ACCT,
):
    n = next(_n)
    rec = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": f"AROA5FLZVX4OGSVVSLQWE:{instance}",
            "arn": f"arn:aws:sts::{acct}:assumed-role/{role}/{instance}",
            "accountId": acct,
            "accessKeyId": key,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROA5FLZVX4OGSVVSLQWE",
                    "arn": f"arn:aws:iam::{acct}:role/{role}",
                    "accountId": acct,
                    "userName": role,
                },
                "webIdFederationData": {},
                "attributes": {"creationDate": "2026-11-02T08:00:00Z", "mfaAuthenticated": "false"},
                "ec2RoleDelivery": "2.0",
            },
        },
        "eventTime": t,
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": ip,
        "userAgent": ua,
        "requestParameters": None,
        "responseElements": None,
        "requestID": f"REQ{n:013d}",
        "eventID": f"0b1d{n:04d}-7a2c-4c1e-9f00-{n:012d}",
        "readOnly": True,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": acct,
        "eventCategory": "Management",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}.amazonaws.com",
        },
    }
    if vpce:
        rec["vpcEndpointId"] = vpce
        rec["vpcEndpointAccountId"] = vpce_acct or acct
    return rec


def vend(instance, key, t, role="web-app-role", acct=ACCT):
    n = next(_n)
    return {
        "eventVersion": "1.08",
        "userIdentity": {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"},
        "eventTime": t,
        "eventSource": "sts.amazonaws.com",
        "eventName": "AssumeRole",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "ec2.amazonaws.com",
        "userAgent": "ec2.amazonaws.com",
        "requestParameters": {
            "roleArn": f"arn:aws:iam::{acct}:role/{role}",
            "roleSessionName": instance,
        },
        "responseElements": {
            "credentials": {
                "accessKeyId": key,
                "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLE",
                "expiration": "Nov 2, 2026, 2:00:00 PM",
            },
            "assumedRoleUser": {
                "assumedRoleId": f"AROA5FLZVX4OGSVVSLQWE:{instance}",
                "arn": f"arn:aws:sts::{acct}:assumed-role/{role}/{instance}",
            },
        },
        "requestID": f"REQ{n:013d}",
        "eventID": f"0b1d{n:04d}-7a2c-4c1e-9f00-{n:012d}",
        "readOnly": True,
        "resources": [
            {"accountId": acct, "type": "AWS::IAM::Role", "ARN": f"arn:aws:iam::{acct}:role/{role}"}
        ],
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": acct,
        "sharedEventID": "5e3f0d2c-1b7a-4a0e-8c55-3d0f7e2b9a11",
        "eventCategory": "Management",
    }


def write(path, records):
    Path(path).write_text(json.dumps({"Records": records}, indent=2) + "\n")


def instances(path, items, owner=ACCT):
    """items: (instance_id, private, public|None, vpc, ipv6|None)"""
    ins = []
    for iid, priv, pub, vpc, v6 in items:
        eni = {
            "NetworkInterfaceId": "eni-0" + iid[2:],
            "VpcId": vpc,
            "SubnetId": "subnet-0aa11bb22cc33dd44",
            "PrivateIpAddress": priv,
            "OwnerId": owner,
            "PrivateIpAddresses": [
                {
                    "Primary": True,
                    "PrivateIpAddress": priv,
                    **({"Association": {"PublicIp": pub, "IpOwnerId": "amazon"}} if pub else {}),
                }
            ],
            "Ipv6Addresses": [{"Ipv6Address": v6}] if v6 else [],
            "Attachment": {
                "AttachmentId": "eni-attach-0" + iid[2:],
                "DeviceIndex": 0,
                "Status": "attached",
            },
        }
        d = {
            "InstanceId": iid,
            "InstanceType": "t3.micro",
            "State": {"Code": 16, "Name": "running"},
            "Placement": {"AvailabilityZone": "us-east-1a", "Tenancy": "default"},
            "PrivateIpAddress": priv,
            "VpcId": vpc,
            "SubnetId": "subnet-0aa11bb22cc33dd44",
            "IamInstanceProfile": {
                "Arn": f"arn:aws:iam::{owner}:instance-profile/web-app",
                "Id": "AIPA5FLZVX4OEXAMPLE1",
            },
            "NetworkInterfaces": [eni],
        }
        if pub:
            d["PublicIpAddress"] = pub
        if v6:
            d["Ipv6Address"] = v6
        ins.append(d)
    Path(path).write_text(
        json.dumps(
            {
                "Reservations": [
                    {
                        "ReservationId": "r-0123456789abcdef0",
                        "OwnerId": owner,
                        "Groups": [],
                        "Instances": ins,
                    }
                ]
            },
            indent=2,
        )
        + "\n"
    )


def nat(path, vpc, publics):
    Path(path).write_text(
        json.dumps(
            {
                "NatGateways": [
                    {
                        "CreateTime": "2026-10-01T10:00:00+00:00",
                        "NatGatewayId": "nat-0a1b2c3d4e5f6a7b8",
                        "NatGatewayAddresses": [
                            {
                                "AllocationId": f"eipalloc-0{i}a1b2c3d4e5f6a7b",
                                "NetworkInterfaceId": f"eni-0{i}9f8e7d6c5b4a3f2",
                                "PrivateIp": f"10.0.0.{10 + i}",
                                "PublicIp": p,
                                "IsPrimary": i == 0,
                                "Status": "succeeded",
                            }
                            for i, p in enumerate(publics)
                        ],
                        "State": "available",
                        "SubnetId": "subnet-0aa11bb22cc33dd44",
                        "VpcId": vpc,
                        "ConnectivityType": "public",
                    }
                ]
            },
            indent=2,
        )
        + "\n"
    )


def vpce(path, items, owner=ACCT):
    Path(path).write_text(
        json.dumps(
            {
                "VpcEndpoints": [
                    {
                        "VpcEndpointId": eid,
                        "VpcEndpointType": "Interface",
                        "VpcId": vpc,
                        "ServiceName": f"com.amazonaws.us-east-1.{svc}",
                        "State": "available",
                        "OwnerId": owner,
                        "CreationTimestamp": "2026-10-01T10:00:00+00:00",
                    }
                    for eid, vpc, svc in items
                ]
            },
            indent=2,
        )
        + "\n"
    )


def accounts(path, ids):
    Path(path).write_text(
        json.dumps(
            {
                "Accounts": [
                    {
                        "Id": a,
                        "Arn": f"arn:aws:organizations::{ids[0]}:account/o-exampleorg1/{a}",
                        "Email": f"aws+{a}@example.com",
                        "Name": f"acct-{a}",
                        "Status": "ACTIVE",
                        "JoinedMethod": "CREATED",
                        "JoinedTimestamp": "2024-01-01T00:00:00+00:00",
                    }
                    for a in ids
                ]
            },
            indent=2,
        )
        + "\n"
    )


# ---------------------------------------------------------------------------------------------
# The organisation: legitimate traffic on every egress path, and the four planted attacks.
PROD, SHARED = "111122223333", "444455556666"
A, B, C, D, E = (
    "i-0a1b2c3d4e5f60718",
    "i-0b2c3d4e5f6071829",
    "i-0c3d4e5f607182930",
    "i-0d4e5f60718293a4b",
    "i-0e5f60718293a4b5c",
)
A_PUB, E_PUB = "35.170.10.20", "35.170.50.60"
A_V6 = "2600:1f18:4a3:6b00:8c2e:1d4f:9a7b:2c10"
NAT1, NAT2 = "34.230.1.1", "34.230.1.2"
PRIVATE = {A: "10.0.1.10", B: "10.0.2.21", C: "10.0.2.22", D: "10.0.2.23", E: "10.8.0.5"}
VPC, VPC_E = "vpc-0a1b2c3d4e5f6a7b8", "vpc-0e0e0e0e0e0e0e0e0"
OWN_VPCE, E_VPCE = "vpce-0a1b2c3d4e5f6a7b8", "vpce-0e0e0e0e0e0e0e0e0"
ATTACKER_AWS = "18.236.10.99"
FOREIGN_VPCE, FOREIGN_ACCT, FOREIGN_IP = "vpce-0f0e0d0c0b0a09080", "999988887777", "172.31.5.9"
ATTACKER_UA = "[aws-cli/1.18.136 Python/3.8.5 Darwin/19.5.0 botocore/1.17.59]"


def key(instance: str, n: int) -> str:
    return f"ASIA5FLZVX4O{instance[-4:].upper()}{n:04d}"


def legitimate_traffic() -> list[dict]:
    """Six hours of an organisation whose instances reach AWS on every legitimate path."""
    recs = []
    for hour in range(6):
        n = hour // 3  # keys rotate every few hours
        t = lambda m, h=hour: f"2026-11-02T{8 + h:02d}:{m:02d}:00Z"  # noqa: E731
        # A: public IPv4, IPv6 to dual-stack endpoints, private through its own VPC endpoint
        # (IPv4 and IPv6)
        if hour % 3 == 0:
            recs += [vend(A, key(A, n), t(0)), vend(B, key(B, n), t(0))]
            recs += [vend(C, key(C, n), t(0)), vend(D, key(D, n), t(0))]
            recs.append(vend(E, key(E, n), t(0), acct=SHARED))
        recs.append(
            call(
                A, A_PUB, t(5), key=key(A, n), source="sts.amazonaws.com", name="GetCallerIdentity"
            )
        )
        recs.append(
            call(A, A_V6, t(6), key=key(A, n), source="ec2.amazonaws.com", name="DescribeInstances")
        )
        recs.append(call(A, PRIVATE[A], t(7), key=key(A, n), vpce=OWN_VPCE, name="GetObject"))
        recs.append(call(A, A_V6, t(8), key=key(A, n), vpce=OWN_VPCE, name="PutObject"))
        # B, C, D: a private subnet behind a NAT gateway with two addresses, and the endpoint
        for i, inst in enumerate((B, C, D)):
            nat_ip = (NAT1, NAT2)[(hour + i) % 2]
            recs.append(
                call(
                    inst,
                    nat_ip,
                    t(10 + i),
                    key=key(inst, n),
                    source="sqs.amazonaws.com",
                    name="ReceiveMessage",
                )
            )
            recs.append(
                call(
                    inst,
                    PRIVATE[inst],
                    t(20 + i),
                    key=key(inst, n),
                    vpce=OWN_VPCE,
                    name="GetObject",
                )
            )
        # E: another org account, its own public IP and its own endpoint
        recs.append(
            call(
                E,
                E_PUB,
                t(30),
                key=key(E, n),
                acct=SHARED,
                source="dynamodb.amazonaws.com",
                name="GetItem",
            )
        )
        recs.append(
            call(E, PRIVATE[E], t(31), key=key(E, n), acct=SHARED, vpce=E_VPCE, name="GetObject")
        )
    return recs


#: Each planted attack: (name, detection, victim instance, attacker address, stolen key).
ATTACKS = (
    ("other-account", "ec2_instance_credential_other_aws_account", A, ATTACKER_AWS, key(A, 1)),
    (
        "foreign-vpc-endpoint",
        "ec2_instance_credential_foreign_vpc_endpoint",
        B,
        FOREIGN_IP,
        key(B, 1),
    ),
    ("cross-instance-public-ip", "ec2_instance_credential_cross_instance", C, A_PUB, key(C, 1)),
    (
        "cross-instance-own-endpoint",
        "ec2_instance_credential_cross_instance",
        D,
        PRIVATE[A],
        key(D, 1),
    ),
)


def attack_traffic() -> list[dict]:
    """The four planted attacks, after the victims' own use of the same keys."""
    t = "2026-11-02T12:40:00Z"
    return [
        call(A, ATTACKER_AWS, t, key=key(A, 1), ua=ATTACKER_UA, region="us-west-2"),
        call(
            A,
            ATTACKER_AWS,
            t,
            key=key(A, 1),
            ua=ATTACKER_UA,
            region="us-west-2",
            source="iam.amazonaws.com",
            name="ListRoles",
        ),
        call(
            B,
            FOREIGN_IP,
            t,
            key=key(B, 1),
            vpce=FOREIGN_VPCE,
            vpce_acct=FOREIGN_ACCT,
            ua=ATTACKER_UA,
        ),
        call(
            C,
            A_PUB,
            t,
            key=key(C, 1),
            ua=ATTACKER_UA,
            source="secretsmanager.amazonaws.com",
            name="ListSecrets",
        ),
        call(D, PRIVATE[A], t, key=key(D, 1), vpce=OWN_VPCE, ua=ATTACKER_UA),
    ]


def write_organisation(root: Path, *, attacks: bool = True) -> dict[str, Path]:
    """CloudTrail in the S3 layout under ``root/AWSLogs`` and inventory under ``root/inventory``."""
    recs = legitimate_traffic() + (attack_traffic() if attacks else [])
    by_account: dict[str, list] = {}
    for r in recs:
        by_account.setdefault(r["recipientAccountId"], []).append(r)
    for acct, rs in by_account.items():
        folder = root / "AWSLogs" / acct / "CloudTrail" / "us-east-1" / "2026" / "11" / "02"
        folder.mkdir(parents=True, exist_ok=True)
        write(folder / f"{acct}_CloudTrail_us-east-1_20261102T1200Z_binding.json", rs)
    inv = root / "inventory"
    (inv / PROD).mkdir(parents=True, exist_ok=True)
    (inv / SHARED).mkdir(parents=True, exist_ok=True)
    instances(
        inv / PROD / "ec2-describe-instances.json",
        [(A, PRIVATE[A], A_PUB, VPC, A_V6)] + [(i, PRIVATE[i], None, VPC, None) for i in (B, C, D)],
    )
    nat(inv / PROD / "ec2-describe-nat-gateways.json", VPC, [NAT1, NAT2])
    vpce(inv / PROD / "ec2-describe-vpc-endpoints.json", [(OWN_VPCE, VPC, "s3")])
    instances(
        inv / SHARED / "ec2-describe-instances.json",
        [(E, PRIVATE[E], E_PUB, VPC_E, None)],
        owner=SHARED,
    )
    vpce(inv / SHARED / "ec2-describe-vpc-endpoints.json", [(E_VPCE, VPC_E, "s3")], owner=SHARED)
    accounts(inv / "organizations-list-accounts.json", [PROD, SHARED])
    return {"logs": root / "AWSLogs", "inventory": inv}
