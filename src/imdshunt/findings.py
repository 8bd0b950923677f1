"""Findings: the stable, versioned output contract (see DESIGN, "The findings contract").

Times are ISO 8601 UTC with ``Z``; fields are snake_case. Fields may be added freely; renaming
or dropping one needs a bump of :data:`imdshunt.FINDINGS_SCHEMA_VERSION`.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from imdshunt import FINDINGS_SCHEMA_VERSION

if TYPE_CHECKING:
    from imdshunt.detect import Detection


class FindingKind(enum.StrEnum):
    """What a finding is about: the contract's ``kind``, exactly the values a hunt emits."""

    #: A credential used where it should not be (CloudTrail; detections of kind credential and
    #: the lineage's derived_credential_use).
    CREDENTIAL = "credential"
    #: A request that carried a metadata-service address to a web tier (web logs).
    WEB = "web"
    #: An SSRF attempt linked to the later theft of its target's credential
    #: (``imds_theft_chain``, made by :mod:`imdshunt.correlate`, never by a detection).
    CORRELATION = "correlation"


#: The kinds a detection (detection.yml ``kind``) may have: what it reads and emits.
DETECTION_KINDS = (FindingKind.CREDENTIAL, FindingKind.WEB)

SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

#: Fields every credential-use finding carries, in output order.
CREDENTIAL_FIELDS = (
    "finding_id",
    "detection",
    "severity",
    "title",
    "account_id",
    "role",
    "role_arn",
    "credential_type",
    "credential_id",
    "source_ip",
    "network",
    "vpc_endpoint_id",
    "vpc_endpoint_account_id",
    "access_key_ids",
    "event_count",
    "distinct_actions",
    "actions",
    "first_seen",
    "last_seen",
    "user_agents",
    "regions",
    "reasons",
    "event_ids",
)

#: Fields every web (SSRF attempt) finding carries.
WEB_FIELDS = (
    "finding_id",
    "detection",
    "severity",
    "title",
    "log_type",
    "time",
    "client_ip",
    "target_ip",
    "target_instance",
    "request_url",
    "request_urls",
    "decoded",
    "endpoint",
    "encoding",
    "status",
    "source_file",
    "line_number",
)

#: What every finding says about the detection that made it (so no output reloads the
#: detection catalogue): field -> meaning.
DETECTION_FIELDS = {
    "mitre": "MITRE ATT&CK techniques: [{id, name, tactics: [{id, name}], parent: {id, name}}]"
    " (parent only for a sub-technique); names from imdshunt/data/mitre.yml",
    "description": "what the detection looks for (its detection.yml description)",
    "merge_priority": "rank of the detection when several agree on one credential and address;"
    " the lowest leads a merged finding (detection.yml merge_priority)",
}

#: Fields on every finding of any kind.
COMMON_FIELDS = ("kind", "schema_version", *DETECTION_FIELDS)

#: Fields of one artifact (``artifacts``); a field is left out when CloudTrail has no value.
ARTIFACT_FIELDS = {
    "type": "role-session, session-token, federation-token, user, access-key, login-profile, "
    "role, trust-policy, role-policy, user-policy or group-membership",
    "event_name": "the call that created or changed it (AssumeRole, CreateUser ...)",
    "event_id": "that call's eventID",
    "time": "when",
    "account_id": "whose account",
    "region": "the call's region",
    "source_ip": "where the call came from",
    "by_access_key_id": "the access key that signed the call",
    "by_principal_arn": "the principal that made the call",
    "user_name": "the IAM user created or changed",
    "role_name": "the role assumed, created or changed",
    "role_arn": "its ARN (AssumeRole's roleArn, CreateRole's role)",
    "session_name": "a minted role session's name (or a federated user's name)",
    "access_key_id": "the minted access key",
    "principal_arn": "the minted session's, user's or role's ARN",
    "expiration": "when a minted session expires (as CloudTrail wrote it)",
    "group_name": "the group a user was added to",
    "policy_arn": "the managed policy attached",
    "policy_name": "the inline policy put",
    "policy_document": "the inline policy's document (JSON text)",
    "trust_policy_after": "the trust policy set (CreateRole, UpdateAssumeRolePolicy)",
    "trust_policy_before": "the trust policy it replaced: the previous trust change of that "
    "role in the logs, when there is one (CloudTrail does not record the old one)",
    "depth": "mints away from the root (1: made with the stolen credential itself)",
}

