-- What every credential-use finding reports about the calls it groups (findings contract).
-- Included by a detection's query.sql with the line '-- imdshunt: include credential_use'.
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
