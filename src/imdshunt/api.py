"""The library's entry points. Usable from Python and notebooks; the CLI is a thin layer.

Example::

    from imdshunt import api
    result = api.hunt(["./AWSLogs"], ip_ranges="ip-ranges.json", allowlist=["198.51.100.0/24"])
    for f in result.findings:  # imdshunt.findings.Finding: contract fields are attributes
        print(f.kind, f.detection, f.credential_id, f.source_ip, f.actions)

Every hunt — local paths, ``s3://``, a compiled store, an engine that queries in place, and the
incremental hunts of :mod:`imdshunt.state` — runs the one pipeline of :mod:`imdshunt.pipeline`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imdshunt.engine.base import Engine
from imdshunt.engine.duckdb import DuckDBEngine
from imdshunt.enrich.ipranges import AddressClassifier
from imdshunt.errors import UsageError
from imdshunt.pipeline import (
    HuntConfig,
    HuntResult,
    classify_addresses,
    evidence_notes,
    learned_instance_addresses,
    link_chains,
    naive_rule,
    run,
    run_detections,
)
from imdshunt.request import HuntRequest
from imdshunt.sources.discover import RunStats
from imdshunt.sources.inputs import Reader, fetch_threads
from imdshunt.sources.registry import SOURCES, LoadContext, sort_inputs
from imdshunt.sources.selection import select

__all__ = [
    "ExposureResult",
    "HuntConfig",
    "HuntRequest",
    "HuntResult",
    "classify_addresses",
    "evidence_notes",
    "exposure",
    "hunt",
    "key_bindings",
    "learned_instance_addresses",
    "link_chains",
    "load_cloudtrail",
    "naive_rule",
    "run_detections",
    "select",
]

#: DuckDB's memory limit for hunts that make their own engine: queries read files in place
#: and spill to the engine's scratch folder beyond it, so memory does not grow with the input.
HUNT_MEMORY_LIMIT = os.environ.get("IMDSHUNT_MEMORY_LIMIT", "512MB")


def new_engine(memory_limit: str | None = None) -> DuckDBEngine:
    """The default engine. With ``memory_limit`` (e.g. ``"1GB"``) the data lives in a
    temporary on-disk database so that DuckDB can spill instead of failing on large inputs."""
    if not memory_limit:
        return DuckDBEngine(memory_limit=HUNT_MEMORY_LIMIT)
    import shutil
    import tempfile
    import weakref

    tmp = Path(tempfile.mkdtemp(prefix="imdshunt-"))
    engine = DuckDBEngine(
        tmp / "hunt.duckdb", memory_limit=memory_limit, temp_directory=tmp / "spill"
    )
    # The on-disk database lives as long as the engine (results may still be queried).
    weakref.finalize(engine, shutil.rmtree, tmp, True)
    return engine


def hunt(request: HuntRequest | Iterable[str | os.PathLike] = (), /, **options: Any) -> HuntResult:
    """Read CloudTrail (and web logs) and run the detections on them.

    ``request`` is a :class:`~imdshunt.request.HuntRequest`, or the paths to read with the
    request's options as keywords (:meth:`HuntRequest.make <imdshunt.request.HuntRequest.make>`
    lists them): local files and folders or ``s3://bucket/prefix`` URIs, ``since``/``until``
    (dates, inclusive), ``accounts`` and ``regions`` (or one ``window``) restricting the
    delivery folders read, ``engine`` (DuckDB, Spark, Athena: an engine that queries in place
    is handed the window and reads nothing here), ``store`` (a folder compiled by
    :func:`imdshunt.store.ingest`, hunted in place together with anything under the paths),
    ``inventory`` (AWS CLI JSON files or folders, see :mod:`imdshunt.enrich.inventory`, or a
    loaded :class:`Inventory`), ``org_accounts``, ``memory_limit`` (e.g. ``"1GB"``) and
    ``progress(files_done, files_total, records)``. An engine the caller gives stays the
    caller's to close (``with engine: ...``): an Athena run drops its tables and views then,
    so the result's queries (report) still work until then.
    """
    if not isinstance(request, HuntRequest):
        request = HuntRequest.make(request, **options)
    elif options:
        raise UsageError(f"api.hunt: options {sorted(options)} given with a HuntRequest")
    cfg = request.config
    warnings: list[str] = []
    classifier = request.classifier
    if classifier is None:  # before reading: a bad ip-ranges file fails fast
        classifier, warnings = cfg.classifier()
    stats = RunStats()
    engine = request.engine if request.engine is not None else new_engine(request.memory_limit)
    selected, reader = _select(request, engine, stats)
    after_load = None
    if request.store is not None:
        if not engine.hunts_store:
            raise UsageError(f"--store is not hunted with the {engine.name} engine")
        store = request.store

        def after_load(eng: Engine, st: RunStats) -> None:
            from imdshunt import store as store_lib

            st.records_read += store_lib.attach(eng, store, cfg.window)

    return run(
        engine,
        selected,
        reader,
        cfg,
        stats,
        classified=(classifier, warnings),
        after_load=after_load,
    )


def _select(
    request: HuntRequest, engine: Engine, stats: RunStats
) -> tuple[dict[str, list], Reader]:
    """The request's inputs sorted by source, and the reader that reads them (nothing for
    an engine that queries in place: it is handed the window)."""
    if engine.queries_in_place:
        return {}, Reader()
    workers = request.config.workers
    if request.files is not None:
        reader = Reader(request.s3_client, threads=fetch_threads(workers))
        files = [f for f in request.files if request.config.window.keep_path(f.path.as_posix())[0]]
        return sort_inputs(files, reader, stats), reader
    return select(
        request.paths,
        stats,
        window=request.config.window,
        session=request.session,
        workers=workers,
    )


@dataclass
class ExposureResult:
    """The IMDSv1 backlog and the hunt that read its evidence."""

    records: list[dict[str, Any]]
    hunt: HuntResult
    #: Regions where ``MetadataNoToken`` could not be read, and why.
    metric_errors: list[str] = field(default_factory=list)


def exposure(
    paths: Iterable[str | os.PathLike],
    *,
    inventory: Iterable[str | os.PathLike] = (),
    iam_file: str | os.PathLike | None = None,
    cloudwatch: Any = None,
    metric_window: tuple[Any, Any] | None = None,
    **hunt_kw: Any,
) -> ExposureResult:
    """The IMDSv1 exposure backlog (``imdshunt exposure``) over the same inputs as :func:`hunt`.

    ``paths`` (local or ``s3://``, any ``engine``, the same window and inventory arguments as
    :func:`hunt`, given in ``hunt_kw``) are read by the hunt's own pipeline with only its web
    detections: CloudTrail fills ``api_activity`` for the backlog query, and the
    ``imds_ssrf_attempt`` findings, their targets mapped to instances as in a hunt, give each
    instance's SSRF attempts. ``inventory`` is passed to the hunt and read for the instances'
    metadata options (and any ``MetadataNoToken`` readings ``imdshunt inventory collect`` wrote);
    ``iam_file`` ranks roles by their policies. ``cloudwatch`` is a :class:`boto3.Session` of
    the instances' account: ``MetadataNoToken`` is read live over ``metric_window`` ((start,
    end) datetimes; default the last 14 days) for every open row (``safe_to_enforce``).
    """
    from imdshunt.enrich.ipranges import resolve_ip_ranges_path
    from imdshunt.errors import IpRangesError
    from imdshunt.exposure import exposure_backlog

    inventory = list(inventory)
    if not hunt_kw.get("ip_ranges") and "classifier" not in hunt_kw:
        # No output of the backlog depends on AWS's ranges (only private addresses matter, to
        # learn which instance an SSRF target is), so without a local copy nothing is fetched.
        try:
            resolve_ip_ranges_path(None, fetch=False)
        except IpRangesError:
            hunt_kw["classifier"] = AddressClassifier((), hunt_kw.get("allowlist") or ())
    result = hunt(paths, kinds=("web",), inventory=inventory, **hunt_kw)
    records = exposure_backlog(
        result.engine,
        inventory_files=inventory,
        iam_file=iam_file,
        web_findings=result.findings,
    )
    from imdshunt.enrich.inventory import documents_of_kind
    from imdshunt.exposure import metrics
    from imdshunt.exposure.backlog import apply_metadata_no_token

    readings = metrics.readings_from_documents(
        documents_of_kind(inventory, "cloudwatch-get-metric-data")
    )
    errors: list[str] = []
    if cloudwatch is not None:
        start, end = metric_window or metrics.default_window()
        live, errors = metrics.read_for_records(cloudwatch, records, start, end)
        readings.update(live)
    apply_metadata_no_token(records, readings)
    return ExposureResult(records, result, errors)


def load_cloudtrail(
    paths: Iterable[str | os.PathLike],
    *,
    engine: Engine | None = None,
    stats: RunStats | None = None,
    workers: int | None = None,
) -> tuple[Engine, RunStats]:
    """Decode the API activity (CloudTrail, Security Lake) under ``paths`` into ``engine``
    (a new in-memory DuckDB if None), without hunting: for notebooks and the IMDSv1 backlog."""
    stats = stats if stats is not None else RunStats()
    engine = engine if engine is not None else new_engine()
    selected, reader = select(paths, stats, workers=workers, kinds=("api_activity",))
    ctx = LoadContext(reader=reader, stats=stats, workers=workers)
    for name, files in selected.items():
        if files:
            SOURCES[name].load(files, engine, ctx)
    return engine, stats


def key_bindings(engine: Engine) -> list[dict]:
    """Every EC2 instance ASIA key seen, with its instance, role, issue time and evidence.

    EC2 vends instance-profile keys with an ``sts:AssumeRole`` made by ``ec2.amazonaws.com``
    whose ``roleSessionName`` is the instance id
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/iam-roles-for-amazon-ec2.html);
    where that event is not in the logs the session name alone binds the key.
    """
    from imdshunt.findings import _clean

    rows = engine.query("SELECT * FROM ec2_key_binding ORDER BY access_key_id", label="keys")
    return [{k: _clean(v) for k, v in r.items()} for r in rows.to_pylist()]
