"""``imdshunt exposure``: the IMDSv1 migration backlog, ranked by what each role can do."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from imdshunt.commands._common import EXIT_FINDINGS, ImdshuntCommand

EPILOG = """\b
Examples:
  imdshunt exposure AWSLogs/ --inventory instances.json --iam auth.json
  imdshunt exposure trail/ --format jsonl -o backlog.jsonl

\b
Inputs:
  --inventory  output of `aws ec2 describe-instances` (repeat per region/account)
  --iam        output of `aws iam get-account-authorization-details`
"""


@click.command(name="exposure", cls=ImdshuntCommand, epilog=EPILOG)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--inventory",
    "inventory",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="`aws ec2 describe-instances` JSON: adds metadata options, Name tag, state, and "
    "instances answering IMDSv1 (HttpTokens optional) with no v1 use yet. Repeatable.",
)
@click.option(
    "--iam",
    "iam_file",
    type=click.Path(exists=True, dir_okay=False),
    help="`aws iam get-account-authorization-details` JSON: rank roles by what their "
    "policies allow (cloudsplaining). Without it, by sensitive actions seen in CloudTrail.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "jsonl", "csv"]),
    default="table",
    show_default=True,
    help="Output format; jsonl writes documented imdsv1_exposure records.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to FILE instead of standard output.",
)
def exposure(
    paths: tuple[str, ...],
    inventory: tuple[str, ...],
    iam_file: str | None,
    fmt: str,
    output: str | None,
) -> None:
    """List every EC2 instance that still hands out credentials over IMDSv1.

    Reads CloudTrail at PATH... (userIdentity.sessionContext.ec2RoleDelivery "1.0" = IMDSv1),
    ranks the instances by how much damage their role could do, and prints for each the
    command that requires IMDSv2, the check to run first, and account-level guardrails.
    Exits 1 when it lists any instance (like a hunt's findings), 0 when none.
    """
    from imdshunt import api
    from imdshunt.exposure import exposure_backlog
    from imdshunt.exposure.output import render_table, write_csv, write_jsonl

    engine, _stats = api.load_cloudtrail(list(paths))
    records = exposure_backlog(engine, inventory_files=inventory, iam_file=iam_file)

    out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout  # noqa: SIM115
    try:
        if fmt == "jsonl":
            write_jsonl(records, out)
        elif fmt == "csv":
            write_csv(records, out)
        else:
            from rich.console import Console

            console = (
                Console(file=out, width=200, force_terminal=False, no_color=True)
                if output
                else Console(file=out)
            )
            render_table(records, console)
    finally:
        if output:
            out.close()
            click.echo(f"{len(records)} record(s) written to {Path(output)}", err=True)
    if records:  # like a hunt's findings: instances still hand out credentials over IMDSv1
        sys.exit(EXIT_FINDINGS)
