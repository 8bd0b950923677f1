"""The command line: a thin layer over :mod:`imdshunt.api`.

Exit status: 0 no findings, 1 findings (at or above ``--fail-on``) or an AWS action refused,
2 usage or input error, 3 a bug (traceback written to a file). The one table that maps errors
to statuses is :data:`imdshunt.commands._common.EXIT_STATUS`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from imdshunt import __version__
from imdshunt.commands._common import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    ImdshuntGroup,
)

if TYPE_CHECKING:
    from imdshunt.request import HuntRequest

#: Exit statuses and the error table: imdshunt.commands._common (README, "Exit status").
EXIT_ERROR = EXIT_USAGE  # the name earlier versions used


@click.group(cls=ImdshuntGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imdshunt")
def cli():
    """Find AWS credentials stolen from a metadata service, and help stop them.

    \b
    Example:
      imdshunt demo
      imdshunt hunt ./AWSLogs/ --format jsonl -o findings.jsonl
    """


def _open_output(path: str | None):
    if path in (None, "-"):
        return contextlib.nullcontext(sys.stdout)
    return open(path, "w", encoding="utf-8", newline="")


INVENTORY_OPTION = click.option(
    "--inventory",
    "inventory",
    multiple=True,
    type=click.Path(exists=True),
    help="AWS CLI JSON of ec2 describe-instances / describe-nat-gateways / "
    "describe-addresses / describe-network-interfaces / describe-vpc-endpoints or "
    "organizations list-accounts; a folder means every JSON file in it (repeatable). "
    "See 'imdshunt inventory collect'.",
)
ORG_ACCOUNTS_OPTION = click.option(
    "--org-accounts",
    "org_accounts",
    multiple=True,
    metavar="ID[,ID...]",
    help="The organisation's AWS account ids (repeatable or comma-separated).",
)


def _org_account_ids(cfg, given) -> list[str]:
    """Account ids from the config plus --org-accounts (repeatable, comma or space separated)."""
    ids = [*cfg.org_accounts]
    for item in given:
        ids.extend(x for x in str(item).replace(" ", ",").split(",") if x)
    return ids


RETENTION_OPTION = click.option(
    "--retention",
    "retention_days",
    type=float,
    default=30.0,
    show_default=True,
    metavar="DAYS",
    help="With --state: forget call groups, vending events and web requests older than this "
    "many days before the newest event (instances' learned egress, accounts and the files "
    "read are kept). 0 keeps everything.",
)


def _common_hunt_options(f):
    options = [
        click.option(
            "--ip-ranges",
            "ip_ranges",
            type=click.Path(dir_okay=False),
            help="AWS ip-ranges.json to use (default: cached copy, fetched once). "
            "Also $IMDSHUNT_IP_RANGES.",
        ),
        click.option(
            "--allowlist",
            "allowlist_files",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False),
            help="File of our own egress CIDRs (NAT, proxies), one per line.",
        ),
        click.option(
            "--allow",
            "allow_cidrs",
            multiple=True,
            metavar="CIDR",
            help="An allowlisted egress CIDR (repeatable).",
        ),
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False),
            help="imdshunt.toml (default: ./imdshunt.toml when present).",
        ),
        click.option(
            "--format",
            "fmt",
            default="table",
            show_default=True,
            type=click.Choice(["table", "jsonl", "csv", "html", "ocsf", "asff"]),
            help="Output format: html is a self-contained report (use with -o); ocsf is "
            "OCSF Detection Finding JSON lines; asff a Security Hub BatchImportFindings body.",
        ),
        click.option(
            "-o",
            "--output",
            "output",
            type=click.Path(dir_okay=False),
            help="Write findings here instead of standard output.",
        ),
        click.option(
            "--workers", type=int, default=None, help="Decoder processes (default: one per core)."
        ),
        click.option(
            "--fail-on",
            type=click.Choice(["info", "low", "medium", "high", "critical"]),
            default="info",
            show_default=True,
            help="Exit 1 only when a finding at or above this severity exists.",
        ),
        click.option(
            "--explain",
            is_flag=True,
            help="Also say what the naive 'AssumedRole from outside AWS' rule would flag.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr."),
        INVENTORY_OPTION,
        ORG_ACCOUNTS_OPTION,
        click.option(
            "--state",
            "state_dir",
            type=click.Path(file_okay=False),
            help="Remember processed files and reported findings here; report only "
            "what is new or changed (for scheduled runs).",
        ),
        RETENTION_OPTION,
        click.option(
            "--source",
            "web_log_type",
            default=None,
            type=click.Choice(["alb", "cloudfront", "nginx", "apache", "waf"]),
            help="Force the web log format (default: detected per file).",
        ),
        click.option(
            "--memory-limit",
            default=None,
            metavar="SIZE",
            help="Bound DuckDB's memory (e.g. 1GB); spills to disk beyond it.",
        ),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


@dataclass(frozen=True)
class OutputChoice:
    """Where a hunt's findings go and what the command says and returns about them."""

    fmt: str = "table"
    output: str | None = None
    fail_on: str = "info"
    explain: bool = False
    quiet: bool = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> OutputChoice:
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{n: options[n] for n in names if options.get(n) is not None})


