WITH uses AS (
    -- Calls made with pod sessions.
    SELECT
        account_id, role_name, role_arn, credential_type, session_name, src_ip, network,
        network_kind, invoked_by, vpce_id, vpce_account_id, access_key_id, event_source,
        event_name, call_count, first_seen, last_seen, event_ids, user_agent, region,
        key_issued_at,
        vending_event_id, vending_event_missing, credential_marker,
        vended_eks_cluster, vended_k8s_namespace, vended_k8s_service_account, vended_k8s_pod,
        web_id_provider,
        false AS is_token_exchange
    FROM credential_activity
    WHERE credential_type IN ('eks-pod-identity', 'eks-irsa')
    UNION ALL
    -- IRSA: the pod's service account token exchanged for role credentials. From outside AWS
    -- it means the token itself left the pod (a file read of the projected token).
    SELECT
        v.account_id,
        regexp_extract(v.req_role_arn, '[^/]+$') AS role_name,
        v.req_role_arn AS role_arn,
        'eks-irsa' AS credential_type,
        v.req_session_name AS session_name,
        v.src_ip,
        coalesce(ip.network, 'invalid') AS network,
        coalesce(ip.network_kind, 'invalid') AS network_kind,
        NULL AS invoked_by,
        NULL AS vpce_id,
        NULL AS vpce_account_id,
        v.resp_access_key_id AS access_key_id,
        'sts.amazonaws.com' AS event_source,
        v.event_name,
        1 AS call_count,
        v.event_time AS first_seen,
        v.event_time AS last_seen,
        [v.event_id] AS event_ids,
        v.user_agent,
        v.region,
        v.event_time AS key_issued_at,
        v.event_id AS vending_event_id,
        false AS vending_event_missing,
        'service account token was exchanged by sts:AssumeRoleWithWebIdentity with '
            || v.vended_by AS credential_marker,
        NULL AS vended_eks_cluster,
        v.k8s_namespace AS vended_k8s_namespace,
        v.k8s_service_account AS vended_k8s_service_account,
        NULL AS vended_k8s_pod,
        v.vended_by AS web_id_provider,
        true AS is_token_exchange
    FROM credential_vending v
    LEFT JOIN ip_class ip ON ip.src_ip = v.src_ip
    WHERE v.vended_type = 'eks-irsa'
)
SELECT
    account_id,
    role_name AS role,
    max(role_arn) AS role_arn,
    credential_type,
    session_name AS credential_id,
    max(vended_eks_cluster) AS eks_cluster,
    max(vended_k8s_namespace) AS k8s_namespace,
    max(vended_k8s_service_account) AS k8s_service_account,
    max(vended_k8s_pod) AS k8s_pod,
    max(web_id_provider) AS eks_oidc_provider,
    src_ip AS source_ip,
    network,
    -- imdshunt: include credential_use
    max(vending_event_id) AS vending_event_id,
    bool_and(vending_event_missing) AS vending_event_missing,
    bool_or(is_token_exchange) AS token_exchanged_outside_aws,
    list_filter(
        [
            CASE credential_type
                WHEN 'eks-pod-identity' THEN 'EKS Pod Identity credential'
                ELSE 'EKS IRSA (web identity) credential'
            END
                || ' of session ' || session_name
                || coalesce(
                    ' (pod ' || max(vended_k8s_namespace) || '/' || max(vended_k8s_pod)
                        || ' in cluster ' || max(vended_eks_cluster) || ')',
                    ' (service account ' || max(vended_k8s_namespace) || '/'
                        || max(vended_k8s_service_account) || ')',
                    ''
                )
                || ', role ' || coalesce(role_name, '?') || ', was used from ' || src_ip
                || ', an address outside AWS''s published ranges, private ranges and the allowlisted egress',
            'identified as an EKS pod credential because the '
                || substr(min(CASE WHEN vending_event_missing THEN '1' ELSE '0' END || credential_marker), 2)
                || CASE
                    WHEN bool_and(vending_event_missing) THEN
                        CASE credential_type
                            WHEN 'eks-pod-identity'
                                THEN '; the vending sts:AssumeRole by pods.eks.amazonaws.com is not in the logs'
                            ELSE '; the vending sts:AssumeRoleWithWebIdentity is not in the logs'
                        END
                    ELSE ''
                END,
            CASE
                WHEN bool_or(is_token_exchange) THEN
                    'the service account token itself was exchanged for role credentials from '
                    || src_ip || ': the token, not only the credential, left the pod'
            END
        ],
        lambda r: r IS NOT NULL
    ) AS reasons,
    list_slice(list_sort(flatten(list(event_ids))), 1, $max_event_ids) AS event_ids
FROM uses
WHERE network_kind = 'internet'
  AND invoked_by IS NULL
GROUP BY account_id, role_name, credential_type, session_name, src_ip, network
