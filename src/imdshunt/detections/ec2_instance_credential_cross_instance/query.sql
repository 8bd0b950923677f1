WITH hits AS (
    SELECT
        b.*,
        coalesce(
            b.inv_other_instance,
            CASE WHEN NOT b.inv_covers_account THEN b.place_learned_owner END
        ) AS other_instance,
        CASE WHEN b.inv_other_instance IS NOT NULL THEN 'high' ELSE 'medium' END AS confidence,
        CASE
            WHEN b.inv_other_instance IS NOT NULL THEN 'inventory' ELSE 'learned-egress'
        END AS evidence
    FROM ec2_call_binding b
    WHERE b.place IS NOT NULL
      AND NOT b.inv_own_address
      AND (
          b.inv_other_instance IS NOT NULL
          OR (
              NOT b.inv_covers_account
              AND b.inv_org_address_kind IS NULL
              AND b.place_learned_owner IS NOT NULL
              AND b.place_learned_owner <> b.instance_id
              -- its own first place only when that was established early (see the view)
              AND (b.place IS DISTINCT FROM b.learned_own_place OR NOT b.learned_own_established)
              AND b.place_instances_using < $shared_egress_min_instances
          )
      )
),
explained AS (
    SELECT
        *,
        CASE evidence
            WHEN 'inventory' THEN
                'inventory lists ' || src_ip || ' as an address of ' || other_instance
                || CASE WHEN vpce_id IS NOT NULL
                        THEN ' (its private address, seen through endpoint ' || vpce_id || ')'
                        ELSE '' END
            ELSE
                src_ip || ' is the learned own address of ' || other_instance
                || ' (its credential was first used from there) and ' || instance_id
                || '''s own is ' || coalesce(learned_own_ip, 'unknown')
                || '; no inventory covers account ' || account_id
                || ', so this rests on learned egress'
        END AS why
    FROM hits
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
    min(other_instance) AS other_instance_id,
    list_concat(
        [
            'EC2 instance credential of ' || session_name || ' (role ' || coalesce(role_name, '?')
                || ') was used from ' || src_ip || ', an address of another instance, '
                || min(other_instance)
        ],
        list_sort(list(DISTINCT why)),
        ['identified as an instance credential because the ' || substr(min(CASE WHEN vending_event_missing THEN '1' ELSE '0' END || credential_marker), 2)]
    ) AS reasons,
    list_slice(list_sort(flatten(list(event_ids))), 1, $max_event_ids) AS event_ids
FROM explained
GROUP BY account_id, role_name, session_name, src_ip, network