#: Fields a credential finding carries when its detection knows them (absent or null otherwise).
CREDENTIAL_OPTIONAL_FIELDS = {
    "confidence": "high (address class or inventory) or medium (learned egress only)",
    "evidence": "what the verdict rests on: address-class, inventory, learned-egress, org-accounts",
    "key_issued_at": "when the credential-vending event issued the first key seen",
    "vending_event_id": "eventID of that sts:AssumeRole* (the credential's birth)",
    "vending_event_missing": "true when the credential path was read off the session itself",
    "role_deliveries": "ec2RoleDelivery values seen (1.0: IMDSv1, 2.0: IMDSv2)",
    "detections": "every detection that fired for this credential and source address",
    "merged_finding_ids": "finding ids folded into this one (see imdshunt.merge)",
    "other_instance_id": "cross-instance: the instance whose address the call came from",
    "instance_learned_ip": "the instance's own address, learned from its first use",
    "workload_learned_ip": "task or pod: the session's own address, learned from its first use",
    "workload_vpc_id": "task, pod or function: its VPC according to the inventory",
    "other_source_ips": "multiple networks: the key's other source addresses",
    "other_sides": "multiple networks: those addresses with network, first use and ownership",
    "ecs_task_id": "ECS task id (the session name)",
    "lambda_function": "Lambda function name (the session name)",
    "eks_cluster": "EKS cluster (Pod Identity session tag)",
    "k8s_namespace": "Kubernetes namespace (Pod Identity tag or IRSA subject)",
    "k8s_service_account": "Kubernetes service account",
    "k8s_pod": "Kubernetes pod (Pod Identity tag)",
    "eks_oidc_provider": "IRSA: the cluster's OIDC provider",
    "token_exchanged_outside_aws": "IRSA: the service account token itself was used outside AWS",
    # lineage (imdshunt.lineage, docs/lineage.md)
    "artifacts": "what this credential's stolen use (on a root: its whole lineage) created or "
    "changed, in time order: [{" + ", ".join(ARTIFACT_FIELDS) + "}] (see ARTIFACT_FIELDS)",
    "derived_finding_ids": "root: the derived_credential_use findings of what it minted",
    "parent_finding_id": "derived: the finding of the credential that minted this one",
    "root_finding_id": "derived: the credential finding at the root of the lineage",
    "lineage_depth": "derived: mints away from the root (1: minted by the stolen credential)",
    "derived_id": "derived: stable id of the derived credential within its root",
    "derived_kind": "derived: role-session, access-key, user, session-token or federation-token",
    "derived_access_key_id": "derived: the minted access key (ASIA or AKIA)",
    "derived_principal_arn": "derived: the minted session's, user's or federated user's ARN",
    "derived_user_name": "derived: the IAM user the minted key or user belongs to",
    "parent_access_key_id": "derived: the access key that signed the minting call",
    "parent_session": "derived: the principal (session ARN) that made the minting call",
    "minting_event_id": "derived: eventID of the call that minted it",
    "minting_event_name": "derived: that call's name (AssumeRole, CreateAccessKey ...)",
    "minting_time": "derived: when it was minted",
    "source_ips": "derived: every address it was used from (source_ip is the first)",
    "networks": "derived: how those addresses were classified",
}


#: Fields a web finding carries when the attempt was seen more than once or the log has them.
WEB_OPTIONAL_FIELDS = {
    "confidence": "high or medium (how specific the matched form of the address is)",
    "reasons": "why the request was judged an attempt on a metadata endpoint",
    "first_seen": "first request of the group",
    "last_seen": "last request of the group",
    "request_count": "requests folded into this finding",
    "encodings": "every encoding of the address seen",
    "statuses": "every HTTP status returned",
    "log_types": "every web tier that logged it",
}

