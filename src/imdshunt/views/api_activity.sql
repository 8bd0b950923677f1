-- The canonical api_activity relation: every CloudTrail record once.
-- CloudTrail delivers at least once, so one eventID can arrive in two files; keep the first.
-- The engine materialises this incrementally (see engine/duckdb.py); on Athena/Spark it is a view.
CREATE OR REPLACE VIEW api_activity_dedup AS
SELECT * EXCLUDE (_rn)
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY coalesce(event_id, source_file || '#' || CAST(source_record AS VARCHAR))
            ORDER BY source_file, source_record
        ) AS _rn
    FROM api_activity_raw
)
WHERE _rn = 1;