def request_from_options(
    paths: Sequence[str], options: Mapping[str, Any], **given: Any
) -> HuntRequest:
    """The :class:`HuntRequest` the command line asks for: ``imdshunt.toml`` (``--config``)
    merged with the options (a missing option takes its default), plus ``given`` (an engine,
    inputs named by SQS ...). Inventory files are read here, so each ``watch`` poll that builds
    its request reads a refreshed inventory."""
    from imdshunt.config import load_config
    from imdshunt.enrich.ipranges import load_allowlist
    from imdshunt.request import HuntRequest

    cfg = load_config(options.get("config_path"))
    allowlist = [*cfg.allowlist, *(options.get("allow_cidrs") or ())]
    for f in [*cfg.allowlist_files, *(options.get("allowlist_files") or ())]:
        allowlist.extend(load_allowlist(f))
    return HuntRequest.make(
        paths,
        store=options.get("store"),
        memory_limit=options.get("memory_limit"),
        ip_ranges=options.get("ip_ranges") or cfg.ip_ranges,
        allowlist=allowlist,
        workers=options.get("workers"),
        params=cfg.detection_params,
        kinds=options.get("kinds") or ("credential", "web"),
        web_log_type=options.get("web_log_type"),
        inventory=[*cfg.inventory, *(options.get("inventory") or ())],
        org_accounts=_org_account_ids(cfg, options.get("org_accounts") or ()),
        since=options.get("since"),
        until=options.get("until"),
        accounts=options.get("accounts") or None,
        regions=options.get("regions") or None,
        **given,
    )


def run_hunt(paths: Sequence[str], options: Mapping[str, Any]) -> int:
    """``hunt``, ``ssrf`` and ``demo``: one request built from the options, hunted plainly,
    in place, from a store or incrementally (``--state``), written by the chosen output."""
    from imdshunt.commands.engines import check_mode, close_engine, make_engine
    from imdshunt.engine.base import DEFAULT_ENGINE

    engine_name = options.get("engine_name") or DEFAULT_ENGINE
    state_dir = options.get("state_dir")
    check_mode(engine_name, state=bool(state_dir), store=options.get("store") is not None)
    out = OutputChoice.from_options(options)
    if state_dir:
        from imdshunt.state import StateOptions

        retention = options.get("retention_days", 30.0)
        state = StateOptions(state_dir, retention_days=retention or None)
        return _run_incremental(request_from_options(paths, options), state, out)
    engine = make_engine(paths, options)
    try:
        return _hunt_and_write(request_from_options(paths, options, engine=engine), out)
    finally:
        close_engine(engine)


def _hunt_and_write(request: HuntRequest, out: OutputChoice) -> int:
    from imdshunt import api
    from imdshunt.commands.progress import decode_progress
    from imdshunt.outputs import OUTPUTS, RunContext

    with decode_progress(out.quiet) as progress:
        request = dataclasses.replace(
            request, config=dataclasses.replace(request.config, progress=progress)
        )
        result = api.hunt(request)
    cost = result.engine.cost_summary() if result.engine is not None else None
    if cost is not None and not out.quiet:
        click.echo("imdshunt: " + cost, err=True)
    for w in result.warnings:
        click.echo(f"imdshunt: warning: {w}", err=True)
    if not out.quiet:
        for note in result.notes:
            click.echo(f"imdshunt: note: {note}", err=True)
    if out.fmt == "html":
        from imdshunt.report import report_context

        context = report_context(result, backlog=True, inputs=request.paths)
    else:
        context = RunContext(
            stats=result.stats,
            naive=result.naive if (out.explain or out.fmt == "table") else {},
            ip_ranges=result.ip_ranges,
        )
    writer = OUTPUTS[out.fmt]()
    with _open_output(out.output) as stream:
        writer.write(result.findings, stream, context)
    if not out.quiet and (out.fmt != "table" or out.output):
        click.echo("imdshunt: " + result.stats.summary(), err=True)
        if out.explain:
            n = result.naive
            click.echo(
                f"imdshunt: naive rule would flag {n['events']} events from "
                f"{n['sessions']} sessions; imdshunt reports {len(result.findings)} findings",
                err=True,
            )
    return _exit_for(result.findings, out.fail_on)


