"""The IMDSv1 exposure backlog: instances still handing out credentials over IMDSv1, ranked.

Evidence comes from two places:

* CloudTrail (``api_activity``): ``userIdentity.sessionContext.ec2RoleDelivery`` is ``"1.0"``
  when an instance-profile credential was delivered by IMDSv1 and ``"2.0"`` by IMDSv2
  (CloudTrail User Guide, "CloudTrail userIdentity element"). Every call made with the
  credential carries it, so the query counts calls, not credential deliveries.
* An EC2 inventory (``aws ec2 describe-instances``): an instance with
  ``MetadataOptions.HttpTokens: optional`` answers IMDSv1 whether or not CloudTrail has seen
  it used; an SSRF does not need the application to use v1 itself.

* Web logs, through the hunt's own web detection: each ``imds_ssrf_attempt`` finding whose
  target address the hunt mapped to an instance (``target_instance``, see
  :func:`imdshunt.pipeline.link_chains`) counts as attempts against that instance. Only the
  EC2 IMDS endpoints count (``ec2-imds-ipv4``, ``ec2-imds-ipv6``): a request for the ECS or
  EKS credential endpoint does not reach the instance profile's credentials.

Each record is an ``imdsv1_exposure`` record; its fields are listed in ``docs/exposure.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from imdshunt.enrich.inventory_ec2 import Ec2Instance, load_ec2_inventory
from imdshunt.errors import EngineError, UsageError
from imdshunt.exposure import remediation
from imdshunt.exposure.privilege import (
    RANKING_EXPLANATION,
    IamAuthorizationDetails,
    PrivilegeAssessment,
    assess_from_usage,
)
from imdshunt.exposure.reachability import Reachability

DETECTION = "imdsv1_exposure"
RECORD_VERSION = "1"

#: ``status`` values, in backlog order.
STATUS_V1_USED = "v1-used"  # CloudTrail shows credentials delivered over IMDSv1
STATUS_V1_ALLOWED = "v1-allowed"  # inventory: HttpTokens optional; no v1 use seen
STATUS_FIXED = "v1-used-since-fixed"  # v1 use seen, but inventory says v1 no longer answers
_STATUS_ORDER = {STATUS_V1_USED: 0, STATUS_V1_ALLOWED: 1, STATUS_FIXED: 2}

#: ``endpoint`` values of ``imds_ssrf_attempt`` that reach the instance profile's credentials.
IMDS_ENDPOINTS = frozenset({"ec2-imds-ipv4", "ec2-imds-ipv6"})
#: Reachable from the internet before unknown before not reachable, within a tier.
_REACHABLE_ORDER = {True: 0, None: 1, False: 2}
#: Severities in ascending order; a probed instance moves one step up (critical stays).
_SEVERITY_STEPS = ("low", "medium", "high", "critical")


@dataclass
class SsrfAttempts:
    """Metadata SSRF attempts against one instance, from the hunt's web findings."""

    attempts: int = 0
    clients: set[str] = field(default_factory=set)
    last: datetime | None = None


