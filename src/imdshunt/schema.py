"""Canonical views: one Arrow schema per event class.

Detection SQL only ever sees these column names; source-native names (``sourceIPAddress``,
``userIdentity.sessionContext.ec2RoleDelivery`` ...) stop at the sources. Every source
(CloudTrail JSON, Security Lake OCSF, web logs) produces record batches of exactly these
schemas, so any engine can run any detection on any source.
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

#: One row per CloudTrail record (management, data or network-activity event).
API_ACTIVITY = pa.schema(
    [
        ("event_time", TS),
        ("event_id", pa.string()),
        ("event_type", pa.string()),  # AwsApiCall, AwsServiceEvent, AwsVpceEvent ...
        ("event_source", pa.string()),  # s3.amazonaws.com
        ("event_name", pa.string()),  # ListBuckets
        ("account_id", pa.string()),  # recipientAccountId (whose trail recorded it)
        ("region", pa.string()),
        ("actor_type", pa.string()),  # userIdentity.type: AssumedRole, IAMUser, AWSService ...
        ("actor_arn", pa.string()),
        ("actor_account_id", pa.string()),  # userIdentity.accountId (whose principal)
        ("principal_id", pa.string()),  # AROA...:session-name for roles
        ("access_key_id", pa.string()),
        ("role_name", pa.string()),  # from sessionIssuer.userName (or the ARN)
        ("role_arn", pa.string()),  # sessionIssuer.arn
        ("session_name", pa.string()),  # last element of the assumed-role ARN
        ("session_created", TS),  # sessionContext.attributes.creationDate
        ("role_delivery", pa.string()),  # sessionContext.ec2RoleDelivery: "1.0" | "2.0"
        ("web_id_provider", pa.string()),  # sessionContext.webIdFederationData.federatedProvider
        ("source_identity", pa.string()),
        ("invoked_by", pa.string()),  # userIdentity.invokedBy: AWS acting for the principal
        ("src_ip", pa.string()),  # sourceIPAddress as recorded (may be a service name)
        ("user_agent", pa.string()),
        ("vpce_id", pa.string()),
        ("vpce_account_id", pa.string()),
        ("error_code", pa.string()),
        # Only on credential-vending events (sts:AssumeRole*, eks-auth:AssumeRoleForPodIdentity)
        ("req_role_arn", pa.string()),
        ("req_session_name", pa.string()),
        ("resp_access_key_id", pa.string()),
        ("resp_assumed_role_arn", pa.string()),
        ("resp_expiration", pa.string()),
        ("eks_cluster", pa.string()),  # session tag eks-cluster-name (Pod Identity)
        ("k8s_namespace", pa.string()),  # session tag kubernetes-namespace
        ("k8s_service_account", pa.string()),
        ("k8s_pod", pa.string()),  # session tag kubernetes-pod-name
        # AssumeRoleWithWebIdentity: responseElements.provider / subjectFromWebIdentityToken
        # (IRSA: oidc-provider/oidc.eks.<region>.amazonaws.com/id/<id>,
        # system:serviceaccount:<namespace>:<service account>)
        ("resp_web_id_provider", pa.string()),
        ("resp_web_id_subject", pa.string()),
        # requestParameters / responseElements as raw JSON text, only for LINEAGE_EVENTS (NULL
        # for every other event, so memory stays small); views/40_lineage.sql reads them.
        ("request_parameters", pa.string()),
        ("response_elements", pa.string()),
        ("source_file", pa.string()),
        ("source_record", pa.int32()),  # 1-based record index (or line for JSON lines)
    ]
)

#: Events whose requestParameters and responseElements are kept whole (as JSON text) in
#: ``api_activity.request_parameters`` / ``response_elements``: the calls with which a stolen
#: credential mints another credential (a chained role session, a session or federation token,
#: an access key, a console password) or changes who may do what (users, roles, policies,
#: trust). ``views/40_lineage.sql`` reads them; every other event keeps NULL there.
#: Shapes: https://docs.aws.amazon.com/IAM/latest/UserGuide/cloudtrail-integration.html
LINEAGE_EVENTS: dict[str, frozenset[str]] = {
    "sts.amazonaws.com": frozenset(
        {
            "AssumeRole",
            "AssumeRoleWithSAML",
            "AssumeRoleWithWebIdentity",
            "GetSessionToken",
            "GetFederationToken",
        }
    ),
    "iam.amazonaws.com": frozenset(
        {
            "CreateUser",
            "CreateAccessKey",
            "CreateLoginProfile",
            "UpdateLoginProfile",
            "CreateRole",
            "UpdateAssumeRolePolicy",
            "AttachRolePolicy",
            "PutRolePolicy",
            "AttachUserPolicy",
            "PutUserPolicy",
            "AddUserToGroup",
        }
    ),
}
#: The names of :data:`LINEAGE_EVENTS` (what a decoder checks per record; views check the
#: source too).
LINEAGE_EVENT_NAMES: frozenset[str] = frozenset().union(*LINEAGE_EVENTS.values())

#: One row per HTTP request seen by a web tier (ALB, CloudFront, nginx/Apache, WAF).
HTTP_REQUEST = pa.schema(
    [
        ("time", TS),
        ("log_type", pa.string()),  # alb | cloudfront | nginx | apache | waf
        ("client_ip", pa.string()),
        ("target_ip", pa.string()),  # backend address (ALB target) when logged
        ("host", pa.string()),
        ("method", pa.string()),
        ("url", pa.string()),  # as logged: path and query, or the full request URL
        ("status", pa.int32()),
        ("user_agent", pa.string()),
        ("headers", pa.string()),  # JSON object of request headers when the log has them (WAF)
        ("body", pa.string()),  # request body fragment when logged
        ("source_file", pa.string()),
        ("line_number", pa.int32()),
    ]
)

API_ACTIVITY_COLUMNS = tuple(API_ACTIVITY.names)
HTTP_REQUEST_COLUMNS = tuple(HTTP_REQUEST.names)

#: Reference tables a hunt registers beside the canonical views (see
#: :mod:`imdshunt.enrich.inventory`). The engine creates them empty, so detections that read
#: them always load and run; an empty table means "no such evidence was given".
INVENTORY_ADDRESS = pa.schema(
    [
        ("address", pa.string()),  # IPv4 or IPv6, as CloudTrail would record it
        # instance-public | instance-private | instance-ipv6 | nat-gateway | elastic-ip | eni
        ("kind", pa.string()),
        ("instance_id", pa.string()),  # lower case; null for NAT gateways and free addresses
        ("account_id", pa.string()),
        ("vpc_id", pa.string()),
        ("region", pa.string()),
        ("source_file", pa.string()),
    ]
)

#: Each distinct source address, classified once (see :mod:`imdshunt.enrich.ipranges`).
IP_CLASS = pa.schema(
    [
        ("src_ip", pa.string()),
        ("network", pa.string()),  # aws:EC2:us-east-1, private, internet, allowlisted ...
        ("network_kind", pa.string()),  # the first part of network (aws, private, internet ...)
        ("is_aws", pa.bool_()),
    ]
)

#: The organisation's accounts (Organizations list-accounts, --org-accounts, config).
ORG_ACCOUNT = pa.schema([("account_id", pa.string())])

#: VPC endpoints (ec2 describe-vpc-endpoints): which VPC and account each endpoint is in.
INVENTORY_VPCE = pa.schema(
    [
        ("vpce_id", pa.string()),
        ("vpc_id", pa.string()),
        ("account_id", pa.string()),
        ("service_name", pa.string()),
        ("region", pa.string()),
    ]
)

#: Containers and functions (ecs describe-tasks, kubectl get pods, lambda list-functions, joined
#: with describe-network-interfaces): each workload's addresses and VPC.
INVENTORY_WORKLOAD = pa.schema(
    [
        ("address", pa.string()),  # null for a function (its VPC is what is known)
        ("workload_type", pa.string()),  # ecs-task | eks-pod | lambda
        ("workload_id", pa.string()),  # task id, pod name, function name
        ("cluster", pa.string()),
        ("service", pa.string()),  # ECS service; EKS: the pod's service account
        ("namespace", pa.string()),  # EKS namespace
        ("account_id", pa.string()),
        ("vpc_id", pa.string()),
        ("region", pa.string()),
        ("source_file", pa.string()),
    ]
)

REFERENCE_TABLES: dict[str, pa.Schema] = {
    "inventory_address": INVENTORY_ADDRESS,
    "inventory_workload": INVENTORY_WORKLOAD,
    "org_account": ORG_ACCOUNT,
    "inventory_vpce": INVENTORY_VPCE,
}

# --- The CloudTrail record as delivered, narrowed to what the canonical views read ------------
#
# One declaration, from which every reader of raw CloudTrail is derived, so that they cannot
# drift apart: the exact msgspec decoder (sources/cloudtrail.py), DuckDB's ``read_json(columns=)``
# and Spark's ``StructType`` (both read the files where the engine runs).
# https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html

#: A JSON string (or null): every leaf the views read is one.
STRING = "string"
#: A free-form JSON value kept as its raw text (``requestParameters``, ``responseElements``):
#: only the few events that need them are decoded, and by SQL or the vending decoder.
RAW_JSON = "json"

#: Field -> STRING, RAW_JSON or a nested object (a dict of the same). Names as CloudTrail spells
#: them. ``@timestamp`` stands in for ``eventTime`` in Logstash-style JSON-lines exports.
CLOUDTRAIL_RECORD: dict = {
    "eventTime": STRING,
    "@timestamp": STRING,
    "eventID": STRING,
    "eventType": STRING,
    "eventSource": STRING,
    "eventName": STRING,
    "awsRegion": STRING,
    "sourceIPAddress": STRING,
    "userAgent": STRING,
    "userIdentity": {
        "type": STRING,
        "principalId": STRING,
        "arn": STRING,
        "accountId": STRING,
        "accessKeyId": STRING,
        "invokedBy": STRING,
        "sessionContext": {
            "sessionIssuer": {
                "type": STRING,
                "arn": STRING,
                "accountId": STRING,
                "userName": STRING,
            },
            "attributes": {"creationDate": STRING},
            "webIdFederationData": {"federatedProvider": STRING},
            "ec2RoleDelivery": STRING,
            "sourceIdentity": STRING,
        },
    },
    "recipientAccountId": STRING,
    "vpcEndpointId": STRING,
    "vpcEndpointAccountId": STRING,
    "errorCode": STRING,
    "requestParameters": RAW_JSON,
    "responseElements": RAW_JSON,
}


def _check_leaf(name: str, kind: object) -> None:
    if not isinstance(kind, dict) and kind not in (STRING, RAW_JSON):
        raise ValueError(f"CLOUDTRAIL_RECORD: {name}: unknown kind {kind!r}")


def duckdb_columns(fields: dict | None = None) -> dict[str, str]:
    """DuckDB ``read_json(columns=...)`` for the declaration: each leaf a VARCHAR (raw JSON
    values as ``JSON``), each object a ``STRUCT``; unknown keys are not materialised."""

    def sql_type(name: str, kind: object) -> str:
        _check_leaf(name, kind)
        if isinstance(kind, dict):
            inner = ", ".join(f'"{k}" {sql_type(k, v)}' for k, v in kind.items())
            return f"STRUCT({inner})"
        return "JSON" if kind == RAW_JSON else "VARCHAR"

    fields = CLOUDTRAIL_RECORD if fields is None else fields
    return {k: sql_type(k, v) for k, v in fields.items()}


def spark_schema(fields: dict | None = None):  # -> pyspark.sql.types.StructType
    """Spark's schema for the declaration: each leaf a string (Spark's JSON reader keeps an
    object or array read as a string as its raw JSON text), each object a struct. pyspark is
    imported here, not at module import (it is an optional extra)."""
    from pyspark.sql import types as T

    def spark_type(name: str, kind: object):
        _check_leaf(name, kind)
        if isinstance(kind, dict):
            return T.StructType([T.StructField(k, spark_type(k, v), True) for k, v in kind.items()])
        return T.StringType()

    fields = CLOUDTRAIL_RECORD if fields is None else fields
    return spark_type("record", fields)
