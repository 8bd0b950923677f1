"""The plan model (ordered steps) and its application with verification and an audit trail.

A :class:`Plan` is data: printing it calls nothing. Only :func:`apply_plan` changes anything,
and it re-reads the state of each step first so a second run changes nothing and says so.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from imdshunt.errors import AwsActionError
from imdshunt.permissions import Permission, declare
from imdshunt.respond.aws import AWS_ERRORS, AwsContext, describe_error
from imdshunt.respond.policies import iso_z

#: Step states at plan time.
PENDING = "pending"  # will change something when applied
IN_PLACE = "in-place"  # already in the wanted state: apply will change nothing
MANUAL = "manual"  # printed for a human, never run
SKIPPED = "skipped"  # cannot be done for this target; the reason is in the warnings
REFUSED = "refused"  # would break something; applied only when the caller says so explicitly

#: Step outcomes at apply time (also the audit log's ``result``).
APPLIED = "applied"
UNCHANGED = "unchanged"
FAILED = "failed"
NOT_RUN = "not-run"
PRINTED = "printed"


def _snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


@dataclass
class ApiCall:
    """One AWS API call exactly as it will be made: service, operation and boto3 parameters."""

    service: str
    operation: str
    params: dict[str, Any]

    @property
    def iam_action(self) -> str:
        return f"{self.service}:{self.operation}"

    def to_dict(self) -> dict[str, Any]:
        params = dict(self.params)
        if isinstance(params.get("PolicyDocument"), str):
            params["PolicyDocument"] = json.loads(params["PolicyDocument"])
        return {"call": self.iam_action, "params": params}

    def render(self) -> str:
        return f"{self.iam_action} " + json.dumps(self.to_dict()["params"], indent=2)

    def invoke(self, ctx: AwsContext) -> Any:
        method = getattr(ctx.client(self.service), _snake(self.operation))
        return method(**self.params)


class VerifyError(AwsActionError):
    """A step ran but reading the resource back did not show the wanted state."""


class Clock:
    """Wall clock and sleep, replaceable in tests."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class Step:
    """One step of a plan. Subclasses declare the IAM permissions they need.

    ``permissions`` are needed to apply the step, ``read_permissions`` to plan and verify it;
    each subclass files them under ``respond`` when it is defined, and
    :func:`imdshunt.permissions.iam_policy` is derived from them.
    """

    action: ClassVar[str] = "step"
    permissions: ClassVar[tuple[Permission, ...]] = ()
    read_permissions: ClassVar[tuple[Permission, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declare(("respond",), (*cls.permissions, *cls.read_permissions))

    title: str
    calls: list[ApiCall]
    effect: str
    blast_radius: str
    undo: str
    warnings: list[str] = field(default_factory=list)
    explanation: str = ""
    status: str = PENDING

    def is_done(self, ctx: AwsContext) -> bool:
        """Read the current state: True when applying would change nothing."""
        return False

    def before(
        self, ctx: AwsContext, clock: Clock, progress: Callable[[str], None] | None = None
    ) -> None:
        """Called just before the calls run (for example to wait for a cut-off)."""

    def run(self, ctx: AwsContext) -> None:
        for call in self.calls:
            call.invoke(ctx)

    def verify(self, ctx: AwsContext) -> None:
        """Read the resource back; raise :class:`VerifyError` unless it is as wanted."""
        if not self.is_done(ctx):
            raise VerifyError(f"{self.title}: read-back does not show the change")

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "title": self.title,
            "status": self.status,
            "calls": [c.to_dict() for c in self.calls],
            "effect": self.effect,
            "blast_radius": self.blast_radius,
            "undo": self.undo,
            "warnings": list(self.warnings),
            "explanation": self.explanation,
            "permissions": sorted({p.action for p in self.permissions}),
        }


@dataclass
class Target:
    """Whose credential was stolen: a role session, and the instance it belongs to if any."""

    role_name: str
    session_name: str
    instance_id: str | None = None
    credential_type: str = "ec2-instance"
    account_id: str | None = None
    access_key_ids: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    source_ip: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    #: Other sessions (instances, tasks) seen using the same role, from findings or logs.
    other_sessions: list[str] = field(default_factory=list)
    #: What the stolen credential minted or changed (the finding's ``artifacts``, see
    #: docs/lineage.md): contained by the steps of :mod:`imdshunt.respond.lineage`.
    artifacts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role_name,
            "session_name": self.session_name,
            "instance_id": self.instance_id,
            "credential_type": self.credential_type,
            "account_id": self.account_id,
            "access_key_ids": list(self.access_key_ids),
            "source_ip": self.source_ip,
            "first_seen": iso_z(self.first_seen) if self.first_seen else None,
            "last_seen": iso_z(self.last_seen) if self.last_seen else None,
            "artifacts": len(self.artifacts),
        }


