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
        ("source_file", pa.string()),
        ("source_record", pa.int32()),  # 1-based record index (or line for JSON lines)
    ]
)

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
