WITH hits AS (
    SELECT
        r.time,
        r.log_type,
        r.client_ip,
        r.target_ip,
        r.url,
        r.status,
        r.source_file,
        r.line_number,
        u.ssrf_endpoint AS endpoint,
        u.ssrf_decoded AS decoded,
        u.ssrf_encoding AS encoding,
        u.ssrf_confidence AS confidence,
        u.ssrf_path_kind AS path_kind,
        CASE WHEN u.ssrf_unresolvable THEN 0 ELSE 1 END AS reachable,
        CASE u.ssrf_path_kind WHEN 'credentials' THEN 2 WHEN 'metadata' THEN 1 ELSE 0 END
            AS path_rank,
        CASE u.ssrf_confidence WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END AS conf_rank
    FROM http_request AS r
    JOIN url_class AS u
        ON coalesce(r.url, '') = coalesce(u.url, '')
        AND coalesce(r.host, '') = coalesce(u.host, '')
        AND coalesce(r.headers, '') = coalesce(u.headers, '')
        AND coalesce(r.body, '') = coalesce(u.body, '')
    WHERE CASE u.ssrf_confidence WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END
        >= CASE $min_confidence WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END
),
ranked AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY client_ip, target_ip, endpoint
            ORDER BY conf_rank DESC, path_rank DESC, time, source_file, line_number
        ) AS rn
    FROM hits
),
per_url AS (
    SELECT client_ip, target_ip, endpoint, url, count(*) AS n, min(time) AS first_time
    FROM hits
    GROUP BY client_ip, target_ip, endpoint, url
),
urls AS (
    SELECT
        client_ip,
        target_ip,
        endpoint,
        list({'url': url, 'count': n} ORDER BY first_time, url) AS request_urls
    FROM per_url
    GROUP BY client_ip, target_ip, endpoint
),
agg AS (
    SELECT
        client_ip,
        target_ip,
        endpoint,
        count(*) AS request_count,
        min(time) AS first_seen,
        max(time) AS last_seen,
        max(conf_rank) AS max_rank,
        max(reachable) AS any_reachable,
        -- a 2xx on a spelling resolvers reject cannot have returned the credentials
        max(
            CASE
                WHEN path_rank = 2 AND reachable = 1 AND status BETWEEN 200 AND 299 THEN 1
                ELSE 0
            END
        ) AS answered,
        list_sort(list(DISTINCT encoding)) AS encodings,
        list_sort(list(DISTINCT status) FILTER (WHERE status IS NOT NULL)) AS statuses,
        list_sort(list(DISTINCT log_type)) AS log_types
    FROM hits
    GROUP BY client_ip, target_ip, endpoint
)
SELECT
    CASE
        -- every request in a spelling resolvers reject, or only weak forms without a path
        WHEN a.any_reachable = 0 OR a.max_rank = 1 THEN 'medium'
        WHEN a.answered = 1 AND a.max_rank >= 2 THEN 'critical'
        ELSE 'high'
    END AS severity,
    k.log_type,
    k.time,
    k.client_ip,
    k.target_ip,
    CAST(NULL AS VARCHAR) AS target_instance,
    k.url AS request_url,
    u.request_urls,
    k.decoded,
    k.endpoint,
    k.encoding,
    k.status,
    k.source_file,
    k.line_number,
    k.confidence,
    a.request_count,
    a.first_seen,
    a.last_seen,
    a.encodings,
    a.statuses,
    a.log_types,
    [
        coalesce(k.client_ip, 'an unknown client') || ' sent ' || CAST(a.request_count AS VARCHAR)
            || ' request(s) naming the ' || k.endpoint || ' endpoint ('
            || CAST(len(u.request_urls) AS VARCHAR) || ' distinct URL(s))',
        'strongest: ' || k.decoded || ' written as ' || k.encoding || ' (confidence '
            || k.confidence || ')'
    ] AS reasons
FROM ranked AS k
JOIN agg AS a
    ON coalesce(k.client_ip, '') = coalesce(a.client_ip, '')
    AND coalesce(k.target_ip, '') = coalesce(a.target_ip, '')
    AND k.endpoint = a.endpoint
JOIN urls AS u
    ON coalesce(k.client_ip, '') = coalesce(u.client_ip, '')
    AND coalesce(k.target_ip, '') = coalesce(u.target_ip, '')
    AND k.endpoint = u.endpoint
WHERE k.rn = 1
ORDER BY k.time, k.client_ip
