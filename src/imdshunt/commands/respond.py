"""``imdshunt respond``: print (and with ``--apply`` carry out) a containment plan."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING

import click

from imdshunt.commands._common import ImdshuntCommand, make_session, print_iam_policy_option
from imdshunt.errors import AwsActionError, UsageError

if TYPE_CHECKING:
    from imdshunt.respond import Target

# imdshunt.respond (and botocore with it) is imported when the command runs, not when the CLI
# starts: every other command would pay for it.


def _targets(
    finding_id: str | None,
    findings_file: str | None,
    role: str | None,
    instance: str | None,
    session_name: str | None,
) -> list[Target]:
    from imdshunt.respond import (
        Target,
        load_findings,
        select_finding,
        target_from_finding,
        targets_from_findings,
    )

    if findings_file:
        if role or instance:
            raise UsageError("give either --from/--finding or --role/--instance, not both")
        findings = load_findings(findings_file)
        if finding_id:
            return [target_from_finding(select_finding(findings, finding_id), findings)]
        targets = targets_from_findings(findings)
        if not targets:
            raise UsageError(f"{findings_file} holds no credential-use finding")
        return targets
    if finding_id:
        raise UsageError("--finding needs --from FILE (the findings to pick it from)")
    if not role or not (instance or session_name):
        raise UsageError(
            "say what to contain: --from FILE [--finding ID], or --role and --instance"
        )
    return [
        Target(
            role_name=role,
            session_name=session_name or instance or "",
            instance_id=instance,
            credential_type="ec2-instance" if instance else "other",
        )
    ]


@click.command(
    "respond",
    cls=ImdshuntCommand,
    epilog="""\b
Examples:
  imdshunt respond --from findings.jsonl --finding i-0abc12345def67890
  imdshunt respond --role web-app --instance i-0abc12345def67890 --region eu-west-1
  imdshunt respond --from findings.jsonl --finding 3 --pin --apply --audit-log audit.jsonl
  imdshunt respond --print-iam-policy > imdshunt-policy.json
""",
)
@click.option(
    "--finding", "finding_id", metavar="ID", help="Finding to contain (session, key or line)."
)
@click.option(
    "--from",
    "findings_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Findings in JSON lines (imdshunt hunt --format jsonl).",
)
@click.option("--role", help="Role name whose session was stolen.")
@click.option("--instance", help="EC2 instance id the credentials were taken from.")
@click.option("--session", "session_name", help="Role session name, when not an instance id.")
@click.option(
    "--role-wide",
    is_flag=True,
    help="Revoke every session of the role (AWSRevokeOlderSessions), not just the stolen one.",
)
@click.option(
    "--pin", is_flag=True, help="Also pin the role's instance credentials to their network."
)
@click.option(
    "--egress-ip", multiple=True, metavar="IP", help="Extra egress address or CIDR for --pin."
)
@click.option(
    "--hop-limit",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="IMDS hop limit to set (2 when containers on the host need IMDS).",
)
@click.option(
    "--margin",
    type=click.IntRange(0, 3600),
    default=120,
    show_default=True,
    help="Seconds the revoke cut-off lies in the future, to cover propagation.",
)
@click.option(
    "--no-replace-profile",
    is_flag=True,
    help="Do not replace the instance-profile association; print how instead.",
)
@click.option(
    "--enforce-imdsv2-despite-v1-calls",
    "enforce_despite_v1",
    is_flag=True,
    help="Require IMDSv2 even when the instance's MetadataNoToken shows IMDSv1 calls (the "
    "software making them breaks). Without it, --apply refuses that step and exits 1.",
)
@click.option(
    "--apply", "do_apply", is_flag=True, help="Carry the plan out. Without it, nothing changes."
)
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False),
    default="imdshunt-audit.jsonl",
    show_default=True,
    help="JSON-lines audit file appended to by --apply.",
)
@print_iam_policy_option(
    "respond", "collect", "guardduty", what="imdshunt (respond, inventory collect, guardduty check)"
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--region", help="Region of the instance (default: the profile's).")
@click.option("--profile", help="AWS profile of the victim's account.")
def respond(
    finding_id: str | None,
    findings_file: str | None,
    role: str | None,
    instance: str | None,
    session_name: str | None,
    role_wide: bool,
    pin: bool,
    egress_ip: tuple[str, ...],
    hop_limit: int,
    margin: int,
    no_replace_profile: bool,
    enforce_despite_v1: bool,
    do_apply: bool,
    audit_log: str,
    fmt: str,
    region: str | None,
    profile: str | None,
) -> None:
    """Contain a stolen instance credential: revoke the stolen session first, give the
    victim fresh credentials, enforce IMDSv2, optionally pin, and list follow-ups.

    Prints a numbered plan (each step's exact API call, effect, blast radius and undo).
    Nothing changes without --apply; a second --apply changes nothing and says so.
    """
    from imdshunt.respond import apply_plan, build_plan

    targets = _targets(finding_id, findings_file, role, instance, session_name)
    session = make_session(profile, region)
    plans = [
        build_plan(
            session,
            t,
            region=region,
            role_wide=role_wide,
            pin=pin,
            margin=timedelta(seconds=margin),
            hop_limit=hop_limit,
            replace_profile=not no_replace_profile,
            egress_addresses=list(egress_ip),
            enforce_imdsv2_despite_v1_calls=enforce_despite_v1,
        )
        for t in targets
    ]
    if not do_apply:
        if fmt == "json":
            click.echo(json.dumps([p.to_dict() for p in plans], indent=2))
        else:
            click.echo("\n\n".join(p.render() for p in plans))
        return
    if fmt == "text":
        click.echo("\n\n".join(p.render() for p in plans))
    reports = []
    for plan in plans:
        report = apply_plan(plan, session, audit_log, progress=lambda m: click.echo(m, err=True))
        reports.append(report)
        if fmt == "text":
            click.echo("\n" + report.render())
    if fmt == "json":
        out = {"plans": [p.to_dict() for p in plans], "reports": [r.to_dict() for r in reports]}
        click.echo(json.dumps(out, indent=2))
    click.echo(f"Audit records appended to {audit_log}", err=True)
    refused = [r for report in reports for r in report.refused]
    if refused:
        raise AwsActionError(
            f"{len(refused)} step(s) refused, not applied: "
            + "; ".join(f"{r.title}: {r.error}" for r in refused)
        )
