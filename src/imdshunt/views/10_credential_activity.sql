-- Every call made with temporary role credentials, with where it came from and which
-- credential path (EC2 instance profile, ECS task, EKS, Lambda) the session belongs to.
--
-- Markers, most reliable first:
--   * key provenance: the sts:AssumeRole by AWSService that vended the ASIA key
--     (userIdentity.invokedBy ec2.amazonaws.com, ecs-tasks..., lambda..., pods.eks...);
--   * sessionContext.ec2RoleDelivery (only EC2 instance-profile sessions carry it);
--   * the session name: EC2 names instance-profile sessions after the instance (i-...).
-- The EC2 instance identity role (assumed-role/aws:ec2-instance/i-...) is not an instance
-- profile and is left out.
CREATE OR REPLACE VIEW key_provenance AS
SELECT
    resp_access_key_id AS access_key_id,
    min(event_time) AS key_issued_at,
    any_value(invoked_by) AS vended_by,
    any_value(req_session_name) AS vended_session_name,
    any_value(req_role_arn) AS vended_role_arn
FROM api_activity
WHERE event_source = 'sts.amazonaws.com'
  AND event_name = 'AssumeRole'
  AND actor_type = 'AWSService'
  AND resp_access_key_id IS NOT NULL
GROUP BY resp_access_key_id;

CREATE OR REPLACE VIEW credential_activity AS
SELECT
    a.*,
    coalesce(ip.network, 'invalid') AS network,
    coalesce(ip.network_kind, 'invalid') AS network_kind,
    kp.key_issued_at,
    kp.vended_by,
    CASE
        WHEN kp.vended_by = 'ec2.amazonaws.com' THEN 'ec2-instance'
        WHEN kp.vended_by IS NULL AND a.role_delivery IS NOT NULL THEN 'ec2-instance'
        WHEN kp.vended_by IS NULL
             AND regexp_full_match(a.session_name, '[iI]-([0-9a-fA-F]{8}|[0-9a-fA-F]{17})')
            THEN 'ec2-instance'
    END AS credential_type,
    CASE
        WHEN kp.vended_by IS NOT NULL THEN 'key was vended by ' || kp.vended_by
        WHEN a.role_delivery IS NOT NULL THEN 'session carries ec2RoleDelivery ' || a.role_delivery
        WHEN regexp_full_match(a.session_name, '[iI]-([0-9a-fA-F]{8}|[0-9a-fA-F]{17})')
            THEN 'session name is an EC2 instance id'
    END AS credential_marker,
    -- The SSM agent talks to its own control channels with the instance credential.
    (a.event_source IN ('ssm.amazonaws.com', 'ec2messages.amazonaws.com', 'ssmmessages.amazonaws.com')
        AND a.user_agent ILIKE 'amazon-ssm-agent%') AS is_ssm_agent_channel
FROM api_activity a
LEFT JOIN ip_class ip ON ip.src_ip = a.src_ip
LEFT JOIN key_provenance kp ON kp.access_key_id = a.access_key_id
WHERE a.actor_type = 'AssumedRole'
  AND coalesce(a.role_name, '') <> 'aws:ec2-instance';
