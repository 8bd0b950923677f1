"""One hunt request: what to read, what the detections are told, and where they run.

A :class:`HuntRequest` is built once — by the CLI for ``hunt`` and for every poll of
``watch``, or by a caller of the library — and handed whole to :func:`imdshunt.api.hunt` or
:func:`imdshunt.state.hunt_incremental`. No function on the hunt path restates the options
one by one, so an option added here reaches every mode at once.

Example::

    from imdshunt import api
    from imdshunt.request import HuntRequest

    request = HuntRequest.make(["./AWSLogs"], ip_ranges="ip-ranges.json", since="2026-03-01")
    result = api.hunt(request)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from imdshunt.engine.base import Engine
from imdshunt.enrich.ipranges import AddressClassifier
from imdshunt.pipeline import HuntConfig
from imdshunt.sources.inputs import InputFile


@dataclass(frozen=True)
class HuntRequest:
    """One hunt, as asked.

    ``paths`` are local files and folders or ``s3://`` prefixes (read with ``session``, a
    :class:`boto3.Session`; default: the standard credential chain). ``files`` names inputs
    directly instead (S3 event notifications, :mod:`imdshunt.sources.sqs`), read with
    ``s3_client``. ``store`` is a folder compiled by :func:`imdshunt.store.ingest`, hunted in
    place with whatever ``paths`` hold. ``engine`` is any engine (default: a DuckDB made for
    the run, bounded by ``memory_limit``); an engine the caller gives stays the caller's to
    close. ``classifier`` replaces the one ``config.ip_ranges`` would give.
    """

    paths: tuple[str, ...] = ()
    config: HuntConfig = field(default_factory=HuntConfig)
    engine: Engine | None = None
    store: str | None = None
    memory_limit: str | None = None
    session: Any = None
    files: tuple[InputFile, ...] | None = None
    s3_client: Any = None
    classifier: AddressClassifier | None = None

    @classmethod
    def make(
        cls,
        paths: Iterable[str | os.PathLike] = (),
        *,
        engine: Engine | None = None,
        store: str | os.PathLike | None = None,
        memory_limit: str | None = None,
        session: Any = None,
        classifier: AddressClassifier | None = None,
        **config: Any,
    ) -> HuntRequest:
        """A request from the library's keyword arguments: the ones above, and
        :meth:`HuntConfig.make`'s (``ip_ranges``, ``allowlist``, ``inventory``,
        ``org_accounts``, ``since``/``until``/``accounts``/``regions`` or ``window``,
        ``kinds``, ``params``, ``workers``, ``progress`` ...). ``files`` and ``s3_client``
        name inputs directly."""
        files = config.pop("files", None)
        s3_client = config.pop("s3_client", None)
        if "allowlist" in config:
            config["allowlist"] = list(config["allowlist"])
        if "kinds" in config:
            config["kinds"] = tuple(config["kinds"])
        return cls(
            paths=tuple(os.fspath(p) for p in paths),
            config=HuntConfig.make(**config),
            engine=engine,
            store=os.fspath(store) if store is not None else None,
            memory_limit=memory_limit,
            session=session,
            files=tuple(files) if files is not None else None,
            s3_client=s3_client,
            classifier=classifier,
        )
