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

from imdshunt.findings import Finding, FindingKind
from imdshunt.outputs.base import RunContext

#: Calls kept per credential for its timeline: off-box calls and calls from the finding's address
#: first, then on-box ones in time order (``session_call_count`` still counts them all).
MAX_TIMELINE_CALLS = 20_000


def credential_timelines(
    engine: Any, findings: Sequence[Finding], *, limit: int = MAX_TIMELINE_CALLS
) -> dict[str, list[dict[str, Any]]]:
    """Every call made with each credential finding's session, from any address, in time order.

    Keyed by ``finding_id``; read through the engine's ``session_calls`` (any engine). A call
    is ``on_box`` unless it came from an internet address (``network_kind == 'internet'``):
    AWS ranges, private ranges and allowlisted egress are where the workload itself reaches AWS
    from. ``this_finding`` marks the finding's address.
    """
    from imdshunt.engine.queries import session_keys

    keys = [
        f for f in findings if f.kind is FindingKind.CREDENTIAL and f.credential_id and f.finding_id
    ]
    if not keys or engine is None:
        return {}
    engine.ensure_views()
    if not engine.table_exists("api_activity"):
        return {}
    source = {f.finding_id: f.source_ip for f in findings if f.finding_id}
    rows = engine.session_calls(session_keys(keys), limit=int(limit))
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows.to_pylist():
        fid = row.pop("finding_id")
        row["on_box"] = row.get("network_kind") != "internet"
        row["this_finding"] = row.get("src_ip") == source.get(fid)
        out.setdefault(fid, []).append(row)
    return out


def exposure_records(engine: Any, findings: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """The IMDSv1 backlog from the hunt's CloudTrail (no inventory, no IAM), ranked; the hunt's
    ``imds_ssrf_attempt`` findings among ``findings`` give each instance's SSRF attempts."""
    from imdshunt.exposure import exposure_backlog

    return exposure_backlog(engine, web_findings=findings)


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
        extra["backlog"] = exposure_records(engine, result.findings)
    elif backlog:
        extra["backlog"] = list(backlog)
    if chains:
        extra["chains"] = list(chains)
    return RunContext(
        stats=result.stats, naive=result.naive, ip_ranges=result.ip_ranges, extra=extra
    )
