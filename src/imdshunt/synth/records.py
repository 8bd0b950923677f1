"""CloudTrail record builders, shaped field by field like real records.

Shapes follow the real samples in ``realdata/cloudtrail-samples`` and the CloudTrail record
contents reference (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/
cloudtrail-event-reference-record-contents.html). Surprises worth knowing:

* Credential vending by EC2, ECS, Lambda and EKS Pod Identity is an ``sts:AssumeRole`` whose
  ``userIdentity`` is ``{"type": "AWSService", "invokedBy": <service>}`` and whose
  ``sourceIPAddress`` and ``userAgent`` are the service name; the session name is the instance
  id, task id or function name, and ``responseElements.credentials.accessKeyId`` is the key.
* ``sessionContext.ec2RoleDelivery`` is ``"1.0"`` when the instance fetched its credentials
  over IMDSv1 and ``"2.0"`` for IMDSv2.
* Calls through an interface VPC endpoint carry ``vpcEndpointId`` and, since eventVersion 1.09,
  ``vpcEndpointAccountId`` (the endpoint owner); ``sourceIPAddress`` is then the caller's private
  VPC address.
* S3 data events use 16-hex-digit request ids and ``additionalEventData``; ``eventCategory``
  is ``Data`` and ``managementEvent`` false.
"""

from __future__ import annotations

import base64
import random
import time

#: Templates of API actions: (eventSource, eventName, readOnly, data event?).
ACTIONS: dict[str, tuple[str, str, bool, bool]] = {
    "s3:GetObject": ("s3.amazonaws.com", "GetObject", True, True),
    "s3:PutObject": ("s3.amazonaws.com", "PutObject", False, True),
    "s3:ListObjects": ("s3.amazonaws.com", "ListObjects", True, True),
    "s3:ListBuckets": ("s3.amazonaws.com", "ListBuckets", True, False),
    "sts:GetCallerIdentity": ("sts.amazonaws.com", "GetCallerIdentity", True, False),
    "kms:Decrypt": ("kms.amazonaws.com", "Decrypt", True, False),
    "kms:GenerateDataKey": ("kms.amazonaws.com", "GenerateDataKey", True, False),
    "secretsmanager:GetSecretValue": (
        "secretsmanager.amazonaws.com",
        "GetSecretValue",
        True,
        False,
    ),
    "secretsmanager:ListSecrets": ("secretsmanager.amazonaws.com", "ListSecrets", True, False),
    "ssm:GetParameter": ("ssm.amazonaws.com", "GetParameter", True, False),
    "ssm:GetParametersByPath": ("ssm.amazonaws.com", "GetParametersByPath", True, False),
    "ec2:DescribeInstances": ("ec2.amazonaws.com", "DescribeInstances", True, False),
    "ec2:DescribeTags": ("ec2.amazonaws.com", "DescribeTags", True, False),
    "ec2:DescribeSecurityGroups": ("ec2.amazonaws.com", "DescribeSecurityGroups", True, False),
    "iam:ListRoles": ("iam.amazonaws.com", "ListRoles", True, False),
    "iam:ListUsers": ("iam.amazonaws.com", "ListUsers", True, False),
    "iam:GetAccountAuthorizationDetails": (
        "iam.amazonaws.com",
        "GetAccountAuthorizationDetails",
        True,
        False,
    ),
    "logs:CreateLogStream": ("logs.amazonaws.com", "CreateLogStream", False, False),
    "logs:DescribeLogGroups": ("logs.amazonaws.com", "DescribeLogGroups", True, False),
    "dynamodb:GetItem": ("dynamodb.amazonaws.com", "GetItem", True, True),
    "dynamodb:PutItem": ("dynamodb.amazonaws.com", "PutItem", False, True),
    "ecr:GetAuthorizationToken": ("ecr.amazonaws.com", "GetAuthorizationToken", True, False),
    "cloudformation:DescribeStacks": (
        "cloudformation.amazonaws.com",
        "DescribeStacks",
        True,
        False,
    ),
    "lambda:UpdateFunctionCode": (
        "lambda.amazonaws.com",
        "UpdateFunctionCode20150331v2",
        False,
        False,
    ),
    "cloudtrail:LookupEvents": ("cloudtrail.amazonaws.com", "LookupEvents", True, False),
    "sqs:ReceiveMessage": ("sqs.amazonaws.com", "ReceiveMessage", True, True),
    "eks-auth:AssumeRoleForPodIdentity": (
        "eks-auth.amazonaws.com",
        "AssumeRoleForPodIdentity",
        True,
        False,
    ),
    "eks:DescribeCluster": ("eks.amazonaws.com", "DescribeCluster", True, False),
}

