WITH given AS (
    SELECT count(*) > 0 AS has_org_list FROM org_account
),
hits AS (
    SELECT
        b.*,
        CASE
            WHEN g.has_org_list AND b.vpce_account_id IS NOT NULL
                 AND b.vpce_account_id <> b.account_id
                 AND b.vpce_account_id NOT IN (SELECT account_id FROM org_account_known)
                THEN 'org-accounts'
            WHEN b.inv_vpce_vpc IS NOT NULL AND b.inv_workload_vpc IS NOT NULL
                 AND b.inv_vpce_vpc <> b.inv_workload_vpc
                THEN 'inventory'
            WHEN NOT g.has_org_list AND b.vpce_account_id IS NOT NULL
                 AND b.vpce_account_id <> b.account_id
                 AND b.vpce_account_id NOT IN (SELECT account_id FROM org_account_known)
                 AND b.vpce_account_id NOT IN (
                     SELECT account_id FROM log_account
                 )
                THEN 'accounts-in-logs'
        END AS evidence
    FROM workload_call_binding b, given g
    WHERE b.vpce_id IS NOT NULL
),
explained AS (
    SELECT
        *,
        CASE WHEN evidence = 'org-accounts' THEN 'high' ELSE 'medium' END AS confidence,
        CASE evidence
            WHEN 'org-accounts' THEN
                'the endpoint ' || vpce_id || ' belongs to account ' || vpce_account_id
                || ', which is not one of the organisation''s accounts'
            WHEN 'inventory' THEN
                'inventory places endpoint ' || vpce_id || ' in ' || inv_vpce_vpc || ' but the '
                || workload_type || ' ' || workload_id || ' in ' || inv_workload_vpc
                || ' (benign only with centralised endpoints reached over peering or a transit '
                || 'gateway)'
            ELSE
                'the endpoint ' || vpce_id || ' belongs to account ' || vpce_account_id
                || ', which is neither the credential''s account nor any account recording '
                || 'events in these logs; no org account list was given (--org-accounts or '
                || 'an Organizations list-accounts inventory file), so this cannot be certain'
        END AS why
    FROM hits
    WHERE evidence IS NOT NULL
)
SELECT
    account_id,
    role_name AS role,
    max(role_arn) AS role_arn,
    credential_type,
    session_name AS credential_id,
    src_ip AS source_ip,
    network,
    -- imdshunt: include credential_use
    -- imdshunt: include workload_vending
    max(inv_workload_vpc) AS workload_vpc_id,
    min(confidence) AS confidence,
    CASE WHEN min(confidence) = 'high' THEN 'high' ELSE 'medium' END AS severity,
    list_sort(list(DISTINCT evidence)) AS evidence,
    list_concat(
        [
            credential_type || ' credential ' || session_name || ' (role '
                || coalesce(role_name, '?') || ') was used through VPC endpoint '
                || max(vpce_id) || ' from ' || src_ip
                || ': a network path that is not the organisation''s'
        ],
        list_sort(list(DISTINCT why)),
        ['identified as a workload credential (' || credential_type || ') because the ' || substr(min(CASE WHEN vending_event_missing THEN '1' ELSE '0' END || credential_marker), 2)]
    ) AS reasons,
    list_slice(list_sort(flatten(list(event_ids))), 1, $max_event_ids) AS event_ids
FROM explained
GROUP BY account_id, role_name, credential_type, session_name, src_ip, network, vpce_id