_STATUS_LABEL = {
    PENDING: "to do",
    IN_PLACE: "already in place: nothing to do",
    MANUAL: "for you to do: printed, not run",
    SKIPPED: "skipped",
    REFUSED: "refused without an explicit flag: see the warning",
}


@dataclass
class Plan:
    """An ordered containment plan for one :class:`Target`. Printing it has no side effects."""

    target: Target
    steps: list[Step]
    region: str | None
    cutoff: datetime
    role_wide: bool = False
    warnings: list[str] = field(default_factory=list)
    plan_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def pending(self) -> list[Step]:
        return [s for s in self.steps if s.status == PENDING]

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "created_at": iso_z(self.created_at),
            "region": self.region,
            "cutoff": iso_z(self.cutoff),
            "role_wide": self.role_wide,
            "target": self.target.to_dict(),
            "warnings": list(self.warnings),
            "steps": [s.to_dict() for s in self.steps],
        }

    def render(self) -> str:
        """The numbered plan as text: each step's call, effect, blast radius and undo."""
        t = self.target
        who = (
            f"role {t.role_name}, session {t.session_name}"
            if t.role_name
            else f"{t.credential_type} {t.session_name}"
        )
        if t.instance_id:
            who += f" (instance {t.instance_id}, region {self.region})"
        lines = [f"Containment plan {self.plan_id} for {who}"]
        lines.append(f"Revoke cut-off: credentials issued before {iso_z(self.cutoff)}")
        for w in self.warnings:
            lines.append(f"WARNING: {w}")
        for n, step in enumerate(self.steps, 1):
            lines.append("")
            lines.append(f"{n}. {step.title}  [{_STATUS_LABEL[step.status]}]")
            for call in step.calls:
                for i, text in enumerate(call.render().splitlines()):
                    lines.append(("   call: " if i == 0 else "         ") + text)
            if step.explanation:
                lines.extend("   " + x for x in step.explanation.splitlines())
            lines.append(f"   effect: {step.effect}")
            lines.append(f"   blast radius: {step.blast_radius}")
            lines.append(f"   undo: {step.undo}")
            for w in step.warnings:
                lines.append(f"   WARNING: {w}")
        lines.append("")
        if not self.pending:
            lines.append("Nothing to apply: every step is already in place or manual.")
        else:
            lines.append(f"{len(self.pending)} step(s) would change something; run with --apply.")
        return "\n".join(lines)


@dataclass
class StepResult:
    number: int
    title: str
    result: str
    error: str | None = None


@dataclass
class ApplyReport:
    """What :func:`apply_plan` did, step by step."""

    plan_id: str
    results: list[StepResult]

    @property
    def ok(self) -> bool:
        return all(r.result != FAILED for r in self.results)

    @property
    def changed(self) -> bool:
        return any(r.result == APPLIED for r in self.results)

    @property
    def refused(self) -> list[StepResult]:
        """Steps not applied because they would break something the caller did not accept."""
        return [r for r in self.results if r.result == REFUSED]

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "ok": self.ok,
            "changed": self.changed,
            "results": [
                {"step": r.number, "title": r.title, "result": r.result, "error": r.error}
                for r in self.results
            ],
        }

    def render(self) -> str:
        lines = [f"Applied plan {self.plan_id}:"]
        for r in self.results:
            line = f"{r.number}. {r.title}: {r.result}"
            if r.error:
                line += f" ({r.error})"
            lines.append(line)
        if not self.ok:
            done = [str(r.number) for r in self.results if r.result == APPLIED]
            lines.append(
                "STOPPED at the failed step. Changed: "
                + (", ".join(done) if done else "nothing")
                + "; later steps were not run."
            )
        elif self.refused:
            lines.append(
                "REFUSED: " + ", ".join(str(r.number) for r in self.refused) + " (see above)."
            )
        elif not self.changed:
            lines.append("Nothing changed: every step was already in place.")
        return "\n".join(lines)


