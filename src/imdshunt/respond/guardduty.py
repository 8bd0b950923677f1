"""Is GuardDuty watching for stolen instance credentials, and what did it catch that we did not?

- Detectors: ``ListDetectors`` / ``GetDetector`` per region
  (https://docs.aws.amazon.com/guardduty/latest/APIReference/API_GetDetector.html).
- Suppression rules are filters whose action is ``ARCHIVE``
  (https://docs.aws.amazon.com/guardduty/latest/ug/findings_suppression-rule.html).
- GuardDuty sends findings to EventBridge's *default* bus with ``source: aws.guardduty`` and
  ``detail-type: GuardDuty Finding``
  (https://docs.aws.amazon.com/guardduty/latest/ug/guardduty_findings_eventbridge.html).
- The two finding types:
  https://docs.aws.amazon.com/guardduty/latest/ug/guardduty_finding-types-iam.html
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.config import Config

from imdshunt.errors import AwsActionError, InputError, not_json
from imdshunt.permissions import needs
from imdshunt.respond.aws import AWS_ERRORS, client, describe_error
from imdshunt.respond.policies import iso_z, parse_time

EXFIL_OUTSIDE = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"
EXFIL_INSIDE = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.InsideAWS"
EXFIL_TYPES = (EXFIL_OUTSIDE, EXFIL_INSIDE)

#: A read-only check: fewer retries than the respond steps, still the standard mode.
_CHECK_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})


@dataclass
class FilterVerdict:
    name: str
    suppresses: dict[str, str]  # finding type -> "yes" | "possibly"
    criteria: dict[str, Any]


@dataclass
class RegionCheck:
    """GuardDuty's readiness in one region."""

    region: str
    detector_id: str | None = None
    detector_status: str | None = None
    suppressing_filters: list[FilterVerdict] = field(default_factory=list)
    filters_checked: bool = False
    routing_rules: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "detector_id": self.detector_id,
            "detector_status": self.detector_status,
            "filters_checked": self.filters_checked,
            "suppressing_filters": [
                {"name": f.name, "suppresses": f.suppresses, "criteria": f.criteria}
                for f in self.suppressing_filters
            ],
            "routing_rules": self.routing_rules,
            "problems": self.problems,
            "errors": self.errors,
            "ok": self.ok,
        }


def filter_suppresses(filter_record: dict[str, Any]) -> dict[str, str]:
    """Which exfiltration types an ARCHIVE filter (a ``GetFilter`` response) hides.

    ``"yes"`` when its ``type`` criterion names the type (``Eq``/``Equals``) or matches it
    through ``Neq``/``NotEquals`` of other types; ``"possibly"`` when it has no ``type``
    criterion (it archives any finding matching its other criteria).
    """
    if filter_record.get("Action") != "ARCHIVE":
        return {}
    criterion = (filter_record.get("FindingCriteria") or {}).get("Criterion") or {}
    type_crit = criterion.get("type")
    out: dict[str, str] = {}
    for ftype in EXFIL_TYPES:
        if type_crit is None:
            out[ftype] = "possibly"
            continue
        eq = set(type_crit.get("Eq", []) or []) | set(type_crit.get("Equals", []) or [])
        neq = set(type_crit.get("Neq", []) or []) | set(type_crit.get("NotEquals", []) or [])
        if ftype in eq or (neq and not eq and ftype not in neq):
            out[ftype] = "yes"
    return out


def _routes_guardduty(pattern_text: str | None) -> bool:
    if not pattern_text:
        return False
    try:
        pattern = json.loads(pattern_text)
    except json.JSONDecodeError:
        return False
    source = pattern.get("source")
    if source is None:
        return False
    values = source if isinstance(source, list) else [source]
    return "aws.guardduty" in [v for v in values if isinstance(v, str)]