def _when(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def ssrf_attempts_by_instance(
    web_findings: Iterable[Mapping[str, Any]],
) -> dict[str, SsrfAttempts]:
    """IMDS SSRF attempts per target instance (lower-cased id) from ``imds_ssrf_attempt``
    findings whose ``target_instance`` is set (the hunt maps ``target_ip`` to an instance
    from the inventory and from the instances' own calls). A finding is all requests of one
    client against one target and endpoint; its ``request_count`` is what is summed."""
    out: dict[str, SsrfAttempts] = {}
    for f in web_findings:
        if f.get("detection") != "imds_ssrf_attempt" or f.get("endpoint") not in IMDS_ENDPOINTS:
            continue
        instance = f.get("target_instance")
        if not instance:
            continue
        agg = out.setdefault(str(instance).lower(), SsrfAttempts())
        agg.attempts += int(f.get("request_count") or 1)
        if f.get("client_ip"):
            agg.clients.add(str(f["client_ip"]))
        last = _when(f.get("last_seen") or f.get("time"))
        if last is not None and (agg.last is None or last > agg.last):
            agg.last = last
    return out


def backlog_sql() -> str:
    """The DuckDB SQL of the backlog query over ``api_activity``."""
    return resources.files("imdshunt.exposure").joinpath("backlog.sql").read_text("utf-8")


def _iso(ts: Any) -> str | None:
    if ts is None:
        return None
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(ts)


def _role_name_from_arn(arn: str | None) -> str | None:
    return arn.rsplit("/", 1)[-1] if arn and "/" in arn else None


def backlog_sql_for(dialect: str) -> str:
    """The backlog query in an engine's dialect (transpiled from DuckDB's like a detection)."""
    if dialect == "duckdb":
        return backlog_sql()
    from imdshunt.engine.portable import transpile

    return transpile(backlog_sql(), dialect)


def _query(source: Any) -> list[dict[str, Any]]:
    if isinstance(source, duckdb.DuckDBPyConnection):
        # A bare connection holding api_activity (library callers, tests): no engine around it.
        try:
            rel = source.sql(backlog_sql())
            # duckdb 2 has Relation.to_arrow_table(); duckdb 1 calls it arrow().
            fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
            return fetch().to_pylist()
        except duckdb.CatalogException as e:
            raise UsageError(f"the connection has no api_activity view: {e}") from e
        except duckdb.Error as e:
            raise EngineError(f"IMDSv1 backlog query failed: {e}") from e
    source.ensure_views()
    if not source.table_exists("api_activity"):
        raise UsageError(f"the {source.name} engine has no api_activity table")
    return source.query(backlog_sql_for(source.dialect), label="IMDSv1 backlog").to_pylist()


def _new_record(instance_id: str) -> dict[str, Any]:
    return {
        "detection": DETECTION,
        "record_version": RECORD_VERSION,
        "severity": None,
        "rank": None,
        "status": None,
        "account_id": None,
        "region": None,
        "region_source": None,
        "regions": [],
        "role": None,
        "role_arn": None,
        "credential_type": "ec2-instance",
        "instance_id": instance_id,
        "name": None,
        "state": None,
        "http_tokens": None,
        "http_put_response_hop_limit": None,
        "http_endpoint": None,
        "instance_profile_arn": None,
        "delivery_versions": [],
        "v1_event_count": 0,
        "v2_event_count": 0,
        "unknown_delivery_event_count": 0,
        "event_count": 0,
        "first_v1_use": None,
        "last_v1_use": None,
        "first_seen": None,
        "last_seen": None,
        "v1_source_ips": [],
        "privilege_source": None,
        "privilege_score": 0,
        "privilege_categories": [],
        "privilege_reasons": [],
        "privilege_policies": [],
        "sensitive_actions_seen": [],
        "ssrf_attempts": 0,
        "ssrf_clients": [],
        "last_ssrf_attempt": None,
        "reachable_from_internet": None,
        "reachable_via": [],
        "metadata_no_token_calls": None,
        "metadata_no_token_window": None,
        "safe_to_enforce": False,
        "reasons": [],
        "remediation": None,
        "remediation_check": None,
        "remediation_caveat": None,
        "account_remediation": None,
    }


def _apply_inventory(rec: dict[str, Any], inv: Ec2Instance) -> None:
    rec.update(
        name=inv.name,
        state=inv.state,
        http_tokens=inv.http_tokens,
        http_put_response_hop_limit=inv.http_put_response_hop_limit,
        http_endpoint=inv.http_endpoint,
        instance_profile_arn=inv.instance_profile_arn,
    )
    if inv.region:
        rec["region"], rec["region_source"] = inv.region, "inventory"
    if not rec["account_id"] and inv.account_id:
        rec["account_id"] = inv.account_id


def _apply_privilege(rec: dict[str, Any], a: PrivilegeAssessment) -> None:
    rec.update(
        privilege_source=a.source,
        privilege_score=a.score,
        privilege_categories=list(a.categories),
        privilege_reasons=list(a.reasons),
        privilege_policies=list(a.policies),
        sensitive_actions_seen=list(a.sensitive_actions_seen),
    )
    rec["severity"] = a.severity


def exposure_backlog(
    source: Any,
    *,
    inventory_files: Iterable[str | Path] = (),
    iam_file: str | Path | None = None,
    web_findings: Iterable[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Build the ranked IMDSv1 backlog from ``api_activity`` on ``source``.

    :param source: an engine (DuckDB, Spark, Athena; the query runs through its ``query``
        method, transpiled to its dialect), or a DuckDB connection that already has the
        ``api_activity`` table or view.
    :param inventory_files: ``aws ec2 describe-instances`` JSON files. They add the instances'
        metadata options, name tag and state, and the instances that answer IMDSv1
        (``HttpTokens: optional``) with no v1 use in CloudTrail.
    :param iam_file: ``aws iam get-account-authorization-details`` JSON; when given, roles are
        ranked by what their policies allow (cloudsplaining), otherwise by the sensitive actions
        CloudTrail saw them use.
    :param web_findings: the hunt's findings (web ones are used): ``imds_ssrf_attempt``
        findings with ``target_instance`` set give each instance's ``ssrf_attempts``; a probed
        instance ranks above every unprobed one of its privilege tier, one severity step up.
    :returns: ``imdsv1_exposure`` records, best target for an attacker first (``rank`` 1).
    :raises UsageError: ``source`` has no ``api_activity``.
    :raises InputError: an inventory or IAM file cannot be read.
    """
    inventory_files = list(inventory_files)
    inventory = load_ec2_inventory(inventory_files)
    reach = Reachability.load(inventory_files) if inventory_files else None
    iam = IamAuthorizationDetails.load(iam_file) if iam_file is not None else None

    records: list[dict[str, Any]] = []
    seen_keys: set[str] = set()
    for row in _query(source):
        key = row["instance_key"]
        inv = inventory.get(key)
        v1 = int(row["v1_event_count"] or 0)
        if v1 == 0 and not (inv and inv.answers_imdsv1):
            continue  # only v2 (or unknown) delivery, and nothing says v1 still answers
        seen_keys.add(key)
        rec = _new_record(row["instance_id"])
        rec.update(
            account_id=row["account_id"],
            role=row["role_name"] or _role_name_from_arn(row["role_arn"]),
            role_arn=row["role_arn"],
            regions=list(row["regions"] or []),
            delivery_versions=list(row["delivery_versions"] or []),
            v1_event_count=v1,
            v2_event_count=int(row["v2_event_count"] or 0),
            unknown_delivery_event_count=int(row["unknown_delivery_event_count"] or 0),
            event_count=int(row["event_count"] or 0),
            first_v1_use=_iso(row["first_v1_use"]),
            last_v1_use=_iso(row["last_v1_use"]),
            first_seen=_iso(row["first_seen"]),
            last_seen=_iso(row["last_seen"]),
            v1_source_ips=list(row["v1_source_ips"] or []),
        )
        if row["top_region"]:
            rec["region"], rec["region_source"] = row["top_region"], "cloudtrail"
        if inv:
            _apply_inventory(rec, inv)
        if v1:
            rec["status"] = STATUS_V1_USED if (inv is None or inv.answers_imdsv1) else STATUS_FIXED
            rec["reasons"].append(
                f"credentials delivered over IMDSv1 used in {v1} call(s), last {rec['last_v1_use']}"
            )
            if rec["status"] == STATUS_FIXED:
                rec["reasons"].append(
                    f"inventory now shows HttpTokens={inv.http_tokens}, "
                    f"HttpEndpoint={inv.http_endpoint}, state={inv.state}: v1 no longer answers"
                )
        else:
            rec["status"] = STATUS_V1_ALLOWED
            rec["reasons"].append(
                "inventory: HttpTokens=optional, answers IMDSv1 "
                f"(CloudTrail saw only delivery {', '.join(rec['delivery_versions']) or 'unknown'})"
            )
        usage = assess_from_usage(list(row["actions_succeeded"] or []))
        assessment = None
        if iam is not None:
            assessment = iam.assess(rec["role_arn"], rec["role"], rec["account_id"])
            if assessment is None:
                rec["reasons"].append("role not in the --iam file; ranked by CloudTrail usage")
        _apply_privilege(rec, assessment or usage)
        rec["sensitive_actions_seen"] = list(usage.sensitive_actions_seen)
        records.append(rec)

    for key, inv in sorted(inventory.items()):
        if key in seen_keys or not inv.answers_imdsv1:
            continue
        rec = _new_record(inv.instance_id)
        _apply_inventory(rec, inv)
        rec["status"] = STATUS_V1_ALLOWED
        rec["reasons"].append(
            "inventory: HttpTokens=optional, answers IMDSv1 (no use of its credentials in "
            "CloudTrail)"
        )
        assessment = None
        if iam is not None:
            role_arn = iam.role_arn_for_profile(inv.instance_profile_arn)
            if role_arn:
                rec["role_arn"], rec["role"] = role_arn, _role_name_from_arn(role_arn)
                assessment = iam.assess(role_arn, rec["role"], rec["account_id"])
        if assessment is None:
            if inv.instance_profile_arn:
                why = "instance profile's role unknown (give --iam with the role)"
            else:
                why = "no instance profile: IMDS hands out no role credentials"
            assessment = PrivilegeAssessment(source="none", reasons=[why])
        _apply_privilege(rec, assessment)
        records.append(rec)

    probes = ssrf_attempts_by_instance(web_findings)
    for rec in records:
        _apply_ssrf(rec, probes.get(rec["instance_id"].lower()))
        inv = inventory.get(rec["instance_id"].lower())
        if reach is not None and inv is not None and rec["status"] != STATUS_FIXED:
            reachable, via, why = reach.assess(inv)
            rec["reachable_from_internet"], rec["reachable_via"] = reachable, via
            rec["reasons"].extend(why)
        if rec["status"] == STATUS_FIXED:
            rec["severity"] = "info"
            rec["remediation"] = None
            rec["remediation_caveat"] = "inventory says IMDSv1 is already off; verify and move on"
        else:
            rec["remediation"] = remediation.instance_command(rec["instance_id"], rec["region"])
            rec["remediation_check"] = remediation.metric_check_command(
                rec["instance_id"], rec["region"]
            )
            rec["remediation_caveat"] = remediation.CAVEAT
        rec["account_remediation"] = remediation.account_default_command(rec["region"])
        if rec["region_source"] == "cloudtrail" and len(rec["regions"]) > 1:
            rec["reasons"].append(
                f"region {rec['region']} guessed from the most frequent API-call region "
                f"(calls seen in {', '.join(rec['regions'])}); give --inventory to be sure"
            )

    def order(r: dict[str, Any]) -> tuple:
        last = r["last_v1_use"] or ""
        return (
            r["status"] == STATUS_FIXED,
            -(r["privilege_score"] // 1000),  # the privilege tier
            r["ssrf_attempts"] == 0,  # probed before unprobed within a tier
            _REACHABLE_ORDER[r["reachable_from_internet"]],
            -r["privilege_score"],
            _STATUS_ORDER[r["status"]],
            -r["v1_event_count"],
            "".join(chr(0x10FFFF - ord(c)) for c in last),  # latest v1 use first
            r["account_id"] or "",
            r["instance_id"].lower(),
        )

    records.sort(key=order)
    for i, rec in enumerate(records, 1):
        rec["rank"] = i
    return records


def apply_metadata_no_token(records: Iterable[dict[str, Any]], readings: Mapping[str, Any]) -> None:
    """Fill ``metadata_no_token_calls``, ``metadata_no_token_window`` and ``safe_to_enforce``
    from :class:`imdshunt.exposure.metrics.MetadataNoToken` readings (by lower-cased id).
    ``safe_to_enforce`` is true only when the metric was read and summed to 0; rows already
    fixed are left alone."""
    for rec in records:
        reading = readings.get(rec["instance_id"].lower())
        if reading is None or rec["status"] == STATUS_FIXED:
            continue
        rec["metadata_no_token_window"] = reading.window
        rec["metadata_no_token_calls"] = reading.calls
        rec["safe_to_enforce"] = reading.calls == 0
        if reading.calls is None:
            rec["reasons"].append(f"MetadataNoToken unknown: {reading.note}")
        elif reading.calls == 0:
            rec["reasons"].append(
                f"MetadataNoToken 0 over {reading.window}: nothing on the instance called "
                "IMDSv1; safe to require tokens now"
            )
        else:
            rec["reasons"].append(
                f"MetadataNoToken {reading.calls} IMDSv1 call(s) over {reading.window}: "
                "software on the instance still uses IMDSv1 and loses its metadata and "
                "credentials once tokens are required; upgrade it (SDK, agent) first"
            )


def _apply_ssrf(rec: dict[str, Any], probe: SsrfAttempts | None) -> None:
    if probe is None or probe.attempts == 0:
        return
    rec["ssrf_attempts"] = probe.attempts
    rec["ssrf_clients"] = sorted(probe.clients)
    rec["last_ssrf_attempt"] = _iso(probe.last)
    seen = (
        f"{probe.attempts} metadata SSRF attempt(s) against this instance in the web logs, "
        f"from {len(probe.clients)} client(s), last {rec['last_ssrf_attempt']}"
    )
    if rec["status"] == STATUS_FIXED:
        rec["reasons"].append(seen + " (IMDSv1 is now off: check the role's use after them)")
        return
    before = rec["severity"]
    if before in _SEVERITY_STEPS:
        after = _SEVERITY_STEPS[min(_SEVERITY_STEPS.index(before) + 1, len(_SEVERITY_STEPS) - 1)]
        rec["severity"] = after
        if after != before:
            seen += f": severity raised from {before} to {after}"
    rec["reasons"].append(seen + "; ranked above unprobed instances of the same privilege tier")


__all__ = [
    "DETECTION",
    "IMDS_ENDPOINTS",
    "RANKING_EXPLANATION",
    "STATUS_FIXED",
    "STATUS_V1_ALLOWED",
    "STATUS_V1_USED",
    "apply_metadata_no_token",
    "backlog_sql",
    "backlog_sql_for",
    "exposure_backlog",
    "ssrf_attempts_by_instance",
]