def _exit_for(findings, fail_on) -> int:
    from imdshunt.findings import SEVERITY_RANK

    threshold = SEVERITY_RANK[fail_on]
    hit = any(SEVERITY_RANK.get(f.get("severity"), 0) >= threshold for f in findings)
    return EXIT_FINDINGS if hit else EXIT_OK


def _run_incremental(request: HuntRequest, state, out: OutputChoice) -> int:
    from imdshunt.commands.progress import decode_progress
    from imdshunt.outputs import OUTPUTS, RunContext
    from imdshunt.state import check_state_dir, hunt_incremental

    check_state_dir(state.directory)
    writer = OUTPUTS[out.fmt]()
    with _open_output(out.output) as stream, decode_progress(out.quiet) as progress:

        def report(changes):
            writer.write(changes, stream, RunContext())
            stream.flush()

        request = dataclasses.replace(
            request, config=dataclasses.replace(request.config, progress=progress)
        )
        result = hunt_incremental(request, dataclasses.replace(state, report=report))
    for w in result.warnings:
        click.echo(f"imdshunt: warning: {w}", err=True)
    if not out.quiet:
        for note in result.notes:
            click.echo(f"imdshunt: note: {note}", err=True)
        click.echo(
            f"imdshunt: {len(result.new)} new, {len(result.updated)} updated findings "
            f"({len(result.findings)} known); {result.files_already_processed} files "
            "already processed; " + result.stats.summary(),
            err=True,
        )
    return _exit_for(result.changes, out.fail_on)


def _engine_options(f):
    from imdshunt.commands.engines import engine_options

    return engine_options(f)


@cli.command()
@click.argument("paths", nargs=-1, required=False, type=click.Path())
@click.option(
    "--store",
    type=click.Path(file_okay=False, exists=True),
    help="Also hunt a store compiled by 'imdshunt ingest' (PATHS may then be omitted).",
)
@_common_hunt_options
@_engine_options
def hunt(paths, store, **kw):
    """Hunt CloudTrail (and web logs) for metadata credentials used off their workload.

    PATHS are files or folders (searched recursively), e.g. a local mirror of the CloudTrail
    bucket, or s3://bucket/prefix URIs read in place (standard AWS credential chain;
    AWS_ENDPOINT_URL honoured). Digest and Insights files are skipped and counted.

    \b
    Example:
      imdshunt hunt ./AWSLogs/ --allowlist egress.txt --format jsonl -o findings.jsonl
      imdshunt hunt --store ./ct-store --format jsonl -o findings.jsonl
      imdshunt hunt s3://org-trail/AWSLogs/ --since 2026-03-01 --until 2026-03-07
      imdshunt hunt s3://org-trail/AWSLogs/o-abc123def4/ --engine athena \\
          --since 2026-03-01 --until 2026-03-07 --athena-output s3://athena-results/imdshunt/
    """
    if not paths and not store:
        raise click.UsageError("give PATHS to hunt, or --store DIR")
    sys.exit(run_hunt(paths, dict(kw, store=store)))


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@_common_hunt_options
def ssrf(paths, **kw):
    """Hunt web logs only (ALB, CloudFront, nginx/Apache, WAF) for metadata-service SSRF.

    Finds the metadata addresses in any disguise (integer, hex, octal, short forms, IPv6,
    percent-encoding, wildcard DNS names) in URLs, parameters and Host headers.

    \b
    Example:
      imdshunt ssrf ./AWSLogs/111122223333/elasticloadbalancing/ --format jsonl
    """
    sys.exit(run_hunt(paths, dict(kw, kinds=("web",))))