@needs(
    "guardduty:ListDetectors",
    "guardduty:GetDetector",
    "guardduty:ListFilters",
    "guardduty:GetFilter",
    "events:ListRules",
    "events:ListTargetsByRule",
    commands=("guardduty",),
)
def check_region(session: Any, region: str) -> RegionCheck:
    """Check one region: detector enabled, suppression filters, EventBridge routing."""
    res = RegionCheck(region)
    gd = client(session, "guardduty", region, _CHECK_CONFIG)
    try:
        ids = gd.list_detectors().get("DetectorIds", [])
    except AWS_ERRORS as exc:
        res.errors.append(f"ListDetectors failed: {describe_error(exc)}")
        ids = []
    else:
        if not ids:
            res.problems.append("no GuardDuty detector")
    if ids:
        res.detector_id = ids[0]
        try:
            res.detector_status = gd.get_detector(DetectorId=ids[0]).get("Status")
        except AWS_ERRORS as exc:
            res.errors.append(f"GetDetector failed: {describe_error(exc)}")
        if res.detector_status and res.detector_status != "ENABLED":
            res.problems.append(f"detector {ids[0]} is {res.detector_status}")
        names: list[str] = []
        try:
            kwargs: dict[str, Any] = {"DetectorId": ids[0]}
            while True:
                page = gd.list_filters(**kwargs)
                names.extend(page.get("FilterNames", []))
                if not page.get("NextToken"):
                    break
                kwargs["NextToken"] = page["NextToken"]
            res.filters_checked = True
        except AWS_ERRORS as exc:
            res.errors.append(f"ListFilters failed, suppression not checked: {describe_error(exc)}")
        for name in names:
            try:
                record = gd.get_filter(DetectorId=ids[0], FilterName=name)
            except AWS_ERRORS as exc:
                res.errors.append(f"GetFilter {name} failed: {describe_error(exc)}")
                continue
            verdict = filter_suppresses(record)
            if verdict:
                res.suppressing_filters.append(
                    FilterVerdict(name, verdict, record.get("FindingCriteria") or {})
                )
                res.problems.append(
                    f"filter {name} archives "
                    + ", ".join(f"{t.rsplit('.', 1)[-1]} ({v})" for t, v in verdict.items())
                )
    ev = client(session, "events", region, _CHECK_CONFIG)
    try:
        kwargs = {}
        while True:
            page = ev.list_rules(**kwargs)
            for rule in page.get("Rules", []):
                if rule.get("State") != "ENABLED" or not _routes_guardduty(
                    rule.get("EventPattern")
                ):
                    continue
                targets = ev.list_targets_by_rule(Rule=rule["Name"]).get("Targets", [])
                if targets:
                    res.routing_rules.append(rule["Name"])
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
    except AWS_ERRORS as exc:
        res.errors.append(f"EventBridge check failed: {describe_error(exc)}")
    else:
        if not res.routing_rules:
            res.problems.append(
                "no enabled EventBridge rule with a target routes GuardDuty findings"
            )
    return res


@needs("ec2:DescribeRegions", commands=("guardduty",))
def default_regions(session: Any) -> list[str]:
    """Regions enabled for the account (``ec2:DescribeRegions``)."""
    try:
        region = getattr(session, "region_name", None) or "us-east-1"
        regions = client(session, "ec2", region).describe_regions()["Regions"]
    except AWS_ERRORS as exc:
        raise AwsActionError(f"cannot list regions: {describe_error(exc)}") from exc
    return sorted(r["RegionName"] for r in regions)


def check(session: Any, regions: Sequence[str] | None = None) -> list[RegionCheck]:
    """Run :func:`check_region` on ``regions`` (default: every region enabled for the account)."""
    return [check_region(session, r) for r in (regions or default_regions(session))]


# ----------------------------------------------------------------------------- comparison


