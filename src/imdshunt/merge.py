"""One finding per (credential, source address): fold what several detections said about it.

The outside-AWS detection and the binding detections (other AWS account, foreign VPC
endpoint, cross instance, one key from several networks) look at the same calls from
different angles, so one stolen key used from one address can satisfy several of them. The
analyst gets one finding: the strongest reason first, every reason listed, the union of the
evidence, and ``detections`` naming every detection that fired (strongest first).
``merged_finding_ids`` keeps the ids of the folded findings so a run can still be joined to
an earlier run that reported them separately.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from imdshunt.detect import DEFAULT_MERGE_PRIORITY
from imdshunt.findings import SEVERITY_RANK, Finding, FindingKind

#: The fields that make two credential findings "the same credential used from the same place".
MERGE_KEY = ("account_id", "role", "credential_type", "credential_id", "source_ip")

CONFIDENCE_RANK = {"high": 2, "medium": 1, "low": 0}

#: Evidence ids kept in a merged finding when every part was under the detections' own cap.
DEFAULT_MAX_EVENT_IDS = 50

_UNION_FIELDS = ("access_key_ids", "actions", "user_agents", "regions", "evidence")


def strength(finding: Finding) -> tuple:
    """Sort key, strongest first: severity, confidence, the detection's ``merge_priority``
    (detection.yml: direct address evidence before inventory-backed binding before inferred
    binding), detection id, finding id."""
    return (
        -SEVERITY_RANK.get(finding.severity or "info", 0),
        # A finding without a confidence (outside AWS) rests on the address class: certain.
        -CONFIDENCE_RANK.get(finding.confidence or "high", 0),
        finding.get("merge_priority", DEFAULT_MERGE_PRIORITY),
        str(finding.detection or ""),
        str(finding.finding_id or ""),
    )


def _union(lists: Iterable[Any]) -> list:
    out: list = []
    for values in lists:
        for v in values or []:
            if v not in out:
                out.append(v)
    return out


def _fold(group: list[Finding]) -> Finding:
    group = sorted(group, key=strength)
    if len(group) == 1:
        return group[0].copy()
    head = dict(group[0].record)
    head["detections"] = _union([[f["detection"]] for f in group])
    head["merged_finding_ids"] = [f.get("finding_id") for f in group[1:]]
    head["reasons"] = _union(f.get("reasons") for f in group)
    # Every technique any agreeing detection cites, the leading detection's first.
    head["mitre"] = list({t["id"]: t for f in group for t in f.get("mitre") or []}.values())
    for name in _UNION_FIELDS:
        if any(name in f for f in group):
            merged = _union(f.get(name) for f in group)
            head[name] = merged if name == "evidence" else sorted(merged, key=str)
    # Each detection capped its own list (param max_event_ids); keep at least that many.
    cap = max([len(f.get("event_ids") or []) for f in group] + [DEFAULT_MAX_EVENT_IDS])
    head["event_ids"] = sorted(_union(f.get("event_ids") for f in group))[:cap]
    for name, pick in (
        ("event_count", max),
        ("distinct_actions", max),
        ("first_seen", min),
        ("last_seen", max),
        ("key_issued_at", min),
    ):
        values = [f[name] for f in group if f.get(name) is not None]
        if values:
            head[name] = pick(values)
    for f in group[1:]:  # fields only a weaker finding carries (other_instance_id ...)
        for k, v in f.items():
            if head.get(k) is None and v is not None:
                head[k] = v
    return Finding(head)


def merge_findings(findings: list[Finding]) -> list[Finding]:
    """Fold credential findings of different detections that share :data:`MERGE_KEY`.

    Only findings of *different* detections are folded: a detection's own grouping is
    authoritative (two findings of one detection under the same key differ in something it
    groups by, e.g. the Kubernetes service account behind one IRSA session name), so such a
    group is left as it is. Other findings pass through. The result keeps the input order of
    each group's first finding.
    """
    groups: dict[tuple, list[Finding]] = {}
    order: list[tuple] = []
    for i, f in enumerate(findings):
        if f.kind is FindingKind.CREDENTIAL:
            key = (f.kind, *(f.get(k) for k in MERGE_KEY))
        else:
            key = ("other", i)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(f)
    out: list[Finding] = []
    for k in order:
        group = groups[k]
        detections = [f.detection for f in group]
        if len(set(detections)) == len(detections):
            out.append(_fold(group))
        else:
            out.extend(group)
    return out
