"""``imdshunt exposure``: the IMDSv1 migration backlog, ranked by what each role can do."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from imdshunt.commands._common import (
    EXIT_FINDINGS,
    ImdshuntCommand,
    make_session,
    print_iam_policy_option,
)

EPILOG = """\b
Examples:
  imdshunt exposure AWSLogs/ --inventory inventory/ --iam auth.json
  imdshunt exposure s3://org-trail/AWSLogs/ --since 2026-11-01 --format jsonl -o backlog.jsonl
  imdshunt exposure AWSLogs/ --inventory inventory/ --cloudwatch --profile prod

\b
Inputs (the same as imdshunt hunt's):
  PATHS        CloudTrail and web logs (ALB, CloudFront, nginx/Apache, WAF), local or s3://
  --inventory  AWS CLI JSON (describe-instances ...), or a folder from 'imdshunt inventory
               collect'; maps SSRF targets to instances and adds instances answering IMDSv1
  --iam        output of `aws iam get-account-authorization-details`
"""


def _engine_options(f):
    from imdshunt.commands.engines import engine_options

    return engine_options(f)


@click.command(name="exposure", cls=ImdshuntCommand, epilog=EPILOG)
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--inventory",
    "inventory",
    multiple=True,
    type=click.Path(exists=True),
    help="AWS CLI inventory JSON or a folder of it (see 'imdshunt inventory collect'): "
    "metadata options, Name tag, state, instances answering IMDSv1 (HttpTokens optional) "
    "with no v1 use yet, and SSRF target addresses -> instances. Repeatable.",
)
@click.option(
    "--iam",
    "iam_file",
    type=click.Path(exists=True, dir_okay=False),
    help="`aws iam get-account-authorization-details` JSON: rank roles by what their "
    "policies allow (cloudsplaining). Without it, by sensitive actions seen in CloudTrail.",
)
@click.option(
    "--ip-ranges",
    "ip_ranges",
    type=click.Path(dir_okay=False),
    help="AWS ip-ranges.json (as for hunt; default: the cached copy).",
)
@click.option(
    "--source",
    "web_log_type",
    default=None,
    type=click.Choice(["alb", "cloudfront", "nginx", "apache", "waf"]),
    help="Force the web log format (default: detected per file).",
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
@click.option("--workers", type=int, default=None, help="Decoder processes (default: per core).")
@click.option(
    "--memory-limit", default=None, metavar="SIZE", help="Bound DuckDB's memory (e.g. 1GB)."
)
@click.option(
    "--cloudwatch",
    is_flag=True,
    help="Read each instance's AWS/EC2 MetadataNoToken (IMDSv1 calls) with GetMetricData "
    "since --since (default: the last --metric-days days): safe_to_enforce, and which "
    "instances can be switched now. Uses --profile; instances of other accounts stay unknown.",
)
@click.option(
    "--metric-days",
    type=click.IntRange(1, 455),
    default=14,
    show_default=True,
    help="Days of MetadataNoToken read when --since is not given.",
)
@click.option("--profile", help="AWS profile of the instances' account (for --cloudwatch).")
@print_iam_policy_option("exposure", what="imdshunt exposure --cloudwatch")
@click.option("-q", "--quiet", is_flag=True, help="No summary on stderr.")
@_engine_options
def exposure(
    paths: tuple[str, ...],
    inventory: tuple[str, ...],
    iam_file: str | None,
    ip_ranges: str | None,
    web_log_type: str | None,
    fmt: str,
    output: str | None,
    workers: int | None,
    memory_limit: str | None,
    cloudwatch: bool,
    metric_days: int,
    profile: str | None,
    quiet: bool,
    engine_name: str,
    since: str | None,
    until: str | None,
    accounts: str,
    regions: str,
    athena_output: str | None,
    athena_database: str,
    athena_workgroup: str | None,
    spark_master: str,
) -> None:
    """List every EC2 instance that still hands out credentials over IMDSv1.

    Reads CloudTrail at PATH... (userIdentity.sessionContext.ec2RoleDelivery "1.0" = IMDSv1)
    and web logs (metadata SSRF attempts, found by hunt's own detection), ranks the instances
    by how much damage their role could do (probed instances first within a tier), and prints
    for each the command that requires IMDSv2, the check to run first, and account-level
    guardrails. Exits 1 when it lists any instance (like a hunt's findings), 0 when none.
    """
    from imdshunt import api
    from imdshunt.commands.engines import close_engine, make_engine
    from imdshunt.errors import UsageError
    from imdshunt.exposure.output import render_table, write_csv, write_jsonl
    from imdshunt.window import HuntWindow

    engine = make_engine(
        paths,
        {
            "engine_name": engine_name,
            "accounts": accounts,
            "regions": regions,
            "athena_output": athena_output,
            "athena_database": athena_database,
            "athena_workgroup": athena_workgroup,
            "spark_master": spark_master,
        },
    )
    window = HuntWindow.make(since, until, accounts, regions)
    metric_window = None
    session = None
    if cloudwatch:
        from datetime import UTC, datetime

        from imdshunt.exposure.metrics import default_window

        start = (
            datetime.combine(window.since, datetime.min.time(), tzinfo=UTC)
            if window.since
            else None
        )
        try:
            metric_window = default_window(start, days=metric_days)
        except ValueError as exc:
            raise UsageError(f"--since: {exc}") from exc
        session = make_session(profile, None)
    try:
        result = api.exposure(
            list(paths),
            inventory=inventory,
            iam_file=iam_file,
            engine=engine,
            ip_ranges=ip_ranges,
            web_log_type=web_log_type,
            workers=workers,
            memory_limit=memory_limit,
            window=window,
            cloudwatch=session,
            metric_window=metric_window,
        )
    finally:
        close_engine(engine)
    records = result.records
    if not quiet:
        for w in result.hunt.warnings:
            click.echo(f"imdshunt: warning: {w}", err=True)
    for e in result.metric_errors:
        click.echo(f"imdshunt: warning: MetadataNoToken not read in {e}", err=True)

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
    if not quiet:
        if fmt != "table" or output:
            from rich.console import Console

            from imdshunt.exposure.output import render_switch_summary

            render_switch_summary(records, Console(stderr=True, width=200, highlight=False))
        click.echo("imdshunt: " + result.hunt.stats.summary(), err=True)
    if records:  # like a hunt's findings: instances still hand out credentials over IMDSv1
        sys.exit(EXIT_FINDINGS)
