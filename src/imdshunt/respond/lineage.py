"""Containment of what a stolen credential minted or changed (its lineage, docs/lineage.md).

Revoking the stolen session cuts that session only. The steps here reach every derived
credential and artifact the finding lists in ``artifacts``, in a safe order: cut access first
(the chained role sessions, the created keys, the console passwords, a trust policy that lets
another account in), then clean up (policies, group memberships, keys, roles, users; a user
last, once nothing hangs on it). Each step re-reads the current state, so a second ``--apply``
changes nothing; each declares the IAM actions it needs (``permissions``, ``read_permissions``).

Nothing is deleted that the thief did not make: a key is deleted by its id, a user or role only
when the thief created it (``CreateUser``/``CreateRole`` among the artifacts), a policy only as
it was attached or put by the thief's call. A password the thief *changed* on an existing user
is printed for a human (deleting it would lock the owner out).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from imdshunt.respond.aws import AWS_ERRORS, AwsContext, error_code
from imdshunt.respond.plan import IN_PLACE, MANUAL, PENDING, SKIPPED, ApiCall, Permission, Step
from imdshunt.respond.policies import parse_time, same_document

_ROLE = "arn:aws:iam::*:role/*"
_USER = "arn:aws:iam::*:user/*"


def _absent(exc: BaseException) -> bool:
    return error_code(exc) == "NoSuchEntity"


# ----------------------------------------------------------------------------- reads


def _user_keys(ctx: AwsContext, user: str) -> dict[str, str] | None:
    """Access key id -> status of ``user``; None when the user does not exist."""
    try:
        pages = ctx.iam.get_paginator("list_access_keys").paginate(UserName=user)
        return {k["AccessKeyId"]: k["Status"] for p in pages for k in p["AccessKeyMetadata"]}
    except AWS_ERRORS as exc:
        if _absent(exc):
            return None
        raise


def _exists(call: Any, **kw: Any) -> bool:
    try:
        call(**kw)
    except AWS_ERRORS as exc:
        if _absent(exc):
            return False
        raise
    return True


def _attached(ctx: AwsContext, kind: str, name: str) -> set[str] | None:
    op = (
        ctx.iam.list_attached_user_policies
        if kind == "user"
        else ctx.iam.list_attached_role_policies
    )
    try:
        res = op(**{"UserName" if kind == "user" else "RoleName": name})
    except AWS_ERRORS as exc:
        if _absent(exc):
            return None
        raise
    return {p["PolicyArn"] for p in res["AttachedPolicies"]}


def _trust(ctx: AwsContext, role: str) -> dict[str, Any] | None:
    try:
        doc = ctx.iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    except AWS_ERRORS as exc:
        if _absent(exc):
            return None
        raise
    return json.loads(doc) if isinstance(doc, str) else doc


# ----------------------------------------------------------------------------- steps


@dataclass
class DeactivateKeyStep(Step):
    """Cut access: a key the thief made stops working at once (and can be re-enabled)."""

    action: ClassVar[str] = "deactivate-key"
    permissions: ClassVar[tuple[Permission, ...]] = (Permission.of("iam:UpdateAccessKey", _USER),)
    read_permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("iam:ListAccessKeys", _USER),
    )

    user_name: str = ""
    access_key_id: str = ""

    def is_done(self, ctx: AwsContext) -> bool:
        keys = _user_keys(ctx, self.user_name)
        return keys is None or keys.get(self.access_key_id, "Inactive") == "Inactive"


@dataclass
class DeleteKeyStep(Step):
    """Clean up: the key the thief made is deleted (after it was deactivated)."""

    action: ClassVar[str] = "delete-key"
    permissions: ClassVar[tuple[Permission, ...]] = (Permission.of("iam:DeleteAccessKey", _USER),)
    read_permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("iam:ListAccessKeys", _USER),
    )

    user_name: str = ""
    access_key_id: str = ""

    def is_done(self, ctx: AwsContext) -> bool:
        keys = _user_keys(ctx, self.user_name)
        return keys is None or self.access_key_id not in keys


@dataclass
class DeleteLoginProfileStep(Step):
    """Cut access: the console password the thief set on a user it made."""

    action: ClassVar[str] = "delete-login-profile"
    permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("iam:DeleteLoginProfile", _USER),
    )
    read_permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("iam:GetLoginProfile", _USER),
    )

    user_name: str = ""

    def is_done(self, ctx: AwsContext) -> bool:
        return not _exists(ctx.iam.get_login_profile, UserName=self.user_name)


@dataclass
class RestoreTrustStep(Step):
    """Cut access: the role's trust policy as it was before the thief's change."""

    action: ClassVar[str] = "restore-trust"
    permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("iam:UpdateAssumeRolePolicy", _ROLE),
    )
    read_permissions: ClassVar[tuple[Permission, ...]] = (Permission.of("iam:GetRole", _ROLE),)

    role_name: str = ""
    document: dict[str, Any] = field(default_factory=dict)

    def is_done(self, ctx: AwsContext) -> bool:
        current = _trust(ctx, self.role_name)
        return current is None or same_document(current, self.document)


@dataclass
class DetachPolicyStep(Step):
    """Clean up: a managed policy the thief attached to a user or role."""

    action: ClassVar[str] = "detach-policy"
    permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("iam:DetachUserPolicy", _USER),
        Permission.of("iam:DetachRolePolicy", _ROLE),
    )
    read_permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("iam:ListAttachedUserPolicies", _USER),
        Permission.of("iam:ListAttachedRolePolicies", _ROLE),
    )

    principal_kind: str = "user"
    principal_name: str = ""
    policy_arn: str = ""

    def is_done(self, ctx: AwsContext) -> bool:
        attached = _attached(ctx, self.principal_kind, self.principal_name)
        return attached is None or self.policy_arn not in attached


@dataclass
class DeleteInlinePolicyStep(Step):
    """Clean up: an inline policy the thief put on a user or role."""

    action: ClassVar[str] = "delete-inline-policy"
    permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("iam:DeleteUserPolicy", _USER),
        Permission.of("iam:DeleteRolePolicy", _ROLE),
    )
    read_permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("iam:GetUserPolicy", _USER),
        Permission.of("iam:GetRolePolicy", _ROLE),
    )

    principal_kind: str = "user"
    principal_name: str = ""
    policy_name: str = ""

    def is_done(self, ctx: AwsContext) -> bool:
        if self.principal_kind == "user":
            get, key = ctx.iam.get_user_policy, "UserName"
        else:
            get, key = ctx.iam.get_role_policy, "RoleName"
        return not _exists(get, **{key: self.principal_name, "PolicyName": self.policy_name})


@dataclass
class RemoveFromGroupStep(Step):
    """Clean up: a group membership the thief added."""

    action: ClassVar[str] = "remove-from-group"
    permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("iam:RemoveUserFromGroup", "arn:aws:iam::*:group/*"),
    )
    read_permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("iam:ListGroupsForUser", _USER),
    )

    user_name: str = ""
    group_name: str = ""

    def is_done(self, ctx: AwsContext) -> bool:
        try:
            groups = ctx.iam.list_groups_for_user(UserName=self.user_name)["Groups"]
        except AWS_ERRORS as exc:
            if _absent(exc):
                return True
            raise
        return self.group_name not in {g["GroupName"] for g in groups}


@dataclass
class DeletePrincipalStep(Step):
    """Clean up, last: a user or role the thief created, once nothing hangs on it.

    IAM refuses to delete a user that still has keys, a login profile, policies or groups
    (and a role with policies or instance profiles), so whatever is left is removed first:
    https://docs.aws.amazon.com/IAM/latest/UserGuide/id_users_remove.html#id_users_deleting_cli
    """

    action: ClassVar[str] = "delete-principal"
    permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("iam:DeleteUser", _USER),
        Permission.of("iam:DeleteAccessKey", _USER),
        Permission.of("iam:DeleteLoginProfile", _USER),
        Permission.of("iam:DetachUserPolicy", _USER),
        Permission.of("iam:DeleteUserPolicy", _USER),
        Permission.of("iam:RemoveUserFromGroup", "arn:aws:iam::*:group/*"),
        Permission.of("iam:DeleteRole", _ROLE),
        Permission.of("iam:DetachRolePolicy", _ROLE),
        Permission.of("iam:DeleteRolePolicy", _ROLE),
        Permission.of("iam:RemoveRoleFromInstanceProfile", "arn:aws:iam::*:instance-profile/*"),
    )
    read_permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("iam:GetUser", _USER),
        Permission.of("iam:ListAccessKeys", _USER),
        Permission.of("iam:GetLoginProfile", _USER),
        Permission.of("iam:ListAttachedUserPolicies", _USER),
        Permission.of("iam:ListUserPolicies", _USER),
        Permission.of("iam:ListGroupsForUser", _USER),
        Permission.of("iam:GetRole", _ROLE),
        Permission.of("iam:ListAttachedRolePolicies", _ROLE),
        Permission.of("iam:ListRolePolicies", _ROLE),
        Permission.of("iam:ListInstanceProfilesForRole", _ROLE),
    )

    principal_kind: str = "user"
    principal_name: str = ""

    def is_done(self, ctx: AwsContext) -> bool:
        if self.principal_kind == "user":
            return not _exists(ctx.iam.get_user, UserName=self.principal_name)
        return not _exists(ctx.iam.get_role, RoleName=self.principal_name)

    def run(self, ctx: AwsContext) -> None:
        iam, name = ctx.iam, self.principal_name
        if self.principal_kind == "user":
            for key in _user_keys(ctx, name) or {}:
                iam.delete_access_key(UserName=name, AccessKeyId=key)
            if _exists(iam.get_login_profile, UserName=name):
                iam.delete_login_profile(UserName=name)
            for arn in _attached(ctx, "user", name) or ():
                iam.detach_user_policy(UserName=name, PolicyArn=arn)
            for policy in iam.list_user_policies(UserName=name)["PolicyNames"]:
                iam.delete_user_policy(UserName=name, PolicyName=policy)
            for group in iam.list_groups_for_user(UserName=name)["Groups"]:
                iam.remove_user_from_group(UserName=name, GroupName=group["GroupName"])
            iam.delete_user(UserName=name)
            return
        for arn in _attached(ctx, "role", name) or ():
            iam.detach_role_policy(RoleName=name, PolicyArn=arn)
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        profiles = iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]
        for profile in profiles:
            iam.remove_role_from_instance_profile(
                InstanceProfileName=profile["InstanceProfileName"], RoleName=name
            )
        iam.delete_role(RoleName=name)


@dataclass
class LineageManualStep(Step):
    """Printed for a human: what imdshunt cannot undo safely by itself."""

    action: ClassVar[str] = "lineage-manual"


# ----------------------------------------------------------------------------- the plan


def _created(artifacts: list[dict[str, Any]], kind: str) -> set[str]:
    """Names of the users (``user``) or roles (``role``) the thief created."""
    field_name = "user_name" if kind == "user" else "role_name"
    return {a[field_name] for a in artifacts if a.get("type") == kind and a.get(field_name)}


def _pretty(doc: Any) -> list[str]:
    doc = json.loads(doc) if isinstance(doc, str) else doc
    return json.dumps(doc, indent=2, sort_keys=True).splitlines()


def trust_diff(current: Any, wanted: Any, role: str) -> str:
    """A unified diff from the role's current trust policy to the one to restore."""
    return "\n".join(
        difflib.unified_diff(
            _pretty(current) if current is not None else [],
            _pretty(wanted),
            f"{role} trust policy now",
            f"{role} trust policy restored",
            lineterm="",
        )
    )


