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
from imdshunt.enrich.ipranges import (
    STALE_AFTER_DAYS,
    AddressClassifier,
    IpRangesInfo,
    load_classifier,
)
from imdshunt.findings import from_arrow, sort_findings
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


@dataclass
class SourceFiles:
    cloudtrail: list[Path] = field(default_factory=list)
    web: list[Path] = field(default_factory=list)


def discover(paths: Iterable[str | os.PathLike], stats: RunStats) -> SourceFiles:
    """Sort the files under ``paths`` into CloudTrail and web logs; account for the rest."""
    found = SourceFiles()
    for path in iter_files(paths, stats):
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
    engine: DuckDBEngine | None = None,
    stats: RunStats | None = None,
    workers: int | None = None,
) -> tuple[DuckDBEngine, RunStats]:
    """Decode CloudTrail files under ``paths`` into ``engine`` (a new in-memory DuckDB if None)."""
    stats = stats if stats is not None else RunStats()
    engine = engine or DuckDBEngine(memory_limit=HUNT_MEMORY_LIMIT)
    files = paths if isinstance(paths, SourceFiles) else discover(paths, stats)
    if hasattr(engine, "attach_files"):
        # DuckDB: workers write Parquet scratch files that DuckDB scans in place; only file
        # names travel between processes and nothing is inserted into the database.
        written = cloudtrail.write_files(
            files.cloudtrail, stats, engine.scratch_dir(), fmt="parquet", workers=workers
        )
        engine.attach_files([p for p, n in written if n], fmt="parquet")
    else:
        engine.load_api_activity(cloudtrail.iter_batches(files.cloudtrail, stats, workers=workers))
    return engine, stats


def load_web_logs(files: Sequence[Path], engine: DuckDBEngine, stats: RunStats) -> None:
    """Parse web logs into ``http_request``; files no web parser recognises are skipped."""
    try:
        from imdshunt.sources import weblogs  # noqa: F401
    except ImportError:
        for p in files:
            stats.skip_file(p, "not a log file this version reads")
        return
    from imdshunt.web import load_web_files

    load_web_files(files, engine, stats)


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
) -> list[dict]:
    """Run every detection of ``kinds`` whose input tables hold data; returns findings."""
    detections = detections if detections is not None else load_detections()
    params = params or {}
    findings: list[dict] = []
    engine.ensure_views()
    has = {
        "credential": _table_has_rows(engine, "api_activity"),
        "web": _table_has_rows(engine, "http_request"),
    }
    for det in detections.values():
        if det.kind not in kinds or not has.get(det.kind, True):
            continue
        if any(not engine.table_exists(t) or not _table_has_rows(engine, t) for t in det.requires):
            continue
        sql = det.render_sql(params.get(det.id), dialect=engine.dialect)
        table = engine.query(sql, label=det.id)
        findings.extend(
            from_arrow(
                table, detection=det.id, severity=det.severity, title=det.title, kind=det.kind
            )
        )
    return sort_findings(findings)


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
) -> HuntResult:
    """Read CloudTrail (and web logs) under ``paths`` and run the detections on them.

    ``store`` is a folder compiled by :func:`imdshunt.store.ingest`; its records are hunted
    in place, together with anything under ``paths`` (which may then be empty).
    """
    stats = RunStats()
    classifier = load_classifier(ip_ranges, allowlist, fetch=fetch_ip_ranges)
    warnings = []
    age = classifier.info.age_days() if classifier.info else None
    if age is not None and age > STALE_AFTER_DAYS:
        warnings.append(
            f"AWS ip-ranges copy {classifier.info.path} is {int(age)} days old; "
            "run 'imdshunt ip-ranges update' (AWS changes it several times a week)"
        )
    files = discover(paths, stats)
    engine, stats = load_cloudtrail(files, engine=engine, stats=stats, workers=workers)
    if store is not None:
        from imdshunt import store as store_lib

        stats.records_read += store_lib.attach(engine, store)
    if files.web and "web" in kinds:
        load_web_logs(files.web, engine, stats)
    elif files.web:
        for p in files.web:
            stats.skip_file(p, "web log (not asked for)")
    classify_addresses(engine, classifier)
    stats.duplicate_records = engine.duplicate_records
    findings = run_detections(engine, detections, params, kinds=kinds)
    naive = naive_rule(engine)
    return HuntResult(findings, stats, naive, classifier.info, warnings, engine)
