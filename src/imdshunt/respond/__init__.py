"""Containment of stolen instance credentials: plans (printed, no side effects) and their
application through boto3 (``apply_plan``), plus the GuardDuty readiness check.

Typical use::

    import boto3
    from imdshunt.respond import Target, build_plan, apply_plan

    session = boto3.Session(profile_name="victim-account")
    plan = build_plan(session, Target(role_name="web", session_name="i-0abc", instance_id="i-0abc"))
    print(plan.render())
    apply_plan(plan, session, audit_log="imdshunt-audit.jsonl")
"""

from imdshunt.permissions import Permission
from imdshunt.respond.actions import (
    ACTIONS,
    DEFAULT_MARGIN,
    REISSUED_TAG,
    ServiceLinkedRoleError,
    build_plan,
    collect_egress,
    egress_from_inventory,
)
from imdshunt.respond.permissions import iam_policy, print_iam_policy
from imdshunt.respond.plan import (
    ApplyReport,
    Clock,
    Plan,
    PlanFailed,
    Step,
    Target,
    apply_plan,
)
from imdshunt.respond.targets import (
    load_findings,
    select_finding,
    target_from_finding,
    targets_from_findings,
)

__all__ = [
    "ACTIONS",
    "DEFAULT_MARGIN",
    "REISSUED_TAG",
    "ApplyReport",
    "Clock",
    "Permission",
    "Plan",
    "PlanFailed",
    "ServiceLinkedRoleError",
    "Step",
    "Target",
    "apply_plan",
    "build_plan",
    "collect_egress",
    "egress_from_inventory",
    "iam_policy",
    "load_findings",
    "print_iam_policy",
    "select_finding",
    "target_from_finding",
    "targets_from_findings",
]