TLS = [
    ("TLSv1.3", "TLS_AES_128_GCM_SHA256"),
    ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"),
    ("TLSv1.3", "TLS_AES_256_GCM_SHA384"),
]

UA_WORKLOAD = [
    "Boto3/1.35.36 md/Botocore#1.35.36 ua/2.0 os/linux#6.1.112-124.190.amzn2023.x86_64 "
    "md/arch#x86_64 lang/python#3.11.9 md/pyimpl#CPython cfg/retry-mode#legacy "
    "Botocore/1.35.36",
    "aws-sdk-java/2.28.16 Linux/6.1.112-124.190.amzn2023.x86_64 OpenJDK_64-Bit_Server_VM/"
    "21.0.5+11-LTS Java/21.0.5 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/"
    "legacy",
    "aws-sdk-go-v2/1.32.2 os/linux lang/go#1.23.2 md/GOOS#linux md/GOARCH#amd64 api/s3#1.65.3",
    "aws-cli/2.18.10 md/awscrt#0.22.0 ua/2.0 os/linux#6.1.112-124.190.amzn2023.x86_64 "
    "md/arch#x86_64 lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard "
    "md/installer#exe md/distrib#amzn.2023 md/prompt#off md/command#s3.cp",
]
UA_HUMAN = [
    "aws-cli/2.18.10 md/awscrt#0.22.0 ua/2.0 os/macos#23.6.0 md/arch#arm64 lang/python#3.12.6 "
    "md/pyimpl#CPython cfg/retry-mode#standard md/installer#source md/prompt#off "
    "md/command#sts.get-caller-identity",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "aws-cli/2.17.50 md/awscrt#0.21.5 ua/2.0 os/windows#10 md/arch#amd64 lang/python#3.11.9 "
    "md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/prompt#off md/command#s3.ls",
    "Terraform/1.9.8 (+https://www.terraform.io) terraform-provider-aws/5.73.0 "
    "(+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.32.2 os/macos "
    "lang/go#1.23.2 md/GOOS#darwin md/GOARCH#arm64",
]
UA_ATTACKER = [
    "aws-cli/2.15.30 Python/3.11.8 Darwin/23.3.0 exe/x86_64 prompt/off command/s3.ls",
    "aws-cli/1.32.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.5.0-1016-aws md/arch#x86_64 "
    "lang/python#3.10.12 md/pyimpl#CPython cfg/retry-mode#legacy botocore/1.34.69",
    "aws-cli/2.13.25 Python/3.11.5 Linux/6.2.0-36-generic exe/x86_64.kali.2023 prompt/off "
    "command/sts.get-caller-identity",
    "Boto3/1.28.57 md/Botocore#1.31.57 ua/2.0 os/linux#6.5.0-kali3-amd64 md/arch#x86_64 "
    "lang/python#3.11.6 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.31.57",
]
UA_CI = (
    "aws-cli/2.18.10 md/awscrt#0.22.0 ua/2.0 os/linux#6.5.0-1025-azure md/arch#x86_64 "
    "lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe "
    "md/distrib#ubuntu.22 md/prompt#off md/command#cloudformation.deploy"
)
UA_CI_ACTION = (
    "aws-sdk-js/3.682.0 ua/2.1 os/linux#6.5.0-1025-azure lang/js md/nodejs#20.18.0 "
    "api/sts#3.682.0 m/E GitHubActions/configure-aws-credentials"
)
UA_ECS = (
    "Boto3/1.35.36 md/Botocore#1.35.36 ua/2.0 os/linux#5.10.226-214.880.amzn2.x86_64 "
    "md/arch#x86_64 lang/python#3.12.7 md/pyimpl#CPython exec-env/AWS_ECS_FARGATE "
    "cfg/retry-mode#legacy Botocore/1.35.36"
)
UA_LAMBDA = (
    "Boto3/1.34.145 md/Botocore#1.34.145 ua/2.0 os/linux#5.10.227-239.884.amzn2."
    "x86_64 md/arch#x86_64 lang/python#3.12.7 md/pyimpl#CPython "
    "exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy Botocore/1.34.145"
)
UA_POD = (
    "aws-sdk-go-v2/1.32.2 os/linux lang/go#1.23.2 md/GOOS#linux md/GOARCH#amd64 "
    "api/secretsmanager#1.34.3"
)
UA_IRSA = (
    "Boto3/1.35.36 md/Botocore#1.35.36 ua/2.0 os/linux#5.10.226-214.880.amzn2.x86_64 "
    "md/arch#x86_64 lang/python#3.11.10 md/pyimpl#CPython cfg/retry-mode#legacy "
    "Botocore/1.35.36"
)
UA_POD_AGENT = (
    "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/eksauth#1.7.3"
)


