SELECT
    account_id,
    role_name AS role,
    max(role_arn) AS role_arn,
    'lambda' AS credential_type,
    session_name AS credential_id,
    session_name AS lambda_function,
    src_ip AS source_ip,
    network,
    max(vpce_id) AS vpc_endpoint_id,
    max(vpce_account_id) AS vpc_endpoint_account_id,
    list_sort(list(DISTINCT access_key_id) FILTER (WHERE access_key_id IS NOT NULL)) AS access_key_ids,
    CAST(sum(call_count) AS BIGINT) AS event_count,
    count(DISTINCT event_source || event_name) AS distinct_actions,
    list_sort(list(DISTINCT split_part(event_source, '.', 1) || ':' || event_name)) AS actions,
    min(first_seen) AS first_seen,
    max(last_seen) AS last_seen,
    list_sort(list(DISTINCT user_agent) FILTER (WHERE user_agent IS NOT NULL)) AS user_agents,
    list_sort(list(DISTINCT region) FILTER (WHERE region IS NOT NULL)) AS regions,
    min(key_issued_at) AS key_issued_at,
    max(vending_event_id) AS vending_event_id,
    bool_and(vending_event_missing) AS vending_event_missing,
    [
        'Lambda execution-role credential of function ' || session_name || ' (role '
            || coalesce(role_name, '?') || ') was used from ' || src_ip
            || ', an address outside AWS''s published ranges, private ranges and the allowlisted egress',
        'identified as a Lambda credential because the '
            || substr(min(CASE WHEN vending_event_missing THEN '1' ELSE '0' END || credential_marker), 2)
            || CASE
                WHEN bool_and(vending_event_missing)
                    THEN '; the vending sts:AssumeRole by lambda.amazonaws.com is not in the logs'
                ELSE ''
            END
    ] AS reasons,
    list_slice(list_sort(flatten(list(event_ids))), 1, $max_event_ids) AS event_ids
FROM credential_activity
WHERE credential_type = 'lambda'
  AND network_kind = 'internet'
  AND invoked_by IS NULL
GROUP BY account_id, role_name, session_name, src_ip, network