def lineage_steps(
    ctx: AwsContext,
    artifacts: list[dict[str, Any]],
    *,
    revoke_session: Any = None,
) -> list[Step]:
    """The containment steps for ``artifacts`` (a finding's ``artifacts``), in order.

    ``revoke_session(role_name, session_name, issued_at)`` builds the revoke step of a chained
    role session (the same surgical revoke as the stolen session's,
    :func:`imdshunt.respond.actions._revoke_step`); it returns a step or None."""
    by_order: dict[int, list[Step]] = {}

    def add(order: int, step: Step) -> None:
        if step.status == PENDING and step.calls and step.is_done(ctx):
            step.status = IN_PLACE
        by_order.setdefault(order, []).append(step)

    users_made, roles_made = _created(artifacts, "user"), _created(artifacts, "role")
    seen: set[tuple] = set()
    for a in artifacts:
        kind = a.get("type")
        ident = (kind, a.get("access_key_id"), a.get("user_name"), a.get("role_name"),
                 a.get("policy_arn"), a.get("policy_name"), a.get("group_name"),
                 a.get("session_name"))  # fmt: skip
        if ident in seen:
            continue
        seen.add(ident)
        user, role, event = a.get("user_name"), a.get("role_name"), a.get("event_id", "?")
        why = f"made by {a.get('event_name')} (event {event}) at {a.get('time')}"
        if kind == "role-session" and role and revoke_session is not None:
            issued = parse_time(a["time"]) if a.get("time") else None
            step = revoke_session(role, a.get("session_name"), issued)
            if step is not None:
                step.title += f" (chained session {why})"
                by_order.setdefault(0, []).append(step)
        elif kind in ("session-token", "federation-token"):
            add(
                0,
                LineageManualStep(
                    title=f"Revoke the {kind} {a.get('access_key_id')} {why}",
                    calls=[],
                    effect=(
                        "sts:GetSessionToken / GetFederationToken credentials cannot be revoked "
                        "one by one: put an inline deny on the IAM user for tokens issued before "
                        "now (Condition DateLessThan aws:TokenIssueTime), or delete the user "
                        "(a step below does when the thief made it)."
                    ),
                    blast_radius=f"Every such token of user {user or '?'}.",
                    undo="Delete the inline deny.",
                    status=MANUAL,
                ),
            )
        elif kind == "access-key" and user and a.get("access_key_id"):
            key = a["access_key_id"]
            common = dict(user_name=user, access_key_id=key, warnings=[])
            add(
                1,
                DeactivateKeyStep(
                    title=f"Deactivate access key {key} of user {user} ({why})",
                    calls=[
                        ApiCall(
                            "iam",
                            "UpdateAccessKey",
                            {"UserName": user, "AccessKeyId": key, "Status": "Inactive"},
                        )
                    ],
                    effect=f"Key {key} stops working at once.",
                    blast_radius=f"Only key {key}; the user's other keys keep working.",
                    undo=f"iam:UpdateAccessKey UserName={user} AccessKeyId={key} Status=Active",
                    **common,
                ),
            )
            add(
                5,
                DeleteKeyStep(
                    title=f"Delete access key {key} of user {user}",
                    calls=[
                        ApiCall("iam", "DeleteAccessKey", {"UserName": user, "AccessKeyId": key})
                    ],
                    effect=f"Key {key} is gone for good.",
                    blast_radius=f"Only key {key}.",
                    undo="None: a deleted key cannot be restored (the thief made it).",
                    **common,
                ),
            )
        elif kind == "login-profile" and user:
            if user in users_made or a.get("event_name") == "CreateLoginProfile":
                add(
                    2,
                    DeleteLoginProfileStep(
                        title=f"Delete the console password of user {user} ({why})",
                        calls=[ApiCall("iam", "DeleteLoginProfile", {"UserName": user})],
                        effect=f"User {user} can no longer sign in to the console.",
                        blast_radius=f"Console access of user {user} only.",
                        undo=f"iam:CreateLoginProfile UserName={user} (a new password)",
                        user_name=user,
                    ),
                )
            else:
                add(
                    2,
                    LineageManualStep(
                        title=f"Reset the console password of existing user {user} ({why})",
                        calls=[],
                        effect=(
                            f"The thief changed the password of {user}, a user it did not make: "
                            "reset it (iam:UpdateLoginProfile with PasswordResetRequired) and "
                            "tell its owner; imdshunt does not lock the owner out."
                        ),
                        blast_radius=f"User {user}.",
                        undo="None needed.",
                        status=MANUAL,
                    ),
                )
        elif kind == "trust-policy" and role:
            add(3, _restore_trust(ctx, a, role, why))
        elif kind in ("user-policy", "role-policy"):
            pkind = "user" if kind == "user-policy" else "role"
            name = user if pkind == "user" else role
            if not name:
                continue
            if a.get("policy_arn"):
                op = "DetachUserPolicy" if pkind == "user" else "DetachRolePolicy"
                add(
                    4,
                    DetachPolicyStep(
                        title=f"Detach {a['policy_arn']} from {pkind} {name} ({why})",
                        calls=[_policy_call(op, pkind, name, PolicyArn=a["policy_arn"])],
                        effect=f"{pkind.title()} {name} loses what {a['policy_arn']} allowed.",
                        blast_radius=(
                            f"{pkind.title()} {name}: if the policy was attached before the "
                            "thief's call too (attaching twice succeeds), attach it again."
                        ),
                        undo=f"iam:{op.replace('Detach', 'Attach')} {name} {a['policy_arn']}",
                        principal_kind=pkind,
                        principal_name=name,
                        policy_arn=a["policy_arn"],
                    ),
                )
            elif a.get("policy_name"):
                op = "DeleteUserPolicy" if pkind == "user" else "DeleteRolePolicy"
                add(
                    4,
                    DeleteInlinePolicyStep(
                        title=f"Delete inline policy {a['policy_name']} of {pkind} {name} ({why})",
                        calls=[_policy_call(op, pkind, name, PolicyName=a["policy_name"])],
                        effect=f"{pkind.title()} {name} loses the thief's inline policy.",
                        blast_radius=(
                            f"{pkind.title()} {name}: an inline policy of that name written "
                            "before the thief's call was replaced by it and is lost too."
                        ),
                        undo=f"put the policy document back (in the finding: {event})",
                        principal_kind=pkind,
                        principal_name=name,
                        policy_name=a["policy_name"],
                    ),
                )
        elif kind == "group-membership" and user and a.get("group_name"):
            add(
                4,
                RemoveFromGroupStep(
                    title=f"Remove user {user} from group {a['group_name']} ({why})",
                    calls=[
                        ApiCall(
                            "iam",
                            "RemoveUserFromGroup",
                            {"UserName": user, "GroupName": a["group_name"]},
                        )
                    ],
                    effect=f"User {user} loses what group {a['group_name']} allows.",
                    blast_radius=f"User {user} only.",
                    undo=f"iam:AddUserToGroup UserName={user} GroupName={a['group_name']}",
                    user_name=user,
                    group_name=a["group_name"],
                ),
            )
    for role in sorted(roles_made):
        add(6, _delete_principal("role", role, artifacts))
    for user in sorted(users_made):
        add(7, _delete_principal("user", user, artifacts))
    return [s for order in sorted(by_order) for s in by_order[order]]


