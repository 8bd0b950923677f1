"""The library's entry points. Usable from Python and notebooks; the CLI is a thin layer.

Example::

    from imdshunt import api
    result = api.hunt(["./AWSLogs"], ip_ranges="ip-ranges.json", allowlist=["198.51.100.0/24"])
    for f in result.findings:
        print(f["detection"], f["credential_id"], f["source_ip"], f["actions"])
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imdshunt.detect import Detection, load_detections
from imdshunt.engine.duckdb import DuckDBEngine
from imdshunt.enrich.inventory import Inventory, load_inventory, register_inventory
from imdshunt.enrich.ipranges import (
    STALE_AFTER_DAYS,
    AddressClassifier,
    IpRangesInfo,
    load_classifier,
)
from imdshunt.findings import from_arrow, sort_findings
from imdshunt.merge import merge_findings
from imdshunt.sources import cloudtrail
from imdshunt.sources.discover import CLOUDTRAIL, WEB, RunStats, classify_file, iter_files

Progress = Callable[[str, int, int], None]

#: DuckDB's memory limit for hunts that make their own engine: queries read files in place
#: and spill to the engine's scratch folder beyond it, so memory does not grow with the input.
HUNT_MEMORY_LIMIT = os.environ.get("IMDSHUNT_MEMORY_LIMIT", "512MB")


@dataclass
class HuntResult:
    findings: list[dict]
    stats: RunStats
    naive: dict[str, Any] = field(default_factory=dict)
    ip_ranges: IpRangesInfo | None = None
    warnings: list[str] = field(default_factory=list)
    engine: Any = None
    #: What evidence the run had and lacked (e.g. no inventory: binding rests on learned egress).
    notes: list[str] = field(default_factory=list)
    inventory: Inventory | None = None


@dataclass
class SourceFiles:
    cloudtrail: list[Path] = field(default_factory=list)
    web: list[Path] = field(default_factory=list)
    #: Objects under ``s3://`` paths, read in place (see :mod:`imdshunt.sources.s3`).
    s3: list[Any] = field(default_factory=list)
    s3_client: Any = None
    #: Amazon Security Lake OCSF parquet (see :mod:`imdshunt.sources.securitylake`).
    securitylake: list[Path] = field(default_factory=list)


def discover(
    paths: Iterable[str | os.PathLike],
    stats: RunStats,
    *,
    key_filter: Any = None,
    session: Any = None,
    workers: int | None = None,
) -> SourceFiles:
    """Sort the files under ``paths`` into CloudTrail and web logs; account for the rest.

    ``s3://bucket/prefix`` paths are listed with boto3 (``session``, default: the standard
    credential chain). ``key_filter`` (:class:`imdshunt.sources.s3.KeyFilter`) prunes local and
    S3 files alike by the CloudTrail key layout (accounts, regions, delivery days).
    """
    from imdshunt.sources import s3 as s3src

    found = SourceFiles()
    local = []
    for p in paths:
        if s3src.is_s3_uri(p):
            if found.s3_client is None:
                found.s3_client = s3src.s3_client(session, workers=_s3_workers(workers))
            found.s3.extend(s3src.list_objects(found.s3_client, str(p), stats, key_filter))
        else:
            local.append(p)
    for path in iter_files(local, stats):
        if key_filter is not None and not key_filter.is_empty:
            segs = s3src._segments_after_awslogs(path.parent.as_posix())
            if segs is not None and not key_filter.keep(segs)[0]:
                continue  # outside the requested accounts/regions/days: not read, not counted
        if path.suffix == ".parquet":
            found.securitylake.append(path)
            continue
        kind, reason = classify_file(path)
        if kind == CLOUDTRAIL:
            found.cloudtrail.append(path)
        elif kind == WEB:
            found.web.append(path)
        else:
            stats.skip_file(path, reason or "unknown")
    return found


def load_cloudtrail(
    paths: Iterable[str | os.PathLike] | SourceFiles,
    *,
    engine: Any = None,
    stats: RunStats | None = None,
    workers: int | None = None,
) -> tuple[DuckDBEngine, RunStats]:
    """Decode CloudTrail files under ``paths`` into ``engine`` (a new in-memory DuckDB if None)."""
    stats = stats if stats is not None else RunStats()
    engine = engine or DuckDBEngine(memory_limit=HUNT_MEMORY_LIMIT)
    files = paths if isinstance(paths, SourceFiles) else discover(paths, stats)
    if hasattr(engine, "attach_files") and not getattr(engine, "persistent", False):
        # DuckDB in memory: workers write Parquet scratch files that DuckDB scans in place;
        # only file names travel between processes and nothing is inserted into the database.
        written = cloudtrail.write_files(
            files.cloudtrail, stats, engine.scratch_dir(), fmt="parquet", workers=workers
        )
        engine.attach_files([p for p, n in written if n], fmt="parquet")
    else:
        engine.load_api_activity(cloudtrail.iter_batches(files.cloudtrail, stats, workers=workers))
    if files.securitylake:
        from imdshunt.sources import securitylake

        engine.load_api_activity(securitylake.iter_batches(files.securitylake, stats))
    if files.s3:
        from imdshunt.sources.s3 import S3Reader

        reader = S3Reader(files.s3_client, workers=_s3_workers(workers))
        engine.load_api_activity(reader.iter_batches(files.s3, stats))
    return engine, stats


def _s3_workers(workers: int | None) -> int:
    """Fetch threads for S3: I/O bound, so several per core."""
    return max(4, 4 * (workers or os.cpu_count() or 1))


def load_web_logs(
    files: Sequence[Path], engine: DuckDBEngine, stats: RunStats, *, log_type: str | None = None
) -> None:
    """Parse web logs into ``http_request`` (and ``url_class``); unrecognised files are skipped."""
    from imdshunt.web import load_web_files

    load_web_files(files, engine, stats, log_type=log_type)


def learned_instance_addresses(engine: DuckDBEngine) -> dict[str, str]:
    """Private addresses that exactly one instance credential was used from (its own calls
    through VPC endpoints): enough to name the instance behind an ALB target address when no
    inventory is given. Addresses shared by several instances are left out."""
    rows = engine.query(
        "SELECT src_ip, min(session_name) AS instance FROM credential_activity "
        "WHERE credential_type = 'ec2-instance' AND network_kind = 'private' "
        "GROUP BY src_ip HAVING count(DISTINCT session_name) = 1",
        label="learned instance addresses",
    ).to_pylist()
    return {r["src_ip"]: r["instance"] for r in rows}


def link_chains(
    findings: list[dict],
    engine: DuckDBEngine,
    instance_by_ip: dict[str, str] | None = None,
    *,
    window_hours: float = 24,
    workload_by_ip: dict[str, set[str]] | None = None,
) -> list[dict]:
    """Name each SSRF target's instance and link attempts to later thefts (``imds_theft_chain``)
    of the target instance's, task's or pod's credential."""
    import datetime as dt

    from imdshunt.correlate import WORKLOAD_CREDENTIALS, correlate_chains

    web = [f for f in findings if f.get("kind") == "web"]
    cred = [
        f
        for f in findings
        if f.get("kind") == "credential"
        and f.get("credential_type") in {"ec2-instance", *WORKLOAD_CREDENTIALS}
    ]
    if not web:
        return []
    has_calls = _table_has_rows(engine, "api_activity")
    mapping = learned_instance_addresses(engine) if has_calls else {}
    mapping.update(instance_by_ip or {})
    for f in web:
        if not f.get("target_instance") and f.get("target_ip"):
            f["target_instance"] = mapping.get(f["target_ip"])
    if not cred:
        return []
    # issue 18: tasks and pods (learned from their own endpoint calls, then inventory)
    workloads = _workload_addresses(engine, workload_by_ip) if has_calls else {}
    return correlate_chains(
        web, cred, mapping, workload_by_ip=workloads, window=dt.timedelta(hours=window_hours)
    )


