SELECT
    account_id,
    role_name AS role,
    max(role_arn) AS role_arn,
    'ecs-task' AS credential_type,
    session_name AS credential_id,
    session_name AS ecs_task_id,
    src_ip AS source_ip,
    network,
    -- imdshunt: include credential_use
    max(vending_event_id) AS vending_event_id,
    bool_and(vending_event_missing) AS vending_event_missing,
    [
        'ECS task credential of task ' || session_name || ' (role ' || coalesce(role_name, '?')
            || ') was used from ' || src_ip
            || ', an address outside AWS''s published ranges, private ranges and the allowlisted egress',
        'identified as an ECS task credential because the '
            || substr(min(CASE WHEN vending_event_missing THEN '1' ELSE '0' END || credential_marker), 2)
            || CASE
                WHEN bool_and(vending_event_missing)
                    THEN '; the vending sts:AssumeRole by ecs-tasks.amazonaws.com is not in the logs'
                ELSE ''
            END
    ] AS reasons,
    list_slice(list_sort(flatten(list(event_ids))), 1, $max_event_ids) AS event_ids
FROM credential_activity
WHERE credential_type = 'ecs-task'
  AND network_kind = 'internet'
  AND invoked_by IS NULL
GROUP BY account_id, role_name, session_name, src_ip, network
