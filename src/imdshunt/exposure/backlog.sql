-- IMDSv1 exposure backlog: one row per (account, role, instance) seen using instance-profile
-- credentials, with how those credentials were delivered.
--
-- userIdentity.sessionContext.ec2RoleDelivery (canonical: role_delivery) is "1.0" when the
-- credentials came from IMDSv1 and "2.0" when from IMDSv2 (CloudTrail userIdentity element).
-- Records older than the field, or from sessions not created by EC2, carry no value.
--
-- An instance session is an assumed-role session whose name is an instance id (i- and 8 or 17
-- hex digits; matched in any case, anonymised logs mix cases) or that carries role_delivery.
-- The EC2 instance *identity* role (aws:ec2-instance) is not an instance profile and is excluded.
--
-- The region of an API call is the endpoint's region, not necessarily the instance's: the query
-- keeps every call region (regions) and the most frequent one (top_region; ties: the first by
-- name; a window, not a sorted list of structs, which neither Spark nor Trino transpile to).
--
-- Written in DuckDB's dialect and transpiled for Spark and Athena like a detection
-- (tests/golden/<engine>/queries/exposure_backlog.sql).
--
-- api_activity holds every CloudTrail record once (the canonical view deduplicates eventIDs).
WITH sessions AS (
    SELECT
        event_time,
        coalesce(actor_account_id, account_id) AS account_id,
        region,
        role_name,
        role_arn,
        session_name,
        lower(session_name) AS instance_key,
        role_delivery,
        event_source,
        event_name,
        error_code,
        src_ip
    FROM api_activity
    WHERE session_name IS NOT NULL
      AND actor_type IS DISTINCT FROM 'AWSService'  -- the AssumeRole that EC2 itself makes
      AND coalesce(role_name, '') <> 'aws:ec2-instance'
      AND coalesce(role_arn, '') NOT LIKE '%/aws:ec2-instance'
      AND (
          regexp_matches(session_name, '^[iI]-([0-9a-fA-F]{8}|[0-9a-fA-F]{17})$')
          OR role_delivery IS NOT NULL
      )
),
per_region AS (
    SELECT account_id, role_name, instance_key, region, count(*) AS n
    FROM sessions
    WHERE region IS NOT NULL
    GROUP BY account_id, role_name, instance_key, region
),
top_region AS (
    SELECT account_id, role_name, instance_key, region AS top_region
    FROM (
        SELECT
            account_id, role_name, instance_key, region,
            row_number() OVER (
                PARTITION BY account_id, role_name, instance_key ORDER BY n DESC, region
            ) AS region_rank
        FROM per_region
    ) AS ranked
    WHERE region_rank = 1
)
-- The lists are computed in the outermost SELECT: Athena returns an array as JSON text only
-- where it can see the array expression (imdshunt.engine.athena.athena_sql_for_detection).
SELECT
    s.account_id,
    s.role_name,
    max(s.role_arn) AS role_arn,
    min(s.session_name) AS instance_id,
    s.instance_key,
    list_sort(list(DISTINCT s.role_delivery) FILTER (WHERE s.role_delivery IS NOT NULL))
        AS delivery_versions,
    count(*) FILTER (WHERE s.role_delivery = '1.0') AS v1_event_count,
    count(*) FILTER (WHERE s.role_delivery = '2.0') AS v2_event_count,
    count(*) FILTER (WHERE s.role_delivery IS NULL) AS unknown_delivery_event_count,
    count(*) AS event_count,
    min(s.event_time) FILTER (WHERE s.role_delivery = '1.0') AS first_v1_use,
    max(s.event_time) FILTER (WHERE s.role_delivery = '1.0') AS last_v1_use,
    min(s.event_time) AS first_seen,
    max(s.event_time) AS last_seen,
    list_sort(list(DISTINCT s.region) FILTER (WHERE s.region IS NOT NULL)) AS regions,
    list_sort(
        list(DISTINCT s.src_ip) FILTER (WHERE s.role_delivery = '1.0' AND s.src_ip IS NOT NULL)
    ) AS v1_source_ips,
    list(DISTINCT s.event_source || ' ' || s.event_name)
        FILTER (WHERE s.error_code IS NULL AND s.event_name IS NOT NULL) AS actions_succeeded,
    tr.top_region
FROM sessions s
LEFT JOIN top_region tr
    ON tr.account_id IS NOT DISTINCT FROM s.account_id
   AND tr.role_name IS NOT DISTINCT FROM s.role_name
   AND tr.instance_key = s.instance_key
GROUP BY s.account_id, s.role_name, s.instance_key, tr.top_region
ORDER BY s.account_id, s.role_name, s.instance_key
