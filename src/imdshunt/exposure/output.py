"""Writers of ``imdsv1_exposure`` records: rich table, JSON lines, CSV.

Text that came from logs or inventory (name tags, role names, instance ids as logged) is
attacker-controlled: a name tag can hold rich markup, terminal escape sequences or a spreadsheet
formula. The table escapes markup and replaces control characters; the CSV also neutralises
cells a spreadsheet would run as a formula (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from imdshunt.exposure import remediation
from imdshunt.exposure.privilege import RANKING_EXPLANATION
from imdshunt.sanitize import csv_cell as _csv_cell
from imdshunt.sanitize import inert

#: Columns of the CSV output, in order (all the record's fields).
CSV_FIELDS = (
    "rank", "severity", "status", "account_id", "region", "region_source", "regions",
    "instance_id", "name", "state", "role", "role_arn", "instance_profile_arn",
    "http_tokens", "http_put_response_hop_limit", "http_endpoint",
    "delivery_versions", "v1_event_count", "v2_event_count", "unknown_delivery_event_count",
    "event_count", "first_v1_use", "last_v1_use", "first_seen", "last_seen", "v1_source_ips",
    "privilege_source", "privilege_score", "privilege_categories", "privilege_reasons",
    "privilege_policies", "sensitive_actions_seen", "ssrf_attempts", "ssrf_clients",
    "last_ssrf_attempt", "reachable_from_internet", "reachable_via",
    "metadata_no_token_calls", "metadata_no_token_window", "safe_to_enforce",
    "reasons", "remediation",
    "remediation_check", "remediation_caveat", "account_remediation", "credential_type",
    "detection", "record_version",
)  # fmt: skip


def clean_text(value: Any) -> str:
    """Text safe for a terminal: control and bidi characters shown as ``\\xNN``/``\\uNNNN``."""
    return inert(value)


def safe_markup(value: Any) -> str:
    """Text safe to put in a rich table cell: cleaned, then markup-escaped."""
    return escape(inert(value))


def csv_cell(value: Any) -> str:
    """One CSV cell: lists joined with ``; ``, control characters shown, formulas neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, list | tuple):
        value = "; ".join(str(v) for v in value)
    return _csv_cell(value)


def write_jsonl(records: Sequence[dict[str, Any]], out: IO[str]) -> None:
    """One ``imdsv1_exposure`` JSON object per line."""
    for rec in records:
        out.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")


def write_csv(records: Sequence[dict[str, Any]], out: IO[str]) -> None:
    """CSV with a header of :data:`CSV_FIELDS`."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for rec in records:
        w.writerow([csv_cell(rec.get(f)) for f in CSV_FIELDS])


_SEV_STYLE = {
    "critical": "bold red",
    "high": "red",
    "medium": "yellow",
    "low": "green",
    "info": "dim",
}


def _lines(items: Sequence[Any], limit: int = 3) -> str:
    shown = [safe_markup(x) for x in list(items)[:limit]]
    if len(items) > limit:
        shown.append(f"(+{len(items) - limit} more)")
    return "\n".join(shown)


def switch_groups(
    records: Sequence[dict[str, Any]],
) -> tuple[dict[tuple[str, str], list[dict[str, Any]]], list[dict[str, Any]], int]:
    """Open rows by what ``MetadataNoToken`` said: safe ones grouped by (account, region),
    the ones still calling v1, and how many were not read."""
    safe: dict[tuple[str, str], list[dict[str, Any]]] = {}
    calling, unknown = [], 0
    for r in records:
        if r.get("remediation") is None:
            continue  # already fixed
        if r.get("safe_to_enforce"):
            key = (r.get("account_id") or "?", r.get("region") or "")
            safe.setdefault(key, []).append(r)
        elif r.get("metadata_no_token_calls"):
            calling.append(r)
        else:
            unknown += 1
    return dict(sorted(safe.items())), calling, unknown


def render_switch_summary(records: Sequence[dict[str, Any]], console: Console) -> None:
    """ "Safe to switch now" (one command per account and region) apart from "still calling
    v1: upgrade first", from the rows' ``MetadataNoToken`` readings."""
    safe, calling, unknown = switch_groups(records)
    if not safe and not calling:
        if unknown:
            console.print(
                f"[bold]MetadataNoToken not read[/bold] for {unknown} instance(s): run with "
                "--cloudwatch (or collect the inventory) to know which are safe to switch now."
            )
        return
    n_safe = sum(len(v) for v in safe.values())
    console.print(
        f"[bold]Safe to switch now[/bold] ({n_safe} instance(s): MetadataNoToken 0 over the "
        "window read; hop limits unchanged):"
    )
    for (acct, region), rows in safe.items():
        ids = [r["instance_id"] for r in rows]
        console.print(f"  account {safe_markup(acct)}, {safe_markup(region or '?')}:")
        console.print(
            "    " + safe_markup(remediation.bulk_enforce_command(ids, region or None)),
            soft_wrap=True,
        )
    if calling:
        console.print(
            f"[bold]Still calling IMDSv1: upgrade first[/bold] ({len(calling)} instance(s); "
            "requiring tokens now breaks the software making these calls):"
        )
        for r in calling:
            label = safe_markup(r["instance_id"])
            if r.get("name"):
                label += f" ({safe_markup(r['name'])})"
            console.print(
                f"  {label}: {r['metadata_no_token_calls']} IMDSv1 call(s) over "
                f"{safe_markup(r.get('metadata_no_token_window'))}"
            )
    if unknown:
        console.print(f"MetadataNoToken unknown for {unknown} instance(s): see their reasons.")