def _workload_addresses(engine: Any, given: dict[str, set[str]] | None) -> dict[str, set[str]]:
    from imdshunt.correlate import learned_workload_addresses

    out = learned_workload_addresses(engine)
    for ip, keys in (given or {}).items():
        out.setdefault(ip, set()).update(keys)
    return out


def classify_addresses(engine: DuckDBEngine, classifier: AddressClassifier) -> int:
    """Classify each distinct source address once and register ``ip_class``."""
    engine.ensure_views()
    ips = engine.distinct_values("api_activity", "src_ip")
    engine.register_table("ip_class", classifier.classify_table(ips))
    return len(ips)


def naive_rule(engine: DuckDBEngine) -> dict[str, int]:
    """What "AssumedRole from a non-AWS address" would flag: the noise imdshunt avoids."""
    row = engine.query(
        "SELECT count(*) AS events, count(DISTINCT principal_id) AS sessions "
        "FROM api_activity a JOIN ip_class ip USING (src_ip) "
        "WHERE a.actor_type = 'AssumedRole' AND ip.network_kind = 'internet'",
        label="naive rule",
    ).to_pylist()[0]
    return {"events": int(row["events"]), "sessions": int(row["sessions"])}


def _table_has_rows(engine: DuckDBEngine, name: str) -> bool:
    return bool(engine.scalar(f"SELECT count(*) > 0 FROM (SELECT 1 FROM {name} LIMIT 1)"))


