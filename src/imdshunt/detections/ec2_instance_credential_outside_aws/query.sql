SELECT
    account_id,
    role_name AS role,
    max(role_arn) AS role_arn,
    'ec2-instance' AS credential_type,
    session_name AS credential_id,
    src_ip AS source_ip,
    network,
    -- imdshunt: include credential_use
    -- The address class alone is the evidence: an instance never egresses from the internet.
    'high' AS confidence,
    CASE WHEN bool_or(is_instance_identity) THEN 'medium' ELSE 'high' END AS severity,
    ['address-class'] AS evidence,
    list_sort(list(DISTINCT role_delivery) FILTER (WHERE role_delivery IS NOT NULL)) AS role_deliveries,
    [
        'EC2 instance credential of ' || session_name || ' (role ' || coalesce(role_name, '?')
            || ') was used from ' || src_ip
            || ', an address outside AWS''s published ranges, private ranges and the allowlisted egress',
        'identified as an instance credential because the ' || substr(min(CASE WHEN vending_event_missing THEN '1' ELSE '0' END || credential_marker), 2)
    ] AS reasons,
    list_slice(list_sort(flatten(list(event_ids))), 1, $max_event_ids) AS event_ids
FROM credential_activity
WHERE credential_type = 'ec2-instance'
  AND network_kind = 'internet'
  AND invoked_by IS NULL
GROUP BY account_id, role_name, session_name, src_ip, network
