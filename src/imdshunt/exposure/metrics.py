"""``AWS/EC2`` ``MetadataNoToken``: is software on the instance still calling IMDSv1?

AWS's migration guidance ("Modify instance metadata options for existing instances", EC2 User
Guide): before requiring IMDSv2, check the instance's ``MetadataNoToken`` metric, which counts
IMDSv1 calls; when it records zero, the instance is ready to require tokens. This module reads
it for many instances with batched ``GetMetricData`` calls and turns the result into the
backlog's ``metadata_no_token_calls`` and ``safe_to_enforce``.

AWS's data, and its surprises (CloudWatch API Reference, ``GetMetricData``):

* One call takes at most 500 metric queries and returns at most 100,800 data points; results
  may come in pages (``NextToken``), a query's values spread over several pages.
* A query ``Id`` must start with a lower-case letter; the ``Label`` is returned as given, so
  it carries the instance id.
* A metric with no data point in the window returns no values: that is *not* zero. EC2
  publishes the metric while the instance runs; a stopped instance, a window older than
  CloudWatch keeps (455 days for hourly data) or the wrong account or region give nothing. Such
  an instance is ``unknown``, never "safe".
* ``StatusCode`` ``PartialData`` means more pages follow; ``InternalError``/``Forbidden`` mean
  the values are not to be trusted: unknown.

Nothing happens at import time; the boto3 session always comes from the caller.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from imdshunt.permissions import needs

#: The commands whose IAM policy includes the metric read.
METRIC_COMMANDS = ("collect", "exposure")
#: GetMetricData limits (CloudWatch API Reference).
QUERIES_PER_CALL = 500
DATAPOINTS_PER_CALL = 100_800
#: The window read when none is given: AWS's guidance names no length; two weeks covers
#: weekly jobs (backups, reports) that may be the only v1 callers.
DEFAULT_DAYS = 14
NAMESPACE, METRIC = "AWS/EC2", "MetadataNoToken"


@dataclass(frozen=True)
class MetadataNoToken:
    """One instance's IMDSv1 calls over a window; ``calls`` None when unknown (``note`` why)."""

    instance_id: str
    calls: int | None
    start: datetime
    end: datetime
    note: str | None = None

    @property
    def window(self) -> str:
        return f"{_iso(self.start)}/{_iso(self.end)}"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_window(
    since: datetime | None = None, *, days: int = DEFAULT_DAYS, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """(start, end) of the metric window: from ``since`` (else ``days`` ago) until now."""
    end = (now or datetime.now(UTC)).replace(microsecond=0)
    start = since if since is not None else end - timedelta(days=days)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if start >= end:
        raise ValueError(f"the metric window starts {_iso(start)}, not before {_iso(end)}")
    return start, end


def period_for(start: datetime, end: datetime, queries: int = QUERIES_PER_CALL) -> int:
    """A period (whole days) keeping ``queries`` series under the data-point limit of a call."""
    days = max(1, math.ceil((end - start).total_seconds() / 86400))
    per_query = DATAPOINTS_PER_CALL // max(queries, 1)
    return 86400 * max(1, math.ceil(days / per_query))


def metric_queries(instance_ids: Sequence[str], period: int) -> list[dict[str, Any]]:
    """``MetricDataQueries`` summing ``MetadataNoToken`` per instance (Id ``m<n>``, Label the
    instance id)."""
    return [
        {
            "Id": f"m{n}",
            "Label": iid,
            "MetricStat": {
                "Metric": {
                    "Namespace": NAMESPACE,
                    "MetricName": METRIC,
                    "Dimensions": [{"Name": "InstanceId", "Value": iid}],
                },
                "Period": period,
                "Stat": "Sum",
            },
            "ReturnData": True,
        }
        for n, iid in enumerate(instance_ids)
    ]


def readings_from_results(
    results: Iterable[Mapping[str, Any]],
    labels: Mapping[str, str],
    start: datetime,
    end: datetime,
) -> dict[str, MetadataNoToken]:
    """Readings from ``MetricDataResults`` (pages merged or not); ``labels`` maps query Id to
    instance id (else the result's Label is the instance id). Keyed by lower-cased id."""
    values: dict[str, list[float]] = {}
    bad: dict[str, str] = {}
    for r in results:
        iid = labels.get(r.get("Id", "")) or r.get("Label")
        if not iid:
            continue
        values.setdefault(iid, []).extend(float(v) for v in r.get("Values") or [])
        if r.get("StatusCode") in ("InternalError", "Forbidden"):
            bad[iid] = f"GetMetricData status {r['StatusCode']}"
    out: dict[str, MetadataNoToken] = {}
    for iid in {*labels.values(), *values}:
        got = values.get(iid, [])
        if iid in bad:
            reading = MetadataNoToken(iid, None, start, end, bad[iid])
        elif not got:
            reading = MetadataNoToken(
                iid, None, start, end,
                "no MetadataNoToken data point in the window (instance stopped, or the metric "
                "is in another account or region)",
            )  # fmt: skip
        else:
            reading = MetadataNoToken(iid, int(round(sum(got))), start, end)
        out[iid.lower()] = reading
    return out


@needs("cloudwatch:GetMetricData", commands=METRIC_COMMANDS)
def read_region(
    client: Any, instance_ids: Sequence[str], start: datetime, end: datetime
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """``GetMetricData`` for ``instance_ids`` in one region, 500 queries a call, every page.
    Returns the merged ``MetricDataResults`` and query Id -> instance id."""
    results: list[dict[str, Any]] = []
    labels: dict[str, str] = {}
    ids = list(dict.fromkeys(instance_ids))
    for i in range(0, len(ids), QUERIES_PER_CALL):
        batch = ids[i : i + QUERIES_PER_CALL]
        queries = metric_queries(batch, period_for(start, end, len(batch)))
        # Ids restart at m0 in each batch: keep them apart
        batch_labels = {q["Id"]: q["Label"] for q in queries}
        pages = client.get_paginator("get_metric_data").paginate(
            MetricDataQueries=queries, StartTime=start, EndTime=end
        )
        for page in pages:
            for r in page.get("MetricDataResults") or []:
                r = dict(r, Id=f"b{i}{r.get('Id')}")
                results.append(r)
        labels.update({f"b{i}{k}": v for k, v in batch_labels.items()})
    return results, labels


def read_metadata_no_token(
    session: Any,
    instances: Iterable[tuple[str | None, str]],
    start: datetime,
    end: datetime,
) -> tuple[dict[str, MetadataNoToken], list[str]]:
    """Read ``MetadataNoToken`` for ``(region, instance id)`` pairs with ``session`` (the
    instances' account). Returns readings by lower-cased instance id and the errors met (a
    region whose read failed leaves its instances unknown; the others are still read)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from imdshunt.respond.aws import RETRY_CONFIG, describe_error

    by_region: dict[str | None, list[str]] = {}
    for region, iid in instances:
        by_region.setdefault(region, []).append(iid)
    readings: dict[str, MetadataNoToken] = {}
    errors: list[str] = []
    for region, ids in sorted(by_region.items(), key=lambda kv: kv[0] or ""):
        if not region:
            for iid in ids:
                readings[iid.lower()] = MetadataNoToken(
                    iid, None, start, end, "region unknown: metric not read"
                )
            continue
        try:
            client = session.client("cloudwatch", region_name=region, config=RETRY_CONFIG)
            results, labels = read_region(client, ids, start, end)
        except (ClientError, BotoCoreError) as exc:
            why = describe_error(exc)
            errors.append(f"{region}: {why}")
            for iid in ids:
                readings[iid.lower()] = MetadataNoToken(
                    iid, None, start, end, f"metric not read: {why}"
                )
            continue
        readings.update(readings_from_results(results, labels, start, end))
    return readings, errors


def read_for_records(
    session: Any, records: Sequence[Mapping[str, Any]], start: datetime, end: datetime
) -> tuple[dict[str, MetadataNoToken], list[str]]:
    """Read the metric for the backlog's open rows (not those already fixed) in the session's
    account; rows of another account are unknown and say which profile would read them."""
    from botocore.exceptions import BotoCoreError, ClientError

    from imdshunt.errors import AwsActionError
    from imdshunt.exposure.backlog import STATUS_FIXED

    try:
        account = session.client("sts").get_caller_identity()["Account"]
    except (ClientError, BotoCoreError) as exc:
        raise AwsActionError(f"cannot identify the account (sts:GetCallerIdentity): {exc}") from exc
    pairs, readings = [], {}
    for rec in records:
        if rec.get("status") == STATUS_FIXED:
            continue
        if rec.get("account_id") not in (None, account):
            readings[rec["instance_id"].lower()] = MetadataNoToken(
                rec["instance_id"], None, start, end,
                f"instance in account {rec['account_id']}, the session is for {account}: "
                "read it with a profile of that account",
            )  # fmt: skip
            continue
        pairs.append((rec.get("region"), rec["instance_id"]))
    got, errors = read_metadata_no_token(session, pairs, start, end)
    readings.update(got)
    return readings, errors


def readings_from_documents(docs: Iterable[Mapping[str, Any]]) -> dict[str, MetadataNoToken]:
    """Readings from collected ``cloudwatch-get-metric-data.json`` documents (``aws cloudwatch
    get-metric-data`` output with the request's ``StartTime``/``EndTime`` beside it, as
    ``imdshunt inventory collect`` writes it; each query's Label is its instance id)."""
    out: dict[str, MetadataNoToken] = {}
    for doc in docs:
        start, end = _parse_time(doc.get("StartTime")), _parse_time(doc.get("EndTime"))
        if start is None or end is None:
            continue
        out.update(readings_from_results(doc.get("MetricDataResults") or [], {}, start, end))
    return out


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return None
    t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)
