"""Shared helpers of the standard-format outputs (OCSF, ASFF) and the HTML report."""

from __future__ import annotations

import datetime as dt
from typing import Any

from imdshunt.findings import Finding, FindingKind

#: What a finding without a ``mitre`` field (written before it existed) is filed under.
DEFAULT_MITRE = ("T1552.005",)


def techniques_of(finding: Finding) -> list[dict[str, Any]]:
    """The ATT&CK techniques the finding carries (field ``mitre``, named at detection time).

    A finding read from a file written before the field existed is filed under T1552.005.
    """
    carried = finding.get("mitre")
    if carried:
        return [t for t in carried if isinstance(t, dict) and t.get("id")]
    from imdshunt.mitre import techniques

    return techniques(DEFAULT_MITRE)


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO 8601 string (``Z`` or offset) or datetime as an aware UTC datetime."""
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        t = value
    else:
        try:
            t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def epoch_ms(value: Any) -> int | None:
    t = parse_time(value)
    return int(t.timestamp() * 1000) if t else None


def iso_ms(value: Any) -> str | None:
    """``2026-11-02T10:01:00.000Z``: the millisecond form ASFF documents."""
    t = parse_time(value)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z" if t else None


def first_time(finding: Finding) -> Any:
    return (
        finding.get("first_seen")
        or finding.get("first_attempt")
        or finding.get("time")
        or finding.get("first_off_box_use")
    )


def last_time(finding: Finding) -> Any:
    return finding.get("last_seen") or finding.get("time") or first_time(finding)


def one_line_description(finding: Finding) -> str:
    reasons = [str(r) for r in (finding.get("reasons") or [])]
    if reasons:
        return " ".join(r if r.endswith(".") else r + "." for r in reasons)
    if finding.kind is FindingKind.WEB:
        return (
            f"{finding.get('client_ip')} sent a request for the metadata service "
            f"({finding.get('endpoint')}, {finding.get('encoding')}) to "
            f"{finding.get('target_instance') or finding.get('target_ip')}: "
            f"{finding.get('request_url')}"
        )
    return str(finding.get("description") or "").strip() or str(finding.get("title") or "")


def title_of(finding: Finding) -> str:
    title = finding.get("title") or finding.get("detection") or "imdshunt finding"
    subject = finding.get("credential_id") or finding.get("target_instance")
    where = finding.get("source_ip") or finding.get("client_ip")
    if subject and where:
        return f"{title}: {subject} from {where}"
    return str(title)


def artifact_summary(artifact: dict[str, Any]) -> str:
    """One artifact (``artifacts`` of a finding, see imdshunt.findings.ARTIFACT_FIELDS) as
    one line: what, which, by which call."""
    a = artifact
    kind = a.get("type") or "artifact"
    if kind == "role-session":
        what = f"{a.get('role_name')}/{a.get('session_name')} key {a.get('access_key_id')}"
    elif kind in ("access-key", "session-token", "federation-token"):
        what = f"{a.get('access_key_id')}" + (
            f" of user {a['user_name']}" if a.get("user_name") else ""
        )
    elif kind in ("user-policy", "role-policy"):
        who = a.get("user_name") or a.get("role_name")
        what = f"{a.get('policy_arn') or a.get('policy_name')} on {who}"
    elif kind == "group-membership":
        what = f"{a.get('user_name')} in {a.get('group_name')}"
    elif kind in ("role", "trust-policy"):
        what = str(a.get("role_name"))
    else:
        what = str(a.get("user_name") or a.get("principal_arn") or "?")
    return f"{kind} {what} ({a.get('event_name')} {a.get('event_id')} at {a.get('time')})"


def lineage_line(finding: Finding) -> str | None:
    """Where a derived credential came from, in one line (None for other findings)."""
    if not finding.get("minting_event_name"):
        return None
    return (
        f"minted by {finding.get('minting_event_name')} (event {finding.get('minting_event_id')}) "
        f"signed with {finding.get('parent_access_key_id') or finding.get('parent_session')}; "
        f"parent finding {finding.get('parent_finding_id')}"
    )