#: Fields of a correlation finding (``imds_theft_chain``, :mod:`imdshunt.correlate`).
CORRELATION_FIELDS = {
    "finding_id": "stable id of the chain (instance and theft finding)",
    "detection": "imds_theft_chain",
    "severity": "critical",
    "title": "what the chain is",
    "target_instance": "the instance attacked and whose credential was used (null for a task "
    "or pod)",
    "target_workload": "the task id, or namespace/pod, attacked and whose credential was used",
    "credential_type": "ec2-instance, ecs-task, eks-pod-identity or eks-irsa",
    "target_ips": "the web tier's target addresses of the attempts",
    "ssrf_client_ips": "who sent the attempts",
    "ssrf_request_urls": "every distinct URL of the attempts",
    "ssrf_endpoints": "metadata endpoints named (ec2-imds-ipv4 ...)",
    "ssrf_finding_ids": "the imds_ssrf_attempt findings chained",
    "first_attempt": "first attempt",
    "last_attempt": "last attempt",
    "account_id": "the credential's account",
    "role": "the credential's role",
    "role_arn": "the credential's role ARN",
    "credential_id": "the session name (the instance id, task id or pod session)",
    "access_key_ids": "the stolen keys seen",
    "source_ip": "where the credential was used from",
    "network": "how that address was classified",
    "actions": "what was done with it",
    "event_count": "calls made with it",
    "theft_detection": "the credential finding's detection",
    "theft_finding_id": "the credential finding chained",
    "first_off_box_use": "first use off the instance",
    "last_seen": "last use",
    "minutes_attempt_to_use": "minutes from the first attempt to the first use",
    "timeline": "attempts and uses in time order: [{time, event, detail}]",
    "reasons": "why the two were linked",
}

#: Which columns identify "the same finding" across runs, per kind.
IDENTITY_FIELDS = {
    FindingKind.CREDENTIAL: ("detection", "account_id", "role", "credential_id", "source_ip"),
    FindingKind.WEB: ("detection", "client_ip", "target_ip", "endpoint"),
}


