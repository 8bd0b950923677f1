"""``imdshunt synth``: write a synthetic AWS organisation with labelled attacks."""

from __future__ import annotations

import time

import click

from imdshunt.commands._common import ImdshuntCommand

EPILOG = """\b
Example:
  imdshunt synth --out ./synthorg --seed 7 --records 50000 --days 2
  imdshunt hunt ./synthorg/AWSLogs/ --ip-ranges ./synthorg/ip-ranges.json

\b
Writes under --out:
  AWSLogs/o-<org>/<acct>/CloudTrail/...      CloudTrail as delivered to S3 (+ digests)
  AWSLogs/<acct>/elasticloadbalancing/...    ALB access logs with SSRF attempts and decoys
  inventory/                                 describe-instances, NAT, EIPs, ENIs, VPC endpoints,
                                             list-accounts, get-account-authorization-details
  ip-ranges.json                             AWS ranges consistent with the logs
  ground_truth.json                          every planted attack, population counts
"""


@click.command(name="synth", cls=ImdshuntCommand, epilog=EPILOG)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder to write into (created if missing).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed; the same seed and sizes give byte-identical output.",
)
@click.option(
    "--records",
    type=click.IntRange(min=0),
    default=20_000,
    show_default=True,
    help="Approximate number of benign CloudTrail records (attacks stay fixed).",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Number of days of logs.",
)
@click.option(
    "--start",
    default="2026-11-01T00:00:00Z",
    show_default=True,
    help="First day, UTC (YYYY-MM-DDTHH:MM:SSZ).",
)
@click.option(
    "--accounts",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Number of member accounts.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: 1 for small outputs, else all cores).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing on success.")
def synth(
    out_dir: str,
    seed: int,
    records: int,
    days: int,
    start: str,
    accounts: int,
    workers: int | None,
    quiet: bool,
) -> None:
    """Generate a realistic synthetic AWS organisation, its logs and its ground truth."""
    from imdshunt.synth import generate_org

    t0 = time.perf_counter()
    gt = generate_org(
        out_dir,
        seed=seed,
        records=records,
        days=days,
        start=start,
        accounts=accounts,
        workers=workers,
    )
    if not quiet:
        click.echo(
            f"wrote {gt.events_unique:,} CloudTrail events in {gt.files['cloudtrail']:,} files, "
            f"{gt.files['alb']:,} ALB log files, {len(gt.attacks)} planted attacks and "
            f"{len(gt.ssrf['attempts'])} SSRF attempts to {out_dir} "
            f"in {time.perf_counter() - t0:.1f}s; see {out_dir}/ground_truth.json"
        )
