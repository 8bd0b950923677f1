"""The containment steps, in the order they must run, and :func:`build_plan`.

Order matters: rotating keys or tightening policies does not kill credentials already vended,
so the revoke comes first; then the victim gets credentials issued after the cut-off; then the
door (IMDSv1) is closed; then, optionally, the role's instance credentials are pinned to their
network. See ``docs/respond.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from imdshunt.errors import AwsActionError, UsageError
from imdshunt.permissions import needs
from imdshunt.respond.aws import AWS_ERRORS, AwsContext, describe_error, error_code
from imdshunt.respond.lineage import lineage_steps
from imdshunt.respond.plan import (
    IN_PLACE,
    MANUAL,
    PENDING,
    REFUSED,
    SKIPPED,
    ApiCall,
    Clock,
    Permission,
    Plan,
    Step,
    Target,
)
from imdshunt.respond.policies import (
    PIN_POLICY_NAME,
    ROLE_WIDE_POLICY_NAME,
    iso_z,
    parse_time,
    pin_policy,
    revoke_policy_cutoff,
    revoke_policy_user_id,
    role_wide_revoke_policy,
    same_document,
    session_policy_name,
    session_revoke_policy,
)

#: Tag imdshunt puts on the victim instance once its profile association has been replaced;
#: its value is the revoke cut-off, so a second run knows the fresh credentials came after it.
REISSUED_TAG = "imdshunt:credentials-reissued-after"

#: Default margin added to "now" for the revoke cut-off. It covers credentials handed out while
#: the deny propagates ("it might take a few minutes for policy updates to take effect",
#: https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_control-access_disable-perms.html)
#: and any re-theft before IMDSv2 is enforced. The victim's fresh credentials come after it.
DEFAULT_MARGIN = timedelta(minutes=2)

#: The command whose policy the call sites below declare their permissions in.
RESPOND = ("respond",)


#: The role name of EC2 instance identity credentials (assumed-role/aws:ec2-instance/<instance>).
INSTANCE_IDENTITY_ROLE = "aws:ec2-instance"


class ServiceLinkedRoleError(AwsActionError):
    """Refused: a service-linked role (path ``/aws-service-role/``) cannot be changed by us.

    AWS: "You cannot revoke the session for a service-linked role"
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_revoke-sessions.html).
    """


@needs("iam:GetRolePolicy", commands=RESPOND)
def _get_role_policy(ctx: AwsContext, role: str, name: str) -> dict[str, Any] | None:
    try:
        doc = ctx.iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    except AWS_ERRORS as exc:
        if error_code(exc) == "NoSuchEntity":
            return None
        raise
    return json.loads(doc) if isinstance(doc, str) else doc


@needs("ec2:DescribeInstances", commands=RESPOND)
def _describe_instance(ctx: AwsContext, instance_id: str) -> dict[str, Any] | None:
    try:
        res = ctx.ec2.describe_instances(InstanceIds=[instance_id])
    except AWS_ERRORS as exc:
        if error_code(exc) in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
            return None
        raise
    for reservation in res.get("Reservations", []):
        for inst in reservation.get("Instances", []):
            return inst
    return None


@needs("ec2:DescribeIamInstanceProfileAssociations", commands=RESPOND)
def _association(ctx: AwsContext, instance_id: str) -> dict[str, Any] | None:
    res = ctx.ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}]
    )
    for assoc in res.get("IamInstanceProfileAssociations", []):
        if assoc.get("State") in ("associated", "associating"):
            return assoc
    return None


# ----------------------------------------------------------------------------- steps


@dataclass
class RevokeStep(Step):
    """Step 1: an inline deny on the role for credentials issued before the cut-off."""

    action: ClassVar[str] = "revoke"
    permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("iam:PutRolePolicy", "arn:aws:iam::*:role/*"),
    )
    read_permissions: ClassVar[tuple[Permission, ...]] = (Permission.of("iam:GetRolePolicy"),)

    role_name: str = ""
    policy_name: str = ""
    document: dict[str, Any] = field(default_factory=dict)

    def is_done(self, ctx: AwsContext) -> bool:
        current = _get_role_policy(ctx, self.role_name, self.policy_name)
        return same_document(current, self.document)


@dataclass
class ReplaceProfileStep(Step):
    """Step 2: replace the instance-profile association so the instance gets fresh credentials.

    ReplaceIamInstanceProfileAssociation needs ``iam:PassRole`` on the profile's role
    (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ReplaceIamInstanceProfileAssociation.html).
    """

    action: ClassVar[str] = "replace-profile"
    permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("ec2:ReplaceIamInstanceProfileAssociation", "arn:aws:ec2:*:*:instance/*"),
        Permission.of(
            "iam:PassRole",
            "arn:aws:iam::*:role/*",
            {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        Permission.of(
            "ec2:CreateTags",
            "arn:aws:ec2:*:*:instance/*",
            {"ForAllValues:StringEquals": {"aws:TagKeys": [REISSUED_TAG]}},
        ),
    )
    read_permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("ec2:DescribeIamInstanceProfileAssociations"),
        Permission.of("ec2:DescribeInstances"),
    )

    instance_id: str = ""
    profile_arn: str = ""
    cutoff: datetime | None = None

    def is_done(self, ctx: AwsContext) -> bool:
        inst = _describe_instance(ctx, self.instance_id)
        if inst is None:
            return False
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", []) or []}
        mark = tags.get(REISSUED_TAG)
        assoc = _association(ctx, self.instance_id)
        return bool(
            mark
            and self.cutoff is not None
            and parse_time(mark) >= self.cutoff
            and assoc
            and assoc["IamInstanceProfile"]["Arn"] == self.profile_arn
        )

    def before(
        self, ctx: AwsContext, clock: Clock, progress: Callable[[str], None] | None = None
    ) -> None:
        """Wait until the cut-off has passed, so the new credentials are issued after it."""
        if self.cutoff is None:
            return
        if progress and self.cutoff >= clock.now():
            progress(f"waiting for the cut-off {iso_z(self.cutoff)} before replacing the profile")
        while (wait := (self.cutoff - clock.now()).total_seconds()) >= 0:
            clock.sleep(min(wait + 1, 15))

    def run(self, ctx: AwsContext) -> None:
        assoc = _association(ctx, self.instance_id)
        if assoc is None:
            raise AwsActionError(f"instance {self.instance_id} has no instance-profile association")
        # The association id may have changed since planning (a replace gives a new one).
        self.calls[0].params["AssociationId"] = assoc["AssociationId"]
        super().run(ctx)


#: The flag that lets the IMDSv2 step through when the instance still makes IMDSv1 calls.
ENFORCE_DESPITE_V1_FLAG = "--enforce-imdsv2-despite-v1-calls"


@dataclass
class ImdsV2Step(Step):
    """Step 3: require IMDSv2 session tokens on the instance.

    Planning reads the instance's ``AWS/EC2`` ``MetadataNoToken`` (IMDSv1 calls; AWS's check
    before requiring tokens): when software on the instance still calls v1, the step is
    ``refused`` unless the responder accepts the breakage explicitly.
    """

    action: ClassVar[str] = "enforce-imdsv2"
    permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("ec2:ModifyInstanceMetadataOptions", "arn:aws:ec2:*:*:instance/*"),
    )
    read_permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("ec2:DescribeInstances"),
        Permission.of("cloudwatch:GetMetricData"),
    )

    instance_id: str = ""
    wanted: dict[str, Any] = field(default_factory=dict)
    #: IMDSv1 calls over the window read (None: unknown), and that window.
    metadata_no_token_calls: int | None = None
    metadata_no_token_window: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return super().to_dict() | {
            "metadata_no_token_calls": self.metadata_no_token_calls,
            "metadata_no_token_window": self.metadata_no_token_window,
        }

    def is_done(self, ctx: AwsContext) -> bool:
        inst = _describe_instance(ctx, self.instance_id)
        opts = (inst or {}).get("MetadataOptions", {})
        return all(opts.get(k) == v for k, v in self.wanted.items())


@dataclass
class PinStep(Step):
    """Step 4 (optional): the pinning identity policy on the role."""

    action: ClassVar[str] = "pin"
    permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("iam:PutRolePolicy", "arn:aws:iam::*:role/*"),
    )
    read_permissions: ClassVar[tuple[Permission, ...]] = (
        Permission.of("iam:GetRolePolicy"),
        Permission.of("ec2:DescribeInstances"),
        Permission.of("ec2:DescribeNatGateways"),
        Permission.of("ec2:DescribeAddresses"),
    )

    role_name: str = ""
    document: dict[str, Any] = field(default_factory=dict)

    def is_done(self, ctx: AwsContext) -> bool:
        current = _get_role_policy(ctx, self.role_name, PIN_POLICY_NAME)
        return same_document(current, self.document)


@dataclass
class FollowUpStep(Step):
    """Step 5: what a human must still do. Printed, never run."""

    action: ClassVar[str] = "follow-ups"


#: Every action, in plan order.
ACTIONS: dict[str, type[Step]] = {
    cls.action: cls for cls in (RevokeStep, ReplaceProfileStep, ImdsV2Step, PinStep, FollowUpStep)
}


# ----------------------------------------------------------------------------- inventory


@dataclass
class RoleUsage:
    """Instances in one region whose instance profile carries the role."""

    profile_arns: list[str]
    #: instance id -> association
    associations: dict[str, dict[str, Any]]


@needs(
    "iam:ListInstanceProfilesForRole",
    "ec2:DescribeIamInstanceProfileAssociations",
    commands=RESPOND,
)
def role_usage(ctx: AwsContext, role_name: str) -> RoleUsage:
    """Find the role's instance profiles and the instances associated with them (one region)."""
    profiles: list[str] = []
    paginator = ctx.iam.get_paginator("list_instance_profiles_for_role")
    for page in paginator.paginate(RoleName=role_name):
        profiles.extend(p["Arn"] for p in page["InstanceProfiles"])
    assocs: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {}
    while True:
        page = ctx.ec2.describe_iam_instance_profile_associations(**kwargs)
        for a in page.get("IamInstanceProfileAssociations", []):
            if a.get("State") in ("associated", "associating") and (
                a["IamInstanceProfile"]["Arn"] in profiles
            ):
                assocs[a["InstanceId"]] = a
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    return RoleUsage(profiles, assocs)


