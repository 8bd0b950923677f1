-- Every call made with temporary role credentials (grouped: see credential_activity), with
-- where it came from and which
-- credential path (EC2 instance profile, ECS task, EKS Pod Identity, EKS IRSA, Lambda) the
-- session belongs to. See docs/credential-paths.md.
--
-- Markers, most reliable first:
--   1. key provenance: the credential-vending event whose responseElements carry the session's
--      ASIA key: sts:AssumeRole by an AWSService (userIdentity.invokedBy ec2.amazonaws.com,
--      ecs-tasks.amazonaws.com, lambda.amazonaws.com, pods.eks.amazonaws.com) or
--      sts:AssumeRoleWithWebIdentity from an oidc.eks.<region>.amazonaws.com provider (IRSA);
--   2. the same vending event found by session instead of key: its assumedRoleUser.arn (or
--      its roleArn + roleSessionName) is the session's assumed-role ARN. Covers logs where the
--      key was redacted or differs (older events have no assumedRoleUser; see
--      https://docs.aws.amazon.com/IAM/latest/UserGuide/cloudtrail-integration.html);
--   3. with no vending event in the logs, the session's own markers:
--      sessionContext.ec2RoleDelivery (EC2 instance profiles only),
--      webIdFederationData.federatedProvider containing oidc.eks. (IRSA),
--      session name eks-<cluster>-<pod>-<uuid> (Pod Identity; cluster and pod truncated),
--      session name i-<hex> (EC2 instance id),
--      session name = ECS task id (UUID, or 32 hex digits for newer task ids),
--      a Lambda runtime user agent on any call of the session (exec-env/AWS_Lambda_ from the
--      SDKs, awslambda-worker from the runtime itself).
-- The EC2 instance identity role (assumed-role/aws:ec2-instance/i-<instance>) is no instance
-- profile, but IMDS serves its credentials too (latest/meta-data/identity-credentials/ec2/
-- security-credentials/ec2-instance; EC2 User Guide, "Instance identity roles"): it is an
-- ec2-instance credential, marked is_instance_identity. It can do little, yet its use off the
-- instance proves that someone read the instance's metadata service.

-- One row per successful credential-vending event, with the path it vends for. Every
-- AssumeRole* is kept, not only the AWS services' ones: a session vended to a person or by role
-- chaining is then known not to be a workload's, whatever its name looks like.
-- Few rows, read three times (key and session provenance, the IRSA token exchanges): kept.
-- imdshunt: materialize credential_vending
CREATE OR REPLACE VIEW credential_vending AS
SELECT
    event_time,
    event_id,
    account_id,
    event_name,
    region,
    src_ip,
    user_agent,
    -- Who vended: the AWS service, the OIDC provider, or (role chaining, people) the caller.
    CASE
        WHEN actor_type = 'AWSService' THEN invoked_by
        WHEN event_name = 'AssumeRoleWithWebIdentity' THEN resp_web_id_provider
        ELSE actor_arn
    END AS vended_by,
    CASE
        WHEN event_name = 'AssumeRoleWithWebIdentity' THEN
            CASE WHEN resp_web_id_provider LIKE '%oidc.eks.%' THEN 'eks-irsa' END
        WHEN actor_type IS DISTINCT FROM 'AWSService' THEN NULL
        WHEN invoked_by = 'ec2.amazonaws.com' THEN 'ec2-instance'
        WHEN invoked_by = 'ecs-tasks.amazonaws.com' THEN 'ecs-task'
        WHEN invoked_by = 'lambda.amazonaws.com' THEN 'lambda'
        WHEN invoked_by = 'pods.eks.amazonaws.com' THEN 'eks-pod-identity'
    END AS vended_type,
    req_role_arn,
    req_session_name,
    resp_access_key_id,
    -- The session this event opened, as userIdentity.arn will show it. Older events carry no
    -- assumedRoleUser, so it is rebuilt from roleArn (the role name is its last path element).
    coalesce(
        resp_assumed_role_arn,
        CASE
            WHEN req_role_arn LIKE 'arn:%:iam::%:role/%' AND req_session_name IS NOT NULL THEN
                'arn:' || split_part(req_role_arn, ':', 2) || ':sts::'
                || split_part(req_role_arn, ':', 5) || ':assumed-role/'
                || regexp_extract(req_role_arn, '[^/]+$') || '/' || req_session_name
        END
    ) AS session_arn,
    eks_cluster,
    k8s_namespace,
    k8s_service_account,
    k8s_pod,
    -- A total order of vending events: time, then event id (ties in the same second happen).
    CAST(event_time AS VARCHAR) || '|' || coalesce(event_id, '') AS vend_order
FROM api_activity
WHERE event_source = 'sts.amazonaws.com'
  AND error_code IS NULL
  AND event_name IN ('AssumeRole', 'AssumeRoleWithWebIdentity', 'AssumeRoleWithSAML');

-- ASIA key -> the event that vended it (the first one, should a key be logged twice).
CREATE OR REPLACE VIEW key_provenance AS
SELECT
    resp_access_key_id AS access_key_id,
    min(event_time) AS key_issued_at,
    arg_min(vended_by, vend_order) AS vended_by,
    arg_min(vended_type, vend_order) AS vended_type,
    arg_min(event_id, vend_order) AS vending_event_id,
    arg_min(event_name, vend_order) AS vending_event_name,
    arg_min(req_session_name, vend_order) AS vended_session_name,
    arg_min(req_role_arn, vend_order) AS vended_role_arn,
    arg_min(eks_cluster, vend_order) AS eks_cluster,
    arg_min(k8s_namespace, vend_order) AS k8s_namespace,
    arg_min(k8s_service_account, vend_order) AS k8s_service_account,
    arg_min(k8s_pod, vend_order) AS k8s_pod
FROM credential_vending
WHERE resp_access_key_id IS NOT NULL
GROUP BY resp_access_key_id;

-- Assumed-role session ARN -> the latest event that vended a session of that name.
CREATE OR REPLACE VIEW session_provenance AS
SELECT
    session_arn,
    max(event_time) AS session_vended_at,
    arg_max(vended_by, vend_order) AS vended_by,
    arg_max(vended_type, vend_order) AS vended_type,
    arg_max(event_id, vend_order) AS vending_event_id,
    arg_max(event_name, vend_order) AS vending_event_name,
    arg_max(eks_cluster, vend_order) AS eks_cluster,
    arg_max(k8s_namespace, vend_order) AS k8s_namespace,
    arg_max(k8s_service_account, vend_order) AS k8s_service_account,
    arg_max(k8s_pod, vend_order) AS k8s_pod
FROM credential_vending
WHERE session_arn IS NOT NULL
GROUP BY session_arn;

-- Calls that differ only in time and event id are one row (a "call group"): the
-- detections then read thousands of groups instead of millions of calls, and every column
-- below is derived once per group. call_count, first_seen, last_seen and event_ids (the
-- first 100 in sort order: detections keep at most max_event_ids of them) carry what the
-- detections need of the individual calls; api_activity still has every call.
-- It reads nothing but api_activity, so a compiled store keeps it (see imdshunt.store).
CREATE OR REPLACE VIEW api_call_group AS
SELECT
    account_id,
    region,
    actor_arn,
    role_name,
    role_arn,
    session_name,
    access_key_id,
    role_delivery,
    web_id_provider,
    invoked_by,
    src_ip,
    user_agent,
    vpce_id,
    vpce_account_id,
    event_source,
    event_name,
    count(*) AS call_count,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen,
    min(session_created) AS session_created,
    list_slice(list_sort(list(event_id) FILTER (WHERE event_id IS NOT NULL)), 1, 100)
        AS event_ids
FROM api_activity
-- IAM and federated users too: a key or user a thief minted is found by its use (lineage).
WHERE actor_type IN ('AssumedRole', 'IAMUser', 'FederatedUser')
GROUP BY
    account_id, region, actor_arn, role_name, role_arn, session_name, access_key_id,
    role_delivery, web_id_provider, invoked_by, src_ip, user_agent, vpce_id,
    vpce_account_id, event_source, event_name;

-- Every detection reads this; computed once per run rather than once per detection.
-- One row per call group (api_call_group), not per call.
-- imdshunt: materialize credential_activity
CREATE OR REPLACE VIEW credential_activity AS
WITH calls AS (
    SELECT * FROM api_call_group
),
-- Lambda's runtime and the SDKs inside a function announce themselves in the user agent
-- (AWS_EXECUTION_ENV=AWS_Lambda_<runtime>); any such call marks the whole session. Grouped
-- per session and joined back (a window would partition every row with all its columns).
session_runtime AS (
    SELECT
        actor_arn,
        bool_or(
            coalesce(
                strpos(user_agent, 'exec-env/AWS_Lambda_') > 0 OR user_agent = 'awslambda-worker',
                false
            )
        ) AS session_has_lambda_runtime_ua,
        bool_or(coalesce(strpos(user_agent, 'exec-env/AWS_ECS_') > 0, false))
            AS session_has_ecs_runtime_ua
    FROM calls
    WHERE actor_arn IS NOT NULL
    GROUP BY actor_arn
),
marked AS (
    SELECT
        c.*,
        -- Calls without an ARN: each group is a session of its own.
        coalesce(
            sr.session_has_lambda_runtime_ua,
            coalesce(
                strpos(c.user_agent, 'exec-env/AWS_Lambda_') > 0
                    OR c.user_agent = 'awslambda-worker',
                false
            )
        ) AS session_has_lambda_runtime_ua,
        coalesce(
            sr.session_has_ecs_runtime_ua,
            coalesce(strpos(c.user_agent, 'exec-env/AWS_ECS_') > 0, false)
        ) AS session_has_ecs_runtime_ua,
        coalesce(ip.network, 'invalid') AS network,
        coalesce(ip.network_kind, 'invalid') AS network_kind,
        kp.key_issued_at,
        coalesce(kp.vended_by, sp.vended_by) AS vended_by,
        coalesce(kp.vending_event_id, sp.vending_event_id) AS vending_event_id,
        CASE
            WHEN kp.access_key_id IS NOT NULL THEN 'key'
            WHEN sp.session_arn IS NOT NULL THEN 'session'
        END AS provenance_match,
        coalesce(kp.vending_event_name, sp.vending_event_name) AS vending_event_name,
        kp.vended_by AS key_vended_by,
        kp.vended_type AS key_vended_type,
        sp.vended_by AS session_vended_by,
        sp.vended_type AS session_vended_type,
        coalesce(kp.eks_cluster, sp.eks_cluster) AS vended_eks_cluster,
        coalesce(kp.k8s_namespace, sp.k8s_namespace) AS vended_k8s_namespace,
        coalesce(kp.k8s_service_account, sp.k8s_service_account) AS vended_k8s_service_account,
        coalesce(kp.k8s_pod, sp.k8s_pod) AS vended_k8s_pod,
        regexp_full_match(c.session_name, '[iI]-([0-9a-fA-F]{8}|[0-9a-fA-F]{17})')
            AS name_is_instance_id,
        coalesce(
            c.role_name = 'aws:ec2-instance'
                OR c.actor_arn LIKE 'arn:%:sts::%:assumed-role/aws:ec2-instance/%',
            false
        ) AS is_instance_identity,
        regexp_full_match(
            c.session_name,
            '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}'
        ) AS name_is_task_id,
        regexp_full_match(
            c.session_name,
            'eks-.+-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
        ) AS name_is_pod_identity
    FROM calls c
    LEFT JOIN session_runtime sr ON sr.actor_arn = c.actor_arn
    LEFT JOIN ip_class ip ON ip.src_ip = c.src_ip
    LEFT JOIN key_provenance kp ON kp.access_key_id = c.access_key_id
    LEFT JOIN session_provenance sp ON sp.session_arn = c.actor_arn
)
SELECT
    m.*,
    CASE
        -- Users' calls are grouped for the lineage detection only: no workload path.
        WHEN m.actor_arn LIKE 'arn:%:iam::%:user/%' THEN 'iam-user'
        WHEN m.actor_arn LIKE 'arn:%:sts::%:federated-user/%' THEN 'federated-user'
        WHEN m.is_instance_identity THEN 'ec2-instance'
        WHEN m.provenance_match = 'key' THEN m.key_vended_type
        WHEN m.provenance_match = 'session' THEN m.session_vended_type
        WHEN m.role_delivery IS NOT NULL THEN 'ec2-instance'
        WHEN m.web_id_provider LIKE '%oidc.eks.%' THEN 'eks-irsa'
        WHEN m.name_is_pod_identity THEN 'eks-pod-identity'
        WHEN m.name_is_instance_id THEN 'ec2-instance'
        WHEN m.name_is_task_id THEN 'ecs-task'
        WHEN m.session_has_lambda_runtime_ua THEN 'lambda'
    END AS credential_type,
    CASE
        -- The EC2 detections' own reason for the identity role (they also lower its severity).
        WHEN m.is_instance_identity THEN
            'session is of the EC2 instance identity role aws:ec2-instance: it can do little by '
            || 'itself, but only the instance''s metadata service hands out its credentials, so '
            || 'their use proves that someone read that service, who could read the instance '
            || 'profile''s credentials as well'
        WHEN m.provenance_match = 'key' THEN
            'key ' || m.access_key_id || ' was vended by sts:' || m.vending_event_name
            || ' from ' || m.key_vended_by
        WHEN m.provenance_match = 'session' THEN
            'session was vended by sts:' || m.vending_event_name || ' from '
            || m.session_vended_by
            || ' (matched by role and session name: no vending event carries its key '
            || coalesce(m.access_key_id, '?') || ')'
        WHEN m.role_delivery IS NOT NULL THEN
            'session carries ec2RoleDelivery ' || m.role_delivery
        WHEN m.web_id_provider LIKE '%oidc.eks.%' THEN
            'session was federated by the EKS OIDC provider ' || m.web_id_provider
        WHEN m.name_is_pod_identity THEN
            'session name has the EKS Pod Identity shape eks-<cluster>-<pod>-<uuid>'
        WHEN m.name_is_instance_id THEN 'session name is an EC2 instance id'
        WHEN m.name_is_task_id THEN
            CASE
                WHEN m.session_has_ecs_runtime_ua
                    THEN 'session name is an ECS task id and its calls carry exec-env/AWS_ECS_'
                ELSE 'session name is an ECS task id'
            END
        WHEN m.session_has_lambda_runtime_ua THEN
            'session made calls with the Lambda runtime user agent'
            || ' (exec-env/AWS_Lambda_ or awslambda-worker)'
    END AS credential_marker,
    -- True when the path was read off the session itself because no vending event was found.
    -- No exclusion for the SSM agent's channels (ssm, ec2messages, ssmmessages with an
    -- amazon-ssm-agent user agent): the user agent is the caller's to choose, and stolen instance
    -- credentials talk to those channels from anywhere (intercepting Run Command and Session
    -- Manager). From the instance's own address no detection fires on them anyway.
    (m.provenance_match IS NULL) AS vending_event_missing
FROM marked m;
