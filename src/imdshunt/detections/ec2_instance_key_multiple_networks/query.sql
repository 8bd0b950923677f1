WITH sides AS (
    SELECT
        access_key_id,
        egress_path,
        ip_family,
        place,
        min(src_ip) AS src_ip,
        min(network) AS network,
        min(network_kind) AS network_kind,
        min(first_seen) AS first_seen,
        bool_or(inv_own_address) AS inv_own,
        bool_or(inv_covers_account) AS inv_covers,
        min(inv_org_address_kind) AS org_kind,
        bool_or(place = learned_own_place) AS learned_own,
        max(place_instances_own) AS instances_own,
        max(place_instances_using) AS instances_using
    FROM ec2_call_binding
    WHERE access_key_id IS NOT NULL AND place IS NOT NULL
    GROUP BY access_key_id, egress_path, ip_family, place
),
distinct_sides AS (
    SELECT
        *,
        CASE
            WHEN network_kind = 'internet' THEN false
            WHEN inv_own THEN true
            WHEN inv_covers THEN false
            ELSE learned_own
        END AS is_own
    FROM sides
    WHERE network_kind <> 'allowlisted'
      AND NOT coalesce(org_kind IN ('nat-gateway', 'elastic-ip'), false)
      AND instances_own < 2
      AND instances_using < $shared_egress_min_instances
),
pairs AS (
    SELECT
        s.access_key_id,
        s.place,
        CASE
            WHEN s.network_kind = 'internet' OR (s.inv_covers AND NOT s.inv_own) THEN 'high'
            ELSE 'medium'
        END AS confidence,
        CASE
            WHEN s.network_kind = 'internet' THEN 'address-class'
            WHEN s.inv_covers THEN 'inventory'
            ELSE 'learned-egress'
        END AS evidence,
        list(DISTINCT t.src_ip) AS other_source_ips,
        list(
            t.src_ip || ' (' || t.network || ', first seen '
                || strftime(t.first_seen, '%Y-%m-%d %H:%M:%S') || ' UTC, '
                || CASE
                    WHEN t.is_own THEN 'the instance''s own'
                    ELSE 'not known to be the instance''s'
                END
                || ')'
        ) AS other_sides
    FROM distinct_sides s
    JOIN distinct_sides t
      ON t.access_key_id = s.access_key_id
     AND t.egress_path = s.egress_path
     AND t.ip_family = s.ip_family
     AND t.place <> s.place
    WHERE NOT s.is_own
    GROUP BY s.access_key_id, s.place, s.network_kind, s.inv_covers, s.inv_own
),
explained AS (
    SELECT
        b.*,
        p.confidence,
        p.evidence,
        p.other_sides,
        p.other_source_ips,
        'key ' || b.access_key_id || ' was also used from '
            || array_to_string(list_sort(p.other_source_ips), ', ')
            || CASE WHEN p.evidence = 'learned-egress'
                    THEN '; which side is the instance rests on learned egress (first use)'
                    ELSE '' END AS why
    FROM ec2_call_binding b
    JOIN pairs p ON p.access_key_id = b.access_key_id AND p.place = b.place
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
    list_sort(list_distinct(flatten(list(other_sides)))) AS other_sides,
    list_sort(list_distinct(flatten(list(other_source_ips)))) AS other_source_ips,
    list_concat(
        [
            'EC2 instance key(s) of ' || session_name || ' (role ' || coalesce(role_name, '?')
                || ') were used from ' || src_ip || ' and from another network at the same '
                || 'time; an instance has one egress address per path, so one side holds a copy'
        ],
        list_sort(list(DISTINCT why)),
        ['identified as an instance credential because the ' || substr(min(CASE WHEN vending_event_missing THEN '1' ELSE '0' END || credential_marker), 2)]
    ) AS reasons,
    list_slice(list_sort(flatten(list(event_ids))), 1, $max_event_ids) AS event_ids
FROM explained
GROUP BY account_id, role_name, session_name, src_ip, network