def run_detections(
    engine: DuckDBEngine,
    detections: dict[str, Detection] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    *,
    kinds: Sequence[str] = ("credential", "web"),
    merge: bool = True,
) -> list[dict]:
    """Run every detection of ``kinds`` whose input tables hold data; returns findings.

    With ``merge`` (the default) credential findings about the same credential and source
    address are folded into one (see :mod:`imdshunt.merge`).
    """
    detections = detections if detections is not None else load_detections()
    params = params or {}
    findings: list[dict] = []
    engine.ensure_views()
    # An engine that queries in place (Athena) may have no http_request table at all.
    has = {
        kind: engine.table_exists(table) and _table_has_rows(engine, table)
        for kind, table in (("credential", "api_activity"), ("web", "http_request"))
        if kind in kinds
    }
    for det in detections.values():
        if det.kind not in kinds or not has.get(det.kind, True):
            continue
        if any(not engine.table_exists(t) or not _table_has_rows(engine, t) for t in det.requires):
            continue
        if getattr(engine, "binds_params", False):
            table = engine.query(det.sql, label=det.id, params=det.values(params.get(det.id)))
        else:
            sql = det.render_sql(params.get(det.id), dialect=engine.dialect)
            table = engine.query(sql, label=det.id)
        findings.extend(
            from_arrow(
                table, detection=det.id, severity=det.severity, title=det.title, kind=det.kind
            )
        )
    if merge:
        findings = merge_findings(findings)
    return sort_findings(findings)


def evidence_notes(engine: DuckDBEngine, inventory: Inventory | None = None) -> list[str]:
    """Say which evidence the binding detections had, and what they lacked.

    Detections that need inventory still run without it, on learned egress, and mark their
    findings ``confidence: medium``; these notes make the gap visible in the run summary.
    """
    notes = []
    if inventory is not None and not inventory.empty:
        notes.append(inventory.summary())
    notes += _workload_evidence_notes(engine)  # issue 18
    if not _table_has_rows(engine, "ec2_credential_call"):
        return notes
    if not _table_has_rows(engine, "inventory_address"):
        notes.append(
            "no instance inventory: other-account and cross-instance findings rest on learned "
            "egress (each instance's first address; confidence medium), and a theft whose first "
            "use from AWS space was the attacker's is invisible to them; give --inventory"
        )
    else:
        uncovered = (
            engine.query(
                "SELECT DISTINCT account_id FROM ec2_credential_call WHERE account_id NOT IN "
                "(SELECT account_id FROM inventory_address WHERE account_id IS NOT NULL) "
                "ORDER BY 1",
                label="inventory coverage",
            )
            .column(0)
            .to_pylist()
        )
        if uncovered:
            notes.append(
                "inventory covers no instance of account(s) "
                + ", ".join(uncovered)
                + ": their findings rest on learned egress (confidence medium)"
            )
    if not _table_has_rows(engine, "org_account"):
        notes.append(
            "no org account list: VPC endpoint owners are judged against the accounts in these "
            "logs and the inventory (confidence medium); give --org-accounts or an Organizations "
            "list-accounts file"
        )
    return notes


