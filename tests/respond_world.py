"""A small AWS world on the moto server: one role shared by three instances."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import boto3

REGION = "us-east-1"


@dataclass
class World:
    session: boto3.Session
    role_name: str
    role_id: str
    profile_arn: str
    instances: list[str]

    @property
    def victim(self) -> str:
        return self.instances[0]

    @property
    def others(self) -> list[str]:
        return self.instances[1:]

    def iam(self):
        return self.session.client("iam")

    def ec2(self):
        return self.session.client("ec2")

    def metadata_options(self, instance_id: str) -> dict:
        res = self.ec2().describe_instances(InstanceIds=[instance_id])
        return res["Reservations"][0]["Instances"][0]["MetadataOptions"]

    def tags(self, instance_id: str) -> dict[str, str]:
        res = self.ec2().describe_instances(InstanceIds=[instance_id])
        inst = res["Reservations"][0]["Instances"][0]
        return {t["Key"]: t["Value"] for t in inst.get("Tags", []) or []}

    def association(self, instance_id: str) -> dict:
        res = self.ec2().describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": [instance_id]}]
        )
        return res["IamInstanceProfileAssociations"][0]

    def finding(self, instance_id: str, **extra) -> dict:
        """A credential-use finding of the findings contract for ``instance_id``."""
        record = {
            "detection": "ec2_instance_credential_outside_aws",
            "severity": "high",
            "account_id": "123456789012",
            "role": self.role_name,
            "role_arn": f"arn:aws:iam::123456789012:role/{self.role_name}",
            "credential_type": "ec2-instance",
            "credential_id": instance_id,
            "source_ip": "203.0.113.50",
            "network": "internet",
            "access_key_ids": ["ASIA" + uuid.uuid4().hex[:16].upper()],
            "actions": ["sts:GetCallerIdentity", "s3:ListBuckets"],
            "first_seen": "2026-11-27T10:00:00Z",
            "last_seen": "2026-11-27T10:30:00Z",
        }
        record.update(extra)
        return record


def make_world(prefix: str = "web") -> World:
    """Create a fresh role, instance profile and three instances associated with it."""
    session = boto3.Session(region_name=REGION)
    iam, ec2 = session.client("iam"), session.client("ec2")
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    role = iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}',
    )["Role"]
    profile = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    ids = [
        i["InstanceId"]
        for i in ec2.run_instances(ImageId="ami-12c6146b", MinCount=3, MaxCount=3)["Instances"]
    ]
    for i in ids:
        ec2.associate_iam_instance_profile(InstanceId=i, IamInstanceProfile={"Arn": profile["Arn"]})
    return World(session, name, role["RoleId"], profile["Arn"], ids)


def denied_by(document: dict, context: dict) -> bool:
    """Evaluate a deny-only document the way IAM does for the operators our policies use.

    ``context`` maps condition keys to request values (``aws:userId``, ``aws:TokenIssueTime``).
    Every operator of a statement must match, and within an operator every key must match
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).
    """

    def as_list(v):
        return v if isinstance(v, list) else [v]

    def parse(t: str) -> datetime:
        return datetime.fromisoformat(t.replace("Z", "+00:00")).astimezone(UTC)

    statements = document["Statement"]
    statements = statements if isinstance(statements, list) else [statements]
    for st in statements:
        if st["Effect"] != "Deny":
            continue
        ok = True
        for op, keys in st.get("Condition", {}).items():
            for key, wanted in keys.items():
                have = context.get(key)
                if have is None:
                    ok = False
                elif op == "StringEquals":
                    ok = ok and have in as_list(wanted)
                elif op == "DateLessThan":
                    ok = ok and any(parse(have) < parse(w) for w in as_list(wanted))
                else:
                    raise AssertionError(f"operator {op} not modelled")
        if ok:
            return True
    return False