def egress_from_inventory(
    instances: Iterable[dict[str, Any]],
    nat_gateways: Iterable[dict[str, Any]] = (),
    addresses: Iterable[dict[str, Any]] = (),
) -> list[str]:
    """Public egress addresses of some instances, from describe-shaped inventory records.

    ``instances`` are ``DescribeInstances`` instance records; ``nat_gateways`` are
    ``DescribeNatGateways`` records (kept when in one of the instances' VPCs);
    ``addresses`` are ``DescribeAddresses`` records (kept when attached to one of the
    instances). Instance public IPv4 and IPv6 addresses are kept as they are (calls over an
    internet or egress-only gateway carry them as ``aws:SourceIp``).
    """
    instances = list(instances)
    ids = {i["InstanceId"] for i in instances}
    vpcs = {i.get("VpcId") for i in instances if i.get("VpcId")}
    out: set[str] = set()
    for inst in instances:
        if inst.get("PublicIpAddress"):
            out.add(inst["PublicIpAddress"])
        for eni in inst.get("NetworkInterfaces", []) or []:
            for v6 in eni.get("Ipv6Addresses", []) or []:
                if v6.get("Ipv6Address"):
                    out.add(v6["Ipv6Address"])
    for nat in nat_gateways:
        if nat.get("VpcId") in vpcs and nat.get("State", "available") in ("available", "pending"):
            for addr in nat.get("NatGatewayAddresses", []) or []:
                if addr.get("PublicIp"):
                    out.add(addr["PublicIp"])
    for addr in addresses:
        if addr.get("InstanceId") in ids and addr.get("PublicIp"):
            out.add(addr["PublicIp"])
    return sorted(out)


