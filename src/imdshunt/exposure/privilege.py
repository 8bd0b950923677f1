"""How much damage a role's stolen credentials could do: privilege ranking for the backlog.

Two sources, the better one first:

* **Authorization details** (``aws iam get-account-authorization-details`` JSON): each role's
  attached managed and inline policies are merged into one policy document and analysed with
  `cloudsplaining <https://github.com/salesforce/cloudsplaining>`_ (its IAM database is the one
  bundled with policy_sentry; nothing is downloaded). Merging matters: cloudsplaining analyses
  one policy at a time, so ``iam:PassRole`` in one policy and ``ec2:RunInstances`` in another
  would otherwise go unseen as a privilege-escalation pair.
* **CloudTrail usage** (no ``--iam``): the actions the role was *seen* calling successfully.
  An action is *sensitive* when policy_sentry's IAM database gives it the access level
  ``Permissions management``, ``Write`` or ``Tagging``, or when cloudsplaining lists it as a
  data-exfiltration or credential-returning action (``s3:GetObject``,
  ``secretsmanager:GetSecretValue``, ``ecr:GetAuthorizationToken`` ...), or when the actions
  seen together complete one of cloudsplaining's privilege-escalation combinations. ``Read``
  and ``List`` actions are not sensitive. No action list is written here.

Both rank by the worst category found (the *tier*), then by how many findings:

====  ============================  =========
tier  category                      severity
====  ============================  =========
6     admin (``*`` on ``*``)        critical
5     privilege escalation          critical
4     resource exposure             high
3     credentials exposure          high
2     data exfiltration             high
1     infrastructure modification   medium
0     nothing found                 low
====  ============================  =========

cloudsplaining and policy_sentry load their IAM database when imported, so they are imported
lazily, inside the functions that need them (importing :mod:`imdshunt` does no work).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imdshunt.errors import InputError, not_json

log = logging.getLogger(__name__)

#: (tier, category id, human label, severity)
CATEGORIES: tuple[tuple[int, str, str, str], ...] = (
    (6, "admin", "admin", "critical"),
    (5, "privilege_escalation", "privilege escalation", "critical"),
    (4, "resource_exposure", "resource exposure", "high"),
    (3, "credentials_exposure", "credentials exposure", "high"),
    (2, "data_exfiltration", "data exfiltration", "high"),
    (1, "infrastructure_modification", "infrastructure modification", "medium"),
)
_TIER = {c[1]: c[0] for c in CATEGORIES}
_LABEL = {c[1]: c[2] for c in CATEGORIES}
_SEVERITY_BY_TIER = {c[0]: c[3] for c in CATEGORIES} | {0: "low"}

RANKING_EXPLANATION = (
    "Ranked by the worst thing the role's credentials allow: admin (* on *) > privilege "
    "escalation > resource exposure (permissions management on *) > credentials exposure > "
    "data exfiltration > infrastructure modification (write on *) > nothing found; within a "
    "tier, instances the web logs show receiving metadata SSRF attempts first (one severity "
    "step up); then by the number of findings, then v1 use seen before v1 merely allowed, "
    "then most v1 events."
)


@dataclass
class PrivilegeAssessment:
    """The privilege ranking of one role."""

    source: str  # "iam" (authorization details), "cloudtrail" (actions seen) or "none"
    tier: int = 0
    score: int = 0
    categories: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    sensitive_actions_seen: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)

    @property
    def severity(self) -> str:
        return _SEVERITY_BY_TIER[self.tier]


def _finish(a: PrivilegeAssessment, counts: dict[str, int]) -> PrivilegeAssessment:
    present = [c for c in counts if counts[c] > 0]
    present.sort(key=lambda c: -_TIER[c])
    a.categories = present
    a.tier = _TIER[present[0]] if present else 0
    # Findings below the top tier count too, but never lift a row above the next tier.
    weighted = sum(counts[c] * (_TIER[c] + 1) for c in present)
    a.score = a.tier * 1000 + min(weighted, 999)
    return a


def _short(actions: list[str], n: int = 3) -> str:
    shown = ", ".join(actions[:n])
    return shown + (f" (+{len(actions) - n} more)" if len(actions) > n else "")


# --------------------------------------------------------------------------- authorization details


class IamAuthorizationDetails:
    """Roles of one or more ``get-account-authorization-details`` documents, scored on demand.

    Roles are looked up by ARN (which includes the path), then by (account, name), then by name.
    Instance profiles are mapped to their roles for inventory rows.
    """

    def __init__(self, docs: list[dict[str, Any]], *, source: str = "<iam>"):
        self._source = source
        self._docs = docs
        self._by_arn: dict[str, tuple[int, dict[str, Any]]] = {}
        self._by_acct_name: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self._by_name: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.profile_to_role: dict[str, str] = {}
        for i, doc in enumerate(docs):
            if not isinstance(doc, dict) or not isinstance(doc.get("RoleDetailList", []), list):
                raise InputError(source, "not `aws iam get-account-authorization-details` output")
            for role in doc.get("RoleDetailList", []):
                if not isinstance(role, dict) or "RoleName" not in role:
                    raise InputError(source, "a RoleDetailList entry has no RoleName")
                arn = role.get("Arn") or ""
                name = role["RoleName"]
                entry = (i, role)
                if arn:
                    self._by_arn[arn.lower()] = entry
                    acct = arn.split(":")[4] if arn.count(":") >= 5 else ""
                    self._by_acct_name[(acct, name)] = entry
                self._by_name.setdefault(name, []).append(entry)
                for prof in role.get("InstanceProfileList") or []:
                    if isinstance(prof, dict) and prof.get("Arn") and arn:
                        self.profile_to_role[prof["Arn"].lower()] = arn
        self._cache: dict[tuple[int, str], PrivilegeAssessment] = {}
        self._analysers: dict[int, Any] = {}

    @classmethod
    def load(cls, path: str | Path) -> IamAuthorizationDetails:
        """Read one JSON file (a single response, or a list of them, one per account)."""
        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except OSError as e:
            raise InputError(str(p), f"cannot read: {e.strerror or e}") from e
        except json.JSONDecodeError as e:
            raise not_json(p, e) from e
        docs = doc if isinstance(doc, list) else [doc]
        return cls(docs, source=str(p))

    def find(
        self, role_arn: str | None, role_name: str | None, account_id: str | None = None
    ) -> tuple[int, dict[str, Any]] | None:
        if role_arn and role_arn.lower() in self._by_arn:
            return self._by_arn[role_arn.lower()]
        if role_name and account_id and (account_id, role_name) in self._by_acct_name:
            return self._by_acct_name[(account_id, role_name)]
        if role_name and len(self._by_name.get(role_name, [])) == 1:
            return self._by_name[role_name][0]
        return None

    def role_arn_for_profile(self, profile_arn: str | None) -> str | None:
        return self.profile_to_role.get(profile_arn.lower()) if profile_arn else None

    def assess(
        self, role_arn: str | None, role_name: str | None, account_id: str | None = None
    ) -> PrivilegeAssessment | None:
        """Score a role from its policies, or ``None`` when the role is not in the file."""
        found = self.find(role_arn, role_name, account_id)
        if found is None:
            return None
        i, role = found
        key = (i, role.get("Arn") or role["RoleName"])
        if key not in self._cache:
            self._cache[key] = self._assess(i, role)
        return self._cache[key]

    def _analyser(self, i: int) -> Any:
        if i not in self._analysers:
            from cloudsplaining.scan.authorization_details import AuthorizationDetails

            # cloudsplaining prints some problems to stdout; keep them out of our output.
            with contextlib.redirect_stdout(io.StringIO()) as out:
                auth = AuthorizationDetails(self._docs[i], exclusions=_exclusions())
            if out.getvalue().strip():
                log.warning("cloudsplaining: %s", out.getvalue().strip())
            self._analysers[i] = auth
        return self._analysers[i]

    def _assess(self, i: int, role: dict[str, Any]) -> PrivilegeAssessment:
        from cloudsplaining.scan.policy_document import PolicyDocument

        a = PrivilegeAssessment(source="iam")
        auth = self._analyser(i)
        detail = next(
            (r for r in auth.role_detail_list.roles if r.role_id == role.get("RoleId")), None
        )
        if detail is None:  # service-linked roles (path /aws-service-role/) are not analysed
            a.reasons.append("role not analysed (AWS service-linked role)")
            return _finish(a, {})
        a.policies = sorted(
            [p.policy_name for p in detail.attached_managed_policies]
            + [p.policy_name for p in detail.inline_policies]
        )
        statements = [s.json for s in detail.all_iam_statements]
        with contextlib.redirect_stdout(io.StringIO()):
            doc = PolicyDocument({"Statement": statements}, exclusions=_exclusions())
            counts, reasons = _analyse_document(doc)
        a.reasons = reasons or ["no risky permission found by cloudsplaining"]
        return _finish(a, counts)


def _exclusions() -> Any:
    """cloudsplaining's default exclusions, minus the ones that would hide an admin role.

    The defaults skip the ``AdministratorAccess`` policy (for speed) and example names; we
    must see it. The data-exfiltration ``include-actions`` are kept.
    """
    from cloudsplaining.shared.constants import DEFAULT_EXCLUSIONS_CONFIG
    from cloudsplaining.shared.exclusions import Exclusions

    cfg = dict(DEFAULT_EXCLUSIONS_CONFIG)
    cfg["policies"] = [
        p for p in cfg.get("policies", []) if p not in ("AdministratorAccess", "MyRole")
    ]
    return Exclusions(cfg)


def _is_admin_statement(st: Any) -> bool:
    actions = st.actions if isinstance(st.actions, list) else [st.actions]
    return bool(
        st.effect_allow and not st.has_condition and st.has_resource_wildcard and "*" in actions
    )


def _analyse_document(doc: Any) -> tuple[dict[str, int], list[str]]:
    """Categories and human reasons for one (merged) cloudsplaining PolicyDocument."""
    counts: dict[str, int] = {}
    reasons: list[str] = []
    unrestricted = list(doc.all_allowed_unrestricted_actions) + list(
        doc.all_allowed_unrestrictable_actions
    )
    proper = {x.lower(): x for x in unrestricted}

    if any(_is_admin_statement(st) for st in doc.statements):
        denied = any(st.effect_deny for st in doc.statements)
        counts["admin"] = 1
        reasons.append(
            'admin: Action "*" on Resource "*"' + (" (some actions denied)" if denied else "")
        )

    escalations = doc.allows_privilege_escalation
    exposure = sorted(set(doc.permissions_management_without_constraints))
    creds = sorted(set(doc.credentials_exposure))
    exfil = sorted(set(doc.allows_data_exfiltration_actions))
    # cloudsplaining adds its data-exfiltration "include-actions" to the write list: drop them.
    infra = sorted(set(doc.infrastructure_modification) - set(exfil))
    if counts.get("admin"):
        # Everything follows from "*"; say how much, not every item.
        for cat, items in (
            ("privilege_escalation", escalations),
            ("resource_exposure", exposure),
            ("credentials_exposure", creds),
            ("data_exfiltration", exfil),
            ("infrastructure_modification", infra),
        ):
            if items:
                counts[cat] = len(items)
        reasons.append(
            f"so also: {len(escalations)} privilege-escalation methods, {len(exposure)} "
            f"permissions-management, {len(exfil)} data-exfiltration and {len(infra)} write "
            "actions on *"
        )
        return counts, reasons

    if escalations:
        counts["privilege_escalation"] = len(escalations)
        for e in escalations[:3]:
            acts = " + ".join(proper.get(x, x) for x in e["actions"])
            reasons.append(f"privilege escalation: {acts} ({e['type']})")
        if len(escalations) > 3:
            reasons.append(f"privilege escalation: +{len(escalations) - 3} more methods")

    if exposure:
        counts["resource_exposure"] = len(exposure)
        reasons.append(f"resource exposure: {_short(exposure)} on *")

    if creds:
        counts["credentials_exposure"] = len(creds)
        reasons.append(f"credentials exposure: {_short(creds)} on *")

    if exfil:
        counts["data_exfiltration"] = len(exfil)
        reasons.extend(f"data exfiltration: {x} on *" for x in exfil[:3])
        if len(exfil) > 3:
            reasons.append(f"data exfiltration: +{len(exfil) - 3} more actions on *")

    if infra:
        counts["infrastructure_modification"] = len(infra)
        reasons.append(
            f"infrastructure modification: {len(infra)} write actions on *, e.g. {_short(infra)}"
        )
    return counts, reasons


# --------------------------------------------------------------------------- CloudTrail usage


@functools.lru_cache(maxsize=4096)
def iam_action_for_event(event_source: str, event_name: str) -> str | None:
    """The IAM action of a CloudTrail event, when policy_sentry knows it.

    The service prefix is the first label of ``eventSource`` (``s3.amazonaws.com`` -> ``s3``),
    which holds for most services; events whose name is not an IAM action of that prefix
    (for instance ``s3:ListObjects``, authorised by ``s3:ListBucket``) return ``None``.
    """
    from policy_sentry.querying.actions import get_action_data

    prefix = (event_source or "").split(".", 1)[0].lower()
    if not prefix or not event_name:
        return None
    data = get_action_data(prefix, event_name)
    entries = data.get(prefix) or []
    return entries[0]["action"] if entries else None


@functools.lru_cache(maxsize=4096)
def _access_level(action: str) -> str | None:
    from policy_sentry.querying.actions import get_action_data

    prefix, name = action.split(":", 1)
    entries = get_action_data(prefix, name).get(prefix) or []
    return entries[0]["access_level"] if entries else None


def assess_from_usage(actions_seen: list[str]) -> PrivilegeAssessment:
    """Score a role from the ``"<eventSource> <eventName>"`` pairs it was seen calling.

    Only what was seen: a role with broad permissions that only read would score low. Use
    ``--iam`` for what the role *can* do.
    """
    from cloudsplaining.shared.constants import (
        ACTIONS_THAT_RETURN_CREDENTIALS,
        PRIVILEGE_ESCALATION_METHODS,
        READ_ONLY_DATA_EXFILTRATION_ACTIONS,
    )

    a = PrivilegeAssessment(source="cloudtrail")
    iam_actions: set[str] = set()
    for pair in actions_seen or []:
        src, _, name = pair.partition(" ")
        act = iam_action_for_event(src, name)
        if act:
            iam_actions.add(act)
    lower = {x.lower(): x for x in iam_actions}
    exfil_set = {x.lower() for x in READ_ONLY_DATA_EXFILTRATION_ACTIONS}
    creds_set = {x.lower() for x in ACTIONS_THAT_RETURN_CREDENTIALS}

    buckets: dict[str, list[str]] = {c[1]: [] for c in CATEGORIES if c[1] != "admin"}
    for low, act in sorted(lower.items()):
        level = _access_level(act)
        if level == "Permissions management":
            buckets["resource_exposure"].append(act)
        elif low in creds_set:
            buckets["credentials_exposure"].append(act)
        elif low in exfil_set:
            buckets["data_exfiltration"].append(act)
        elif level in ("Write", "Tagging"):
            buckets["infrastructure_modification"].append(act)
    escalations = [
        (name, acts)
        for name, acts in PRIVILEGE_ESCALATION_METHODS.items()
        if set(acts).issubset(lower)
    ]
    for name, acts in escalations[:3]:
        a.reasons.append(
            f"privilege escalation seen: {' + '.join(lower[x] for x in acts)} ({name})"
        )
    buckets["privilege_escalation"] = [n for n, _ in escalations]
    for cat in (
        "resource_exposure",
        "credentials_exposure",
        "data_exfiltration",
        "infrastructure_modification",
    ):
        if buckets[cat]:
            a.reasons.append(f"{_LABEL[cat]} seen: {_short(buckets[cat])}")
    a.sensitive_actions_seen = sorted(
        {x for c, xs in buckets.items() if c != "privilege_escalation" for x in xs}
    )
    if not a.reasons:
        a.reasons.append(
            "no sensitive action seen in CloudTrail (only Read/List, or none); "
            "give --iam for what the role can do"
        )
    return _finish(a, {c: len(xs) for c, xs in buckets.items()})
