"""Selecting what a hunt reads: the files under its paths, inside its window, sorted by source.

A sources job, used by every caller that starts from paths (``api.hunt``, ``ingest``); the
library facade re-exports it as :func:`imdshunt.api.select`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from imdshunt.sources.discover import RunStats
from imdshunt.sources.inputs import Reader, fetch_threads, list_inputs
from imdshunt.sources.registry import sort_inputs
from imdshunt.window import EVERYTHING, HuntWindow


def select(
    paths: Iterable[str | os.PathLike],
    stats: RunStats,
    *,
    window: HuntWindow = EVERYTHING,
    session: Any = None,
    workers: int | None = None,
    kinds: Sequence[str] = (),
) -> tuple[dict[str, list], Reader]:
    """List the files under ``paths`` (local or ``s3://``) inside ``window`` and sort them by
    source; returns the files of each source and the reader that reads them."""
    listing = list_inputs(paths, stats, window=window, session=session, workers=workers)
    reader = Reader(listing.s3_client, threads=fetch_threads(workers))
    return sort_inputs(listing.files, reader, stats, kinds=kinds), reader
