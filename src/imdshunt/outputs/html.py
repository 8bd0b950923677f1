"""``--format html``: one self-contained, offline report file (see :mod:`imdshunt.report`).

Everything log-derived goes through Jinja2's autoescape (and :func:`imdshunt.sanitize.inert`
for control and bidi characters); a Content-Security-Policy forbids scripts and any fetch, so
even a mistake in escaping could not run code or call out. Plots are matplotlib SVGs embedded
as ``data:`` images.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from imdshunt import __version__
from imdshunt.findings import SEVERITY_RANK, Finding, FindingKind
from imdshunt.outputs.base import Output, RunContext
from imdshunt.outputs.common import artifact_summary, lineage_line, title_of
from imdshunt.sanitize import inert

TEMPLATES = Path(__file__).resolve().parents[1] / "report" / "templates"
CHAIN_DETECTION = "imds_theft_chain"
_log = logging.getLogger("imdshunt.report")

_CREDENTIAL_PIVOT = (
    ("account", "account_id"),
    ("role", "role"),
    ("role ARN", "role_arn"),
    ("credential type", "credential_type"),
    ("credential (session)", "credential_id"),
    ("used from", "source_ip"),
    ("network", "network"),
    ("VPC endpoint", "vpc_endpoint_id"),
    ("VPC endpoint account", "vpc_endpoint_account_id"),
    ("access keys", "access_key_ids"),
    ("first seen", "first_seen"),
    ("last seen", "last_seen"),
    ("calls", "event_count"),
    ("distinct actions", "distinct_actions"),
    ("actions", "actions"),
    ("user agents", "user_agents"),
    ("regions", "regions"),
    ("evidence event ids", "event_ids"),
)
_WEB_PIVOT = (
    ("time", "time"),
    ("client", "client_ip"),
    ("target", "target_ip"),
    ("target instance", "target_instance"),
    ("endpoint", "endpoint"),
    ("encoding", "encoding"),
    ("request", "request_url"),
    ("decoded", "decoded"),
    ("status", "status"),
    ("log type", "log_type"),
    ("source file", "source_file"),
    ("line", "line_number"),
)
_HIDDEN = {"title", "kind", "schema_version", "reasons", "severity", "detection", "finding_id"}


def _text(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_text(v) for v in value]
    if isinstance(value, dict):
        return ", ".join(f"{k}={_scalar(v)}" for k, v in value.items())
    return _scalar(value)


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k}={_scalar(v)}" for k, v in value.items())
    return str(value)


def _pivot(f: Finding) -> tuple[list[tuple[str, Any]], list[tuple[str, str]]]:
    web = f.kind is FindingKind.WEB
    spec = _WEB_PIVOT if web else _CREDENTIAL_PIVOT
    shown = []
    used = set(_HIDDEN)
    for label, key in spec:
        used.add(key)
        value = f.get(key)
        if value in (None, "", []):
            continue
        shown.append((label, _text(value)))
    if not web:  # lineage (docs/lineage.md); escaped by the template like all
        line = lineage_line(f)
        if line:
            shown.append(("lineage", line))
        if f.get("artifacts"):
            used.add("artifacts")
            shown.append(("made or changed", [artifact_summary(a) for a in f["artifacts"]]))
    if web and f.request_urls:
        used.add("request_urls")
        shown.append(("all requests", [_scalar(u) for u in f["request_urls"]]))
    more = [
        (k, _scalar(v) if not isinstance(v, list) else "; ".join(_scalar(x) for x in v))
        for k, v in f.items()
        if k not in used and not k.startswith("_") and v not in (None, "", [])
    ]
    return shown, more


def _timeline_summary(calls: list[dict[str, Any]]) -> str:
    off = sum(1 for c in calls if not c.get("on_box"))
    addresses = len({c.get("src_ip") for c in calls})
    first_off = next((c.get("event_time") for c in calls if not c.get("on_box")), None)
    # The engine keeps off-box calls first when it stops at its limit; it counts them all.
    total = max(int(calls[0].get("session_call_count") or 0), len(calls))
    text = (
        f"{total} calls with this session from {addresses} addresses: "
        f"{total - off} on-box, {off} off-box"
    )
    if total > len(calls):
        text = (
            f"{total} calls with this session: {len(calls)} read for this timeline "
            f"(every off-box call first), from {addresses} addresses: {off} off-box"
        )
    if first_off is not None:
        t = first_off
        if isinstance(t, dt.datetime):
            t = t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text += f"; first off-box call {t}"
    return text


@contextlib.contextmanager
def _plots_quietly() -> Iterator[None]:
    """Library warnings raised while plotting go to the debug log, not to the user's terminal.

    The plots avoid every warning they are known to raise (tests draw them with warnings as
    errors); this keeps a future matplotlib's new warning out of a responder's terminal.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        _log.debug("while plotting: %s: %s", w.category.__name__, w.message)


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["t"] = lambda v: inert(_scalar(v))
    return env


class HtmlOutput(Output):
    """A self-contained HTML report: summary, chains, findings with timelines, backlog."""

    name = "html"

    def write(self, findings: list[Finding], stream: TextIO, context: RunContext) -> None:
        from imdshunt.report.plots import chain_svg, timeline_svg

        extra = context.extra or {}
        timelines: dict[str, list[dict]] = extra.get("timelines") or {}
        chains = [dict(c) for c in extra.get("chains") or []]
        chain_ids = {c.get("finding_id") for c in chains}
        shown = []
        for f in findings:
            if f.kind is FindingKind.CORRELATION:
                if f.finding_id not in chain_ids:
                    chains.append(dict(f))
                    chain_ids.add(f.finding_id)
                continue
            item = dict(f)
            item["_title"] = title_of(f)
            item["_pivot"], item["_more"] = _pivot(f)
            calls = timelines.get(f.get("finding_id")) or []
            if calls:
                with _plots_quietly():
                    item["_plot"] = timeline_svg(calls)
                item["_timeline_summary"] = _timeline_summary(calls)
            shown.append(item)
        for c in chains:
            with _plots_quietly():
                c["_plot"] = chain_svg(c)
        severities = sorted(SEVERITY_RANK, key=lambda s: -SEVERITY_RANK[s])
        by_det: dict[str, Counter] = {}
        for f in findings:
            by_det.setdefault(str(f.get("detection")), Counter())[str(f.get("severity"))] += 1
        naive = context.naive or {}
        credentials = [f for f in findings if f.kind is FindingKind.CREDENTIAL]
        credential_count = len(credentials)
        credential_events = sum(int(f.event_count or 0) for f in credentials)
        stats = context.stats
        html = (
            _environment()
            .get_template("report.html.j2")
            .render(
                generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                version=__version__,
                inputs=extra.get("inputs") or [],
                stats=stats,
                stats_summary=stats.summary() if stats is not None else "",
                ip_ranges=context.ip_ranges,
                warnings=extra.get("warnings") or [],
                naive=naive,
                credential_count=credential_count,
                noise_avoided=max(int(naive.get("events", 0)) - credential_events, 0),
                severities=severities,
                by_detection=sorted(by_det.items()),
                chains=chains,
                findings=shown,
                backlog=extra.get("backlog"),
            )
        )
        stream.write(html)
