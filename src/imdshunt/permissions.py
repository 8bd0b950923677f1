"""IAM permissions, declared beside the AWS calls that need them; the least-privilege policy
(``--print-iam-policy``) is derived from those declarations.

A function that makes boto3 calls says what they need, for which command, with :func:`needs`::

    @needs("ec2:DescribeRegions", commands=("collect",))
    def enabled_regions(session): ...

A containment step (:class:`imdshunt.respond.plan.Step`) declares its apply and read-back
permissions as class attributes, filed under ``respond`` when the class is defined.
``tests/test_permissions.py`` runs each command against moto, records every call it makes
(botocore's ``before-call`` event) and fails on any call no declaration covers.

``sts:GetCallerIdentity`` needs no permission and cannot be denied
(https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html), so it is
never listed.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

#: The commands a policy can be printed for, and the modules whose call sites serve them
#: (imported before the policy is derived, so that their declarations are filed).
COMMANDS: dict[str, tuple[str, ...]] = {
    "respond": ("imdshunt.respond.actions",),
    # imdshunt inventory collect (and the MetadataNoToken read it shares with exposure)
    "collect": ("imdshunt.enrich.collect", "imdshunt.exposure.metrics"),
    "guardduty": ("imdshunt.respond.guardduty",),  # imdshunt guardduty check
    "exposure": ("imdshunt.exposure.metrics",),  # imdshunt exposure --cloudwatch
}
#: Calls AWS answers for any caller.
NO_PERMISSION_NEEDED = frozenset({"sts:GetCallerIdentity"})


@dataclass(frozen=True)
class Permission:
    """One IAM permission an action needs, with the resource and condition it can be scoped to."""

    action: str
    resource: str = "*"
    condition_json: str | None = None

    @classmethod
    def of(cls, action: str, resource: str = "*", condition: dict | None = None) -> Permission:
        return cls(action, resource, json.dumps(condition, sort_keys=True) if condition else None)

    @property
    def condition(self) -> dict | None:
        return json.loads(self.condition_json) if self.condition_json else None


#: command -> what its call sites declared (filled as the declaring modules are imported).
DECLARED: dict[str, list[Permission]] = {name: [] for name in COMMANDS}

F = TypeVar("F", bound=Callable[..., Any])


def declare(commands: Iterable[str], permissions: Iterable[Permission | str]) -> None:
    """File ``permissions`` under each of ``commands``."""
    perms = [Permission.of(p) if isinstance(p, str) else p for p in permissions]
    for name in commands:
        if name not in COMMANDS:
            raise ValueError(f"unknown command {name!r}; choose from {sorted(COMMANDS)}")
        DECLARED[name].extend(p for p in perms if p not in DECLARED[name])


def needs(*permissions: Permission | str, commands: Iterable[str]) -> Callable[[F], F]:
    """Decorate a function making AWS calls with the IAM permissions those calls need."""
    commands = tuple(commands)

    def mark(func: F) -> F:
        declare(commands, permissions)
        func.iam_permissions = tuple(  # type: ignore[attr-defined]
            Permission.of(p) if isinstance(p, str) else p for p in permissions
        )
        return func

    return mark


def declared_permissions(commands: Iterable[str] = tuple(COMMANDS)) -> list[Permission]:
    """Every permission the call sites of ``commands`` declare."""
    commands = list(commands)
    unknown = set(commands) - set(COMMANDS)
    if unknown:
        raise ValueError(f"unknown commands {sorted(unknown)}; choose from {sorted(COMMANDS)}")
    out: list[Permission] = []
    for name in commands:
        for module in COMMANDS[name]:
            importlib.import_module(module)
        out.extend(p for p in DECLARED[name] if p not in out)
    return out


def _sid(actions: list[str], n: int) -> str:
    services = sorted({a.split(":")[0] for a in actions})
    return "Imdshunt" + "".join(s.capitalize() for s in services) + str(n)


def iam_policy(commands: Iterable[str] = tuple(COMMANDS)) -> dict[str, Any]:
    """Group the declared permissions by (resource, condition) into one policy document.

    A permission needed both unscoped (``"*"``) and scoped is kept only in its broader form.
    """
    perms = set(declared_permissions(commands))
    unscoped = {p.action for p in perms if p.resource == "*" and p.condition_json is None}
    groups: dict[tuple[str, str | None], set[str]] = {}
    for p in perms:
        if p.action in unscoped and not (p.resource == "*" and p.condition_json is None):
            continue
        groups.setdefault((p.resource, p.condition_json), set()).add(p.action)
    statements = []
    for n, ((resource, cond), actions) in enumerate(
        sorted(groups.items(), key=lambda kv: (kv[0][0] != "*", kv[0][0], kv[0][1] or "")), 1
    ):
        acts = sorted(actions)
        st: dict[str, Any] = {
            "Sid": _sid(acts, n),
            "Effect": "Allow",
            "Action": acts,
            "Resource": resource,
        }
        if cond:
            st["Condition"] = json.loads(cond)
        statements.append(st)
    return {"Version": "2012-10-17", "Statement": statements}


def print_iam_policy(commands: Iterable[str] = tuple(COMMANDS)) -> str:
    """The policy of :func:`iam_policy` as indented JSON text (what the CLI prints)."""
    return json.dumps(iam_policy(commands), indent=2)