@needs(
    "ec2:DescribeInstances", "ec2:DescribeNatGateways", "ec2:DescribeAddresses", commands=RESPOND
)
def collect_egress(ctx: AwsContext, instance_ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """Read the live inventory of ``instance_ids``; return (egress addresses, their VPC ids)."""
    if not instance_ids:
        return [], []
    instances = []
    for page in ctx.ec2.get_paginator("describe_instances").paginate(
        InstanceIds=list(instance_ids)
    ):
        for r in page["Reservations"]:
            instances.extend(r["Instances"])
    vpcs = sorted({i["VpcId"] for i in instances if i.get("VpcId")})
    nats = []
    if vpcs:
        for page in ctx.ec2.get_paginator("describe_nat_gateways").paginate(
            Filters=[{"Name": "vpc-id", "Values": vpcs}]
        ):
            nats.extend(page["NatGateways"])
    addresses = ctx.ec2.describe_addresses().get("Addresses", [])
    return egress_from_inventory(instances, nats, addresses), vpcs


# ----------------------------------------------------------------------------- builders


def _revoke_step(
    ctx: AwsContext,
    target: Target,
    role: dict[str, Any],
    *,
    role_wide: bool,
    cutoff: datetime,
    required_after: datetime | None,
    others: list[str],
) -> tuple[RevokeStep, datetime]:
    user_id = f"{role['RoleId']}:{target.session_name}"
    name = ROLE_WIDE_POLICY_NAME if role_wide else session_policy_name(target.session_name)
    existing = _get_role_policy(ctx, target.role_name, name)
    old_cutoff = revoke_policy_cutoff(existing)
    reuse = (
        existing is not None
        and old_cutoff is not None
        and (role_wide or revoke_policy_user_id(existing) == user_id)
        and (required_after is None or old_cutoff >= required_after)
    )
    if reuse:
        cutoff = old_cutoff  # type: ignore[assignment]
    if role_wide:
        document = role_wide_revoke_policy(cutoff)
        title = f"Revoke every session of role {target.role_name} issued before {iso_z(cutoff)}"
        effect = (
            f"Denies every action to every credential of role {target.role_name} issued before "
            f"{iso_z(cutoff)}, including the stolen one. This is the policy the IAM console "
            "writes for 'Revoke active sessions'."
        )
        blast = (
            "Every instance, task and person using this role until each picks up credentials "
            "issued after the cut-off (instances do so when IMDS refreshes them)."
        )
        if others:
            blast += " Seen using this role: " + ", ".join(others) + "."
        warnings = [
            "--role-wide denies EVERY session of role "
            f"{target.role_name} issued before {iso_z(cutoff)}; "
            + (
                "these other instances/tasks seen using the role will be denied until they "
                "pick up fresh credentials (replace their profile associations after the "
                "cut-off to hurry them): " + ", ".join(others)
                if others
                else "no other users of the role were seen, but unseen ones will be denied too"
            )
        ]
    else:
        document = session_revoke_policy(role["RoleId"], target.session_name, cutoff)
        title = f"Revoke the stolen session {user_id}"
        effect = (
            f"Denies every action to credentials of role {target.role_name} whose aws:userId is "
            f"{user_id} (role unique id : session name) and whose token was issued before "
            f"{iso_z(cutoff)}. Credentials already vended stay valid until they expire; this "
            "deny is what stops them now."
        )
        blast = (
            f"Only session {target.session_name} of role {target.role_name}: the stolen "
            "credentials and the victim's own current ones (step 2 gives it fresh ones). "
            "Other instances and tasks sharing the role have other session names and are "
            "not affected."
        )
        warnings = []
    if reuse:
        document = existing  # keep it byte for byte (the console writes "*" unlisted)
    step = RevokeStep(
        title=title,
        calls=[
            ApiCall(
                "iam",
                "PutRolePolicy",
                {
                    "RoleName": target.role_name,
                    "PolicyName": name,
                    "PolicyDocument": json.dumps(document),
                },
            )
        ],
        effect=effect,
        blast_radius=blast,
        undo=(
            f"iam:DeleteRolePolicy RoleName={target.role_name} PolicyName={name}. Harmless to "
            "keep: it only matches credentials issued before the cut-off, which expire."
        ),
        warnings=warnings,
        explanation=(
            "Revoke first: rotating keys or tightening policies does not kill credentials "
            "already vended. The cut-off is a little in the future to cover propagation."
        ),
        status=IN_PLACE if reuse else PENDING,
        role_name=target.role_name,
        policy_name=name,
        document=document,
    )
    return step, cutoff


def _fresh_credentials_manual(target: Target, reason: str) -> ReplaceProfileStep:
    how = {
        "ecs-task": "stop the task; its service starts a new one with fresh credentials",
        "eks-pod-identity": "delete the pod; its controller starts one with fresh credentials",
        "eks-irsa": "delete the pod; its controller starts one with fresh credentials",
        "lambda": "update the function's configuration so new execution environments start",
        "chained-role-session": "nothing to renew: the session was the thief's own; the "
        "role's rightful users assume it again",
        "other": "restart the workload after the cut-off so it obtains new credentials",
    }.get(
        target.credential_type,
        "after the cut-off, run aws ec2 replace-iam-instance-profile-association with the "
        "instance's current association id and profile (or stop and start the instance)",
    )
    return ReplaceProfileStep(
        title=f"Fresh credentials for {target.session_name}",
        calls=[],
        effect=f"How: {how}.",
        blast_radius=f"Only {target.session_name}.",
        undo="Nothing to undo.",
        warnings=[reason],
        status=MANUAL,
    )


def build_plan(
    session: Any,
    target: Target,
    *,
    region: str | None = None,
    role_wide: bool = False,
    pin: bool = False,
    margin: timedelta = DEFAULT_MARGIN,
    hop_limit: int = 1,
    replace_profile: bool = True,
    replacement_profile_arn: str | None = None,
    egress_addresses: Sequence[str] = (),
    not_before: datetime | None = None,
    clock: Clock | None = None,
    enforce_imdsv2_despite_v1_calls: bool = False,
    metric_days: int = 14,
) -> Plan:
    """Read the current state (read-only calls) and build the ordered containment plan.

    ``margin`` sets the cut-off (now + margin). An existing revoke policy for the same session
    is kept when its cut-off is not before ``not_before`` (default: the target's
    ``last_seen``), so a second run plans nothing. Raises :class:`ServiceLinkedRoleError`
    for a service-linked role, :class:`UsageError` when the role or instance is not found or
    the session belongs to another account, :class:`AwsActionError` when AWS refuses a read.
    The IMDSv2 step reads the victim's ``MetadataNoToken`` over the last ``metric_days``; when
    it shows IMDSv1 calls the step is ``refused`` unless ``enforce_imdsv2_despite_v1_calls``.
    """
    clock = clock or Clock()
    ctx = AwsContext(session, region)
    try:
        return _build(
            ctx, target, role_wide, pin, margin, hop_limit, replace_profile,
            replacement_profile_arn, egress_addresses, not_before, clock,
            enforce_imdsv2_despite_v1_calls=enforce_imdsv2_despite_v1_calls,
            metric_days=metric_days,
        )  # fmt: skip
    except AWS_ERRORS as exc:
        raise AwsActionError(f"cannot read the current state: {describe_error(exc)}") from exc


@needs("iam:GetRole", commands=RESPOND)  # the role itself; the helpers declare their own
def _build(
    ctx: AwsContext,
    target: Target,
    role_wide: bool,
    pin: bool,
    margin: timedelta,
    hop_limit: int,
    replace_profile: bool,
    replacement_profile_arn: str | None,
    egress_addresses: Sequence[str],
    not_before: datetime | None,
    clock: Clock,
    *,
    enforce_imdsv2_despite_v1_calls: bool = False,
    metric_days: int = 14,
) -> Plan:
    if not ctx.region:
        raise UsageError("no AWS region: pass --region (the region of the instance)")
    if hop_limit not in range(1, 65):
        raise UsageError("the IMDS hop limit must be between 1 and 64")
    ident = ctx.identity()
    if target.account_id and target.account_id != ident["account"]:
        raise UsageError(
            f"the stolen session belongs to account {target.account_id} but the credentials "
            f"given are for account {ident['account']}; use a profile in the victim's account"
        )
    if not target.role_name:  # a derived key, user or token: its lineage steps alone
        return _lineage_plan(ctx, target, clock.now().replace(microsecond=0) + margin)
    if target.role_name == INSTANCE_IDENTITY_ROLE:
        raise ServiceLinkedRoleError(
            f"{INSTANCE_IDENTITY_ROLE} is the EC2 instance identity role, which AWS manages: it "
            "is no IAM role of the account, so no policy can revoke its sessions. Its use off "
            f"the instance proves {target.instance_id or 'the instance'}'s metadata service was "
            "read: contain that instance's instance-profile role (its own finding) and enforce "
            "IMDSv2 on the instance."
        )
    try:
        role = ctx.iam.get_role(RoleName=target.role_name)["Role"]
    except AWS_ERRORS as exc:
        if error_code(exc) == "NoSuchEntity":
            raise UsageError(f"role {target.role_name} not found in {ident['account']}") from exc
        raise
    if role.get("Path", "/").startswith("/aws-service-role/"):
        raise ServiceLinkedRoleError(
            f"role {target.role_name} is a service-linked role (path {role['Path']}); AWS does "
            "not allow revoking its sessions or attaching policies to it. Contain the service "
            "that uses it instead."
        )
    usage = role_usage(ctx, target.role_name)
    victim = target.instance_id if target.credential_type == "ec2-instance" else None
    inst = None
    if victim:
        inst = _describe_instance(ctx, victim)
        if inst is None:
            raise UsageError(
                f"instance {victim} not found in region {ctx.region}; pass the instance's --region"
            )
    others = sorted(
        ({i for i in usage.associations if i != victim} | set(target.other_sessions))
        - {target.session_name}
    )
    required_after = not_before or target.last_seen
    cutoff = clock.now().replace(microsecond=0) + margin
    steps: list[Step] = []
    revoke, cutoff = _revoke_step(
        ctx, target, role, role_wide=role_wide, cutoff=cutoff,
        required_after=required_after, others=others,
    )  # fmt: skip
    steps.append(revoke)
    plan_warnings = list(revoke.warnings)
    # What the thief minted or changed: cut access first (respond/lineage.py, docs/lineage.md).
    steps.extend(lineage_steps(ctx, target.artifacts, revoke_session=_chained_revoke(ctx, cutoff)))

    # Step 2: fresh credentials for the victim.
    if victim is None:
        steps.append(
            _fresh_credentials_manual(
                target, f"{target.credential_type} credentials are not renewed by imdshunt"
            )
        )
    elif not replace_profile:
        steps.append(_fresh_credentials_manual(target, "you chose not to replace the profile"))
    else:
        assoc = usage.associations.get(victim) or _association(ctx, victim)
        if assoc is None:
            steps.append(
                _fresh_credentials_manual(
                    target, f"instance {victim} has no instance-profile association now"
                )
            )
        else:
            current = assoc["IamInstanceProfile"]["Arn"]
            new = replacement_profile_arn or current
            step = ReplaceProfileStep(
                title=f"Fresh credentials for {victim}: replace its instance-profile association",
                calls=[
                    ApiCall(
                        "ec2",
                        "ReplaceIamInstanceProfileAssociation",
                        {
                            "AssociationId": assoc["AssociationId"],
                            "IamInstanceProfile": {"Arn": new},
                        },
                    ),
                    ApiCall(
                        "ec2",
                        "CreateTags",
                        {
                            "Resources": [victim],
                            "Tags": [{"Key": REISSUED_TAG, "Value": iso_z(cutoff)}],
                        },
                    ),
                ],
                effect=(
                    f"Waits until the cut-off {iso_z(cutoff)} has passed, then re-associates "
                    f"{new} so the instance is handed credentials issued after the cut-off, "
                    f"which the revoke does not deny. Tags the instance {REISSUED_TAG} so a "
                    "second run knows."
                ),
                blast_radius=(
                    f"Only instance {victim}: from the revoke until its new credentials arrive, "
                    "its own calls with the old credentials are denied."
                ),
                undo=(
                    "Nothing to undo when the profile is unchanged"
                    if new == current
                    else f"replace the association again with {current}"
                ),
                status=PENDING,
                instance_id=victim,
                profile_arn=new,
                cutoff=cutoff,
            )
            if step.is_done(ctx):
                step.status = IN_PLACE
            steps.append(step)

    # Step 3: IMDSv2.
    if victim is None or inst is None:
        steps.append(
            ImdsV2Step(
                title="Enforce IMDSv2",
                calls=[],
                effect="Not an EC2 instance: no instance metadata options to change.",
                blast_radius="None.",
                undo="Nothing to undo.",
                status=SKIPPED,
            )
        )
    else:
        before = inst.get("MetadataOptions", {})
        wanted = {
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": hop_limit,
            "HttpEndpoint": "enabled",
        }
        undo_params = {k: before.get(k) for k in wanted if before.get(k) is not None}
        step3 = ImdsV2Step(
            title=f"Enforce IMDSv2 on {victim}",
            calls=[
                ApiCall("ec2", "ModifyInstanceMetadataOptions", {"InstanceId": victim, **wanted})
            ],
            effect=(
                "IMDS answers only requests carrying a session token obtained by PUT; a plain "
                "GET through an SSRF no longer returns credentials. Hop limit "
                f"{hop_limit} stops the token leaving the host."
            ),
            blast_radius=(
                f"Only instance {victim}: software on it still using IMDSv1 (old SDKs, agents) "
                "stops getting metadata. Check its CloudWatch MetadataNoToken metric."
            ),
            undo=f"ec2:ModifyInstanceMetadataOptions InstanceId={victim} "
            + " ".join(f"{k}={v}" for k, v in undo_params.items()),
            warnings=(
                [
                    "hop limit 1: containers on this host that reach IMDS through a bridge "
                    "network (Docker default, ECS bridge mode) need 2 and will get no "
                    "credentials with 1; use a hop limit of 2 if it runs containers"
                ]
                if hop_limit == 1
                else []
            ),
            instance_id=victim,
            wanted=wanted,
        )
        if step3.is_done(ctx):
            step3.status = IN_PLACE
        else:
            reading = _metadata_no_token(ctx, victim, clock, metric_days)
            _imds_v1_breakage(step3, reading, victim, enforce_imdsv2_despite_v1_calls)
        steps.append(step3)
        plan_warnings.extend(step3.warnings)

    # Step 4: pinning.
    if pin:
        steps.append(_pin_step(ctx, target, usage, list(egress_addresses)))

    steps.append(_follow_ups(target, role))
    return Plan(
        target=target,
        steps=steps,
        region=ctx.region,
        cutoff=cutoff,
        role_wide=role_wide,
        warnings=plan_warnings,
    )


def _metadata_no_token(ctx: AwsContext, instance_id: str, clock: Clock, days: int) -> Any:
    """The victim's ``MetadataNoToken`` over the last ``days`` (unknown when it cannot be read:
    the containment goes on, the plan says so)."""
    from imdshunt.exposure import metrics

    start, end = metrics.default_window(days=days, now=clock.now())
    try:
        results, labels = metrics.read_region(ctx.client("cloudwatch"), [instance_id], start, end)
    except AWS_ERRORS as exc:
        return metrics.MetadataNoToken(
            instance_id, None, start, end, f"not read: {describe_error(exc)}"
        )
    return metrics.readings_from_results(results, labels, start, end)[instance_id.lower()]


def _imds_v1_breakage(step: ImdsV2Step, reading: Any, victim: str, enforce_anyway: bool) -> None:
    """Say in the step what requiring tokens breaks, and refuse it without the flag."""
    step.metadata_no_token_calls = reading.calls
    step.metadata_no_token_window = reading.window
    if reading.calls is None:
        step.explanation = (
            f"MetadataNoToken over {reading.window}: unknown ({reading.note}). Check it before "
            "applying: software still calling IMDSv1 loses its metadata and credentials."
        )
        return
    if reading.calls == 0:
        step.explanation = (
            f"MetadataNoToken over {reading.window}: 0 IMDSv1 calls; requiring tokens breaks "
            "nothing that ran in that window."
        )
        return
    step.explanation = f"MetadataNoToken over {reading.window}: {reading.calls} IMDSv1 call(s)."
    breaks = (
        f"software on {victim} made {reading.calls} IMDSv1 call(s) over {reading.window}: "
        "once tokens are required it gets no instance metadata and no role credentials "
        "(old SDKs and agents, scripts calling 169.254.169.254 without a token) and fails"
    )
    step.blast_radius = f"Only instance {victim}, but it BREAKS: {breaks}."
    if enforce_anyway:
        step.warnings.append(breaks + f"; applied anyway ({ENFORCE_DESPITE_V1_FLAG})")
    else:
        step.warnings.append(
            breaks + f"; not applied without {ENFORCE_DESPITE_V1_FLAG} (a live theft may "
            "justify it: decide knowingly), or upgrade that software first"
        )
        step.status = REFUSED


def _chained_revoke(ctx: AwsContext, cutoff: datetime) -> Callable[..., Step | None]:
    """The revoke of a role session the thief chained into: surgical (aws:userId and
    aws:TokenIssueTime) when its session name is known, else AWSRevokeOlderSessions on that
    role; None for a role imdshunt may not touch (then a manual step says why)."""

    @needs("iam:GetRole", commands=RESPOND)
    def revoke(role_name: str, session_name: str | None, issued: datetime | None) -> Step | None:
        try:
            role = ctx.iam.get_role(RoleName=role_name)["Role"]
        except AWS_ERRORS as exc:
            if error_code(exc) != "NoSuchEntity":
                raise
            role = None
        if role is None or role.get("Path", "/").startswith("/aws-service-role/"):
            return FollowUpStep(
                title=f"Revoke the chained session {session_name} of role {role_name}",
                calls=[],
                effect="The role is not in this account or is service-linked: revoke its "
                "sessions in the account that owns it.",
                blast_radius="None: nothing is run.",
                undo="Nothing to undo.",
                status=MANUAL,
            )
        chained = Target(role_name=role_name, session_name=session_name or "")
        step, _ = _revoke_step(
            ctx, chained, role, role_wide=not session_name, cutoff=cutoff,
            required_after=issued, others=[],
        )  # fmt: skip
        return step

    return revoke


def _lineage_plan(ctx: AwsContext, target: Target, cutoff: datetime) -> Plan:
    """The plan for a derived key, user or token (no role session of its own)."""
    steps = lineage_steps(ctx, target.artifacts, revoke_session=_chained_revoke(ctx, cutoff))
    return Plan(target=target, steps=steps, region=ctx.region, cutoff=cutoff)


def _pin_step(ctx: AwsContext, target: Target, usage: RoleUsage, extra: list[str]) -> PinStep:
    instance_ids = sorted(usage.associations)
    egress, vpcs = collect_egress(ctx, instance_ids)
    egress = sorted(set(egress) | set(extra))
    document = pin_policy(egress)
    warnings = [
        f"the pinning policy applies to every instance using role {target.role_name}; egress "
        f"was read for {len(instance_ids)} instance(s) in {ctx.region} only (VPCs: "
        f"{', '.join(vpcs) or 'none'}). Add egress addresses (central NAT, proxies, other "
        "regions) before applying, or those instances will be denied."
    ]
    status = PENDING
    if not egress:
        warnings.append(
            "no public egress address was found: the pinning policy would deny every call "
            "not made through a VPC endpoint; skipped. Give the egress addresses explicitly."
        )
        status = SKIPPED
    step = PinStep(
        title=f"Pin role {target.role_name}'s instance credentials to their network",
        calls=[
            ApiCall(
                "iam",
                "PutRolePolicy",
                {
                    "RoleName": target.role_name,
                    "PolicyName": PIN_POLICY_NAME,
                    "PolicyDocument": json.dumps(document),
                },
            )
        ],
        effect=(
            "Instance credentials of this role stop working anywhere but from their instance's "
            "network, so a copy taken off-box is useless."
        ),
        blast_radius=(
            f"Every instance using role {target.role_name} ({len(instance_ids)} seen). Calls "
            "made by AWS services on the role's behalf are not affected."
        ),
        undo=f"iam:DeleteRolePolicy RoleName={target.role_name} PolicyName={PIN_POLICY_NAME}",
        warnings=warnings,
        explanation=(
            "How the policy decides (only for EC2 instance credentials, ec2:SourceInstanceARN "
            "present, and not via an AWS service):\n"
            "- through a VPC endpoint: deny unless aws:SourceVpc is the instance's VPC "
            "(aws:Ec2InstanceSourceVpc) and aws:VpcSourceIp is its private IPv4 "
            "(aws:Ec2InstanceSourcePrivateIPv4);\n"
            "- not through a VPC endpoint (aws:SourceVpc absent): deny unless aws:SourceIp is "
            "one of: " + (", ".join(egress) or "(none found)") + ".\n"
            "AWS's sample policy has only the VPC-endpoint comparisons, without the Null "
            "guards, so it denies the instance's own calls leaving through a NAT or internet "
            "gateway (aws:SourceVpc is absent there and StringNotEquals then matches)."
        ),
        status=status,
        role_name=target.role_name,
        document=document,
    )
    if status == PENDING and step.is_done(ctx):
        step.status = IN_PLACE
    return step


def _follow_ups(target: Target, role: dict[str, Any]) -> FollowUpStep:
    keys = target.access_key_ids or ["<the stolen ASIA key>"]
    calls = [
        ApiCall(
            "cloudtrail",
            "LookupEvents",
            {"LookupAttributes": [{"AttributeKey": "AccessKeyId", "AttributeValue": k}]},
        )
        for k in keys
    ]
    acted = ", ".join(target.actions) if target.actions else "(not recorded)"
    return FollowUpStep(
        title="Follow-ups (printed, not run)",
        calls=calls,
        effect=(
            "1. Rotate every secret the role could read (Secrets Manager, SSM parameters, "
            f"S3 objects, database passwords) — see the policies on {role['Arn']}.\n"
            "   2. Fix the SSRF (or other flaw) that reached the metadata service.\n"
            "   3. Look for persistence created with the stolen key (new IAM users, keys, "
            "roles, policies, Lambda functions, instances): the calls above list what it did. "
            f"Actions seen in the finding: {acted}."
        ),
        blast_radius="None: nothing is run.",
        undo="Nothing to undo.",
        status=MANUAL,
    )
