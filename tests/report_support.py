"""A small CloudTrail organisation for the report's tests, written in CloudTrail's own format.

One EC2 instance (``i-0a1b2c3d4e5f60718``, role ``web-app-role``, IMDSv1) works normally from
its AWS address for three hours; its credential is then used from an internet address by a
client whose user agent is hostile markup. A second instance only ever works on-box.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from imdshunt.findings import Finding

ACCOUNT = "111122223333"
INSTANCE = "i-0a1b2c3d4e5f60718"
QUIET_INSTANCE = "i-0fedcba9876543210"
ROLE = "web-app-role"
ON_BOX_IP = "35.170.10.20"  # in the fixture ip-ranges (EC2 us-east-1)
THIEF_IP = "198.199.65.17"
HOSTILE_UA = '<script>alert(1)</script><img src=x onerror=alert(2)> "quoted" & more'
START = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
RANGES = Path(__file__).parent / "data" / "ip-ranges.fixture.json"


def _record(n: int, when: dt.datetime, instance: str, ip: str, ua: str, source: str, name: str):
    return {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": f"AROA5FLZVX4OGSVVSLQWE:{instance}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/{instance}",
            "accountId": ACCOUNT,
            "accessKeyId": "ASIA5FLZVX4OPVKK" + instance[-4:].upper(),
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROA5FLZVX4OGSVVSLQWE",
                    "arn": f"arn:aws:iam::{ACCOUNT}:role/{ROLE}",
                    "accountId": ACCOUNT,
                    "userName": ROLE,
                },
                "attributes": {"creationDate": "2026-11-02T07:55:00Z", "mfaAuthenticated": "false"},
                "ec2RoleDelivery": "1.0",
            },
        },
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": ip,
        "userAgent": ua,
        "requestParameters": None,
        "responseElements": None,
        "requestID": f"REQ{n:08d}",
        "eventID": f"00000000-0000-4000-8000-{n:012d}",
        "readOnly": True,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }


#: An ALB access-log line: the thief asks the web tier in front of the instance to fetch the
#: metadata service's credentials path, five minutes before the first off-box call.
ALB_LINE = (
    "https 2026-11-02T09:30:00.000000Z app/web/50dc6c495c0c9188 198.199.65.17:51000 "
    "10.0.1.15:8080 0.000 0.002 0.000 200 200 120 512 "
    '"GET https://shop.example.com:443/fetch?url=http://169.254.169.254/latest/meta-data/iam/'
    'security-credentials/web-app-role HTTP/1.1" "<script>alert(1)</script>" '
    "ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-1:111122223333:"
    'targetgroup/web/73e2d6bc24d8a067 "Root=1-58337262-36d228ad5d99923122bbe354" '
    '"shop.example.com" "-" 0 2026-11-02T09:29:59.990000Z "forward" "-" "-" '
    '"10.0.1.15:8080" "200" "-" "-"\n'
)


def write_org(root: Path, *, with_web: bool = False) -> Path:
    """Write the organisation's CloudTrail under ``root``; returns the AWSLogs folder.

    ``with_web`` adds the web tier's ALB log with the SSRF attempt, and one call of the
    instance through a VPC endpoint from its private address (10.0.1.15), which is how
    imdshunt learns which instance the ALB target is: the hunt then finds the chain.
    """
    records = []
    n = 0
    for minute in range(0, 180, 6):
        for instance in (INSTANCE, QUIET_INSTANCE):
            n += 1
            records.append(
                _record(n, START + dt.timedelta(minutes=minute), instance, ON_BOX_IP,
                        "aws-sdk-java/1.12.600", "s3.amazonaws.com", "GetObject")
            )  # fmt: skip
    for i, (source, name) in enumerate(
        [("sts.amazonaws.com", "GetCallerIdentity"), ("s3.amazonaws.com", "ListBuckets"),
         ("iam.amazonaws.com", "ListRoles"), ("secretsmanager.amazonaws.com", "ListSecrets"),
         ("s3.amazonaws.com", "ListBuckets")]
    ):  # fmt: skip
        n += 1
        records.append(
            _record(n, START + dt.timedelta(minutes=95 + 4 * i), INSTANCE, THIEF_IP,
                    HOSTILE_UA, source, name)
        )  # fmt: skip
    if with_web:
        n += 1
        own = _record(n, START + dt.timedelta(minutes=61), INSTANCE, "10.0.1.15",
                      "aws-sdk-java/1.12.600", "s3.amazonaws.com", "GetObject")  # fmt: skip
        own.update(vpcEndpointId="vpce-0a1b2c3d4e5f6a7b8", vpcEndpointAccountId=ACCOUNT)
        records.append(own)
        elb = root / "AWSLogs" / ACCOUNT / "elasticloadbalancing" / "us-east-1" / "2026/11/02"
        elb.mkdir(parents=True)
        (
            elb / f"{ACCOUNT}_elasticloadbalancing_us-east-1_app.web.50dc6c495c0c9188_"
            "20261102T0930Z_52.0.0.1_abc.log"
        ).write_text(ALB_LINE)
    folder = root / "AWSLogs" / ACCOUNT / "CloudTrail" / "us-east-1" / "2026" / "11" / "02"
    folder.mkdir(parents=True)
    name = f"{ACCOUNT}_CloudTrail_us-east-1_20261102T1100Z_report.json"
    (folder / name).write_text(json.dumps({"Records": records}))
    return root / "AWSLogs"


def chain_for(finding: Finding) -> Finding:
    """An ``imds_theft_chain`` finding (as imdshunt.correlate makes it) for a theft finding."""
    attempt = (START + dt.timedelta(minutes=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    url = "/fetch?url=http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    return Finding(
        {
            "finding_id": "c0ffee0000000001",
            "detection": "imds_theft_chain",
            "severity": "critical",
            "kind": "correlation",
            "target_instance": finding["credential_id"],
            "target_ips": ["10.0.1.15"],
            "ssrf_client_ips": [THIEF_IP],
            "ssrf_request_urls": [url + "<b>x</b>"],
            "ssrf_endpoints": ["ec2-imds-ipv4"],
            "first_attempt": attempt,
            "last_attempt": attempt,
            "account_id": finding["account_id"],
            "role": finding["role"],
            "credential_id": finding["credential_id"],
            "access_key_ids": finding["access_key_ids"],
            "source_ip": finding["source_ip"],
            "network": finding["network"],
            "actions": finding["actions"],
            "event_count": finding["event_count"],
            "first_off_box_use": finding["first_seen"],
            "last_seen": finding["last_seen"],
            "minutes_attempt_to_use": 5.0,
            "timeline": [
                {
                    "time": attempt,
                    "event": "ssrf_attempt",
                    "detail": f"{THIEF_IP} -> 10.0.1.15: {url}",
                },
                {"time": finding["first_seen"], "event": "first_off_box_use", "detail": "used"},
                {"time": finding["last_seen"], "event": "last_use", "detail": "last"},
            ],
            "reasons": ["an SSRF attempt preceded the theft"],
        }
    )


def hunt_org(root: Path, *, with_web: bool = False):
    """Hunt the organisation written under ``root``; returns the HuntResult."""
    from imdshunt import api

    logs = write_org(root, with_web=with_web)
    return api.hunt([logs], ip_ranges=RANGES, fetch_ip_ranges=False)


def web_finding() -> Finding:
    """A web (SSRF attempt) finding as the web detections write it, with hostile text."""
    return Finding(
        {
            "finding_id": "feed000000000002",
            "detection": "imds_ssrf_attempt",
            "severity": "medium",
            "title": "Metadata-service address in a request to the web tier",
            "kind": "web",
            "log_type": "alb",
            "time": "2026-11-02T09:30:00Z",
            "client_ip": THIEF_IP,
            "target_ip": "10.0.1.15",
            "target_instance": INSTANCE,
            "request_url": "/fetch?url=http://169.254.169.254/<script>alert(3)</script>",
            "decoded": "http://169.254.169.254/latest/meta-data/",
            "endpoint": "ec2-imds-ipv4",
            "encoding": "plain",
            "status": 200,
            "source_file": "alb.log.gz",
            "line_number": 17,
        }
    )
