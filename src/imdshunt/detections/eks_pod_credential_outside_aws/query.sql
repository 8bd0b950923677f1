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
    max(vpce_id) AS vpc_endpoint_id,
    max(vpce_account_id) AS vpc_endpoint_account_id,
    list_sort(list(DISTINCT access_key_id) FILTER (WHERE access_key_id IS NOT NULL)) AS access_key_ids,
    count(*) AS event_count,
    count(DISTINCT event_source || event_name) AS distinct_actions,
    list_sort(list(DISTINCT split_part(event_source, '.', 1) || ':' || event_name)) AS actions,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen,
    list_sort(list(DISTINCT user_agent) FILTER (WHERE user_agent IS NOT NULL)) AS user_agents,
    list_sort(list(DISTINCT region) FILTER (WHERE region IS NOT NULL)) AS regions,
    min(key_issued_at) AS key_issued_at,
    max(vending_event_id) AS vending_event_id,
    bool_and(vending_event_missing) AS vending_event_missing,
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
            || arg_min(credential_marker, vending_event_missing)
            || CASE
                WHEN bool_and(vending_event_missing) THEN
                    CASE credential_type
                        WHEN 'eks-pod-identity'
                            THEN '; the vending sts:AssumeRole by pods.eks.amazonaws.com is not in the logs'
                        ELSE '; the vending sts:AssumeRoleWithWebIdentity is not in the logs'
                    END
                ELSE ''
            END
    ] AS reasons,
    list_slice(list_sort(list(DISTINCT event_id)), 1, $max_event_ids) AS event_ids
FROM credential_activity
WHERE credential_type IN ('eks-pod-identity', 'eks-irsa')
  AND network_kind = 'internet'
  AND invoked_by IS NULL
GROUP BY account_id, role_name, credential_type, session_name, src_ip, network
