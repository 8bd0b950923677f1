-- The narrow CloudTrail record -> the canonical api_activity row (schema.API_ACTIVITY).
--
-- One definition for every engine that parses raw CloudTrail itself: DuckDB runs it as written,
-- Spark runs it through engine.portable.transpile. It reads a relation named
-- ``cloudtrail_record`` whose columns are schema.CLOUDTRAIL_RECORD (as read_json(columns=
-- schema.duckdb_columns()) or Spark's schema.spark_schema() give them) plus ``source_file``
-- and ``source_record`` (the record's 1-based index in its file), and gives the same values as
-- the exact decoder (sources/cloudtrail.py: _row, _vending, _derive):
-- * a record without eventTime (or Logstash's @timestamp) is not a row: the loader counts it
--   as skipped ("record without eventTime"), as the exact decoder does;
-- * times are ISO 8601; a value that is not one becomes NULL, the row stays; a time without
--   an offset is UTC, so run it with the session time zone UTC (DuckDB: SET TimeZone = 'UTC');
-- * account_id is recipientAccountId, else the principal's account;
-- * role and session come from arn:aws:sts::<acct>:assumed-role/<role>/<session> (role names
--   have no '/'), the role from sessionIssuer.userName first;
-- * requestParameters/responseElements are read for credential-vending events only
--   (VENDING_EVENTS in sources/cloudtrail.py). A field of an unexpected JSON type is read as
--   its text here, where the exact decoder drops the whole object: CloudTrail writes these
--   fields as strings, so this only matters for forged logs, and then only for that field.
-- * requestParameters/responseElements are kept whole, as JSON text, for the events lineage
--   follows ($lineage_event_names: schema.LINEAGE_EVENT_NAMES, filled in by
--   record_projection_sql) and NULL for every other event, as the exact decoder keeps them;
-- * IRSA: subjectFromWebIdentityToken system:serviceaccount:<namespace>:<account> fills the
--   namespace and service account when no session tag gave them
--   (https://docs.aws.amazon.com/eks/latest/userguide/iam-roles-for-service-accounts.html).
-- Lists are indexed as l[array_length(l)] behind a length test: DuckDB's list_last,
-- list_reverse and negative element_at do not transpile to Spark.
WITH rec AS (
    SELECT
        coalesce(nullif(r."eventTime", ''), r."@timestamp") AS time_text,
        r."userIdentity" AS ui,
        r."userIdentity"."sessionContext" AS sc,
        r."userIdentity"."sessionContext"."sessionIssuer" AS si,
        CASE
            WHEN regexp_matches(r."userIdentity"."arn", '(?s):assumed-role/[^/]*/')
                THEN r."userIdentity"."arn"
        END AS assumed_arn,
        r."eventName" IN (
            'AssumeRole', 'AssumeRoleWithWebIdentity', 'AssumeRoleWithSAML',
            'AssumeRoleForPodIdentity'
        ) AS vends,
        r."eventName" IN ($lineage_event_names) AS keeps_raw,
        r.*
    FROM cloudtrail_record AS r
),
vend AS (
    SELECT
        rec.*,
        CASE WHEN vends THEN "requestParameters" END AS req,
        CASE WHEN vends THEN "responseElements" END AS resp,
        CASE
            WHEN vends THEN TRY_CAST(
                json_extract("requestParameters", '$.tags') AS STRUCT(key VARCHAR, value VARCHAR)[]
            )
        END AS tags
    FROM rec
    WHERE nullif(time_text, '') IS NOT NULL
),
tagged AS (
    SELECT
        vend.*,
        list_filter(tags, lambda t: t.key = 'eks-cluster-name') AS tag_cluster,
        list_filter(tags, lambda t: t.key = 'kubernetes-namespace') AS tag_namespace,
        list_filter(tags, lambda t: t.key = 'kubernetes-service-account') AS tag_account,
        list_filter(tags, lambda t: t.key = 'kubernetes-pod-name') AS tag_pod,
        json_extract_string(resp, '$.subjectFromWebIdentityToken') AS subject
    FROM vend
),
lasts AS (
    SELECT
        tagged.*,
        -- the last tag of a key wins, as in the exact decoder
        CASE
            WHEN array_length(tag_cluster) > 0 THEN tag_cluster[array_length(tag_cluster)].value
        END AS eks_cluster,
        CASE
            WHEN array_length(tag_namespace) > 0
                THEN tag_namespace[array_length(tag_namespace)].value
        END AS tag_ns,
        CASE
            WHEN array_length(tag_account) > 0 THEN tag_account[array_length(tag_account)].value
        END AS tag_sa,
        CASE WHEN array_length(tag_pod) > 0 THEN tag_pod[array_length(tag_pod)].value END
            AS k8s_pod,
        CASE
            WHEN regexp_matches(subject, '(?s)^system:serviceaccount:[^:]*:')
                THEN regexp_extract(subject, '(?s)^system:serviceaccount:([^:]*):(.*)$', 1)
        END AS subject_ns,
        CASE
            WHEN regexp_matches(subject, '(?s)^system:serviceaccount:[^:]*:')
                THEN regexp_extract(subject, '(?s)^system:serviceaccount:([^:]*):(.*)$', 2)
        END AS subject_sa
    FROM tagged
)
SELECT
    TRY_CAST(time_text AS TIMESTAMPTZ) AS event_time,
    "eventID" AS event_id,
    "eventType" AS event_type,
    "eventSource" AS event_source,
    "eventName" AS event_name,
    coalesce("recipientAccountId", ui."accountId") AS account_id,
    "awsRegion" AS region,
    ui."type" AS actor_type,
    ui."arn" AS actor_arn,
    ui."accountId" AS actor_account_id,
    ui."principalId" AS principal_id,
    ui."accessKeyId" AS access_key_id,
    coalesce(
        si."userName", regexp_extract(assumed_arn, '(?s):assumed-role/([^/]*)/(.*)$', 1)
    ) AS role_name,
    si."arn" AS role_arn,
    regexp_extract(assumed_arn, '(?s):assumed-role/([^/]*)/(.*)$', 2) AS session_name,
    TRY_CAST(sc."attributes"."creationDate" AS TIMESTAMPTZ) AS session_created,
    sc."ec2RoleDelivery" AS role_delivery,
    sc."webIdFederationData"."federatedProvider" AS web_id_provider,
    sc."sourceIdentity" AS source_identity,
    ui."invokedBy" AS invoked_by,
    "sourceIPAddress" AS src_ip,
    "userAgent" AS user_agent,
    "vpcEndpointId" AS vpce_id,
    "vpcEndpointAccountId" AS vpce_account_id,
    "errorCode" AS error_code,
    json_extract_string(req, '$.roleArn') AS req_role_arn,
    json_extract_string(req, '$.roleSessionName') AS req_session_name,
    json_extract_string(resp, '$.credentials.accessKeyId') AS resp_access_key_id,
    json_extract_string(resp, '$.assumedRoleUser.arn') AS resp_assumed_role_arn,
    json_extract_string(resp, '$.credentials.expiration') AS resp_expiration,
    eks_cluster,
    CASE WHEN tag_ns IS NULL AND tag_sa IS NULL THEN subject_ns ELSE tag_ns END AS k8s_namespace,
    CASE
        WHEN tag_ns IS NULL AND tag_sa IS NULL THEN subject_sa ELSE tag_sa
    END AS k8s_service_account,
    k8s_pod,
    json_extract_string(resp, '$.provider') AS resp_web_id_provider,
    subject AS resp_web_id_subject,
    CASE WHEN keeps_raw THEN nullif(CAST("requestParameters" AS VARCHAR), 'null') END
        AS request_parameters,
    CASE WHEN keeps_raw THEN nullif(CAST("responseElements" AS VARCHAR), 'null') END
        AS response_elements,
    source_file,
    CAST(source_record AS INTEGER) AS source_record
FROM lasts
