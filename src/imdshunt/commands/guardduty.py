"""``imdshunt guardduty check``: is GuardDuty watching for stolen instance credentials?"""

from __future__ import annotations

import json

import click

from imdshunt.commands._common import (
    EXIT_FINDINGS,
    ImdshuntGroup,
    make_session,
    print_iam_policy_option,
)
from imdshunt.errors import UsageError


@click.group(
    "guardduty",
    cls=ImdshuntGroup,
    epilog="""\b
Example:
  imdshunt guardduty check --region us-east-1 --region eu-west-1
""",
)
def guardduty() -> None:
    """GuardDuty readiness for instance-credential exfiltration, and a comparison with ours."""


@guardduty.command(
    "check",
    epilog="""\b
Examples:
  imdshunt guardduty check --region us-east-1
  aws guardduty get-findings --detector-id D --finding-ids ... > gd.json
  imdshunt guardduty check --offline --findings gd.json --from findings.jsonl
""",
)
@click.option(
    "--region", "regions", multiple=True, help="Region to check (repeatable; default all)."
)
@click.option("--profile", help="AWS profile to use.")
@click.option(
    "--findings",
    "gd_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Output of 'aws guardduty get-findings' to compare with imdshunt's findings.",
)
@click.option(
    "--from",
    "ours_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="imdshunt findings (JSON lines) of the same window, for --findings.",
)
@click.option("--offline", is_flag=True, help="Skip the live AWS checks (compare files only).")
@print_iam_policy_option("guardduty", what="the live check")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def check(
    regions: tuple[str, ...],
    profile: str | None,
    gd_file: str | None,
    ours_file: str | None,
    offline: bool,
    fmt: str,
) -> None:
    """Check, per region, that a GuardDuty detector is enabled, that no filter archives
    InstanceCredentialExfiltration.OutsideAWS/.InsideAWS findings, and that an EventBridge
    rule routes GuardDuty findings to a target. Exits 1 when a problem is found.

    With --findings and --from, lists what both caught, only GuardDuty, only imdshunt.
    """
    # imported here: imdshunt.respond brings botocore, which no other command needs at start
    from imdshunt.respond.guardduty import check as check_regions
    from imdshunt.respond.guardduty import compare_findings, load_guardduty_findings
    from imdshunt.respond.targets import load_findings

    if bool(gd_file) != bool(ours_file):
        raise UsageError("--findings and --from go together (GuardDuty's and imdshunt's findings)")
    if offline and not gd_file:
        raise UsageError("--offline leaves nothing to do without --findings and --from")
    out: dict = {}
    problems = False
    if not offline:
        session = make_session(profile, regions[0] if regions else None)
        results = check_regions(session, list(regions) or None)
        out["regions"] = [r.to_dict() for r in results]
        problems = any(not r.ok for r in results)
    if gd_file:
        comparison = compare_findings(load_guardduty_findings(gd_file), load_findings(ours_file))
        out["comparison"] = comparison.to_dict()
    if fmt == "json":
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(_render(out))
    if problems:
        raise SystemExit(EXIT_FINDINGS)


def _render(out: dict) -> str:
    lines: list[str] = []
    for r in out.get("regions", []):
        status = "OK" if r["ok"] else "PROBLEMS"
        lines.append(f"{r['region']}: {status}")
        lines.append(f"  detector: {r['detector_id'] or '-'} {r['detector_status'] or ''}".rstrip())
        lines.append(f"  routing rules: {', '.join(r['routing_rules']) or 'none'}")
        for p in r["problems"]:
            lines.append(f"  problem: {p}")
        for e in r["errors"]:
            lines.append(f"  could not check: {e}")
    c = out.get("comparison")
    if c:
        w = c["window"]
        lines.append(f"Comparison on {w['start']} .. {w['end']}:")
        lines.append(f"  caught by both: {len(c['both'])}")
        for x in c["both"]:
            lines.append(f"    {x['instance_id']} {', '.join(x['access_key_ids'])} ({x['type']})")
        lines.append(f"  only GuardDuty: {len(c['only_guardduty'])}")
        for x in c["only_guardduty"]:
            lines.append(f"    {x['instance_id']} {', '.join(x['access_key_ids'])} ({x['type']})")
        lines.append(f"  only imdshunt: {len(c['only_imdshunt'])}")
        for x in c["only_imdshunt"]:
            lines.append(
                f"    {x['credential_id']} {', '.join(x['access_key_ids'])} ({x['detection']})"
            )
        lines.append(
            f"  GuardDuty findings outside the window: {c['guardduty_outside_window']}; "
            f"of other types: {c['guardduty_other_types']}"
        )
    return "\n".join(lines)
