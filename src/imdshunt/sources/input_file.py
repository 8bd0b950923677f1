"""One file a hunt reads, local or on S3: :class:`InputFile` (see :mod:`imdshunt.sources.inputs`).

A module of its own so that the S3 lister (:mod:`imdshunt.sources.s3`), which makes them, and
:mod:`imdshunt.sources.inputs`, which lists through it, both import it without importing each
other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class InputFile:
    """One file to read: a local path or an S3 object."""

    uri: str  # as rows name it (source_file): the path as walked, or s3://bucket/key
    size: int = 0
    version: str = ""  # size and mtime (local) or size and ETag (S3): changes when rewritten
    identity: str = ""  # the resolved path (local) or the URI (S3)

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    @property
    def path(self) -> PurePosixPath | Path:
        """The path (local) or key (S3), for decisions made by name and layout."""
        if self.is_s3:
            return PurePosixPath(self.uri[len("s3://") :].partition("/")[2])
        return Path(self.uri)

    @property
    def key(self) -> str:
        return self.identity or self.uri

    @classmethod
    def local(cls, path: str | os.PathLike) -> InputFile:
        p = Path(path)
        st = p.stat()
        return cls(str(p), st.st_size, f"{st.st_size}:{st.st_mtime_ns}", str(p.resolve()))

    @classmethod
    def s3(cls, bucket: str, key: str, size: int = 0, etag: str = "") -> InputFile:
        uri = f"s3://{bucket}/{key}"
        return cls(uri, size, f"{size}:{etag.strip(chr(34))}", uri)
