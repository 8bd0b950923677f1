-- Lineage: what a credential minted or changed, read off the calls that did it (see
-- docs/lineage.md). Every value is extracted here, in SQL, from the raw requestParameters /
-- responseElements that api_activity keeps for the events of imdshunt.schema.LINEAGE_EVENTS,
-- so DuckDB, Spark and Athena run the same definition. Shapes, from AWS's CloudTrail records
-- (https://docs.aws.amazon.com/IAM/latest/UserGuide/cloudtrail-integration.html):
--   sts:AssumeRole*        response credentials.accessKeyId, assumedRoleUser.arn / assumedRoleId;
--                          request roleArn, roleSessionName
--   sts:GetSessionToken    response credentials.accessKeyId (a session of the calling IAM user)
--   sts:GetFederationToken response credentials.accessKeyId, federatedUser.arn; request name
--   iam:CreateUser         response user.arn, user.userName
--   iam:CreateAccessKey    response accessKey.accessKeyId, accessKey.userName (request userName
--                          is absent when a user makes a key for itself)
--   iam:CreateLoginProfile / UpdateLoginProfile   request userName (the password is never logged)
--   iam:CreateRole         request roleName, assumeRolePolicyDocument; response role.arn
--   iam:UpdateAssumeRolePolicy  request roleName, policyDocument (the new trust policy; the old
--                          one is not logged: it is the previous CreateRole/UpdateAssumeRolePolicy
--                          of that role in the logs, when there is one)
--   iam:AttachRolePolicy / AttachUserPolicy      request roleName|userName, policyArn
--   iam:PutRolePolicy / PutUserPolicy            request roleName|userName, policyName,
--                                                policyDocument
--   iam:AddUserToGroup     request groupName, userName
-- Only successful calls (no errorCode) minted or changed anything.
CREATE OR REPLACE VIEW lineage_call AS
SELECT
    event_time,
    event_id,
    event_source,
    event_name,
    account_id,
    region,
    actor_type,
    actor_arn,
    access_key_id,
    src_ip,
    user_agent,
    request_parameters,
    response_elements,
    CASE
        WHEN event_name IN ('AssumeRole', 'AssumeRoleWithSAML', 'AssumeRoleWithWebIdentity')
            THEN 'role-session'
        WHEN event_name = 'GetSessionToken' THEN 'session-token'
        WHEN event_name = 'GetFederationToken' THEN 'federation-token'
        WHEN event_name = 'CreateUser' THEN 'user'
        WHEN event_name = 'CreateAccessKey' THEN 'access-key'
        WHEN event_name IN ('CreateLoginProfile', 'UpdateLoginProfile') THEN 'login-profile'
        WHEN event_name = 'CreateRole' THEN 'role'
        WHEN event_name = 'UpdateAssumeRolePolicy' THEN 'trust-policy'
        WHEN event_name IN ('AttachRolePolicy', 'PutRolePolicy') THEN 'role-policy'
        WHEN event_name IN ('AttachUserPolicy', 'PutUserPolicy') THEN 'user-policy'
        WHEN event_name = 'AddUserToGroup' THEN 'group-membership'
    END AS artifact_type,
    CASE
        WHEN event_name = 'CreateAccessKey'
            THEN json_extract_string(response_elements, '$.accessKey.accessKeyId')
        WHEN event_source = 'sts.amazonaws.com'
            THEN json_extract_string(response_elements, '$.credentials.accessKeyId')
    END AS minted_access_key_id,
    CASE
        WHEN event_source = 'sts.amazonaws.com' THEN coalesce(
            json_extract_string(response_elements, '$.assumedRoleUser.arn'),
            json_extract_string(response_elements, '$.federatedUser.arn')
        )
        WHEN event_name = 'CreateUser' THEN json_extract_string(response_elements, '$.user.arn')
        WHEN event_name = 'CreateRole' THEN json_extract_string(response_elements, '$.role.arn')
    END AS minted_principal_arn,
    CASE
        WHEN event_source = 'sts.amazonaws.com'
            THEN json_extract_string(response_elements, '$.credentials.expiration')
    END AS minted_expiration,
    CASE
        WHEN event_source = 'iam.amazonaws.com' THEN coalesce(
            json_extract_string(request_parameters, '$.userName'),
            json_extract_string(response_elements, '$.accessKey.userName'),
            json_extract_string(response_elements, '$.user.userName'),
            -- CreateAccessKey without userName: the calling IAM user's own key
            CASE
                WHEN event_name = 'CreateAccessKey' AND actor_arn LIKE 'arn:%:iam::%:user/%'
                    THEN regexp_extract(actor_arn, '[^/]+$')
            END
        )
    END AS user_name,
    coalesce(
        json_extract_string(request_parameters, '$.roleName'),
        regexp_extract(json_extract_string(request_parameters, '$.roleArn'), '[^/]+$')
    ) AS role_name,
    CASE
        WHEN event_source = 'sts.amazonaws.com'
            THEN json_extract_string(request_parameters, '$.roleArn')
        WHEN event_name = 'CreateRole' THEN json_extract_string(response_elements, '$.role.arn')
    END AS target_role_arn,
    coalesce(
        json_extract_string(request_parameters, '$.roleSessionName'),
        json_extract_string(request_parameters, '$.name')
    ) AS session_name,
    json_extract_string(request_parameters, '$.groupName') AS group_name,
    json_extract_string(request_parameters, '$.policyArn') AS policy_arn,
    json_extract_string(request_parameters, '$.policyName') AS policy_name,
    CASE
        WHEN event_name IN ('PutRolePolicy', 'PutUserPolicy')
            THEN json_extract_string(request_parameters, '$.policyDocument')
    END AS policy_document,
    CASE
        WHEN event_name = 'UpdateAssumeRolePolicy'
            THEN json_extract_string(request_parameters, '$.policyDocument')
        WHEN event_name = 'CreateRole'
            THEN json_extract_string(request_parameters, '$.assumeRolePolicyDocument')
    END AS trust_policy_after
FROM api_activity
WHERE error_code IS NULL
  AND (request_parameters IS NOT NULL OR response_elements IS NOT NULL);

-- Every lineage call with, for a trust change, the trust policy it replaced: the document of
-- the previous CreateRole or UpdateAssumeRolePolicy of the same role in the logs (CloudTrail
-- does not record the old one). Few rows, read by every lineage round: kept.
-- imdshunt: materialize lineage_event
CREATE OR REPLACE VIEW lineage_event AS
WITH trust AS (
    SELECT
        event_id,
        lag(trust_policy_after) OVER (
            PARTITION BY account_id, role_name ORDER BY event_time, event_id
        ) AS trust_policy_before
    FROM lineage_call
    WHERE trust_policy_after IS NOT NULL
)
SELECT l.*, t.trust_policy_before
FROM lineage_call l
LEFT JOIN trust t ON t.event_id = l.event_id AND l.trust_policy_after IS NOT NULL;
