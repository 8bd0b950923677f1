"""The incident responder's report: data gathered from a hunt, rendered by ``--format html``.

Library first: :func:`report_context` turns a :class:`~imdshunt.api.HuntResult` into the
:class:`~imdshunt.outputs.RunContext` the HTML output renders; the output class runs no SQL.

Example::

    from imdshunt import api, report
    from imdshunt.outputs import OUTPUTS
    result = api.hunt(["./AWSLogs"], ip_ranges="ip-ranges.json")
    ctx = report.report_context(result)
    with open("report.html", "w") as out:
        OUTPUTS["html"]().write(result.findings, out, ctx)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from imdshunt.outputs.base import RunContext

#: Calls kept per credential for its timeline (the plot thins beyond this; counts stay exact).
MAX_TIMELINE_CALLS = 20_000

_TIMELINE_SQL = """
SELECT k.finding_id, c.event_time, c.src_ip,
       coalesce(ip.network, 'invalid') AS network,
       coalesce(ip.network_kind, 'invalid') AS network_kind,
       split_part(c.event_source, '.', 1) || ':' || c.event_name AS action,
       c.error_code, c.access_key_id
FROM api_activity c
LEFT JOIN ip_class ip ON ip.src_ip = c.src_ip
JOIN _report_keys k
  ON c.account_id IS NOT DISTINCT FROM k.account_id
 AND c.session_name = k.credential_id
 AND c.role_name IS NOT DISTINCT FROM k.role
WHERE c.actor_type = 'AssumedRole'
QUALIFY row_number() OVER (PARTITION BY k.finding_id ORDER BY c.event_time) <= {limit}
ORDER BY k.finding_id, c.event_time
"""


def credential_timelines(
    engine: Any, findings: Sequence[dict[str, Any]], *, limit: int = MAX_TIMELINE_CALLS
) -> dict[str, list[dict[str, Any]]]:
    """Every call made with each credential finding's session, from any address, in time order.

    Keyed by ``finding_id``. A call is ``on_box`` unless it came from an internet address
    (``network_kind == 'internet'``): AWS ranges, private ranges and allowlisted egress are
    where the workload itself reaches AWS from. ``this_finding`` marks the finding's address.
    """
    keys = [
        {
            "finding_id": f["finding_id"],
            "account_id": f.get("account_id"),
            "role": f.get("role"),
            "credential_id": f.get("credential_id"),
        }
        for f in findings
        if f.get("kind") == "credential" and f.get("credential_id") and f.get("finding_id")
    ]
    if not keys or engine is None:
        return {}
    engine.ensure_views()
    if not engine.table_exists("api_activity"):
        return {}
    source = {f["finding_id"]: f.get("source_ip") for f in findings if f.get("finding_id")}
    table = pa.Table.from_pylist(
        keys,
        schema=pa.schema(
            [(name, pa.string()) for name in ("finding_id", "account_id", "role", "credential_id")]
        ),
    )
    # A registered Arrow table, not a reference table: replacing one of those would make the
    # engine rebuild its materialised views.
    engine.con.register("_report_keys", table)
    try:
        rows = engine.query(_TIMELINE_SQL.format(limit=int(limit)), label="report timelines")
    finally:
        engine.con.unregister("_report_keys")
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows.to_pylist():
        fid = row.pop("finding_id")
        row["on_box"] = row.get("network_kind") != "internet"
        row["this_finding"] = row.get("src_ip") == source.get(fid)
        out.setdefault(fid, []).append(row)
    return out


def exposure_records(engine: Any) -> list[dict[str, Any]]:
    """The IMDSv1 backlog from CloudTrail alone (no inventory, no IAM), ranked."""
    from imdshunt.exposure import exposure_backlog

    return exposure_backlog(engine.con)


def report_context(
    result: Any,
    *,
    backlog: Sequence[dict[str, Any]] | bool = False,
    chains: Sequence[dict[str, Any]] | None = None,
    inputs: Sequence[str] = (),
) -> RunContext:
    """What the HTML report needs from a hunt: timelines, chains, backlog, run summary.

    ``backlog`` is a list of ``imdsv1_exposure`` records, or True to compute it from the hunt's
    CloudTrail. ``chains`` are ``imds_theft_chain`` records; those among ``result.findings``
    are used too.
    """
    engine = getattr(result, "engine", None)
    extra: dict[str, Any] = {
        "timelines": credential_timelines(engine, result.findings),
        "warnings": list(getattr(result, "warnings", []) or []),
        "inputs": [str(p) for p in inputs],
    }
    if backlog is True and engine is not None:
        extra["backlog"] = exposure_records(engine)
    elif backlog:
        extra["backlog"] = list(backlog)
    if chains:
        extra["chains"] = list(chains)
    return RunContext(
        stats=result.stats, naive=result.naive, ip_ranges=result.ip_ranges, extra=extra
    )