def load_guardduty_findings(path: str | Path) -> list[dict[str, Any]]:
    """Read the output of ``aws guardduty get-findings`` (``{"Findings": [...]}``) or a list."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise not_json(path, exc) from exc
    if isinstance(data, dict):
        data = data.get("Findings")
    if not isinstance(data, list):
        raise InputError(str(path), 'expected the output of get-findings: {"Findings": [...]}')
    return data


def _gd_keys(f: dict[str, Any]) -> tuple[set[str], str | None]:
    res = f.get("Resource", {}) or {}
    key = (res.get("AccessKeyDetails") or {}).get("AccessKeyId")
    inst = (res.get("InstanceDetails") or {}).get("InstanceId")
    if not inst:
        principal = (res.get("AccessKeyDetails") or {}).get("PrincipalId") or ""
        inst = principal.split(":", 1)[1] if ":" in principal else None
    return ({key} if key else set()), inst


def _gd_window(f: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    svc = f.get("Service", {}) or {}
    first = svc.get("EventFirstSeen") or f.get("CreatedAt")
    last = svc.get("EventLastSeen") or f.get("UpdatedAt")
    return (parse_time(first) if first else None, parse_time(last) if last else None)


@dataclass
class Comparison:
    """GuardDuty vs imdshunt on the same window."""

    both: list[dict[str, Any]]
    only_guardduty: list[dict[str, Any]]
    only_imdshunt: list[dict[str, Any]]
    outside_window: int
    other_guardduty_types: int
    window: tuple[str | None, str | None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": {"start": self.window[0], "end": self.window[1]},
            "both": self.both,
            "only_guardduty": self.only_guardduty,
            "only_imdshunt": self.only_imdshunt,
            "guardduty_outside_window": self.outside_window,
            "guardduty_other_types": self.other_guardduty_types,
        }


def compare_findings(
    guardduty: Iterable[dict[str, Any]], ours: Iterable[dict[str, Any]]
) -> Comparison:
    """Match GuardDuty exfiltration findings with imdshunt credential findings.

    A pair matches when they share an access key id, or else the same instance (imdshunt's
    ``credential_id``) with overlapping time windows. GuardDuty findings outside the window
    covered by imdshunt's findings (earliest ``first_seen`` to latest ``last_seen``) are only
    counted, since imdshunt did not look at that time.
    """
    ours = [o for o in ours if o.get("credential_id")]
    starts = [parse_time(o["first_seen"]) for o in ours if o.get("first_seen")]
    ends = [parse_time(o["last_seen"]) for o in ours if o.get("last_seen")]
    w_start, w_end = (min(starts) if starts else None), (max(ends) if ends else None)
    gd_relevant, other_types, outside = [], 0, 0
    for f in guardduty:
        if f.get("Type") not in EXFIL_TYPES:
            other_types += 1
            continue
        first, last = _gd_window(f)
        if (w_start and last and last < w_start) or (w_end and first and first > w_end):
            outside += 1
            continue
        gd_relevant.append(f)
    matched_ours: set[int] = set()
    both, only_gd = [], []
    for f in gd_relevant:
        keys, inst = _gd_keys(f)
        g_first, g_last = _gd_window(f)
        hit = None
        for i, o in enumerate(ours):
            if keys & set(o.get("access_key_ids") or []):
                hit = i
                break
        if hit is None and inst:
            for i, o in enumerate(ours):
                if o.get("credential_id") != inst:
                    continue
                o_first = parse_time(o["first_seen"]) if o.get("first_seen") else None
                o_last = parse_time(o["last_seen"]) if o.get("last_seen") else None
                if (
                    o_first
                    and g_last
                    and g_last < o_first
                    or o_last
                    and g_first
                    and g_first > o_last
                ):
                    continue
                hit = i
                break
        summary = {
            "guardduty_id": f.get("Id"),
            "type": f.get("Type"),
            "instance_id": inst,
            "access_key_ids": sorted(keys),
        }
        if hit is None:
            only_gd.append(summary)
        else:
            matched_ours.add(hit)
            both.append({**summary, "imdshunt_detection": ours[hit].get("detection")})
    only_ours = [
        {
            "detection": o.get("detection"),
            "credential_id": o.get("credential_id"),
            "access_key_ids": o.get("access_key_ids") or [],
            "source_ip": o.get("source_ip"),
        }
        for i, o in enumerate(ours)
        if i not in matched_ours
    ]
    return Comparison(
        both,
        only_gd,
        only_ours,
        outside,
        other_types,
        (iso_z(w_start) if w_start else None, iso_z(w_end) if w_end else None),
    )