@cli.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Keep the generated organisation here (default: a temporary folder).",
)
@click.option("--records", default=20_000, show_default=True, help="Size of the organisation.")
@click.option("--seed", default=7, show_default=True)
@click.option("--format", "fmt", default="table", type=click.Choice(["table", "jsonl", "csv"]))
def demo(out, records, seed, fmt):
    """Generate a synthetic organisation with planted thefts and hunt it.

    \b
    Example:
      imdshunt demo --records 50000
    """
    from imdshunt.synth import generate_org

    with contextlib.ExitStack() as stack:
        root = Path(out) if out else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        truth = generate_org(root, seed=seed, records=records)
        click.echo(f"Synthetic organisation: {truth.summary()}", err=True)
        code = run_hunt(
            [str(root / "AWSLogs")],
            {
                "ip_ranges": str(root / "ip-ranges.json"),
                "fmt": fmt,
                "explain": True,
                "inventory": (str(root / "inventory"),),
            },
        )
    sys.exit(EXIT_OK if code in (EXIT_OK, EXIT_FINDINGS) else code)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--state",
    "state_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="State folder (processed files, call groups, reported findings).",
)
@click.option(
    "--sqs-queue",
    "sqs_queue",
    metavar="URL",
    help="Read the S3 objects named by ObjectCreated notifications on this SQS queue (S3 -> "
    "SQS, through SNS, or EventBridge) instead of listing PATHS.",
)
@click.option("--interval", default=300.0, show_default=True, help="Seconds between polls.")
@click.option("--iterations", default=0, help="Stop after this many polls (0: until stopped).")
@click.option("--ip-ranges", "ip_ranges", type=click.Path(dir_okay=False))
@click.option(
    "--allowlist", "allowlist_files", multiple=True, type=click.Path(exists=True, dir_okay=False)
)
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
@INVENTORY_OPTION
@ORG_ACCOUNTS_OPTION
@RETENTION_OPTION
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Append JSON lines here (default: standard output).",
)
def watch(
    paths,
    state_dir,
    sqs_queue,
    interval,
    iterations,
    ip_ranges,
    allowlist_files,
    config_path,
    inventory,
    org_accounts,
    retention_days,
    output,
):
    """Poll folders, prefixes or an SQS queue; emit new or updated findings as JSON lines.

    Each line is a finding of the contract plus "change": "new" or "updated". Inventory
    files are read again at every poll, so a refreshed 'imdshunt inventory collect' is used.
    PATHS are listed from the delivery day of the newest event seen, less one day. With
    --sqs-queue a message is deleted only after the objects it names are committed to the
    state. Each poll writes one JSON status line to stderr (files, records, new and updated
    findings, seconds, lag_seconds = now - newest event time).

    \b
    Example:
      imdshunt watch ./AWSLogs/ --state ~/.imdshunt-state --interval 300 -o findings.jsonl
      imdshunt watch --sqs-queue https://sqs.us-east-1.amazonaws.com/111122223333/trail \\
        --state ~/.imdshunt-state --interval 60 -o findings.jsonl
    """
    import datetime as dt
    import json
    import time

    from imdshunt.errors import UsageError
    from imdshunt.outputs import OUTPUTS, RunContext
    from imdshunt.state import StateOptions, check_state_dir, hunt_incremental

    if bool(paths) == bool(sqs_queue):
        raise UsageError("watch: give PATHS to list, or --sqs-queue URL (not both)")
    check_state_dir(state_dir)
    options = {
        "ip_ranges": ip_ranges,
        "allowlist_files": allowlist_files,
        "config_path": config_path,
        "inventory": inventory,
        "org_accounts": org_accounts,
    }
    request_from_options(paths, options)  # a bad config or allowlist fails before the first poll
    clients = None
    if sqs_queue:
        import boto3

        from imdshunt.sources import s3 as s3src

        clients = (boto3.client("sqs"), s3src.s3_client())
    writer = OUTPUTS["jsonl"]()
    n = 0
    while True:
        opened = (
            open(output, "a", encoding="utf-8") if output else contextlib.nullcontext(sys.stdout)
        )
        with opened as stream:

            def report(changes, stream=stream):
                writer.write(changes, stream, RunContext())
                stream.flush()

            state = StateOptions(state_dir, retention_days=retention_days or None, report=report)
            status: dict = {}
            if clients is not None:
                from imdshunt.sources import sqs

                result, messages = sqs.consume(
                    clients[0],
                    sqs_queue,
                    lambda files, state=state: hunt_incremental(
                        request_from_options((), options, files=files, s3_client=clients[1]),
                        state,
                    ),
                )
                status["messages"] = len(messages)
                status["messages_not_understood"] = sum(m.error is not None for m in messages)
            else:
                state = dataclasses.replace(state, prune_listing_days=1)
                result = hunt_incremental(request_from_options(paths, options), state)
        now = dt.datetime.now(dt.UTC)
        st = result.stats
        status = {
            "time": now.isoformat().replace("+00:00", "Z"),
            "files": st.files_read + st.web_files_read,
            "records": st.records_read + st.web_lines_read,
            "files_skipped": len(st.files_skipped),
            "files_unread": len(result.unread),
            "new": len(result.new),
            "updated": len(result.updated),
            "findings": len(result.findings),
            "seconds": round(result.seconds, 3),
            "lag_seconds": (
                round((now - result.newest_event).total_seconds(), 1)
                if result.newest_event is not None
                else None
            ),
            **status,
        }
        click.echo(json.dumps(status), err=True)
        n += 1
        if iterations and n >= iterations:
            break
        time.sleep(interval)