def _workload_evidence_notes(engine: DuckDBEngine) -> list[str]:
    """What the container and function binding lacked (see docs/binding.md)."""
    if not _table_has_rows(engine, "workload_credential_call"):
        return []
    uncovered = (
        engine.query(
            "SELECT DISTINCT account_id FROM workload_credential_call "
            "WHERE credential_type <> 'lambda' AND account_id NOT IN (SELECT account_id "
            "FROM inventory_address WHERE kind = 'eni' AND account_id IS NOT NULL) ORDER BY 1",
            label="workload inventory coverage",
        )
        .column(0)
        .to_pylist()
    )
    notes = []
    if uncovered:
        notes.append(
            "no describe-network-interfaces for account(s) "
            + ", ".join(uncovered)
            + ": task and pod other-account findings there rest on learned egress (each "
            "session's first address; confidence medium)"
        )
    if not _table_has_rows(engine, "inventory_workload"):
        notes.append(
            "no task, pod or function inventory (ecs describe-tasks, kubectl get pods, lambda "
            "list-functions): Lambda functions are not judged by address, and the VPC check of "
            "workload_credential_foreign_vpc_endpoint does not apply"
        )
    return notes


def hunt(
    paths: Iterable[str | os.PathLike],
    *,
    ip_ranges: str | os.PathLike | None = None,
    allowlist: Iterable[str] = (),
    engine: DuckDBEngine | None = None,
    workers: int | None = None,
    detections: dict[str, Detection] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    fetch_ip_ranges: bool = True,
    kinds: Sequence[str] = ("credential", "web"),
    store: str | os.PathLike | None = None,
    memory_limit: str | None = None,
    web_log_type: str | None = None,
    instance_by_ip: dict[str, str] | None = None,
    chain_window_hours: float = 24,
    since: Any = None,
    until: Any = None,
    accounts: Iterable[str] | None = None,
    regions: Iterable[str] | None = None,
    session: Any = None,
    inventory: Iterable[str | os.PathLike] | Inventory = (),
    org_accounts: Iterable[str] = (),
) -> HuntResult:
    """Read CloudTrail (and web logs) under ``paths`` and run the detections on them.

    ``paths`` may be local files and folders or ``s3://bucket/prefix`` URIs (read in place with
    ``session``, a :class:`boto3.Session`; default: the standard credential chain).
    ``since``/``until`` (dates, inclusive), ``accounts`` and ``regions`` restrict the CloudTrail
    delivery folders read. ``engine`` may be any engine (DuckDB, Spark); an engine that queries
    data in place (Athena) is driven by :func:`hunt_in_place` instead. ``memory_limit`` (e.g.
    ``"1GB"``) bounds DuckDB's memory; the data then lives in a temporary on-disk database so
    that DuckDB can spill instead of failing on inputs larger than memory. ``store`` is a
    folder compiled by :func:`imdshunt.store.ingest`; its records are hunted in place, together
    with anything under ``paths`` (which may then be empty).
    ``inventory`` names AWS CLI JSON files or folders (see :mod:`imdshunt.enrich.inventory`)
    or is an already loaded :class:`Inventory`; ``org_accounts`` adds account ids directly.
    """
    from imdshunt.sources.s3 import KeyFilter

    key_filter = KeyFilter.make(since, until, accounts, regions)
    if engine is not None and getattr(engine, "in_place", False):
        return hunt_in_place(
            engine,
            ip_ranges=ip_ranges,
            allowlist=allowlist,
            key_filter=key_filter,
            detections=detections,
            params=params,
            fetch_ip_ranges=fetch_ip_ranges,
            inventory=inventory,
            org_accounts=org_accounts,
        )
    stats = RunStats()
    if isinstance(inventory, Inventory):
        inv = inventory
        inv.org_accounts.update(load_inventory((), org_accounts).org_accounts)
    else:
        inv = load_inventory(inventory, org_accounts)
    if engine is None and memory_limit:
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix="imdshunt-"))
        engine = DuckDBEngine(
            tmp / "hunt.duckdb", memory_limit=memory_limit, temp_directory=tmp / "spill"
        )
        import shutil
        import weakref

        # The on-disk database lives as long as the engine (results may still be queried).
        weakref.finalize(engine, shutil.rmtree, tmp, True)
    classifier = load_classifier(ip_ranges, allowlist, fetch=fetch_ip_ranges)
    warnings = []
    age = classifier.info.age_days() if classifier.info else None
    if age is not None and age > STALE_AFTER_DAYS:
        warnings.append(
            f"AWS ip-ranges copy {classifier.info.path} is {int(age)} days old; "
            "run 'imdshunt ip-ranges update' (AWS changes it several times a week)"
        )
    files = discover(paths, stats, key_filter=key_filter, session=session, workers=workers)
    engine, stats = load_cloudtrail(files, engine=engine, stats=stats, workers=workers)
    if store is not None:
        from imdshunt import store as store_lib

        if not hasattr(engine, "attach_files"):
            from imdshunt.errors import UsageError

            raise UsageError("--store is hunted with the DuckDB engine only")
        stats.records_read += store_lib.attach(engine, store, key_filter)
    register_inventory(engine, inv)  # before any view is built: the binding views read it
    if files.web and "web" in kinds:
        load_web_logs(files.web, engine, stats, log_type=web_log_type)
    elif files.web:
        for p in files.web:
            stats.skip_file(p, "web log (not asked for)")
    classify_addresses(engine, classifier)
    stats.duplicate_records = engine.duplicate_records
    findings = run_detections(engine, detections, params, kinds=kinds)
    findings = sort_findings(
        findings
        + link_chains(
            findings,
            engine,
            {**inv.instance_by_ip(), **(instance_by_ip or {})},
            window_hours=chain_window_hours,
            workload_by_ip=inv.workload_by_ip(),
        )
    )
    naive = naive_rule(engine)
    notes = evidence_notes(engine, inv) if "credential" in kinds else []
    return HuntResult(
        findings, stats, naive, classifier.info, warnings, engine, notes=notes, inventory=inv
    )


