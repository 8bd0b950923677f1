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
                || CASE
                    WHEN b.credential_type = 'lambda'
                        THEN ', and inventory attaches function ' || b.session_name || ' to '
                            || b.inv_workload_vpc || ', so it leaves AWS through that VPC'
                    WHEN NOT b.inv_knows_workload
                        THEN '; the workload is not in the inventory snapshot, and the address '
                            || 'is no instance''s or workload''s learned own address either'
                    ELSE ''
                END
            ELSE
                b.src_ip || ' is in AWS''s ' || b.network || ' space but is no instance''s or '
                || 'workload''s learned own address (this session was first used from '
                || coalesce(b.learned_own_ip, '?') || ') and only '
                || CAST(b.place_credentials_using AS VARCHAR) || ' credential(s) use it, so it '
                || 'is not shared NAT; no network-interface inventory covers account '
                || b.account_id || ', so this rests on learned egress'
        END AS why
    FROM workload_call_binding b
    WHERE b.egress_path = 'public'
      AND b.network_kind = 'aws'
      AND b.inv_org_address_kind IS NULL
      AND (
          -- tasks are replaced within hours and the inventory is a snapshot: a task it does
          -- not list may have had a public IP since released, so its own learned address (or
          -- any credential's) is not evidence against it
          (b.credential_type <> 'lambda' AND b.inv_covers_account
              AND (b.inv_knows_workload OR b.place_credentials_own = 0))
          OR (b.credential_type = 'lambda' AND b.inv_covers_account
              AND b.inv_workload_vpc IS NOT NULL)
          OR (
              b.credential_type <> 'lambda'
              AND NOT b.inv_covers_account
              AND b.place IS DISTINCT FROM b.learned_own_place
              AND b.place_credentials_own = 0
              AND b.place_credentials_using < $shared_egress_min_instances
          )
      )
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
    min(learned_own_ip) AS workload_learned_ip,
    list_concat(
        [
            credential_type || ' credential ' || session_name || ' (role '
                || coalesce(role_name, '?') || ') was used from ' || src_ip
                || ', an AWS address that is not the organisation''s: another AWS account''s '
                || 'resource'
        ],
        list_sort(list(DISTINCT why)),
        ['identified as a workload credential (' || credential_type || ') because the ' || substr(min(CASE WHEN vending_event_missing THEN '1' ELSE '0' END || credential_marker), 2)]
    ) AS reasons,
    list_slice(list_sort(flatten(list(event_ids))), 1, $max_event_ids) AS event_ids
FROM hits
GROUP BY account_id, role_name, credential_type, session_name, src_ip, network
