"""Commands about engines: ``imdshunt sql`` (what would run) and ``imdshunt athena ...``."""

from __future__ import annotations

import click

from imdshunt.commands._common import ImdshuntCommand, ImdshuntGroup
from imdshunt.engine.base import DEFAULT_ENGINE, ENGINES


@click.command("sql", cls=ImdshuntCommand)
@click.option(
    "--dialect",
    type=click.Choice([*ENGINES, *sorted({e.dialect for e in ENGINES.values()} - set(ENGINES))]),
    default=DEFAULT_ENGINE,
    show_default=True,
    help="Engine dialect to print.",
)
@click.option("--detection", "detection_id", default=None, help="Only this detection.")
@click.option("--no-views", is_flag=True, help="Leave out the shared views.")
def sql_command(dialect, detection_id, no_views):
    """Print the SQL an engine would run: shared views, then each detection.

    Params are at their defaults. On Athena, array columns are returned as JSON text.

    \b
    Example:
      imdshunt sql --dialect athena --detection ec2_instance_credential_outside_aws
    """
    from imdshunt.detect import load_detections
    from imdshunt.engine.base import entry_for
    from imdshunt.engine.golden import render_detection, render_view_file, runs_on
    from imdshunt.errors import UsageError

    entry = entry_for(dialect)  # an engine's name, or its dialect (trino: Athena)
    engine = entry.name
    detections = load_detections()
    if detection_id is not None:
        if detection_id not in detections:
            raise UsageError(f"no detection {detection_id!r}; see 'imdshunt detections list'")
        detections = {detection_id: detections[detection_id]}
    if not no_views:
        for path in entry.load().view_files():
            click.echo(f"-- view {path.name}")
            click.echo(render_view_file(path, engine) + ";\n")
    for det_id, det in detections.items():
        click.echo(f"-- detection {det_id}")
        if not runs_on(det, engine):
            click.echo(f"-- ({det.kind} detection: not run on {engine})\n")
            continue
        click.echo(render_detection(det, engine) + ";\n")


@click.group("athena", cls=ImdshuntGroup)
def athena_group():
    """Run imdshunt on Amazon Athena, over the CloudTrail bucket where it lies.

    \b
    Example:
      imdshunt athena ddl s3://org-trail/AWSLogs/o-abc123def4/ --accounts 111122223333
    """


@athena_group.command("ddl")
@click.argument("trail")
@click.option("--table", default="cloudtrail", show_default=True, help="Table name.")
@click.option("--accounts", default="", help="Comma-separated account ids (enum projection).")
@click.option("--regions", default="", help="Comma-separated regions (default: all public).")
@click.option("--since", default=None, help="With --until: also print the api_activity view.")
@click.option("--until", default=None, help="Last day of the window (inclusive).")
def athena_ddl(trail, table, accounts, regions, since, until):
    """Print the CREATE TABLE (partition projection) for a CloudTrail bucket.

    TRAIL is s3://bucket/[prefix/]AWSLogs/[o-org/]. With --since/--until the canonical
    api_activity view for that window is printed too.

    \b
    Example:
      imdshunt athena ddl s3://org-trail/AWSLogs/o-abc123def4/ --since 2026-03-01 --until 2026-03-07
    """
    from imdshunt.engine.athena import TrailLocation, api_activity_view, cloudtrail_ddl
    from imdshunt.window import HuntWindow

    accts = _split(accounts)
    regs = _split(regions)
    click.echo(
        cloudtrail_ddl(
            TrailLocation.parse(trail), table=table, accounts=accts, regions=regs or None
        )
        + ";"
    )
    if since or until:
        flt = HuntWindow.make(since, until, accts or None, regs or None)
        click.echo("\n" + api_activity_view(flt, table=table) + ";")


def _split(text: str) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def engine_options(f):
    """Options of ``hunt`` that pick the engine and the window (applied in cli.py)."""
    options = [
        click.option(
            "--engine",
            "engine_name",
            type=click.Choice(list(ENGINES)),
            default=DEFAULT_ENGINE,
            show_default=True,
            help="Where the detections run. athena: PATHS is one s3:// trail URI, queried "
            "in place (needs --since/--until and --athena-output).",
        ),
        click.option("--since", default=None, help="First delivery day read (YYYY-MM-DD)."),
        click.option("--until", default=None, help="Last delivery day read (YYYY-MM-DD)."),
        click.option("--accounts", default="", help="Comma-separated account ids to read."),
        click.option("--regions", default="", help="Comma-separated regions to read."),
        click.option(
            "--athena-output", default=None, help="s3:// location for Athena query results."
        ),
        click.option("--athena-database", default="imdshunt", show_default=True),
        click.option("--athena-workgroup", default=None),
        click.option(
            "--spark-master", default="local[*]", show_default=True, help="Spark master URL."
        ),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def make_engine(paths, options):
    """The engine the command line's engine options (:func:`engine_options`, a mapping of
    them) ask for, built by its class from them; None for the default engine: the library
    makes that one, with ``--memory-limit``."""
    from imdshunt.engine.base import EngineOptions, engine_entry

    entry = engine_entry(options.get("engine_name") or DEFAULT_ENGINE)
    if entry is ENGINES[DEFAULT_ENGINE]:
        return None
    given = {f: options[f] for f in EngineOptions.__dataclass_fields__ if options.get(f)}
    given.update(
        paths=tuple(str(p) for p in paths),
        accounts=tuple(_split(options.get("accounts", ""))),
        regions=tuple(_split(options.get("regions", ""))),
    )
    return entry.load().from_options(EngineOptions(**given))


def close_engine(engine) -> None:
    """Close an engine the CLI made (None: nothing), also after a failed command: an Athena
    run drops its tables and views and deletes its uploads then. What it could not remove is a
    warning naming it: the command's findings (or its error) stand."""
    from imdshunt.errors import EngineError

    if engine is None:
        return
    try:
        engine.close()
    except EngineError as exc:
        click.echo(f"imdshunt: warning: {exc}", err=True)


def check_mode(engine_name: str, *, state: bool, store: bool) -> None:
    """Refuse ``--state``/``--store`` with an engine that does not declare it can hunt them
    (capabilities ``keeps_state``, ``hunts_store``); the two modes exclude each other."""
    from imdshunt.engine.base import engine_entry
    from imdshunt.errors import UsageError

    if state and store:
        raise UsageError("--state and --store are two ways to hunt: give one")
    cls = engine_entry(engine_name).load()
    able = [name for name, e in ENGINES.items() if e.load().keeps_state]
    if state and not cls.keeps_state:
        raise UsageError(
            f"--state keeps its history in an engine's database: not with --engine "
            f"{engine_name} (only {', '.join(able)})"
        )
    able = [name for name, e in ENGINES.items() if e.load().hunts_store]
    if store and not cls.hunts_store:
        raise UsageError(
            f"--store is not hunted with --engine {engine_name} (only {', '.join(able)})"
        )
