from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from imdshunt.findings import Finding, FindingKind
from imdshunt.outputs.base import Output, RunContext
from imdshunt.outputs.common import artifact_summary, lineage_line
from imdshunt.sanitize import inert

SEVERITY_STYLE = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}


def _t(value, limit: int | None = None) -> Text:
    """Log-derived text as a rich Text: never parsed as markup, controls shown escaped."""
    if isinstance(value, list):
        shown = value[:limit] if limit else value
        text = ", ".join(inert(v) for v in shown)
        if limit and len(value) > limit:
            text += f" (+{len(value) - limit} more)"
        return Text(text)
    return Text(inert(value) if value is not None else "")


def _lines(*parts) -> Text:
    """Several log-derived values, one per line; only our own separators are newlines."""
    return Text("\n".join(inert(p) for p in parts if p not in (None, "")))


class TableOutput(Output):
    """A readable table of findings, then what was read and skipped."""

    name = "table"

    def write(self, findings: list[Finding], stream: TextIO, context: RunContext) -> None:
        console = Console(
            file=stream, highlight=False, soft_wrap=False, width=None if stream.isatty() else 200
        )
        cred = [f for f in findings if f.kind is FindingKind.CREDENTIAL]
        web = [f for f in findings if f.kind is FindingKind.WEB]
        other = [f for f in findings if f.kind not in (FindingKind.CREDENTIAL, FindingKind.WEB)]
        if cred:
            table = Table(title="Credential use off its workload", show_lines=True)
            for col in (
                "severity",
                "detection",
                "account / role",
                "credential",
                "source",
                "access keys",
                "actions",
                "window",
                "events",
                "finding",
            ):
                table.add_column(col, overflow="fold")
            for f in cred:
                table.add_row(
                    Text(f["severity"], style=SEVERITY_STYLE.get(f["severity"], "")),
                    _t(f["detection"]),
                    _lines(f.get("account_id"), f.get("role")),
                    _lines(f.get("credential_type"), f.get("credential_id")),
                    _lines(
                        f.get("source_ip"),
                        f.get("network"),
                        f"via {f['vpc_endpoint_id']} ({f.get('vpc_endpoint_account_id')})"
                        if f.get("vpc_endpoint_id")
                        else None,
                    ),
                    _t(f.get("access_key_ids") or []),
                    _t(f.get("actions") or [], limit=8),
                    _lines(f.get("first_seen"), f.get("last_seen")),
                    _t(f.get("event_count")),
                    _t(f.get("finding_id")),
                )
            console.print(table)
            for f in cred:
                console.print(Text(f"[{f['finding_id']}] ", style="bold"), end="")
                console.print(_t(" | ".join(f.get("reasons") or [])))
                lineage = lineage_line(f)
                if lineage:
                    console.print(_t("    " + lineage))
                for a in f.get("artifacts") or []:
                    console.print(_t("    made or changed: " + artifact_summary(a)))
        if web:
            table = Table(title="Metadata-service SSRF attempts", show_lines=True)
            for col in (
                "severity",
                "detection",
                "client",
                "target",
                "endpoint",
                "encoding",
                "request",
                "status",
                "time",
                "finding",
            ):
                table.add_column(col, overflow="fold")
            for f in web:
                table.add_row(
                    Text(f["severity"], style=SEVERITY_STYLE.get(f["severity"], "")),
                    _t(f["detection"]),
                    _t(f.get("client_ip")),
                    _lines(f.get("target_ip"), f.get("target_instance")),
                    _t(f.get("endpoint")),
                    _t(f.get("encoding")),
                    _t(f.get("request_url")),
                    _t(f.get("status")),
                    _t(f.get("time")),
                    _t(f.get("finding_id")),
                )
            console.print(table)
        for f in other:
            console.print(
                _t(
                    f"{f.get('severity')} {f.get('detection')}: "
                    + " | ".join(f.get("reasons") or [])
                )
            )
        if not findings:
            console.print(Text("No findings.", style="green"))
        naive = context.naive or {}
        if naive:
            console.print(
                _t(
                    "Naive rule (AssumedRole calls from non-AWS addresses): "
                    f"{naive.get('events', 0)} "
                    f"events from {naive.get('sessions', 0)} sessions would have alerted; "
                    f"imdshunt reports {len(findings)} findings."
                )
            )
        if context.stats is not None:
            console.print(_t("Read: " + context.stats.summary()))
        info = context.ip_ranges
        if info is not None:
            console.print(
                _t(
                    f"AWS ranges: {info.path} (createDate {info.create_date}, "
                    f"syncToken {info.sync_token})"
                )
            )
