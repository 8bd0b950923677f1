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


def _key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def read_manifest(store: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """Source files already in the store: resolved path -> (size, mtime_ns)."""
    path = Path(store) / MANIFEST
    seen: dict[str, tuple[int, int]] = {}
    if not path.exists():
        return seen
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                entry = json.loads(line)
                seen[entry["path"]] = (int(entry["size"]), int(entry["mtime_ns"]))
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
    progress: Callable[[int, int], None] | None = None,
) -> IngestResult:
    """Add the CloudTrail files under ``paths`` that the store has not seen to ``store``.

    ``progress(done_files, total_files)`` is called as chunks finish.
    """
    from imdshunt.api import discover

    root = Path(store)
    _check_store(root, create=True)
    result = IngestResult(store=root)
    stats = result.stats
    found = discover(paths, stats)
    for p in found.web:
        stats.skip_file(p, "web log (the store holds CloudTrail)")
    seen = read_manifest(root)
    todo: list[Path] = []
    keys: dict[str, tuple[str, int, int]] = {}
    for p in found.cloudtrail:
        try:
            k = _key(p)
        except OSError as exc:
            stats.skip_file(p, f"unreadable ({exc.strerror})")
            continue
        if seen.get(k[0]) == (k[1], k[2]):
            result.files_unchanged += 1
            continue
        todo.append(p)
        keys[str(p)] = k
    done = 0
    with open(root / MANIFEST, "a", encoding="utf-8") as manifest:

        def on_chunk(sources: list[str], out: cloudtrail.ChunkOutput) -> None:
            nonlocal done
            failed = {s.path for s in out.stats.files_skipped}
            for src in sources:
                if src in failed:
                    continue  # unreadable now: tried again next time
                path, size, mtime = keys[src]
                manifest.write(json.dumps({"path": path, "size": size, "mtime_ns": mtime}) + "\n")
            manifest.flush()
            result.records += out.stats.records_read
            result.parquet_files += len(out.files)
            done += len(sources)
            if progress is not None:
                progress(done, len(todo))

        cloudtrail.write_files(
            todo, stats, root, fmt="parquet", partition=True, workers=workers, on_chunk=on_chunk
        )
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
    from imdshunt.engine.duckdb import DuckDBEngine, _sql_str

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
            engine.con.execute(
                f"COPY (SELECT * FROM {name}) TO {_sql_str(str(tmp))} "
                "(FORMAT parquet, COMPRESSION zstd)"
            )
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


def attach(engine, store: str | os.PathLike, key_filter: Any = None) -> int:
    """Let ``engine``'s ``api_activity`` read ``store`` in place; returns its record count.

    ``engine`` is a :class:`imdshunt.engine.duckdb.DuckDBEngine` (any engine with
    ``attach_files``); the Parquet footers give the count without reading data.
    ``key_filter`` (an :class:`imdshunt.sources.s3.KeyFilter`) keeps the date and account
    partitions inside its window and accounts, and the rows of its regions; what ingest
    computed over the whole store is then not used.
    """
    root = Path(store)
    _check_store(root, create=False)
    if next(root.glob(PARQUET_GLOB), None) is None:
        return 0
    if key_filter is None or key_filter.is_empty:
        pattern = str(root.resolve() / PARQUET_GLOB)
        engine.attach_files(
            [pattern],
            fmt="parquet",
            hive=True,
            duplicates=_load_duplicates(root),
            derived=_load_derived(root),
        )
        return _row_count(engine, [pattern])
    files = [
        str(p.resolve()) for p in sorted(root.glob(PARQUET_GLOB)) if _partition_ok(p, key_filter)
    ]
    if not files:
        return 0
    regions = sorted(key_filter.regions) if key_filter.regions else None
    engine.attach_files(files, fmt="parquet", hive=True, regions=regions)
    if regions:
        listing = "[" + ", ".join(_quote(f) for f in files) + "]"
        inlist = ", ".join(_quote(r) for r in regions)
        return int(
            engine.con.execute(
                f"SELECT count(*) FROM read_parquet({listing}) WHERE region IN ({inlist})"
            ).fetchall()[0][0]
        )
    return _row_count(engine, files)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _row_count(engine, files: list[str]) -> int:
    """Rows in ``files`` (paths or globs), from the Parquet footers alone."""
    return int(
        engine.con.execute(
            "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata(?)", [files]
        ).fetchall()[0][0]
    )


def _partition_ok(path: Path, key_filter: Any) -> bool:
    """Is the file's ``date=``/``account=`` partition inside the filter?"""
    import datetime as dt

    account = path.parent.name.removeprefix("account=")
    day = path.parent.parent.name.removeprefix("date=")
    if key_filter.accounts and account not in key_filter.accounts:
        return False
    if key_filter.since or key_filter.until:
        try:
            d = dt.date.fromisoformat(day)
        except ValueError:
            return False  # records of unknown date cannot be placed in the window
        if (key_filter.since and d < key_filter.since) or (
            key_filter.until and d > key_filter.until
        ):
            return False
    return True
