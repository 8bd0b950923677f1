"""Compile once, hunt many: a store of CloudTrail in the canonical ``api_activity`` view.

``ingest`` decodes raw CloudTrail files once into zstd Parquet, partitioned Hive-style by
event date and account::

    STORE/date=2026-11-01/account=111122223333/part-<uuid>.parquet

Every later hunt reads the Parquet files in place (DuckDB ``read_parquet``), which is far
cheaper than inflating and parsing JSON again. The files hold exactly the canonical columns
(see :mod:`imdshunt.schema`), so Athena or Spark can be pointed at the same folder.

Ingest is incremental: ``_imdshunt_manifest.jsonl`` lists each source file read, with its size
and modification time, one JSON object per line, appended as each chunk of files is written
(an interrupted ingest loses at most the chunks in flight). A later ingest reads only files
that are new or whose size or mtime changed. A changed file is read again in full; its
records are then in the store twice, and the hunt counts each eventID once (CloudTrail's
at-least-once delivery already requires that, see :mod:`imdshunt.engine.duckdb`).

Each ingest also computes, over the whole store, what hunts would otherwise recompute every
time from every record (see :data:`DERIVED_VIEWS`): the repeated eventIDs, the call groups
the credential detections start from, and the credential-vending events. They live under
``_imdshunt_derived/`` with the list of Parquet files and a digest of the view SQL they came
from; a hunt uses them only while both still match and the store is all it reads.

Example::

    from imdshunt import store, api
    store.ingest(["./AWSLogs"], "./ct-store")
    result = api.hunt([], store="./ct-store", ip_ranges="ip-ranges.json")
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imdshunt.errors import InputError
from imdshunt.sources import cloudtrail
from imdshunt.sources.discover import RunStats
from imdshunt.window import HuntWindow

MANIFEST = "_imdshunt_manifest.jsonl"
STORE_INFO = "_imdshunt_store.json"
#: The store's repeated eventIDs, found once by ingest, for the Parquet files it then held.
DUPLICATES = "_imdshunt_duplicates.json"
STORE_FORMAT = 1


@dataclass
class IngestResult:
    """What one ingest did."""

    store: Path
    files_new: int = 0
    files_unchanged: int = 0
    records: int = 0
    parquet_files: int = 0
    stats: RunStats = field(default_factory=RunStats)

    def summary(self) -> str:
        return (
            f"{self.files_new} new files ingested ({self.records} records, "
            f"{self.parquet_files} Parquet files written); {self.files_unchanged} files "
            f"already in the store; {self.stats.summary()}"
        )


def read_manifest(store: str | os.PathLike) -> dict[str, str]:
    """Source files already in the store: identity (resolved path or s3:// URI) -> version."""
    path = Path(store) / MANIFEST
    seen: dict[str, str] = {}
    if not path.exists():
        return seen
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                entry = json.loads(line)
                version = entry.get("version") or f"{int(entry['size'])}:{int(entry['mtime_ns'])}"
                seen[entry["path"]] = str(version)
            except (ValueError, KeyError, TypeError) as exc:
                if lineno == 1 or not line.endswith("}"):
                    # A torn last line from an interrupted ingest: that chunk is read again.
                    continue
                raise InputError(str(path), f"corrupt manifest ({exc})", line=lineno) from exc
    return seen


def _check_store(store: Path, *, create: bool) -> None:
    info = store / STORE_INFO
    if info.exists():
        try:
            doc = json.loads(info.read_text())
        except ValueError as exc:
            raise InputError(str(info), f"not an imdshunt store ({exc})") from exc
        if doc.get("format") != STORE_FORMAT:
            raise InputError(
                str(info), f"store format {doc.get('format')!r}; this version reads {STORE_FORMAT}"
            )
        return
    if not create:
        raise InputError(str(store), "not an imdshunt store (run 'imdshunt ingest' first)")
    store.mkdir(parents=True, exist_ok=True)
    if any(store.iterdir()):
        raise InputError(str(store), "folder is not empty and not an imdshunt store")
    info.write_text(
        json.dumps(
            {
                "format": STORE_FORMAT,
                "view": "api_activity",
                "partitioning": ["date", "account"],
                "columns": list(cloudtrail.API_ACTIVITY.names),
            },
            indent=2,
        )
        + "\n"
    )


def ingest(
    paths: Iterable[str | os.PathLike],
    store: str | os.PathLike,
    *,
    workers: int | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    session: Any = None,
) -> IngestResult:
    """Add the API activity under ``paths`` (local or ``s3://``; CloudTrail and Security Lake)
    that the store has not seen to ``store``.

    ``progress(done_files, total_files, records)`` is called as chunks finish.
    """
    from imdshunt.sources.registry import SOURCES, LoadContext
    from imdshunt.sources.selection import select

    root = Path(store)
    _check_store(root, create=True)
    result = IngestResult(store=root)
    stats = result.stats
    selected, reader = select(paths, stats, session=session, workers=workers)
    seen = read_manifest(root)
    todo: dict[str, list] = {}
    for name, files in selected.items():
        source = SOURCES[name]
        if source.table != "api_activity" or not source.compiles:
            why = (
                "the store holds API activity"
                if source.table != "api_activity"
                else "its source cannot be compiled into a store"
            )
            for f in files:
                stats.skip_file(f.uri, f"{name} log ({why})")
            continue
        for f in files:
            if seen.get(f.key) == f.version:
                result.files_unchanged += 1
            else:
                todo.setdefault(name, []).append(f)
    total = sum(len(v) for v in todo.values())
    done = 0
    ctx = LoadContext(reader=reader, stats=stats, workers=workers)
    with open(root / MANIFEST, "a", encoding="utf-8") as manifest:

        def on_files(files: list, records: int, parquet_files: int) -> None:
            nonlocal done
            for f in files:  # unreadable files are left out: tried again next time
                manifest.write(json.dumps({"path": f.key, "version": f.version}) + "\n")
            manifest.flush()
            result.records += records
            result.parquet_files += parquet_files
            done += len(files)
            if progress is not None:
                progress(done, total, result.records)

        for name, files in todo.items():
            SOURCES[name].compile(files, str(root), ctx, on_files)
    result.files_new = stats.files_read
    if result.parquet_files or not (root / DUPLICATES).exists():
        _save_duplicates(root)
    return result


def _fingerprint(root: Path) -> str:
    import hashlib

    names = sorted(p.relative_to(root).as_posix() for p in root.glob(PARQUET_GLOB))
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


#: Where they are kept: a leading "_" makes Spark, Hive and Athena skip the folder, so the
#: store still reads as one table of the canonical columns.
DERIVED_DIR = "_imdshunt_derived"
#: Views that read nothing but api_activity, computed once per ingest over the whole store:
#: the call groups every credential detection starts from, the credential-vending events and
#: the accounts that recorded events.
DERIVED_VIEWS = ("api_call_group", "credential_vending", "log_account")


def _views_digest() -> str:
    """Identifies the view SQL that derived files were computed with (an upgrade changes it)."""
    import hashlib

    from imdshunt.engine.duckdb import VIEWS_DIR, view_files

    h = hashlib.sha256()
    for path in [VIEWS_DIR / "api_activity.sql", *view_files()]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _save_duplicates(root: Path) -> None:
    """Find the store's repeated eventIDs once, so that hunts need not group every eventID,
    and compute the :data:`DERIVED_VIEWS` once, so that hunts need not group every call."""
    from imdshunt.engine.duckdb import DuckDBEngine

    engine = DuckDBEngine(memory_limit=os.environ.get("IMDSHUNT_MEMORY_LIMIT", "512MB"))
    engine.scratch_dir()  # spill there
    derived: dict[str, str] = {}
    try:
        if next(root.glob(PARQUET_GLOB), None) is None:
            return
        engine.attach_files([str(root.resolve() / PARQUET_GLOB)], fmt="parquet", hive=True)
        engine.create_views()
        state = engine.dedup_state
        (root / DERIVED_DIR).mkdir(exist_ok=True)
        for name in DERIVED_VIEWS:
            target = root / DERIVED_DIR / f"{name}.parquet"
            tmp = target.with_suffix(".parquet.tmp")
            engine.export_parquet(name, tmp)
            tmp.replace(target)
            derived[name] = target.relative_to(root).as_posix()
    finally:
        engine.close()
    doc = {
        "fingerprint": _fingerprint(root),
        "dedup_state": state,
        "views_digest": _views_digest(),
        "derived": derived,
    }
    tmp = root / (DUPLICATES + ".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(root / DUPLICATES)


def _load_doc(root: Path) -> dict | None:
    try:
        doc = json.loads((root / DUPLICATES).read_text())
    except (OSError, ValueError):
        return None
    if doc.get("fingerprint") != _fingerprint(root) or not doc.get("dedup_state"):
        return None  # files added or removed since: found again by the hunt
    return doc


def _load_duplicates(root: Path) -> tuple[int, str, list] | None:
    doc = _load_doc(root)
    if doc is None:
        return None
    extra, mode, drops = doc["dedup_state"]
    return int(extra), str(mode), drops


def _load_derived(root: Path) -> dict[str, str]:
    """The derived views' files, when they match the store's files and this version's SQL."""
    doc = _load_doc(root)
    if doc is None or doc.get("views_digest") != _views_digest():
        return {}
    files = {name: root.resolve() / f for name, f in (doc.get("derived") or {}).items()}
    if set(files) != set(DERIVED_VIEWS) or not all(p.is_file() for p in files.values()):
        return {}
    return {name: str(p) for name, p in files.items()}


#: The store's files, as a DuckDB glob under the store folder.
PARQUET_GLOB = "date=*/account=*/*.parquet"


def attach(engine, store: str | os.PathLike, window: HuntWindow | None = None) -> int:
    """Let ``engine``'s ``api_activity`` read ``store`` in place; returns its record count.

    ``engine`` is a :class:`imdshunt.engine.duckdb.DuckDBEngine` in memory (an engine that
    ``attaches_files``); the Parquet footers give the count without reading data. ``window``
    keeps the date and account partitions inside it, and the rows of its regions; what ingest
    computed over the whole store is then not used.
    """
    root = Path(store)
    _check_store(root, create=False)
    if next(root.glob(PARQUET_GLOB), None) is None:
        return 0
    if window is None or window.is_empty:
        pattern = str(root.resolve() / PARQUET_GLOB)
        engine.attach_files(
            [pattern],
            fmt="parquet",
            hive=True,
            duplicates=_load_duplicates(root),
            derived=_load_derived(root),
        )
        return engine.parquet_rows([pattern])
    files = [
        str(p.resolve())
        for p in sorted(root.glob(PARQUET_GLOB))
        if window.keep_partition(
            p.parent.parent.name.removeprefix("date="), p.parent.name.removeprefix("account=")
        )
    ]
    if not files:
        return 0
    regions = sorted(window.regions) if window.regions else None
    engine.attach_files(files, fmt="parquet", hive=True, regions=regions)
    return engine.parquet_rows(files, regions)