@cli.group("ip-ranges")
def ip_ranges_group():
    """Manage the copy of AWS's ip-ranges.json used to tell AWS addresses from the rest.

    \b
    Example:
      imdshunt ip-ranges update && imdshunt ip-ranges info
    """


@ip_ranges_group.command("update")
@click.option("--url", default=None, help="Override the source URL (mirrors).")
def ip_ranges_update(url):
    """Fetch AWS's current ip-ranges.json into the user cache.

    \b
    Example:
      imdshunt ip-ranges update
    """
    from imdshunt.enrich.ipranges import IP_RANGES_URL, fetch_ip_ranges

    info = fetch_ip_ranges(url or IP_RANGES_URL)
    click.echo(
        f"{info.path}: createDate {info.create_date}, syncToken {info.sync_token}, "
        f"{info.ipv4_prefixes} IPv4 + {info.ipv6_prefixes} IPv6 prefixes"
    )


@ip_ranges_group.command("info")
@click.option("--ip-ranges", "ip_ranges", type=click.Path(dir_okay=False))
def ip_ranges_info(ip_ranges):
    """Say which ip-ranges.json copy is in use and how old it is.

    \b
    Example:
      imdshunt ip-ranges info --ip-ranges ./ip-ranges.json
    """
    from imdshunt.enrich.ipranges import STALE_AFTER_DAYS, parse_ip_ranges, resolve_ip_ranges_path

    path = resolve_ip_ranges_path(ip_ranges, fetch=False)
    _, info = parse_ip_ranges(path.read_bytes(), str(path))
    age = info.age_days()
    click.echo(
        f"{info.path}\n  createDate {info.create_date} ({'?' if age is None else int(age)} "
        f"days old), syncToken {info.sync_token}\n  {info.ipv4_prefixes} IPv4 and "
        f"{info.ipv6_prefixes} IPv6 prefixes"
    )
    if age is not None and age > STALE_AFTER_DAYS:
        click.echo(
            f"warning: older than {STALE_AFTER_DAYS} days; run 'imdshunt ip-ranges update'",
            err=True,
        )


@cli.group("detections")
def detections_group():
    """List and check detections.

    \b
    Example:
      imdshunt detections list
    """


@detections_group.command("list")
def detections_list():
    """List every detection with its severity and title.

    \b
    Example:
      imdshunt detections list
    """
    from imdshunt.detect import load_detections

    for det in load_detections().values():
        click.echo(f"{det.id:48} {det.severity:8} {det.kind:10} {det.title}")


def _register_optional_commands() -> None:
    """Command groups that live in their own modules (one module per group)."""
    import importlib

    for module, attr in (
        ("imdshunt.commands.synth", "synth"),
        ("imdshunt.commands.store", "ingest"),
        ("imdshunt.commands.exposure", "exposure"),
        ("imdshunt.commands.respond", "respond"),
        ("imdshunt.commands.guardduty", "guardduty"),
        ("imdshunt.commands.engines", "sql_command"),
        ("imdshunt.commands.engines", "athena_group"),
        ("imdshunt.commands.inventory", "inventory"),
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("imdshunt.commands"):
                continue
            raise
        cli.add_command(getattr(mod, attr))


_register_optional_commands()


def main() -> None:
    cli.main()  # ImdshuntGroup.main turns every error into a message and an exit status
