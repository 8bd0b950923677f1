"""Lineage: what a stolen credential minted, followed transitively, and the use of it.

A stolen credential is a root, not a leaf. With it, before anyone noticed, a thief may have
chained into another role (``sts:AssumeRole``: a new session with its own ``ASIA`` key), made
long-term credentials (``iam:CreateUser``, ``iam:CreateAccessKey``, a console password) or
changed who may do what (trust policies, attached and inline policies, group membership). The
derived credential looks like the workforce (a person switching into an admin role, a CI user's
key used from the internet); only the call that minted it ties it to the theft.

This is a pipeline step after the credential detections and their merge, because its roots
are *findings* (any credential detection's), which no detection's SQL can read. It stays
engine-agnostic and keeps every extraction in SQL:

1. the roots: one row per stolen key and address of each credential finding, registered as the
   reference table ``lineage_frontier``;
2. each round runs :data:`ROUND_SQL` (DuckDB dialect, transpiled for the engine) over
   ``lineage_event`` (``views/40_lineage.sql``): the lineage calls the frontier made. For a
   root only its calls from the finding's address count (the stolen use: the workload's own
   on-box ``AssumeRole`` calls are its business); a derived credential is the thief's wholly,
   from anywhere, from its minting on. What a round minted is the next frontier (a chained
   session may chain again or make a key), up to :data:`MAX_DEPTH` rounds;
3. the derived credentials are registered as ``derived_credential`` and the detection
   ``derived_credential_use`` (its own folder, fixtures and golden SQL, ``stage: lineage`` in
   its detection.yml) reports each one that was used, with its parent;
4. every artifact (user, key, login profile, role, policy, trust change) goes on the root
   finding (``artifacts``, all of its tree) and on the derived finding that made it.

Python here handles findings and lineage calls (a few per theft), never log records.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from imdshunt.findings import SEVERITY_RANK, Finding, FindingKind, from_arrow, iso_z
from imdshunt.schema import TS

if TYPE_CHECKING:
    from imdshunt.detect import Detection
    from imdshunt.engine.base import Engine

#: ``stage`` of a detection.yml whose detection runs in this step, not with the others.
LINEAGE_STAGE = "lineage"
#: How many times a minted credential is followed into what it minted.
MAX_DEPTH = 5

#: The credentials whose lineage calls are looked for in one round.
FRONTIER = pa.schema(
    [
        ("root_finding_id", pa.string()),
        ("root_severity", pa.string()),
        ("credential_key", pa.string()),  # access key id the calls were signed with
        ("credential_principal", pa.string()),  # or the principal's ARN (a created user)
        ("source_ip", pa.string()),  # roots: only their calls from the finding's address
        ("not_before", TS),  # derived: only calls from their minting on
        ("depth", pa.int32()),
    ]
)

#: One row per derived credential (read by detections/derived_credential_use/query.sql).
DERIVED_CREDENTIAL = pa.schema(
    [
        ("derived_id", pa.string()),
        ("root_finding_id", pa.string()),
        ("root_severity", pa.string()),
        ("lineage_depth", pa.int32()),
        ("derived_kind", pa.string()),  # role-session, access-key, user, session-token ...
        ("derived_access_key_id", pa.string()),
        ("derived_principal_arn", pa.string()),
        ("derived_role_arn", pa.string()),
        ("derived_session_name", pa.string()),
        ("derived_user_name", pa.string()),
        ("parent_access_key_id", pa.string()),
        ("parent_session", pa.string()),
        ("minting_event_id", pa.string()),
        ("minting_event_name", pa.string()),
        ("minting_time", TS),
        ("minting_account_id", pa.string()),
    ]
)

#: The lineage calls of the frontier (DuckDB dialect; transpiled for other engines). A key
#: match and a principal match are two branches rather than one OR join (Spark plans an OR
#: join as a nested loop).
ROUND_SQL = """
SELECT f.root_finding_id, f.root_severity, f.depth + 1 AS lineage_depth, e.*
FROM lineage_event e
JOIN lineage_frontier f ON e.access_key_id = f.credential_key
WHERE (f.source_ip IS NULL OR e.src_ip = f.source_ip)
  AND (f.not_before IS NULL OR e.event_time >= f.not_before)
UNION ALL
SELECT f.root_finding_id, f.root_severity, f.depth + 1 AS lineage_depth, e.*
FROM lineage_event e
JOIN lineage_frontier f ON e.actor_arn = f.credential_principal
WHERE f.credential_key IS NULL
  AND (f.not_before IS NULL OR e.event_time >= f.not_before)