def iso_z(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        text = value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
        return text.replace("+00:00", "Z")
    return value


def _clean(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso_z(value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def finding_id(record: Mapping[str, Any], kind: FindingKind) -> str:
    """A stable id: the same credential used from the same place is the same finding."""
    key = "|".join(str(record.get(f) or "") for f in IDENTITY_FIELDS.get(kind, ("detection",)))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


#: The contract fields written first, in this order, per kind; the rest follow in the order
#: they were set. A chain has always been written in the web order (its leading fields are
#: finding_id, detection, severity, title and target_instance), and the contract keeps it.
_LEADING_FIELDS = {
    FindingKind.CREDENTIAL: CREDENTIAL_FIELDS,
    FindingKind.WEB: WEB_FIELDS,
    FindingKind.CORRELATION: WEB_FIELDS,
}

#: Every documented field (all kinds): each is an attribute of :class:`Finding`.
FINDING_FIELDS = tuple(
    dict.fromkeys(
        (
            *CREDENTIAL_FIELDS,
            *WEB_FIELDS,
            *COMMON_FIELDS,
            *CREDENTIAL_OPTIONAL_FIELDS,
            *WEB_OPTIONAL_FIELDS,
            *CORRELATION_FIELDS,
        )
    )
)


class _Field:
    """One contract field as an attribute of :class:`Finding`: reads None when the finding
    does not carry it (it is then left out of the serialised form), writes into the record."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Finding | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj.record.get(self.name)

    def __set__(self, obj: Finding, value: Any) -> None:
        obj.record[self.name] = value


@dataclass(eq=False, slots=True, init=False)
class Finding(Mapping[str, Any]):
    """One finding of a hunt: its :class:`FindingKind` and its contract fields.

    One class for every kind, not a subclass per kind: the kinds share most of their fields
    (a chain carries a credential's account, role, source and actions and a web attempt's
    targets; ``confidence``, ``reasons`` and ``first_seen`` are on several kinds), and the
    outputs read them across kinds, so what varies per kind is only the order of the leading
    fields (``_LEADING_FIELDS``) and which fields identify it (:data:`IDENTITY_FIELDS`). Code
    decides by :attr:`kind`, never by comparing strings.

    Every documented field (:data:`FINDING_FIELDS`) is an attribute: ``f.source_ip`` is None when
    the finding does not carry it. The data is kept as the record it serialises to, in the order
    its fields were set (``record``), so that writing the JSON lines contract is one dict in
    contract order (:meth:`to_dict`) with no per-field conversion, and a field that was never
    set stays out of the output while one set to None is written as null, exactly as before
    findings were typed. A finding reads as a (read-only) mapping of that record too:
    ``f["source_ip"]``, ``"artifacts" in f``; it changes only through its attributes.
    """

    record: dict[str, Any]

    def __init__(self, record: Mapping[str, Any]) -> None:
        rec = dict(record)
        try:
            rec["kind"] = FindingKind(rec["kind"])
        except (KeyError, ValueError) as exc:
            raise ValueError(
                f"a finding's kind must be one of {[k.value for k in FindingKind]}, "
                f"not {rec.get('kind')!r}"
            ) from exc
        self.record = rec

    @property
    def kind(self) -> FindingKind:
        return self.record["kind"]

    def __getitem__(self, name: str) -> Any:
        return self.record[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.record)

    def __len__(self) -> int:
        return len(self.record)

    def __repr__(self) -> str:
        return f"Finding({self.record!r})"

    def to_dict(self) -> dict[str, Any]:
        """The serialised form (the JSON lines contract): the kind's leading fields first, in
        contract order, then the others in the order they were set; absent fields left out."""
        rec = self.record
        out = {k: rec[k] for k in _LEADING_FIELDS[self.kind] if k in rec}
        for k, v in rec.items():
            if k not in out:
                out[k] = v
        return out

    def copy(self) -> Finding:
        """A finding with a copy of this one's record (field values shared)."""
        return Finding(self.record)

    def update(self, fields: Mapping[str, Any]) -> None:
        """Set several fields at once (new ones go last, as attribute writes do)."""
        if "kind" in fields:
            raise ValueError("a finding's kind is fixed when it is made")
        self.record.update(fields)


for _name in FINDING_FIELDS:
    if _name != "kind":
        if hasattr(Finding, _name):  # a contract field must not shadow the class's own API
            raise AssertionError(f"contract field {_name!r} clashes with Finding.{_name}")
        setattr(Finding, _name, _Field(_name))
del _name


def findings_from_records(records: Iterable[Mapping[str, Any]]) -> list[Finding]:
    """Findings from their serialised form (JSON lines, a state's stored JSON)."""
    return [Finding(r) for r in records]


def from_arrow(table: pa.Table, detection: Detection) -> list[Finding]:
    """Turn a detection's result rows into findings carrying its metadata.

    A row's own ``severity`` column (a detection that grades its findings) wins over the
    metadata's.
    """
    out = []
    for row in table.to_pylist():
        rec: dict[str, Any] = {
            "detection": detection.id,
            "severity": detection.severity,
            "title": detection.title,
        }
        rec.update({k: _clean(v) for k, v in row.items()})
        rec.setdefault("severity", detection.severity)
        rec["finding_id"] = finding_id(rec, detection.kind)
        rec["kind"] = detection.kind
        rec["schema_version"] = FINDINGS_SCHEMA_VERSION
        rec["mitre"] = detection.techniques()
        rec["description"] = detection.description
        rec["merge_priority"] = detection.merge_priority
        out.append(Finding(rec))
    return out


def ordered(finding: Finding) -> dict[str, Any]:
    """The finding's serialised form (see :meth:`Finding.to_dict`)."""
    return finding.to_dict()


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(
        findings,
        key=lambda f: (
            -SEVERITY_RANK.get(f.severity or "info", 0),
            str(f.first_seen or f.time or ""),
            f.detection or "",
            f.finding_id or "",
        ),
    )