def _policy_call(op: str, kind: str, name: str, **policy: str) -> ApiCall:
    """The IAM call ``op`` on a user's or a role's policy (the two differ in one parameter)."""
    return ApiCall("iam", op, {"UserName" if kind == "user" else "RoleName": name, **policy})


def _delete_principal(kind: str, name: str, artifacts: list[dict[str, Any]]) -> Step:
    made = next(
        (a for a in artifacts if a.get("type") == kind and a.get(f"{kind}_name") == name), {}
    )
    op = "DeleteUser" if kind == "user" else "DeleteRole"
    return DeletePrincipalStep(
        title=f"Delete {kind} {name}, made by the thief ({made.get('event_name')} event "
        f"{made.get('event_id')})",
        calls=[ApiCall("iam", op, {"UserName" if kind == "user" else "RoleName": name})],
        effect=(
            f"{kind.title()} {name} is deleted, with whatever still hangs on it (keys, console "
            "password, policies, groups, instance profiles): IAM refuses to delete it otherwise."
        ),
        blast_radius=f"{kind.title()} {name}, which the thief created.",
        undo="None: a deleted principal cannot be restored (the thief made it).",
        principal_kind=kind,
        principal_name=name,
    )


def _restore_trust(ctx: AwsContext, a: dict[str, Any], role: str, why: str) -> Step:
    before, after = a.get("trust_policy_before"), a.get("trust_policy_after")
    current = _trust(ctx, role)
    if current is None:
        return RestoreTrustStep(
            title=f"Restore the trust policy of role {role} ({why})",
            calls=[],
            effect="The role no longer exists.",
            blast_radius="None.",
            undo="Nothing to undo.",
            status=SKIPPED,
            role_name=role,
        )
    if not before:
        return LineageManualStep(
            title=f"Review the trust policy of role {role} ({why})",
            calls=[],
            effect=(
                "The thief set this trust policy; the one it replaced is not in the logs "
                "(CloudTrail does not record it). Remove the principals it added:\n"
                + "\n".join(_pretty(after) if after else ["(document not recorded)"])
            ),
            blast_radius=f"Whoever may assume role {role}.",
            undo="None needed.",
            status=MANUAL,
        )
    wanted = json.loads(before) if isinstance(before, str) else before
    warnings = []
    if after and not same_document(current, after) and not same_document(current, wanted):
        warnings.append(
            f"role {role}'s trust policy changed again after the thief's call: check the diff "
            "before applying"
        )
    return RestoreTrustStep(
        title=f"Restore the trust policy of role {role} ({why})",
        calls=[
            ApiCall(
                "iam",
                "UpdateAssumeRolePolicy",
                {"RoleName": role, "PolicyDocument": json.dumps(wanted)},
            )
        ],
        effect="The role trusts again whom it trusted before the thief's change.",
        blast_radius=f"Whoever may assume role {role}.",
        undo=f"iam:UpdateAssumeRolePolicy RoleName={role} with the document below's left side",
        explanation=trust_diff(current, wanted, role),
        warnings=warnings,
        role_name=role,
        document=wanted,
    )


def derived_artifact(finding: dict[str, Any]) -> dict[str, Any] | None:
    """The derived credential of a ``derived_credential_use`` finding, as an artifact, so
    ``respond --finding <derived>`` contains the credential itself."""
    kind = finding.get("derived_kind")
    if not kind:
        return None
    out = {
        "type": kind,
        "event_name": finding.get("minting_event_name"),
        "event_id": finding.get("minting_event_id"),
        "time": finding.get("minting_time"),
        "access_key_id": finding.get("derived_access_key_id"),
        "principal_arn": finding.get("derived_principal_arn"),
        "user_name": finding.get("derived_user_name"),
    }
    if kind == "role-session":
        out["role_name"] = finding.get("role")
        out["session_name"] = finding.get("credential_id")
    if kind == "user" and not out["user_name"] and out["principal_arn"]:
        out["user_name"] = str(out["principal_arn"]).rsplit("/", 1)[-1]
    return {k: v for k, v in out.items() if v is not None}