ORDER BY event_time, event_id
"""

#: Artifact fields, from lineage_event columns (None values are left out of the record).
_ARTIFACT_FIELDS = {
    "type": "artifact_type",
    "event_name": "event_name",
    "event_id": "event_id",
    "time": "event_time",
    "account_id": "account_id",
    "region": "region",
    "source_ip": "src_ip",
    "by_access_key_id": "access_key_id",
    "by_principal_arn": "actor_arn",
    "user_name": "user_name",
    "role_name": "role_name",
    "role_arn": "target_role_arn",
    "session_name": "session_name",
    "access_key_id": "minted_access_key_id",
    "principal_arn": "minted_principal_arn",
    "expiration": "minted_expiration",
    "group_name": "group_name",
    "policy_arn": "policy_arn",
    "policy_name": "policy_name",
    "policy_document": "policy_document",
    "trust_policy_before": "trust_policy_before",
    "trust_policy_after": "trust_policy_after",
    "depth": "lineage_depth",
}


def is_lineage_detection(det: Detection) -> bool:
    """Does the detection run in the lineage step (``stage: lineage`` in detection.yml)?"""
    return det.meta.get("stage") == LINEAGE_STAGE


@functools.lru_cache(maxsize=8)
def _round_sql(dialect: str) -> str:
    from imdshunt.engine.portable import transpile

    return transpile(ROUND_SQL, dialect)


def _roots(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    """Frontier rows of the credential findings: each stolen key, from the finding's address;
    the session's ARN where no key was recorded."""
    rows = []
    for f in sorted(findings, key=lambda f: (str(f.get("first_seen")), f["finding_id"])):
        base = {
            "root_finding_id": f["finding_id"],
            "root_severity": f.get("severity"),
            "source_ip": f.get("source_ip"),
            "not_before": None,
            "depth": 0,
        }
        keys = [k for k in f.get("access_key_ids") or [] if k]
        for key in keys:
            rows.append({**base, "credential_key": key, "credential_principal": None})
        if not keys and f.get("role_arn") and f.get("credential_id"):
            arn = str(f["role_arn"])
            session = (
                arn.replace(":iam::", ":sts::", 1).replace(":role/", ":assumed-role/", 1)
                + "/"
                + str(f["credential_id"])
            )
            # roles with a path: the session ARN names the role by its name alone
            head, _, rest = session.partition(":assumed-role/")
            parts = rest.split("/")
            session = f"{head}:assumed-role/{parts[-2]}/{parts[-1]}"
            rows.append({**base, "credential_key": None, "credential_principal": session})
    return rows


def _minted(ev: dict[str, Any]) -> dict[str, Any] | None:
    """The credential a lineage call minted, as a derived-credential row (None when the call
    minted no credential: a policy, a trust change, a login profile ...)."""
    kind = ev["artifact_type"]
    key = ev.get("minted_access_key_id")
    principal = ev.get("minted_principal_arn")
    if kind == "role":  # a created role is an artifact; its sessions are minted by AssumeRole
        return None
    if not key and not (kind in ("user", "role-session", "federation-token") and principal):
        return None
    session = ev.get("session_name") if kind == "role-session" else None
    return {
        "root_finding_id": ev["root_finding_id"],
        "root_severity": ev["root_severity"],
        "lineage_depth": ev["lineage_depth"],
        "derived_kind": kind,
        "derived_access_key_id": key,
        "derived_principal_arn": principal,
        "derived_role_arn": ev.get("target_role_arn") if kind == "role-session" else None,
        "derived_session_name": session,
        "derived_user_name": ev.get("user_name"),
        "parent_access_key_id": ev.get("access_key_id"),
        "parent_session": ev.get("actor_arn"),
        "minting_event_id": ev.get("event_id"),
        "minting_event_name": ev.get("event_name"),
        "minting_time": ev.get("event_time"),
        "minting_account_id": ev.get("account_id"),
    }


def artifact(ev: dict[str, Any]) -> dict[str, Any]:
    """A lineage call as an artifact record of the findings contract (see findings.py)."""
    out = {}
    for name, col in _ARTIFACT_FIELDS.items():
        value = ev.get(col)
        if value is not None:
            out[name] = iso_z(value) if isinstance(value, dt.datetime) else value
    return out


