"""Correlation: an SSRF attempt against an instance, task or pod, then its credentials used off
the box.

``imds_theft_chain`` links a web finding (``imds_ssrf_attempt``: a client sent the metadata
address to the web tier in front of an instance) to a credential-theft finding for the same
instance (``credential_id`` is the instance id: EC2 names the role session after the instance,
see "Retrieve security credentials from instance metadata" in the EC2 User Guide) whose first
off-box use follows the attempt within a window (24 hours by default).

The web side knows the *target address* (the ALB target); inventory maps it to an instance id
(``target_ip -> instance_id``). A web finding that already carries ``target_instance`` is used
as is.

Tasks and pods are chained the same way (an SSRF to ``169.254.170.2`` or ``169.254.170.23``
through a task in ``awsvpc`` mode or a pod, whose ALB target is the task's or pod's own private
address). ``workload_by_ip`` maps a target address to workload keys (:func:`workload_key`):
from inventory (:meth:`imdshunt.enrich.inventory.Inventory.workload_by_ip`: ecs describe-tasks,
kubectl get pods) or learned from the workload's own calls through the organisation's VPC
endpoints, which CloudTrail records with the workload's private address
(:func:`learned_workload_addresses`). A theft finding of a task or pod credential has the keys
:func:`theft_keys`; the chain carries the theft's ``credential_type``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from imdshunt import FINDINGS_SCHEMA_VERSION
from imdshunt.errors import UsageError
from imdshunt.findings import Finding, FindingKind
from imdshunt.mitre import techniques

__all__ = [
    "CHAIN_DETECTION",
    "WORKLOAD_CREDENTIALS",
    "correlate_chains",
    "learned_workload_addresses",
    "theft_keys",
    "workload_key",
]

CHAIN_DETECTION = "imds_theft_chain"
#: What a chain is evidence of: the SSRF (exploiting the web tier), the read of the metadata
#: credential, and its use as a valid cloud account. Named from imdshunt/data/mitre.yml.
CHAIN_MITRE = ("T1190", "T1552.005", "T1078.004")
CHAIN_TITLE = "SSRF attempt on an instance, then its credential used off the box"
CHAIN_DESCRIPTION = (
    "A web request carried a metadata-service address to an instance's web tier (SSRF "
    "attempt), and within the correlation window that instance's credential was used from "
    "somewhere other than the instance: the attempt most likely succeeded and the credential "
    "is in other hands."
)
#: Credential types whose ``credential_id`` is an EC2 instance id.
_INSTANCE_CREDENTIALS = {None, "", "ec2-instance"}
#: Credential types of workloads whose web tier can be the SSRF target (Lambda has no target
#: address of its own: an ALB invokes a function, it does not connect to it).
WORKLOAD_CREDENTIALS = {"ecs-task", "eks-pod-identity", "eks-irsa"}


def workload_key(workload_type: str, workload_id: str, namespace: str | None = None) -> str:
    """The key a task or pod is correlated by: the ECS task id (the task role's session name),
    or ``pod/<namespace>/<name>`` (Pod Identity names the pod in its vending event's session
    tags; the session name truncates it)."""
    if workload_type == "eks-pod":
        return f"pod/{namespace or 'default'}/{workload_id}"
    return workload_id


def theft_keys(theft: Mapping[str, Any]) -> set[str]:
    """The keys a task or pod credential finding is correlated by: its credential id (task id,
    pod session) and, when the vending event named it, its pod."""
    keys = {theft["credential_id"]} if theft.get("credential_id") else set()
    if theft.get("k8s_pod"):
        keys.add(workload_key("eks-pod", theft["k8s_pod"], theft.get("k8s_namespace")))
    return keys


def learned_workload_addresses(engine: Any) -> dict[str, set[str]]:
    """Private addresses that task and pod credentials were used from through the
    organisation's own VPC endpoints (the credential's account, or an account the org or the
    inventory knows): the workload's own address, as an ALB target would show it. An address
    several workloads used maps to all of them (private ranges repeat; a chain still needs the
    theft of one of those workloads' credentials)."""
    rows = engine.query(
        "SELECT DISTINCT src_ip, credential_type, session_name, vended_k8s_namespace, "
        "vended_k8s_pod FROM workload_credential_call "
        "WHERE credential_type IN ('ecs-task', 'eks-pod-identity', 'eks-irsa') "
        "AND egress_path = 'endpoint' AND network_kind = 'private' "
        "AND (vpce_account_id = account_id "
        "OR vpce_account_id IN (SELECT account_id FROM org_account_known))",
        label="learned workload addresses",
    ).to_pylist()
    out: dict[str, set[str]] = {}
    for r in rows:
        keys = out.setdefault(r["src_ip"], set())
        if r["vended_k8s_pod"]:
            keys.add(workload_key("eks-pod", r["vended_k8s_pod"], r["vended_k8s_namespace"]))
        elif r["session_name"]:
            keys.add(r["session_name"])
    return out


def _time(value: Any, what: str) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        t = value
    elif isinstance(value, str):
        try:
            t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise UsageError(f"{what}: not an ISO 8601 time: {value!r}") from exc
    else:
        raise UsageError(f"{what}: not a time: {value!r}")
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _iso(t: dt.datetime) -> str:
    t = t.astimezone(dt.UTC)
    text = t.isoformat(timespec="milliseconds" if t.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def _urls(web: Mapping[str, Any]) -> list[str]:
    out = []
    for item in web.get("request_urls") or []:
        url = item.get("url") if isinstance(item, Mapping) else item
        if url:
            out.append(url)
    if not out and web.get("request_url"):
        out.append(web["request_url"])
    return out


def correlate_chains(
    web_findings: Iterable[Mapping[str, Any]],
    theft_findings: Iterable[Mapping[str, Any]],
    instance_by_ip: Mapping[str, str] | None = None,
    *,
    workload_by_ip: Mapping[str, Iterable[str]] | None = None,
    window: dt.timedelta = dt.timedelta(hours=24),
    skew: dt.timedelta = dt.timedelta(minutes=5),
) -> list[Finding]:
    """Link SSRF attempts to later off-box use of the target instance's (task's, pod's)
    credentials.

    ``web_findings`` are web-contract dicts (``client_ip``, ``target_ip``, ``target_instance``,
    ``time``/``first_seen``, ``request_url(s)``, ``endpoint``, ``encoding``, ``status``);
    ``theft_findings`` are credential-contract dicts (``credential_id`` = instance id,
    ``first_seen``, ``access_key_ids``, ``source_ip``, ``actions`` ...). ``instance_by_ip`` maps
    a target address to its instance id. A theft is chained to every attempt against its
    instance made at most ``window`` before its first use (and at most ``skew`` after it:
    web-tier and CloudTrail clocks differ). One chain per theft finding, listing all its
    attempts. Times are ISO 8601 strings or datetimes; the output uses ISO ``Z`` strings.
    ``workload_by_ip`` maps a target address to task and pod keys (see the module docstring).
    """
    if window <= dt.timedelta(0):
        raise UsageError("window must be positive")
    ip_map = dict(instance_by_ip or {})
    wl_map = {ip: set(keys) for ip, keys in (workload_by_ip or {}).items()}
    # instance ids and workload keys are kept apart: a task's theft never matches an instance
    attempts_by_instance: dict[str, list[tuple[dt.datetime, Mapping[str, Any]]]] = {}
    attempts_by_workload: dict[str, list[tuple[dt.datetime, Mapping[str, Any]]]] = {}
    for web in web_findings:
        if web.get("endpoint") is None:
            continue
        target_ip = web.get("target_ip") or ""
        instance = web.get("target_instance") or ip_map.get(target_ip)
        when = _time(web.get("first_seen") or web.get("time"), "web finding time")
        if when is None:
            continue
        if instance:
            attempts_by_instance.setdefault(instance, []).append((when, web))
        for key in wl_map.get(target_ip, ()):
            attempts_by_workload.setdefault(key, []).append((when, web))

    chains: list[Finding] = []
    for theft in theft_findings:
        kind = theft.get("credential_type")
        if kind in _INSTANCE_CREDENTIALS:
            keys = {theft["credential_id"]} if theft.get("credential_id") else set()
            attempts = attempts_by_instance
        elif kind in WORKLOAD_CREDENTIALS:
            keys = theft_keys(theft)
            attempts = attempts_by_workload
        else:
            continue
        used = _time(theft.get("first_seen"), "theft first_seen")
        if used is None:
            continue
        seen: set[int] = set()
        linked = []
        for key in sorted(keys):
            for t, w in attempts.get(key, ()):
                if used - window <= t <= used + skew and id(w) not in seen:
                    seen.add(id(w))
                    linked.append((t, w))
        if not linked:
            continue
        linked.sort(key=lambda tw: tw[0])
        chains.append(_chain(theft["credential_id"], linked, theft, used))
    chains.sort(key=lambda c: (c.first_attempt, c.target_instance or c.target_workload))
    return chains


def _chain(
    instance: str,
    linked: list[tuple[dt.datetime, Mapping[str, Any]]],
    theft: Mapping[str, Any],
    used: dt.datetime,
) -> Finding:
    """One chain finding; ``instance`` is the target's credential id (instance, task, pod
    session)."""
    kind = theft.get("credential_type") or "ec2-instance"
    is_instance = kind in _INSTANCE_CREDENTIALS
    if is_instance:
        target, what = instance, "instance credential"
    elif theft.get("k8s_pod"):
        target = f"{theft.get('k8s_namespace') or 'default'}/{theft['k8s_pod']}"
        what = f"{kind} credential (session {instance})"
    else:
        target, what = instance, f"{kind} credential"
    first_attempt = linked[0][0]
    last_attempt = max(_time(w.get("last_seen"), "web last_seen") or t for t, w in linked)
    clients = sorted({w.get("client_ip") for _, w in linked if w.get("client_ip")})
    urls = list(dict.fromkeys(u for _, w in linked for u in _urls(w)))
    endpoints = sorted({w["endpoint"] for _, w in linked})
    targets = sorted({w.get("target_ip") for _, w in linked if w.get("target_ip")})
    actions = list(theft.get("actions") or [])
    last_use = _time(theft.get("last_seen"), "theft last_seen")
    timeline = [
        {
            "time": _iso(t),
            "event": "ssrf_attempt",
            "detail": f"{w.get('client_ip')} -> {w.get('target_ip') or target}: "
            f"{w.get('decoded') or w.get('request_url')} "
            f"({w.get('encoding')}, status {w.get('status')})",
        }
        for t, w in linked
    ]
    timeline.append(
        {
            "time": _iso(used),
            "event": "first_off_box_use",
            "detail": f"{target}'s credential used from {theft.get('source_ip')}"
            f" ({theft.get('network') or 'unclassified'})",
        }
    )
    if last_use is not None:
        timeline.append(
            {
                "time": _iso(last_use),
                "event": "last_use",
                "detail": f"{theft.get('event_count') or '?'} calls: {', '.join(actions[:10])}",
            }
        )
    key = f"{CHAIN_DETECTION}|{instance}|{theft.get('finding_id') or theft.get('source_ip')}"
    return Finding(
        {
            "finding_id": hashlib.sha256(key.encode()).hexdigest()[:16],
            "detection": CHAIN_DETECTION,
            "severity": "critical",
            "title": CHAIN_TITLE,
            "kind": FindingKind.CORRELATION,
            "schema_version": FINDINGS_SCHEMA_VERSION,
            "mitre": techniques(CHAIN_MITRE),
            "description": CHAIN_DESCRIPTION,
            "target_instance": instance if is_instance else None,
            # the task id, or namespace/pod, when the target is a task or pod
            "target_workload": None if is_instance else target,
            "credential_type": kind,
            "target_ips": targets,
            # the attempt
            "ssrf_client_ips": clients,
            "ssrf_request_urls": urls,
            "ssrf_endpoints": endpoints,
            "ssrf_finding_ids": [w.get("finding_id") for _, w in linked if w.get("finding_id")],
            "first_attempt": _iso(first_attempt),
            "last_attempt": _iso(last_attempt),
            # the theft
            "account_id": theft.get("account_id"),
            "role": theft.get("role"),
            "role_arn": theft.get("role_arn"),
            "credential_id": theft.get("credential_id"),
            "access_key_ids": list(theft.get("access_key_ids") or []),
            "source_ip": theft.get("source_ip"),
            "network": theft.get("network"),
            "actions": actions,
            "event_count": theft.get("event_count"),
            "theft_detection": theft.get("detection"),
            "theft_finding_id": theft.get("finding_id"),
            "first_off_box_use": _iso(used),
            "last_seen": _iso(last_use) if last_use else None,
            "minutes_attempt_to_use": round((used - first_attempt).total_seconds() / 60, 1),
            "timeline": timeline,
            "reasons": [
                f"{', '.join(clients) or 'a client'} sent the {'/'.join(endpoints)} address to the "
                f"web tier of {target} at {_iso(first_attempt)}",
                f"{target}'s {what} was then used from {theft.get('source_ip')} at "
                f"{_iso(used)} ({round((used - first_attempt).total_seconds() / 60, 1)} min later)",
            ],
        }
    )