def key_bindings(engine: DuckDBEngine) -> list[dict]:
    """Every EC2 instance ASIA key seen, with its instance, role, issue time and evidence.

    EC2 vends instance-profile keys with an ``sts:AssumeRole`` made by ``ec2.amazonaws.com``
    whose ``roleSessionName`` is the instance id
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/iam-roles-for-amazon-ec2.html);
    where that event is not in the logs the session name alone binds the key.
    """
    from imdshunt.findings import _clean

    rows = engine.query("SELECT * FROM ec2_key_binding ORDER BY access_key_id", label="keys")
    return [{k: _clean(v) for k, v in r.items()} for r in rows.to_pylist()]


def hunt_in_place(
    engine: Any,
    *,
    ip_ranges: str | os.PathLike | None = None,
    allowlist: Iterable[str] = (),
    key_filter: Any = None,
    detections: dict[str, Detection] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    fetch_ip_ranges: bool = True,
    inventory: Iterable[str | os.PathLike] | Inventory = (),
    org_accounts: Iterable[str] = (),
) -> HuntResult:
    """Run the credential detections on an engine that queries CloudTrail where it lies (Athena).

    Nothing is downloaded: the engine restricts its canonical view to ``key_filter``'s window
    (partition columns), the distinct source addresses are classified here by the same
    classifier as every other engine and handed back as ``ip_class``, then every detection runs.
    """
    classifier = load_classifier(ip_ranges, allowlist, fetch=fetch_ip_ranges)
    stats = RunStats()
    inv = inventory if isinstance(inventory, Inventory) else load_inventory(inventory, org_accounts)
    engine.prepare(key_filter)
    register_inventory(engine, inv)  # the binding views read these tables (empty or not)
    classify_addresses(engine, classifier)
    findings = run_detections(engine, detections, params, kinds=("credential",))
    naive = naive_rule(engine)
    warnings = list(getattr(engine, "warnings", []))
    return HuntResult(findings, stats, naive, classifier.info, warnings, engine)