def session_token(rng: random.Random) -> str:
    """A session token shaped like STS's (base64, ~700 characters)."""
    body = rng.randbytes(510)
    return "IQoJb3JpZ2luX2Vj" + base64.b64encode(body).decode()


def expiration(epoch: float) -> str:
    """STS's human-readable expiration, e.g. ``Nov 1, 2026, 6:00:00 PM``."""
    tm = time.gmtime(epoch)
    h = tm.tm_hour % 12 or 12
    ampm = "AM" if tm.tm_hour < 12 else "PM"
    mon = ("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec").split()[tm.tm_mon - 1]
    return f"{mon} {tm.tm_mday}, {tm.tm_year}, {h}:{tm.tm_min:02d}:{tm.tm_sec:02d} {ampm}"


def iso(epoch: float) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def uuid4(rng: random.Random) -> str:
    """A random UUID 4 string from ``rng`` (fast, deterministic)."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def assumed_role_identity(
    account: str,
    role_name: str,
    role_path: str,
    role_id: str,
    session: str,
    key: str,
    created: str,
    *,
    delivery: str | None = None,
    web_provider: str | None = None,
    mfa: bool = False,
    invoked_by: str | None = None,
    source_identity: str | None = None,
) -> dict:
    """``userIdentity`` of an assumed-role session (shared by all its records)."""
    issuer = {
        "type": "Role",
        "principalId": role_id,
        "arn": f"arn:aws:iam::{account}:role{role_path}{role_name}",
        "accountId": account,
        "userName": role_name,
    }
    ctx: dict = {"sessionIssuer": issuer}
    if web_provider is not None:
        ctx["webIdFederationData"] = {"federatedProvider": web_provider, "attributes": {}}
    ctx["attributes"] = {"creationDate": created, "mfaAuthenticated": "true" if mfa else "false"}
    if source_identity:
        ctx["sourceIdentity"] = source_identity
    if delivery is not None:
        ctx["ec2RoleDelivery"] = delivery
    ident = {
        "type": "AssumedRole",
        "principalId": f"{role_id}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role_name}/{session}",
        "accountId": account,
        "accessKeyId": key,
        "sessionContext": ctx,
    }
    if invoked_by:
        ident["invokedBy"] = invoked_by
    return ident


class Builder:
    """Builds records for one account and region with one random stream.

    Records are plain dicts (encoded later with orjson). Identity dicts are shared between
    records of the same session, which is safe because nothing mutates them after creation.
    """

    def __init__(self, rng: random.Random, account: str, region: str, version: str = "1.10"):
        self.rng = rng
        self.account = account
        self.region = region
        self.version = version
        self.buckets = [f"anycompany-{account}-{n}" for n in ("data", "artifacts", "logs")]
        self.keys = [
            "exports/2026/11/orders.parquet",
            "config/app.json",
            "reports/q3.csv",
            "images/thumbs/0001.png",
            "backups/db.sql.gz",
        ]
        self.tls_hosts: dict[str, dict] = {}

    def tls(self, source: str) -> dict:
        d = self.tls_hosts.get(source)
        if d is None:
            v, c = TLS[len(self.tls_hosts) % len(TLS)]
            svc = source.split(".")[0]
            host = (
                f"{svc}.{self.region}.amazonaws.com"
                if svc != "s3"
                else f"{self.buckets[0]}.s3.{self.region}.amazonaws.com"
            )
            if svc in ("iam", "sts") and svc == "iam":
                host = "iam.amazonaws.com"
            d = {"tlsVersion": v, "cipherSuite": c, "clientProvidedHostHeader": host}
            self.tls_hosts[source] = d
        return d

    def params(self, action: str) -> tuple[dict | None, dict | None, list | None, dict | None]:
        """requestParameters, responseElements, resources, additionalEventData."""
        rng = self.rng
        a, r = self.account, self.region
        if action.startswith("s3:") and action != "s3:ListBuckets":
            b = rng.choice(self.buckets)
            host = f"{b}.s3.{r}.amazonaws.com"
            if action == "s3:ListObjects":
                req = {
                    "bucketName": b,
                    "Host": host,
                    "list-type": "2",
                    "prefix": "",
                    "encoding-type": "url",
                }
                res = [{"accountId": a, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{b}"}]
            else:
                k = rng.choice(self.keys)
                req = {"bucketName": b, "Host": host, "key": k}
                res = [
                    {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{b}/{k}"},
                    {"accountId": a, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{b}"},
                ]
            extra = {
                "SignatureVersion": "SigV4",
                "CipherSuite": "TLS_AES_128_GCM_SHA256",
                "bytesTransferredIn": 0 if action != "s3:PutObject" else 18211,
                "AuthenticationMethod": "AuthHeader",
                "x-amz-id-2": "Zp4Mbn7qJ+8s3Kq2cY0xRkq7A1uGq3W8mFqkPZ0qk0Q=",
                "bytesTransferredOut": 18211 if action != "s3:PutObject" else 0,
            }
            return req, None, res, extra
        if action == "s3:ListBuckets":
            return (
                {"Host": f"s3.{r}.amazonaws.com"},
                None,
                None,
                {
                    "SignatureVersion": "SigV4",
                    "CipherSuite": "TLS_AES_128_GCM_SHA256",
                    "bytesTransferredIn": 0,
                    "AuthenticationMethod": "AuthHeader",
                    "x-amz-id-2": "q8Jd0ZkQXx0k4uKMz9pQn6w3b2c1Z7y8X9v0u1t2s3r=",
                    "bytesTransferredOut": 1320,
                },
            )
        if action.startswith("kms:"):
            kid = f"arn:aws:kms:{r}:{a}:key/{uuid4(rng)[:8]}-5f2a-4c1b-9e7d-2b8a4c6d9e01"
            req = {
                "encryptionContext": {"aws:s3:arn": f"arn:aws:s3:::{self.buckets[0]}"},
                "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
            }
            if action == "kms:GenerateDataKey":
                req = {"keyId": kid, "keySpec": "AES_256"}
            return req, None, [{"accountId": a, "type": "AWS::KMS::Key", "ARN": kid}], None
        if action == "secretsmanager:GetSecretValue":
            return (
                {"secretId": f"arn:aws:secretsmanager:{r}:{a}:secret:prod/db-AbC123"},
                None,
                None,
                None,
            )
        if action == "ssm:GetParameter":
            return {"name": "/app/prod/feature-flags", "withDecryption": True}, None, None, None
        if action == "ssm:GetParametersByPath":
            return (
                {"path": "/app/prod/", "recursive": True, "withDecryption": True},
                None,
                None,
                None,
            )
        if action == "ec2:DescribeInstances":
            return {"instancesSet": {}, "filterSet": {}}, None, None, None
        if action == "dynamodb:GetItem" or action == "dynamodb:PutItem":
            return (
                {"tableName": "orders", "key": {"pk": "HIDDEN_DUE_TO_SECURITY_REASONS"}},
                None,
                [
                    {
                        "accountId": a,
                        "type": "AWS::DynamoDB::Table",
                        "ARN": f"arn:aws:dynamodb:{r}:{a}:table/orders",
                    }
                ],
                None,
            )
        if action == "logs:CreateLogStream":
            return {"logGroupName": "/app/orders", "logStreamName": uuid4(rng)}, None, None, None
        if action == "sqs:ReceiveMessage":
            return (
                {
                    "queueUrl": f"https://sqs.{r}.amazonaws.com/{a}/orders",
                    "maxNumberOfMessages": 10,
                    "waitTimeSeconds": 20,
                },
                None,
                [{"accountId": a, "type": "AWS::SQS::Queue", "ARN": f"arn:aws:sqs:{r}:{a}:orders"}],
                None,
            )
        if action == "cloudformation:DescribeStacks":
            return {"stackName": "shop-frontend"}, None, None, None
        if action == "lambda:UpdateFunctionCode":
            return {"functionName": "thumbnailer", "publish": True}, None, None, None
        return None, None, None, None

    def call(
        self,
        t: float,
        ts: str,
        identity: dict,
        action: str,
        src: str,
        ua: str,
        *,
        vpce: tuple[str, str] | None = None,
        error: str | None = None,
    ) -> dict:
        """One ``AwsApiCall`` record made with ``identity``."""
        rng = self.rng
        source, name, ro, data = ACTIONS[action]
        req, resp, res, extra = self.params(action)
        rec = {
            "eventVersion": self.version,
            "userIdentity": identity,
            "eventTime": ts,
            "eventSource": source,
            "eventName": name,
            "awsRegion": self.region,
            "sourceIPAddress": src,
            "userAgent": ua,
        }
        if error:
            rec["errorCode"] = error
            rec["errorMessage"] = (
                f"User: {identity.get('arn')} is not authorized to perform: "
                f"{action} because no identity-based policy allows the "
                f"{action} action"
            )
        rec["requestParameters"] = req
        rec["responseElements"] = resp
        if extra is not None:
            rec["additionalEventData"] = extra
        rec["requestID"] = (
            f"{rng.getrandbits(64):016X}" if source == "s3.amazonaws.com" else uuid4(rng)
        )
        rec["eventID"] = uuid4(rng)
        rec["readOnly"] = ro
        if res is not None:
            rec["resources"] = res
        rec["eventType"] = "AwsApiCall"
        rec["managementEvent"] = not data
        rec["recipientAccountId"] = self.account
        if vpce is not None:
            rec["vpcEndpointId"], rec["vpcEndpointAccountId"] = vpce
        rec["eventCategory"] = "Data" if data else "Management"
        if src[0].isdigit() or ":" in src:
            rec["tlsDetails"] = self.tls(source)
        return rec

    def vend(
        self,
        t: float,
        ts: str,
        service: str,
        role_arn: str,
        session: str,
        key: str,
        *,
        duration: int = 21600,
        tags: list | None = None,
        role_id: str = "",
    ) -> dict:
        """The ``sts:AssumeRole`` by which ``service`` vends credentials to a workload."""
        rng = self.rng
        req: dict = {"roleArn": role_arn, "roleSessionName": session}
        if tags is not None:
            req["durationSeconds"] = duration
            req["tags"] = tags
            req["transitiveTagKeys"] = [t["key"] for t in tags]
        role_name = role_arn.rsplit("/", 1)[1]
        resp: dict = {
            "credentials": {
                "accessKeyId": key,
                "sessionToken": session_token(rng),
                "expiration": expiration(t + duration),
            }
        }
        if tags is not None:
            resp["assumedRoleUser"] = {
                "assumedRoleId": f"{role_id}:{session}",
                "arn": f"arn:aws:sts::{self.account}:assumed-role/{role_name}/{session}",
            }
            resp["packedPolicySize"] = 56
        return {
            "eventVersion": "1.08",
            "userIdentity": {"type": "AWSService", "invokedBy": service},
            "eventTime": ts,
            "eventSource": "sts.amazonaws.com",
            "eventName": "AssumeRole",
            "awsRegion": self.region,
            "sourceIPAddress": service,
            "userAgent": service,
            "requestParameters": req,
            "responseElements": resp,
            "requestID": uuid4(rng),
            "eventID": uuid4(rng),
            "readOnly": True,
            "resources": [{"accountId": self.account, "type": "AWS::IAM::Role", "ARN": role_arn}],
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": self.account,
            "sharedEventID": uuid4(rng),
            "eventCategory": "Management",
        }

    def assume_role(
        self,
        ts: str,
        identity: dict,
        src: str,
        ua: str,
        role_arn: str,
        session: str,
        key: str,
        t: float,
        *,
        role_id: str,
        web: dict | None = None,
    ) -> dict:
        """A human's or CI's ``AssumeRole`` / ``AssumeRoleWithWebIdentity`` call."""
        rng = self.rng
        role_name = role_arn.rsplit("/", 1)[1]
        req: dict = {"roleArn": role_arn, "roleSessionName": session}
        if web is not None:
            req["durationSeconds"] = 3600
        resp: dict = {
            "credentials": {
                "accessKeyId": key,
                "sessionToken": session_token(rng),
                "expiration": expiration(t + 3600),
            }
        }
        if web is not None:
            resp["subjectFromWebIdentityToken"] = web["subject"]
        resp["assumedRoleUser"] = {
            "assumedRoleId": f"{role_id}:{session}",
            "arn": f"arn:aws:sts::{self.account}:assumed-role/{role_name}/{session}",
        }
        if web is not None:
            resp["provider"] = web["provider_arn"]
            resp["audience"] = "sts.amazonaws.com"
        ident_account = identity.get("accountId", self.account)
        rec = {
            "eventVersion": self.version,
            "userIdentity": identity,
            "eventTime": ts,
            "eventSource": "sts.amazonaws.com",
            "eventName": "AssumeRoleWithWebIdentity" if web else "AssumeRole",
            "awsRegion": self.region,
            "sourceIPAddress": src,
            "userAgent": ua,
            "requestParameters": req,
            "responseElements": resp,
            "requestID": uuid4(rng),
            "eventID": uuid4(rng),
            "readOnly": True,
            "resources": [{"accountId": self.account, "type": "AWS::IAM::Role", "ARN": role_arn}],
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": self.account,
        }
        if ident_account != self.account:
            rec["sharedEventID"] = uuid4(rng)
        rec["eventCategory"] = "Management"
        rec["tlsDetails"] = {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"sts.{self.region}.amazonaws.com",
        }
        return rec

    def service_event(self, ts: str, kind: int) -> dict:
        """A service-originated record: ``AWS Internal`` or a service principal."""
        rng = self.rng
        a, r = self.account, self.region
        if kind == 0:
            kid = f"arn:aws:kms:{r}:{a}:key/7944f0ec-5a1b-4c2d-9e8f-0a1b2c3d4e5f"
            return {
                "eventVersion": "1.10",
                "userIdentity": {"accountId": a, "invokedBy": "AWS Internal"},
                "eventTime": ts,
                "eventSource": "kms.amazonaws.com",
                "eventName": "RotateKey",
                "awsRegion": r,
                "sourceIPAddress": "AWS Internal",
                "userAgent": "AWS Internal",
                "requestParameters": None,
                "responseElements": None,
                "eventID": uuid4(rng),
                "readOnly": False,
                "resources": [{"ARN": kid, "accountId": a, "type": "AWS::KMS::Key"}],
                "eventType": "AwsServiceEvent",
                "managementEvent": True,
                "recipientAccountId": a,
                "serviceEventDetails": {"keyId": kid.rsplit("/", 1)[1]},
                "eventCategory": "Management",
            }
        if kind == 1:
            slr = "AWSServiceRoleForAutoScaling"
            rid = "AROA" + f"{rng.getrandbits(64):016X}"[:17]
            ident = {
                "type": "AssumedRole",
                "principalId": f"{rid}:AutoScaling",
                "arn": f"arn:aws:sts::{a}:assumed-role/{slr}/AutoScaling",
                "accountId": a,
                "sessionContext": {
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": rid,
                        "arn": f"arn:aws:iam::{a}:role/aws-service-role/autoscaling.amazonaws."
                        f"com/{slr}",
                        "accountId": a,
                        "userName": slr,
                    },
                    "attributes": {"creationDate": ts, "mfaAuthenticated": "false"},
                },
                "invokedBy": "autoscaling.amazonaws.com",
            }
            return {
                "eventVersion": "1.10",
                "userIdentity": ident,
                "eventTime": ts,
                "eventSource": "ec2.amazonaws.com",
                "eventName": "DescribeInstanceStatus",
                "awsRegion": r,
                "sourceIPAddress": "autoscaling.amazonaws.com",
                "userAgent": "autoscaling.amazonaws.com",
                "requestParameters": {
                    "instancesSet": {},
                    "filterSet": {},
                    "includeAllInstances": True,
                },
                "responseElements": None,
                "requestID": uuid4(rng),
                "eventID": uuid4(rng),
                "readOnly": True,
                "eventType": "AwsApiCall",
                "managementEvent": True,
                "recipientAccountId": a,
                "eventCategory": "Management",
            }
        # kind 2: AWS Config's service-linked role describing resources
        slr = "AWSServiceRoleForConfig"
        rid = "AROA" + f"{rng.getrandbits(64):016X}"[:17]
        ident = {
            "type": "AssumedRole",
            "principalId": f"{rid}:AWSConfig-Describe",
            "arn": f"arn:aws:sts::{a}:assumed-role/{slr}/AWSConfig-Describe",
            "accountId": a,
            "accessKeyId": "ASIA" + f"{rng.getrandbits(80):020X}"[:16],
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": rid,
                    "arn": f"arn:aws:iam::{a}:role/aws-service-role/config.amazonaws.com/{slr}",
                    "accountId": a,
                    "userName": slr,
                },
                "attributes": {"creationDate": ts, "mfaAuthenticated": "false"},
            },
            "invokedBy": "config.amazonaws.com",
        }
        return {
            "eventVersion": "1.10",
            "userIdentity": ident,
            "eventTime": ts,
            "eventSource": "iam.amazonaws.com",
            "eventName": "GetRole",
            "awsRegion": r,
            "sourceIPAddress": "config.amazonaws.com",
            "userAgent": "config.amazonaws.com",
            "requestParameters": {"roleName": "web-frontend-instance-role"},
            "responseElements": None,
            "requestID": uuid4(rng),
            "eventID": uuid4(rng),
            "readOnly": True,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": a,
            "eventCategory": "Management",
        }
