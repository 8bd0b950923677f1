-- One finding per derived credential that was used (imdshunt.lineage registers
-- derived_credential: what each credential finding's stolen use minted, transitively).
-- A key is matched by its access key id; a created user by its ARN (every key and console
-- session of it), except the calls signed with a key that is itself a derived credential
-- (that key has its own finding).
WITH derived_use AS (
    SELECT d.*, c.*
    FROM derived_credential d
    JOIN credential_activity c ON c.access_key_id = d.derived_access_key_id
    WHERE c.last_seen >= d.minting_time
    UNION ALL
    SELECT d.*, c.*
    FROM derived_credential d
    JOIN credential_activity c ON c.actor_arn = d.derived_principal_arn
    WHERE d.derived_access_key_id IS NULL
      AND c.last_seen >= d.minting_time
      AND coalesce(c.access_key_id, '') NOT IN (
          SELECT derived_access_key_id FROM derived_credential
          WHERE derived_access_key_id IS NOT NULL
      )
),
firsts AS (
    SELECT
        *,
        min(first_seen) OVER (PARTITION BY derived_id) AS derived_first_seen
    FROM derived_use
)
SELECT
    max(account_id) AS account_id,
    coalesce(max(role_name), max(derived_user_name)) AS role,
    coalesce(max(role_arn), max(derived_role_arn)) AS role_arn,
    CASE max(derived_kind)
        WHEN 'role-session' THEN 'chained-role-session'
        WHEN 'access-key' THEN 'iam-user-key'
        WHEN 'user' THEN 'iam-user'
        ELSE max(derived_kind)
    END AS credential_type,
    coalesce(
        max(derived_session_name),
        max(derived_access_key_id),
        regexp_extract(max(derived_principal_arn), '[^/]+$')
    ) AS credential_id,
    min(CASE WHEN first_seen = derived_first_seen THEN src_ip END) AS source_ip,
    min(CASE WHEN first_seen = derived_first_seen THEN network END) AS network,
    -- imdshunt: include credential_use
    list_sort(list(DISTINCT src_ip) FILTER (WHERE src_ip IS NOT NULL)) AS source_ips,
    list_sort(list(DISTINCT network) FILTER (WHERE network IS NOT NULL)) AS networks,
    'high' AS confidence,
    CASE WHEN max(root_severity) = 'critical' THEN 'critical' ELSE 'high' END AS severity,
    ['lineage'] AS evidence,
    derived_id,
    max(root_finding_id) AS root_finding_id,
    max(lineage_depth) AS lineage_depth,
    max(derived_kind) AS derived_kind,
    max(derived_access_key_id) AS derived_access_key_id,
    max(derived_principal_arn) AS derived_principal_arn,
    max(derived_user_name) AS derived_user_name,
    max(parent_access_key_id) AS parent_access_key_id,
    max(parent_session) AS parent_session,
    max(minting_event_id) AS minting_event_id,
    max(minting_event_name) AS minting_event_name,
    min(minting_time) AS minting_time,
    [
        coalesce(max(derived_kind), 'credential') || ' '
            || coalesce(
                max(derived_access_key_id), max(derived_principal_arn), max(derived_session_name)
            )
            || ' was minted by ' || max(minting_event_name) || ' (event '
            || coalesce(max(minting_event_id), '?') || ') signed with '
            || coalesce(max(parent_access_key_id), max(parent_session), '?')
            || ', a credential of finding ' || max(root_finding_id)
            || CASE WHEN max(lineage_depth) > 1 THEN ' (' || CAST(max(lineage_depth) AS VARCHAR)
                || ' mints away)' ELSE '' END,
        'then used for ' || CAST(sum(call_count) AS VARCHAR) || ' call(s) from '
            || array_to_string(list_sort(list(DISTINCT src_ip) FILTER (WHERE src_ip IS NOT NULL)), ', ')
    ] AS reasons,
    list_slice(list_sort(flatten(list(event_ids))), 1, $max_event_ids) AS event_ids
FROM firsts
GROUP BY derived_id
