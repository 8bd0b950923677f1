"""Call groups: the unit detections read, and the unit that is computed, stored and merged.

A call group is one session's calls that are alike but for their time and event id: same
account, region, principal, key, address, VPC endpoint, user agent and action. A million calls
make about a hundred thousand groups, and every credential detection reads groups
(``api_call_group`` in ``views/10_credential_activity.sql``), never single calls.

Groups are computed from any part of the logs (a chunk of files in a decoder worker, a day of
new files in a scheduled run) as **partial groups**, and partial groups of different parts are
**merged** into the groups of the whole. A partial group carries, beside the group's own
columns, what an exact merge needs:

* ``delivered_calls``: the records it was made of, repeated deliveries included;
* ``event_hashes``: the 64-bit hash of each distinct eventID (DuckDB's ``md5_number_lower``,
  :func:`event_hash` in Python), so that a record CloudTrail delivered twice, in two parts, is
  counted once when the parts are merged (CloudTrail delivers at least once);
* ``unkeyed_calls``: records without an eventID, which can never be told apart and all count.

``call_count`` of a merged group is the number of distinct event hashes plus its unkeyed calls,
``event_ids`` the first 100 distinct ids in sort order: exactly what the ``api_call_group`` view
computes from de-duplicated rows (``tests/test_callgroups.py`` holds them equal).

:data:`PARTIAL_FROM_ROWS` makes partial groups from canonical rows (DuckDB SQL over a relation
of ``api_activity`` columns); :data:`MERGE_PARTIALS` merges partial groups (any number of
parts, in any order: merging is associative and commutative, and merging merged groups again
changes nothing).
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

from imdshunt.schema import API_ACTIVITY, TS

#: The columns that make a group (derived canonical columns, as in ``api_call_group``).
KEY = (
    "account_id",
    "region",
    "actor_arn",
    "role_name",
    "role_arn",
    "session_name",
    "access_key_id",
    "role_delivery",
    "web_id_provider",
    "invoked_by",
    "src_ip",
    "user_agent",
    "vpce_id",
    "vpce_account_id",
    "event_source",
    "event_name",
)

#: Whose calls are grouped: role sessions (every credential detection) and IAM and federated
#: users (a key or user a thief minted, used later: the lineage detection). The same list is
#: written in ``api_call_group`` (views/10_credential_activity.sql); a test holds them equal.
GROUPED_ACTORS = "('AssumedRole', 'IAMUser', 'FederatedUser')"
#: A group of an IAM or federated user's calls, told by its ARN (``actor_type`` is no group
#: column); credential_activity marks them ``iam-user`` / ``federated-user`` the same way.
USER_GROUP = (
    "(coalesce(actor_arn, '') LIKE 'arn:%:iam::%:user/%' "
    "OR coalesce(actor_arn, '') LIKE 'arn:%:sts::%:federated-user/%')"
)

#: Event ids each group keeps as evidence (detections keep at most max_event_ids of them).
MAX_EVENT_IDS = 100

#: A partial (or merged) call group.
CALL_GROUP = pa.schema(
    [API_ACTIVITY.field(k) for k in KEY]
    + [
        ("call_count", pa.int64()),
        ("first_seen", TS),
        ("last_seen", TS),
        ("session_created", TS),
        ("event_ids", pa.list_(pa.string())),
        ("event_hashes", pa.list_(pa.uint64())),
        ("unkeyed_calls", pa.int64()),
        ("delivered_calls", pa.int64()),
    ]
)

_KEY_SQL = ", ".join(KEY)


def event_hash(event_id: str) -> int:
    """DuckDB's ``md5_number_lower(event_id)``: the upper half of the MD5 digest, read as a
    little-endian unsigned 64-bit integer (both sides must agree, or merges double count)."""
    return int.from_bytes(hashlib.md5(event_id.encode()).digest()[8:], "little")


#: Partial groups from canonical rows: ``{rows}`` is a relation of api_activity columns.
PARTIAL_FROM_ROWS = f"""
SELECT
    {_KEY_SQL},
    count(*) AS call_count,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen,
    min(session_created) AS session_created,
    list_slice(list_sort(list(DISTINCT event_id) FILTER (WHERE event_id IS NOT NULL)), 1,
        {MAX_EVENT_IDS}) AS event_ids,
    list_sort(coalesce(list(DISTINCT md5_number_lower(event_id))
        FILTER (WHERE event_id IS NOT NULL), [])) AS event_hashes,
    count(*) FILTER (WHERE event_id IS NULL) AS unkeyed_calls,
    count(*) AS delivered_calls
FROM {{rows}}
WHERE actor_type IN {GROUPED_ACTORS}
GROUP BY ALL
"""

#: Partial groups ``{partials}`` merged into the groups of their union, repeated deliveries
#: counted once. The result is itself a valid partial group (merging again changes nothing).
MERGE_PARTIALS = f"""
SELECT
    {_KEY_SQL},
    CAST(list_unique(flatten(list(event_hashes))) + sum(unkeyed_calls) AS BIGINT)
        AS call_count,
    min(first_seen) AS first_seen,
    max(last_seen) AS last_seen,
    min(session_created) AS session_created,
    list_slice(list_sort(list_distinct(flatten(list(event_ids)))), 1, {MAX_EVENT_IDS})
        AS event_ids,
    list_sort(list_distinct(flatten(list(event_hashes)))) AS event_hashes,
    CAST(sum(unkeyed_calls) AS BIGINT) AS unkeyed_calls,
    CAST(sum(delivered_calls) AS BIGINT) AS delivered_calls
FROM {{partials}}
GROUP BY {_KEY_SQL}
"""