def render_table(records: Sequence[dict[str, Any]], console: Console) -> None:
    """The backlog as a rich table, then how it was ranked and the account-level fixes."""
    table = Table(title="IMDSv1 exposure backlog", show_lines=True, expand=False)
    for col in ("#", "sev", "instance", "account / region", "role", "IMDS", "delivery",
                "why this rank", "fix"):  # fmt: skip
        table.add_column(col, overflow="fold")
    for r in records:
        sev = r.get("severity") or ""
        inst = safe_markup(r["instance_id"])
        if r.get("name"):
            inst += f"\n{safe_markup(r['name'])}"
        if r.get("state"):
            inst += f"\n[dim]{safe_markup(r['state'])}[/dim]"
        imds = (
            "\n".join(
                f"{k}={safe_markup(r[f])}"
                for k, f in (
                    ("tokens", "http_tokens"),
                    ("hops", "http_put_response_hop_limit"),
                    ("endpoint", "http_endpoint"),
                )  # fmt: skip
                if r.get(f) is not None
            )
            or "[dim]no inventory[/dim]"
        )
        delivery = (
            f"{safe_markup(r['status'])}\nv1 {r['v1_event_count']} / v2 {r['v2_event_count']}"
        )
        if r.get("last_v1_use"):
            delivery += f"\nlast v1 {safe_markup(r['last_v1_use'])}"
        reach = {True: "internet: yes", False: "internet: no"}.get(
            r.get("reachable_from_internet"), "internet: unknown"
        )
        if r.get("reachable_via"):
            reach += f" ({_lines(r['reachable_via'], 2)})"
        delivery += f"\n{reach}"
        if r.get("metadata_no_token_calls") is not None:
            delivery += f"\nMetadataNoToken {r['metadata_no_token_calls']}"
        if r.get("ssrf_attempts"):
            delivery += (
                f"\n[bold red]{r['ssrf_attempts']} SSRF attempt(s)[/bold red] from "
                f"{len(r.get('ssrf_clients') or [])} client(s)"
            )
        why = _lines(r.get("privilege_reasons") or [])
        if r.get("privilege_source"):
            why += f"\n[dim]({safe_markup(r['privilege_source'])})[/dim]"
        table.add_row(
            str(r["rank"]),
            f"[{_SEV_STYLE.get(sev, '')}]{safe_markup(sev)}[/]" if sev in _SEV_STYLE else sev,
            inst,
            f"{safe_markup(r.get('account_id'))}\n{safe_markup(r.get('region'))}",
            safe_markup(r.get("role")),
            imds,
            delivery,
            why,
            safe_markup(r.get("remediation") or r.get("remediation_caveat") or ""),
        )
    console.print(table)
    console.print(f"[bold]How this is ranked.[/bold] {escape(RANKING_EXPLANATION)}")
    console.print(f"[bold]Before each fix.[/bold] {escape(remediation.CAVEAT)}")
    render_switch_summary(records, console)
    regions = sorted(
        {(r.get("account_id") or "?", r.get("region")) for r in records},
        key=lambda x: (x[0], x[1] or ""),
    )
    if regions:
        console.print("[bold]Stop new IMDSv1 instances, per account and region:[/bold]")
        for acct, region in regions:
            console.print(
                f"  {safe_markup(acct)}: {safe_markup(remediation.account_default_command(region))}"
            )
        console.print(
            "[bold]Guardrail (SCP or IAM policy; the second statement breaks v1 callers, "
            "apply it once the backlog is empty):[/bold]"
        )
        console.print(escape(remediation.guardrail_policy_json()), soft_wrap=True)
    if not records:
        console.print("No instance delivered credentials over IMDSv1, and none answers it.")
