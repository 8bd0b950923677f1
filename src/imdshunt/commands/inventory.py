"""``imdshunt inventory``: collect and check the organisation's inventory (instances, NAT
gateways, Elastic IPs, network interfaces, VPC endpoints, accounts)."""

from __future__ import annotations

import click

from imdshunt.commands._common import ImdshuntGroup, make_session, print_iam_policy_option


@click.group("inventory", cls=ImdshuntGroup)
def inventory() -> None:
    """Collect or check the inventory the binding detections use (hunt --inventory DIR).

    \b
    Example:
      imdshunt inventory collect --out inventory/ --profile audit
      imdshunt hunt ./AWSLogs/ --inventory inventory/
    """


@inventory.command("collect")
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Folder to write into."
)
@click.option(
    "--region",
    "regions",
    multiple=True,
    help="Region to collect (repeatable; default: every region enabled for the account).",
)
@click.option("--profile", help="AWS profile to use (default: the environment's credentials).")
@click.option(
    "--no-organizations",
    is_flag=True,
    help="Do not call organizations:ListAccounts (it only answers in the management account).",
)
@click.option(
    "--metric-days",
    type=click.IntRange(0, 455),
    default=14,
    show_default=True,
    help="Days of AWS/EC2 MetadataNoToken read for instances answering IMDSv1 (0: none).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@print_iam_policy_option("collect", what="the collection")
def collect(out, regions, profile, no_organizations, metric_days, quiet) -> None:
    """Write describe-instances, NAT gateways, addresses, ENIs, VPC endpoints, security
    groups, load balancers and their targets, MetadataNoToken of the instances answering
    IMDSv1, and the org's accounts, as the AWS CLI prints them; read-only calls only.

    \b
    Example:
      imdshunt inventory collect --out inventory/ --region us-east-1 --region eu-west-1
    """
    from imdshunt.enrich.collect import collect_inventory

    session = make_session(profile, regions[0] if regions else None)
    progress = None if quiet else (lambda msg: click.echo(f"collecting {msg}", err=True))
    result = collect_inventory(
        session,
        out,
        regions=list(regions) or None,
        organizations=not no_organizations,
        progress=progress,
        metric_days=metric_days or None,
    )
    for err in result.errors:
        click.echo(f"warning: {err}", err=True)
    click.echo(result.summary())


@inventory.command("show")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--org-accounts", "org_accounts", multiple=True, metavar="ID[,ID...]")
def show(paths, org_accounts) -> None:
    """Parse inventory files or folders and say what they hold (and refuse what they don't).

    \b
    Example:
      imdshunt inventory show inventory/
    """
    from imdshunt.enrich.inventory import load_inventory

    ids = [x for item in org_accounts for x in item.split(",") if x]
    inv = load_inventory(paths, ids)
    for path, kind in inv.files.items():
        click.echo(f"{kind:28} {path}")
    for path, why in inv.skipped.items():
        click.echo(f"{'skipped':28} {path} ({why})")
    click.echo(inv.summary())
