"""``imdshunt ingest``: compile raw CloudTrail once into a Parquet store, then hunt it often."""

from __future__ import annotations

import click

from imdshunt.commands._common import ImdshuntCommand


@click.command("ingest", cls=ImdshuntCommand)
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--store",
    "store",
    required=True,
    type=click.Path(file_okay=False),
    help="Store folder (created when absent). Only files it has not seen are read.",
)
@click.option(
    "--workers", type=int, default=None, help="Decoder processes (default: one per core)."
)
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
def ingest(paths, store, workers, quiet):
    """Convert CloudTrail logs into the canonical view, as Parquet partitioned by date and account.

    Incremental: the store remembers each file read (path, size, mtime), so running the same
    command again after new logs arrive reads only the new files. Hunt the store with
    'imdshunt hunt --store DIR'; Athena and Spark can read the same folder.

    \b
    Example:
      imdshunt ingest ./AWSLogs/ --store ./ct-store
      imdshunt hunt --store ./ct-store --format jsonl -o findings.jsonl
    """
    from imdshunt import store as store_lib
    from imdshunt.commands.progress import decode_progress

    with decode_progress(quiet, "Ingesting") as progress:
        result = store_lib.ingest(paths, store, workers=workers, progress=progress)
    if not quiet:
        click.echo("imdshunt: " + result.summary(), err=True)
