"""One definition of "narrow CloudTrail record -> canonical api_activity row" for every engine.

sources/cloudtrail_record.sql is what DuckDB (and, transpiled, Spark) run over the records they
parse themselves; it must give exactly the rows the exact decoder gives, column by column.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from imdshunt.engine.portable import transpile
from imdshunt.schema import API_ACTIVITY, duckdb_columns
from imdshunt.sources.cloudtrail import read_file, record_projection_sql, records_to_batch


def _projected(files: list[Path]) -> pa.Table:
    """The projection over ``files`` (each ``{"Records": [...]}``), read by DuckDB."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    record = "STRUCT(" + ", ".join(f'"{k}" {t}' for k, t in duckdb_columns().items()) + ")"
    listing = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
    con.execute(
        "CREATE OR REPLACE VIEW cloudtrail_record AS "
        "SELECT r.*, source_file, source_record FROM "
        "(SELECT unnest(Records) AS r, filename AS source_file, "
        "generate_subscripts(Records, 1) AS source_record "
        f"FROM read_json({listing}, columns={{'Records': '{record}[]'}}, format='auto', "
        "filename=true, maximum_object_size=1e9))"
    )
    return con.sql(record_projection_sql()).to_arrow_table()


def _exact(files: list[Path]) -> pa.Table:
    return pa.Table.from_batches([records_to_batch([read_file(f) for f in files])])


#: Kept as JSON text: the exact decoder keeps the file's own spelling, DuckDB writes it compact.
_RAW_JSON_COLUMNS = ("request_parameters", "response_elements")


def _value(row: dict, column: str):
    value = row[column]
    return json.loads(value) if column in _RAW_JSON_COLUMNS and value is not None else value


def _key(row: dict) -> tuple:
    return (row["source_file"], row["source_record"])


def _assert_same_rows(files: list[Path]) -> int:
    got = _projected(files)
    want = _exact(files)
    assert got.schema.names == API_ACTIVITY.names
    assert got.cast(API_ACTIVITY).schema == API_ACTIVITY
    got_rows = sorted(got.cast(API_ACTIVITY).to_pylist(), key=_key)
    want_rows = sorted(want.to_pylist(), key=_key)
    assert [_key(r) for r in got_rows] == [_key(r) for r in want_rows]
    for g, w in zip(got_rows, want_rows, strict=True):
        for column in API_ACTIVITY.names:
            assert _value(g, column) == _value(w, column), (_key(w), column)
    return len(want_rows)


def test_projection_gives_the_exact_decoders_rows_on_real_logs(realdata):
    files = [
        f
        for f in sorted((realdata / "cloudtrail-samples").glob("*.json"))
        if json.loads(f.read_bytes()).get("Records")
    ]
    assert len(files) >= 10
    assert _assert_same_rows(files) >= 30


def _record(**fields) -> dict:
    base = {
        "eventVersion": "1.08",
        "eventTime": "2026-03-01T10:00:00Z",
        "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15",
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
    }
    base.update(fields)
    return base


ROLE = {
    "type": "AssumedRole",
    "principalId": "AROAEXAMPLE:i-0abc",
    "arn": "arn:aws:sts::111122223333:assumed-role/web/i-0abc/extra",
    "accountId": "111122223333",
    "accessKeyId": "ASIAEXAMPLE",
    "sessionContext": {
        "sessionIssuer": {"type": "Role", "arn": "arn:aws:iam::111122223333:role/web"},
        "attributes": {"creationDate": "2026-03-01T09:00:00Z"},
        "ec2RoleDelivery": "1.0",
    },
}


def test_projection_agrees_on_the_corner_cases(tmp_path):
    records = [
        # the role from the ARN (no userName), a session name holding '/'
        _record(eventID="e1", userIdentity=ROLE),
        # no recipient account: the principal's; Logstash's @timestamp when eventTime is empty
        _record(
            eventID="e2",
            eventTime="",
            recipientAccountId=None,
            userIdentity=ROLE,
            **{"@timestamp": "2026-03-01T10:00:01.5+01:00"},
        ),
        # no time at all: skipped by both
        _record(eventID="e3", eventTime=None),
        # a time that is not ISO 8601: kept, NULL time
        _record(eventID="e4", eventTime="Mar 1, 2026"),
        # Pod Identity tags, the last of a repeated key wins
        _record(
            eventID="e5",
            eventSource="eks-auth.amazonaws.com",
            eventName="AssumeRoleForPodIdentity",
            requestParameters={
                "roleArn": "arn:aws:iam::111122223333:role/pod",
                "roleSessionName": "eks-c-pod",
                "tags": [
                    {"key": "eks-cluster-name", "value": "prod"},
                    {"key": "kubernetes-namespace", "value": "a"},
                    {"key": "kubernetes-namespace", "value": "payments"},
                    {"key": "kubernetes-service-account", "value": "api"},
                    {"key": "kubernetes-pod-name", "value": "api-7d9"},
                    {"key": "other", "value": "x"},
                ],
            },
            responseElements={
                "credentials": {"accessKeyId": "ASIAPOD", "expiration": "Mar 1, 2026, 4:00 PM"},
                "assumedRoleUser": {"arn": "arn:aws:sts::111122223333:assumed-role/pod/eks-c"},
            },
        ),
        # IRSA: namespace and service account from the token's subject
        _record(
            eventID="e6",
            eventName="AssumeRoleWithWebIdentity",
            requestParameters={"roleArn": "arn:aws:iam::111122223333:role/irsa"},
            responseElements={
                "provider": "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1."
                "amazonaws.com/id/ABC",
                "subjectFromWebIdentityToken": "system:serviceaccount:kube-system:ebs:csi",
                "credentials": {"accessKeyId": "ASIAIRSA", "expiration": 1767225600},
            },
        ),
        # parameters of an event that vends nothing are not read
        _record(eventID="e7", eventName="GetObject", requestParameters={"roleArn": "x"}),
        # a failed vending call: no response
        _record(
            eventID="e8",
            eventName="AssumeRole",
            errorCode="AccessDenied",
            requestParameters={"roleArn": "arn:aws:iam::111122223333:role/x", "tags": None},
            responseElements=None,
        ),
    ]
    path = tmp_path / "corner.json"
    path.write_text(json.dumps({"Records": records}))
    assert _assert_same_rows([path]) == 7


def test_projection_transpiles_to_spark():
    spark_sql = transpile(record_projection_sql(), "spark")
    assert "cloudtrail_record" in spark_sql
    for duckdb_only in ("LIST_LAST", "LIST_REVERSE", "TIMESTAMPTZ", "lambda"):
        assert duckdb_only not in spark_sql


@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_projection_selects_the_canonical_columns(dialect):
    import sqlglot

    tree = sqlglot.parse_one(transpile(record_projection_sql(), dialect), read=dialect)
    assert tree.named_selects == list(API_ACTIVITY.names)
