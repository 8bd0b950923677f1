"""Walk the paths a user gave, decide what each file is, and account for every file.

CloudTrail delivers to S3 as ``AWSLogs/[o-org/]<acct>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz``
(https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-find-log-files.html).
Digest files (``CloudTrail-Digest``) and CloudTrail Insights files (``CloudTrail-Insight``) live
beside them and are skipped on purpose: digests hold hashes, not events; Insights events describe
API-rate anomalies, not calls.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from isal import igzip
from isal.igzip_lib import IsalError

GZIP_MAGIC = b"\x1f\x8b"
_SNIFF_BYTES = 4096

CLOUDTRAIL = "cloudtrail"
WEB = "web"


@dataclass
class SkippedFile:
    path: str
    reason: str


@dataclass
class RunStats:
    """What a run read and what it skipped, and why. Nothing is dropped without a line here."""

    files_read: int = 0
    records_read: int = 0
    duplicate_records: int = 0
    files_skipped: list[SkippedFile] = field(default_factory=list)
    records_skipped: Counter = field(default_factory=Counter)
    record_skip_examples: dict[str, str] = field(default_factory=dict)
    web_files_read: int = 0
    web_lines_read: int = 0
    #: Of ``records_read``, the CloudTrail records the engine parsed itself (the rest were read
    #: by the exact decoder; see :mod:`imdshunt.sources.cloudtrail_native`).
    records_parsed_natively: int = 0

    def skip_file(self, path: str | os.PathLike, reason: str) -> None:
        self.files_skipped.append(SkippedFile(str(path), reason))

    def skip_records(self, reason: str, count: int = 1, example: str | None = None) -> None:
        self.records_skipped[reason] += count
        if example and reason not in self.record_skip_examples:
            self.record_skip_examples[reason] = example

    @property
    def records_present(self) -> int:
        return self.records_read + sum(self.records_skipped.values())

    def file_skip_reasons(self) -> Counter:
        return Counter(s.reason for s in self.files_skipped)

    def merge(self, other: RunStats) -> None:
        self.files_read += other.files_read
        self.records_read += other.records_read
        self.duplicate_records += other.duplicate_records
        self.files_skipped.extend(other.files_skipped)
        self.records_skipped.update(other.records_skipped)
        for k, v in other.record_skip_examples.items():
            self.record_skip_examples.setdefault(k, v)
        self.web_files_read += other.web_files_read
        self.web_lines_read += other.web_lines_read
        self.records_parsed_natively += other.records_parsed_natively

    def summary(self) -> str:
        parts = [f"{self.files_read} files read", f"{self.records_read} records read"]
        if self.records_parsed_natively:
            exact = self.records_read - self.records_parsed_natively
            parts[-1] += (
                f" ({self.records_parsed_natively} parsed by the engine's JSON reader, {exact} by "
                "the exact decoder)"
            )
        if self.web_files_read:
            parts.append(f"{self.web_files_read} web log files ({self.web_lines_read} lines)")
        if self.duplicate_records:
            parts.append(f"{self.duplicate_records} duplicate deliveries counted once")
        if self.files_skipped:
            reasons = ", ".join(f"{n} {r}" for r, n in self.file_skip_reasons().most_common())
            parts.append(f"{len(self.files_skipped)} files skipped ({reasons})")
        else:
            parts.append("0 files skipped")
        n = sum(self.records_skipped.values())
        if n:
            reasons = ", ".join(f"{c} {r}" for r, c in self.records_skipped.most_common())
            parts.append(f"{n} records skipped ({reasons})")
        else:
            parts.append("0 records skipped")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {
            "files_read": self.files_read,
            "records_read": self.records_read,
            "records_present": self.records_present,
            "duplicate_records": self.duplicate_records,
            "files_skipped": [{"path": s.path, "reason": s.reason} for s in self.files_skipped],
            "records_skipped": dict(self.records_skipped),
            "record_skip_examples": dict(self.record_skip_examples),
            "web_files_read": self.web_files_read,
            "web_lines_read": self.web_lines_read,
            "records_parsed_natively": self.records_parsed_natively,
        }


_DIGEST = re.compile(r"CloudTrail-Digest", re.I)
_INSIGHT = re.compile(r"CloudTrail-Insight", re.I)
_CT_LAYOUT = re.compile(r"(^|/)CloudTrail/", re.I)
_ELB_LAYOUT = re.compile(r"(^|/)elasticloadbalancing/", re.I)
#: ``<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz``, the name CloudTrail gives
#: its log files (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/get-and-view-cloudtrail-log-files.html).
_CT_NAME = re.compile(r"^\d{12}_CloudTrail_[a-z0-9-]+_\d{8}T\d{4}Z_[A-Za-z0-9]+\.json(\.gz)?$")


def iter_files(paths: Iterable[str | os.PathLike], stats: RunStats) -> Iterator[Path]:
    """Every regular file under the given paths, recursively, each once.

    Symlinks are followed, but a directory reached twice (a symlink loop) is walked once and
    the repeat is recorded as skipped.
    """
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            if p.is_symlink():
                stats.skip_file(p, "broken symlink")
                continue
            from imdshunt.errors import InputError

            raise InputError(str(p), "no such file or directory")
        if p.is_file():
            yield p
            continue
        stack = [p]
        while stack:
            d = stack.pop()
            try:
                st = d.stat()
            except OSError as exc:
                stats.skip_file(d, f"unreadable directory ({exc.strerror})")
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:
                stats.skip_file(d, "directory already visited (symlink loop)")
                continue
            seen_dirs.add(key)
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError as exc:
                stats.skip_file(d, f"unreadable directory ({exc.strerror})")
                continue
            subdirs = []
            for e in entries:
                try:
                    if e.is_dir():
                        subdirs.append(Path(e.path))
                    elif e.is_file():
                        fst = e.stat()
                        fkey = (fst.st_dev, fst.st_ino)
                        if fkey in seen_files:
                            continue
                        seen_files.add(fkey)
                        yield Path(e.path)
                    elif e.is_symlink():
                        stats.skip_file(e.path, "broken symlink")
                except OSError as exc:
                    stats.skip_file(e.path, f"unreadable ({exc.strerror})")
            stack.extend(reversed(subdirs))


def read_head(path: Path) -> bytes:
    """The first bytes of a file, gunzipped when gzip. Raises OSError/EOFError if unreadable."""
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if head.startswith(GZIP_MAGIC):
        with igzip.open(path, "rb") as gz:
            return gz.read(_SNIFF_BYTES)
    return head


#: An Amazon EventBridge event that carries a CloudTrail record in ``detail``
#: (https://docs.aws.amazon.com/eventbridge/latest/ref/events-structure.html): its
#: ``detail-type`` ends with "via CloudTrail" ("AWS API Call via CloudTrail", "AWS Console Sign
#: In via CloudTrail", "AWS Service Event via CloudTrail" ...). Matched as a key, so the text
#: inside a string value (an event pattern in a PutRule call, where quotes are escaped) is not.
_EVENTBRIDGE_CLOUDTRAIL = re.compile(rb'"detail-type"\s*:\s*"[^"\\]*via CloudTrail"')


def is_eventbridge_cloudtrail(head: bytes) -> bool:
    """Does this JSON (a file's first bytes) hold CloudTrail records wrapped in EventBridge
    events, one per line or concatenated as Kinesis Data Firehose writes them to S3?"""
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{" and bool(
        _EVENTBRIDGE_CLOUDTRAIL.search(head[:_SNIFF_BYTES])
    )


def classify_file(
    path: PurePath, head: bytes | None = None, *, sniff: bool = True
) -> tuple[str | None, str | None]:
    """(kind, skip_reason): kind is ``cloudtrail`` or ``web`` when readable, else a reason.

    Without ``head``, the file's first bytes are read (``sniff``), or, with ``sniff=False``,
    only its name and layout are judged and (None, None) means "read its head to know".
    """
    posix = path.as_posix()
    name = path.name
    if _DIGEST.search(posix):
        return None, "CloudTrail digest file"
    if _INSIGHT.search(posix):
        return None, "CloudTrail Insights file"
    if head is None and _CT_NAME.match(name) and _CT_LAYOUT.search(posix):
        # Named and placed as CloudTrail delivers: the decoder reads it (and accounts for an
        # empty, truncated or non-JSON file with the same reasons), so it is not opened twice.
        return CLOUDTRAIL, None
    if head is None and not sniff:
        return None, None
    if head is None:
        try:
            head = read_head(path)
        except (OSError, EOFError, ValueError, IsalError) as exc:
            return None, _read_error_reason(exc)
    if not head.strip():
        return None, "empty file"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith((b"{", b"[")):
        if is_eventbridge_cloudtrail(text):
            return CLOUDTRAIL, None
        if b'"eventVersion"' in head or b'"Records"' in head or b'"eventName"' in head:
            return CLOUDTRAIL, None
        if _CT_LAYOUT.search(posix) and text.startswith(b'{"Records"'):
            return CLOUDTRAIL, None
        if b'"httpRequest"' in head and b'"webaclId"' in head:
            return WEB, None
        if not text.strip(b"{}[] \r\n\t"):
            return CLOUDTRAIL, None  # empty document: counts as a file with no records
        return None, "JSON that is not CloudTrail"
    if _CT_LAYOUT.search(posix) and name.endswith((".json", ".json.gz")):
        return CLOUDTRAIL, None
    return WEB, None  # the web sources decide, by content, whether they can read it


def _read_error_reason(exc: BaseException) -> str:
    if isinstance(exc, PermissionError):
        return "unreadable (permission denied)"
    if isinstance(exc, EOFError):
        return "truncated gzip"
    if isinstance(exc, IsalError):
        return f"corrupt gzip ({exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"unreadable ({exc.strerror})"
    return (
        f"corrupt gzip ({exc})"
        if "gzip" in str(exc).lower() or "CRC" in str(exc)
        else (f"unreadable ({exc})")
    )