class PlanFailed(AwsActionError):
    """A step failed while applying; ``report`` says what was and was not done."""

    def __init__(self, report: ApplyReport, message: str):
        self.report = report
        super().__init__(message)


class AuditLog:
    """Appends one JSON line per step: who, when, which calls, and the result."""

    def __init__(self, path: str | Path | None, identity: dict[str, str], plan: Plan):
        self.path = Path(path) if path else None
        self.identity = identity
        self.plan = plan

    def write(self, step_no: int, step: Step, result: str, error: str | None = None) -> None:
        if self.path is None:
            return
        record = {
            "time": iso_z(datetime.now(UTC)),
            "who": self.identity,
            "plan_id": self.plan.plan_id,
            "target": self.plan.target.to_dict(),
            "region": self.plan.region,
            "step": step_no,
            "action": step.action,
            "title": step.title,
            "calls": [c.to_dict() for c in step.calls] if result != PRINTED else [],
            "result": result,
            "error": error,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()


def apply_plan(
    plan: Plan,
    session: Any,
    audit_log: str | Path | None = None,
    *,
    clock: Clock | None = None,
    progress: Callable[[str], None] | None = None,
) -> ApplyReport:
    """Carry out ``plan`` with ``session``: check, run, verify each step; stop at a failure.

    Each step's state is read again first; a step already in place is left alone and
    reported ``unchanged`` (so a second run changes nothing). A step planned ``refused`` is
    not run and reported ``refused`` (:attr:`ApplyReport.refused`); the others still run.
    After the calls, the resource is read back. A failure stops the plan: later steps are
    reported ``not-run`` and :class:`PlanFailed` is raised carrying the report. Every step
    appends an audit record.
    """
    clock = clock or Clock()
    ctx = AwsContext(session, plan.region)
    identity = ctx.identity()
    audit = AuditLog(audit_log, identity, plan)
    results: list[StepResult] = []
    failed: StepResult | None = None
    for n, step in enumerate(plan.steps, 1):
        if failed is not None:
            results.append(StepResult(n, step.title, NOT_RUN))
            audit.write(n, step, NOT_RUN)
            continue
        if step.status in (MANUAL, SKIPPED):
            res = StepResult(n, step.title, PRINTED if step.status == MANUAL else SKIPPED)
            results.append(res)
            audit.write(n, step, res.result)
            continue
        if step.status == REFUSED:
            why = step.warnings[-1] if step.warnings else "refused"
            results.append(StepResult(n, step.title, REFUSED, why))
            audit.write(n, step, REFUSED, why)
            if progress:
                progress(f"{n}. {step.title}: REFUSED, not applied: {why}")
            continue
        try:
            if step.is_done(ctx):
                results.append(StepResult(n, step.title, UNCHANGED))
                audit.write(n, step, UNCHANGED)
                if progress:
                    progress(f"{n}. {step.title}: already in place")
                continue
            step.before(ctx, clock, progress)
            step.run(ctx)
            step.verify(ctx)
        except (AwsActionError, *AWS_ERRORS) as exc:
            msg = str(exc) if isinstance(exc, AwsActionError) else describe_error(exc)
            failed = StepResult(n, step.title, FAILED, msg)
            results.append(failed)
            audit.write(n, step, FAILED, msg)
            continue
        results.append(StepResult(n, step.title, APPLIED))
        audit.write(n, step, APPLIED)
        if progress:
            progress(f"{n}. {step.title}: applied and verified")
    report = ApplyReport(plan.plan_id, results)
    if failed is not None:
        raise PlanFailed(report, f"step {failed.number} failed: {failed.error}")
    return report
