"""Turn findings (the findings contract, JSON lines) into respond targets."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from imdshunt.errors import InputError, UsageError, not_json
from imdshunt.respond.plan import Target
from imdshunt.respond.policies import parse_time

#: Finding fields a credential-use finding needs for respond.
_REQUIRED = ("role", "credential_id")


def load_findings(path: str | Path) -> list[dict[str, Any]]:
    """Read a ``--format jsonl`` findings file; blank lines are skipped."""
    path = Path(path)
    out: list[dict[str, Any]] = []
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise not_json(path, exc, line=n) from exc
            if not isinstance(record, dict):
                raise InputError(str(path), "a finding must be a JSON object", n)
            record.setdefault("_line", n)
            out.append(record)
    return out


def is_credential_finding(finding: dict[str, Any]) -> bool:
    return all(finding.get(k) for k in _REQUIRED)


def _derived_key_target(finding: dict[str, Any]) -> Target:
    """A derived credential that is no role session (a key, a user, a token the thief
    minted): contained by the lineage steps alone (imdshunt.respond.lineage)."""
    from imdshunt.respond.lineage import derived_artifact

    own = derived_artifact(finding)
    return Target(
        role_name="",
        session_name=str(finding.get("credential_id") or finding.get("derived_access_key_id")),
        credential_type=finding.get("credential_type") or "derived",
        account_id=finding.get("account_id"),
        access_key_ids=list(finding.get("access_key_ids") or []),
        actions=list(finding.get("actions") or []),
        source_ip=finding.get("source_ip"),
        first_seen=parse_time(finding["first_seen"]) if finding.get("first_seen") else None,
        last_seen=parse_time(finding["last_seen"]) if finding.get("last_seen") else None,
        artifacts=([own] if own else []) + list(finding.get("artifacts") or []),
    )


def select_finding(findings: list[dict[str, Any]], finding_id: str) -> dict[str, Any]:
    """Pick one finding by ``finding_id``/``id`` field, line number, session or access key id.

    The findings contract has no id field yet, so the line number in the file, the
    ``credential_id`` (session name) and any of the ``access_key_ids`` also identify one.
    """
    matches = []
    for f in findings:
        keys = {str(f.get("finding_id", "")), str(f.get("id", "")), str(f.get("_line", ""))}
        keys |= {str(f.get("credential_id", ""))} | {str(k) for k in f.get("access_key_ids", [])}
        if finding_id in keys - {""}:
            matches.append(f)
    if not matches:
        raise UsageError(f"no finding matches {finding_id!r}")
    creds = {(m.get("role"), m.get("credential_id")) for m in matches}
    if len(creds) > 1:
        raise UsageError(f"{finding_id!r} matches findings of several sessions: {sorted(creds)}")
    return matches[0]


def target_from_finding(
    finding: dict[str, Any], all_findings: Iterable[dict[str, Any]] = ()
) -> Target:
    """A :class:`Target` from one credential-use finding.

    ``all_findings`` (the rest of the file) supplies the other sessions seen using the same
    role, which the ``--role-wide`` warning names.
    """
    if not finding.get("role") and finding.get("derived_kind"):
        return _derived_key_target(finding)
    if not is_credential_finding(finding):
        raise UsageError(
            "the finding is not a credential-use finding (needs 'role' and 'credential_id')"
        )
    role = str(finding["role"])
    if "/" in role:  # a role path was kept; IAM APIs want the bare name
        role = role.rsplit("/", 1)[-1]
    session = str(finding["credential_id"])
    ctype = finding.get("credential_type") or "ec2-instance"
    others = sorted(
        {
            str(f["credential_id"])
            for f in all_findings
            if is_credential_finding(f)
            and f.get("role") == finding["role"]
            and str(f["credential_id"]) != session
        }
    )
    return Target(
        role_name=role,
        session_name=session,
        instance_id=session if ctype == "ec2-instance" and session.startswith("i-") else None,
        credential_type=ctype,
        account_id=finding.get("account_id"),
        access_key_ids=list(finding.get("access_key_ids") or []),
        actions=list(finding.get("actions") or []),
        source_ip=finding.get("source_ip"),
        first_seen=parse_time(finding["first_seen"]) if finding.get("first_seen") else None,
        last_seen=parse_time(finding["last_seen"]) if finding.get("last_seen") else None,
        other_sessions=others,
        artifacts=list(finding.get("artifacts") or []),
    )


def targets_from_findings(findings: list[dict[str, Any]]) -> list[Target]:
    """One target per distinct (role, session) among the credential-use findings."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for f in findings:
        if is_credential_finding(f):
            groups.setdefault((str(f["role"]), str(f["credential_id"])), []).append(f)
    targets = []
    for group in groups.values():
        latest = max(group, key=lambda f: str(f.get("last_seen", "")))
        target = target_from_finding(latest, findings)
        target.access_key_ids = sorted({k for f in group for k in f.get("access_key_ids") or []})
        target.actions = sorted({a for f in group for a in f.get("actions") or []})
        target.artifacts = [a for f in group for a in f.get("artifacts") or []]
        firsts = [parse_time(f["first_seen"]) for f in group if f.get("first_seen")]
        target.first_seen = min(firsts) if firsts else None
        targets.append(target)
    return targets
