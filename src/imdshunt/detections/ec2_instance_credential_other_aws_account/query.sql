WITH hits AS (
    SELECT
        b.*,
        CASE WHEN b.inv_covers_account THEN 'high' ELSE 'medium' END AS confidence,
        CASE WHEN b.inv_covers_account THEN 'inventory' ELSE 'learned-egress' END AS evidence,
        CASE
            WHEN b.inv_covers_account THEN
                b.src_ip || ' is in AWS''s ' || b.network || ' space but is no instance, NAT '
                || 'gateway, Elastic IP or network interface in the inventory of account '
                || b.account_id
            ELSE
                b.src_ip || ' is in AWS''s ' || b.network || ' space but is no instance''s '
                || 'learned own address (' || b.instance_id || '''s credential was first used from '
                || coalesce(b.learned_own_ip, '?') || ') and only '
                || CAST(b.place_instances_using AS VARCHAR) || ' instance(s) use it, so it is '
                || 'not shared NAT; no inventory covers account ' || b.account_id
                || ', so this rests on learned egress'
        END AS why
    FROM ec2_call_binding b
    WHERE b.egress_path = 'public'
      AND b.network_kind = 'aws'
      AND NOT b.inv_own_address
      AND b.inv_org_address_kind IS NULL
      AND (
          b.inv_covers_account
          OR (
              NOT b.inv_covers_account
              AND b.place IS DISTINCT FROM b.learned_own_place
              AND b.place_instances_own = 0
              AND b.place_instances_using < $shared_egress_min_instances
          )
      )
)
SELECT
    account_id,
    role_name AS role,
    max(role_arn) AS role_arn,
    'ec2-instance' AS credential_type,
    session_name AS credential_id,
    src_ip AS source_ip,
    network,
    -- imdshunt: include credential_use
    -- imdshunt: include binding_severity
    list_sort(list(DISTINCT evidence)) AS evidence,
    min(learned_own_ip) AS instance_learned_ip,
    list_concat(
        [
            'EC2 instance credential of ' || session_name || ' (role ' || coalesce(role_name, '?')
                || ') was used from ' || src_ip || ', an AWS address that is not the '
                || 'organisation''s: another AWS account''s resource'
        ],
        list_sort(list(DISTINCT why)),
        ['identified as an instance credential because the ' || substr(min(CASE WHEN vending_event_missing THEN '1' ELSE '0' END || credential_marker), 2)]
    ) AS reasons,
    list_slice(list_sort(flatten(list(event_ids))), 1, $max_event_ids) AS event_ids
FROM hits
GROUP BY account_id, role_name, session_name, src_ip, network
