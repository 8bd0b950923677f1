"""The window of a hunt: which delivery days, accounts and regions it reads.

Parsed once (from the CLI's ``--since/--until/--accounts/--regions`` or the library's keyword
arguments) and handed to every step that prunes: the local walk and the S3 listing (by
CloudTrail's key layout), a compiled store (by its ``date=``/``account=`` partitions, regions
as a row filter) and Athena (partition projection). One value, one meaning, every mode.

CloudTrail's key layout is
``AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/<file>.json.gz``
(https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-find-log-files.html).
The window is a window of *delivery folders*, the unit Athena's partition projection prunes by:
a file delivered in the first minutes of a day can hold events of the previous day.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath

from imdshunt.errors import UsageError

_ACCOUNT = re.compile(r"^\d{12}$")
_ORG = re.compile(r"^o-[a-z0-9]{10,32}$")


#: Services that deliver under ``AWSLogs/<account>/<service>/<region>/YYYY/MM/DD/``: CloudTrail
#: and Elastic Load Balancing access logs
#: (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/enable-access-logging.html).
_DATED_SERVICES = ("CloudTrail", "elasticloadbalancing")


def _as_date(value: dt.date | str | None) -> dt.date | None:
    if value is None or value == "" or isinstance(value, dt.date):
        return value or None
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError as exc:
        raise UsageError(f"not a date (YYYY-MM-DD): {value!r}") from exc


def _ids(value: Iterable[str] | str | None) -> frozenset[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    out = frozenset(s.strip() for s in items if s and s.strip())
    return out or None


def segments_after_awslogs(key_prefix: str) -> list[str] | None:
    """The path segments after ``AWSLogs/`` (None when the path has no ``AWSLogs`` folder)."""
    parts = [p for p in key_prefix.split("/") if p]
    if "AWSLogs" not in parts:
        return None
    return parts[parts.index("AWSLogs") + 1 :]


@dataclass(frozen=True)
class HuntWindow:
    """Which delivery folders to read: days (inclusive), accounts and regions (None = all)."""

    since: dt.date | None = None
    until: dt.date | None = None
    accounts: frozenset[str] | None = None
    regions: frozenset[str] | None = None

    @classmethod
    def make(
        cls,
        since: dt.date | str | None = None,
        until: dt.date | str | None = None,
        accounts: Iterable[str] | str | None = None,
        regions: Iterable[str] | str | None = None,
    ) -> HuntWindow:
        """Parse the four values; accounts and regions may be lists or comma-separated text."""
        window = cls(_as_date(since), _as_date(until), _ids(accounts), _ids(regions))
        if window.since and window.until and window.since > window.until:
            raise UsageError(f"--since {window.since} is after --until {window.until}")
        return window

    @property
    def is_empty(self) -> bool:
        return not (self.since or self.until or self.accounts or self.regions)

    def _date_ok(self, parts: list[str]) -> bool:
        """Could a folder YYYY[/MM[/DD]] hold a day inside the window?"""
        try:
            y = int(parts[0])
            m = int(parts[1]) if len(parts) > 1 else None
            d = int(parts[2]) if len(parts) > 2 else None
            lo = dt.date(y, m or 1, d or 1)
            if d is not None:
                hi = lo
            elif m is not None:
                hi = (dt.date(y + (m == 12), m % 12 + 1, 1)) - dt.timedelta(days=1)
            else:
                hi = dt.date(y, 12, 31)
        except ValueError:
            return True  # not a date folder: do not prune what we do not understand
        return not ((self.since and hi < self.since) or (self.until and lo > self.until))

    def keep(self, segments: list[str]) -> tuple[bool, str | None]:
        """Decide on a folder from its path segments after ``AWSLogs/``.

        Returns (keep, skip_reason); skip_reason is set only for folders skipped on purpose
        that are worth a line in the accounting (digests, Insights).
        """
        segs = list(segments)
        if segs and _ORG.match(segs[0]):
            segs = segs[1:]
        if not segs:
            return True, None
        if _ACCOUNT.match(segs[0]) and self.accounts is not None and segs[0] not in self.accounts:
            return False, None
        if len(segs) < 2:
            return True, None
        service = segs[1]
        if service == "CloudTrail-Digest":
            return False, "CloudTrail digest file"
        if service == "CloudTrail-Insight":
            return False, "CloudTrail Insights file"
        if service not in _DATED_SERVICES:
            # Other services' logs under AWSLogs/ (VPC flow logs ...): their layout is not
            # known here, so nothing is pruned; the sources decide on each file by content.
            return True, None
        if len(segs) < 3:
            return True, None
        if self.regions is not None and segs[2] not in self.regions:
            return False, None
        if len(segs) < 4:
            return True, None
        return self._date_ok(segs[3:6]), None

    def keep_path(self, path: str | PurePath) -> tuple[bool, str | None]:
        """:meth:`keep` for a file's full path or S3 key (files outside ``AWSLogs/`` are kept)."""
        if self.is_empty and "Digest" not in str(path) and "Insight" not in str(path):
            return True, None
        folder = str(path).replace("\\", "/").rsplit("/", 1)[0]
        segs = segments_after_awslogs(folder)
        return (True, None) if segs is None else self.keep(segs)

    def keep_partition(self, day: str, account: str) -> bool:
        """Is a compiled store's ``date=``/``account=`` partition inside the window?"""
        if self.accounts and account not in self.accounts:
            return False
        if self.since or self.until:
            try:
                d = dt.date.fromisoformat(day)
            except ValueError:
                return False  # records of unknown date cannot be placed in the window
            if (self.since and d < self.since) or (self.until and d > self.until):
                return False
        return True


#: The whole history: no pruning.
EVERYTHING = HuntWindow()