def follow(engine: Engine, findings: Sequence[Finding]) -> tuple[list, list]:
    """Follow the credential findings' lineage on ``engine``: (lineage calls, derived rows).

    Each lineage call is a ``lineage_event`` row with the root it descends from; each derived
    row is a :data:`DERIVED_CREDENTIAL` record. A credential reached from two roots belongs to
    the first (roots in order of first use)."""
    frontier = _roots([f for f in findings if f.kind is FindingKind.CREDENTIAL])
    if not frontier or not engine.has_rows("lineage_event"):
        return [], []
    seen_events: set[str] = set()
    seen_credentials: set[str] = set()
    calls: list[dict[str, Any]] = []
    derived: list[dict[str, Any]] = []
    sql = _round_sql(engine.dialect)
    for _ in range(MAX_DEPTH):
        engine.register_table(
            "lineage_frontier", pa.Table.from_pylist(frontier, FRONTIER), scratch=True
        )
        rows = engine.query(sql, label="lineage round").to_pylist()
        frontier = []
        for ev in rows:
            ident = ev.get("event_id") or f"{ev.get('event_time')}|{ev.get('actor_arn')}"
            if ident in seen_events:
                continue
            seen_events.add(ident)
            calls.append(ev)
            minted = _minted(ev)
            if minted is None:
                continue
            cred = minted["derived_access_key_id"] or minted["derived_principal_arn"]
            if cred in seen_credentials:
                continue
            seen_credentials.add(cred)
            minted["derived_id"] = hashlib.sha256(
                f"{minted['root_finding_id']}|{cred}".encode()
            ).hexdigest()[:16]
            derived.append(minted)
            frontier.append(
                {
                    "root_finding_id": minted["root_finding_id"],
                    "root_severity": minted["root_severity"],
                    "credential_key": minted["derived_access_key_id"],
                    # a created user's every key and console session is the thief's
                    "credential_principal": None
                    if minted["derived_access_key_id"]
                    else minted["derived_principal_arn"],
                    "source_ip": None,
                    "not_before": minted["minting_time"],
                    "depth": minted["lineage_depth"],
                }
            )
        if not frontier:
            break
    return calls, derived


def add_lineage(
    engine: Engine,
    findings: list[Finding],
    detections: dict[str, Detection] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
) -> list[Finding]:
    """The findings with their lineage: artifacts on each root (and on each derived finding
    that made them), and one finding per used derived credential from every selected lineage
    detection (``stage: lineage``). Findings are changed in place; the new ones are returned
    appended."""
    calls, derived = follow(engine, findings)
    if not calls:
        return findings
    by_id = {f["finding_id"]: f for f in findings}
    for ev in calls:
        root = by_id.get(ev["root_finding_id"])
        if root is not None:
            _add_artifact(root, artifact(ev))
    lineage_dets = [d for d in (detections or {}).values() if is_lineage_detection(d)]
    if not derived or not lineage_dets:
        return findings
    engine.register_table(
        "derived_credential", pa.Table.from_pylist(derived, DERIVED_CREDENTIAL), scratch=True
    )
    new: list[Finding] = []
    for det in lineage_dets:
        table = engine.run_detection(det, (params or {}).get(det.id))
        new.extend(from_arrow(table, det))
    _link(new, calls, by_id)
    return findings + new


def _link(new: list[Finding], calls: list[dict[str, Any]], roots: dict[str, Finding]) -> None:
    """Parent finding ids through the tree, each derived finding's own artifacts, and the
    root's list of its derived findings."""
    by_key: dict[str, Finding] = {}
    for f in new:
        f.finding_id = hashlib.sha256(f"{f.detection}|{f.derived_id}".encode()).hexdigest()[:16]
        for key in f.get("access_key_ids") or []:
            by_key.setdefault(key, f)
        if f.get("derived_access_key_id"):
            by_key.setdefault(f["derived_access_key_id"], f)
        if f.get("derived_principal_arn"):
            by_key.setdefault(f["derived_principal_arn"], f)
    for f in new:
        parent = by_key.get(f.get("parent_access_key_id") or "") or by_key.get(
            f.get("parent_session") or ""
        )
        if parent is not None and parent is not f and (f.get("lineage_depth") or 1) > 1:
            f.parent_finding_id = parent.finding_id
        else:
            f.parent_finding_id = f.root_finding_id
        root = roots.get(f.get("root_finding_id") or "")
        if root is not None:
            if root.derived_finding_ids is None:
                root.derived_finding_ids = []
            ids = root.derived_finding_ids
            ids.append(f.finding_id)
            ids.sort()  # whatever order the engine returned the rows in
            rank = SEVERITY_RANK.get(root.get("severity") or "info", 0)
            if SEVERITY_RANK.get(f.get("severity") or "info", 0) < rank:
                f.severity = root.severity  # at least the parent's, whatever the SQL said
    for ev in calls:
        maker = by_key.get(ev.get("access_key_id") or "") or by_key.get(ev.get("actor_arn") or "")
        if maker is not None:
            _add_artifact(maker, artifact(ev))


def _add_artifact(finding: Finding, record: dict[str, Any]) -> None:
    if finding.artifacts is None:
        finding.artifacts = []
    finding.artifacts.append(record)
