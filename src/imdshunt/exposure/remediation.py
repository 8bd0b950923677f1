"""Remediation text for the IMDSv1 backlog: per instance, per account/region, and a guardrail.

AWS references:

* ``aws ec2 modify-instance-metadata-options`` (EC2 API ``ModifyInstanceMetadataOptions``):
  ``--http-tokens required`` turns IMDSv1 off on a running instance, no reboot needed;
  ``--http-put-response-hop-limit 1`` keeps the v2 token from leaving the instance (raise it to
  2 for containers on the instance that need IMDS through a bridge network).
* ``aws ec2 modify-instance-metadata-defaults`` (``ModifyInstanceMetadataDefaults``): the
  account-level default *per region* for new launches; it does not change running instances.
* The CloudWatch metric ``MetadataNoToken`` (namespace ``AWS/EC2``, per ``InstanceId``) counts
  IMDSv1 calls that succeeded; check it is zero over a representative period before requiring
  tokens, or the software still calling v1 loses its credentials.
* IAM condition keys: ``ec2:MetadataHttpTokens`` on ``ec2:RunInstances`` refuses launches that
  do not require tokens; ``ec2:RoleDelivery`` (the version, as a number, of the delivery of the
  credentials in use) refuses calls made with credentials that came over IMDSv1.
"""

from __future__ import annotations

import json
import shlex

CAVEAT = (
    "Before requiring tokens, check that nothing on the instance still uses IMDSv1: the "
    "CloudWatch metric AWS/EC2 MetadataNoToken for this InstanceId should be 0 over a "
    "representative period (software that calls v1 loses its credentials once tokens are "
    "required). Use hop limit 2 if containers on the instance need IMDS."
)


def _q(value: str) -> str:
    """Shell-quote a value that came from logs, so a pasted command cannot run anything else."""
    return shlex.quote(value)


def instance_command(instance_id: str, region: str | None) -> str:
    """The ``modify-instance-metadata-options`` command that turns IMDSv1 off on one instance."""
    cmd = (
        f"aws ec2 modify-instance-metadata-options --instance-id {_q(instance_id)}"
        " --http-tokens required --http-put-response-hop-limit 1 --http-endpoint enabled"
    )
    if region:
        cmd += f" --region {_q(region)}"
    return cmd


def metric_check_command(instance_id: str, region: str | None, *, days: int = 14) -> str:
    """A ``get-metric-statistics`` command summing ``MetadataNoToken`` over the last days."""
    cmd = (
        "aws cloudwatch get-metric-statistics --namespace AWS/EC2 --metric-name MetadataNoToken"
        f" --dimensions Name=InstanceId,Value={_q(instance_id)}"
        f" --start-time \"$(date -u -d '-{days} days' +%Y-%m-%dT%H:%M:%SZ)\""
        ' --end-time "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --period 86400 --statistics Sum'
    )
    if region:
        cmd += f" --region {_q(region)}"
    return cmd


def bulk_enforce_command(instance_ids: list[str], region: str | None) -> str:
    """One command requiring tokens on several instances of one region (a shell loop: the CLI
    takes one ``--instance-id`` per call). The hop limit is left as it is: the metric says
    nothing about containers that need 2."""
    ids = " ".join(_q(i) for i in instance_ids)
    cmd = (
        f'for i in {ids}; do aws ec2 modify-instance-metadata-options --instance-id "$i"'
        " --http-tokens required --http-endpoint enabled"
    )
    if region:
        cmd += f" --region {_q(region)}"
    return cmd + "; done"


def account_default_command(region: str | None) -> str:
    """The account-level default for new instances in one region."""
    cmd = (
        "aws ec2 modify-instance-metadata-defaults --http-tokens required"
        " --http-put-response-hop-limit 1"
    )
    if region:
        cmd += f" --region {_q(region)}"
    return cmd


#: An SCP (or IAM policy) that stops new IMDSv1 instances and makes v1-delivered credentials
#: useless. The second statement breaks software still on IMDSv1: apply it after the backlog.
GUARDRAIL_POLICY: dict = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "RequireImdsV2OnNewInstances",
            "Effect": "Deny",
            "Action": "ec2:RunInstances",
            "Resource": "arn:aws:ec2:*:*:instance/*",
            "Condition": {"StringNotEquals": {"ec2:MetadataHttpTokens": "required"}},
        },
        {
            "Sid": "DenyCredentialsDeliveredOverImdsV1",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"NumericLessThan": {"ec2:RoleDelivery": "2.0"}},
        },
    ],
}


def guardrail_policy_json() -> str:
    """:data:`GUARDRAIL_POLICY` as indented JSON, ready to paste."""
    return json.dumps(GUARDRAIL_POLICY, indent=2)
