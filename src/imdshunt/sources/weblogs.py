"""Web access logs (ALB, CloudFront, nginx/Apache combined, AWS WAF) -> ``http_request`` batches.

Every reader yields :class:`pyarrow.RecordBatch` es of exactly :data:`imdshunt.schema.HTTP_REQUEST`
and counts what it read in a :class:`ParseAccounting`: every data line becomes a row or is
counted as skipped with a reason, and the first few skipped lines of each reason are kept
with their file and line number. Blank lines and CloudFront ``#`` header lines are counted
apart. Files may be plain or gzip (detected by magic bytes, decompressed with isal).

Formats and their surprises:

* **ALB** (Elastic Load Balancing User Guide, "Access log entries"): space-separated, with
  quoted ``request``, ``user_agent`` and later fields. The ``request`` field holds the absolute
  URL that ALB rebuilt from the *Host header* and the listener port
  (``"GET http://www.example.com:80/ HTTP/1.1"``), so its authority is the client's Host
  header. AWS appends new fields at the end over time (``classification_reason`` in 2020,
  ``conn_trace_id`` in 2024, transform fields in 2025): fields after ``user_agent`` are
  optional and anything after the known ones is ignored. Delivered as
  ``AWSLogs/<acct>/elasticloadbalancing/<region>/YYYY/MM/DD/<acct>_elasticloadbalancing_...log.gz``.
* **CloudFront standard logs** (CloudFront Developer Guide, "Standard logging (access logs)"):
  tab-separated, the column list given by a ``#Fields:`` header line, so columns are mapped by
  name. ``cs(User-Agent)`` is percent-encoded by CloudFront (spaces are ``%20``) and decoded
  here once; ``cs(Host)`` is the distribution's domain while ``x-host-header`` is the Host
  header the viewer sent, which is what we keep as ``host``. The query is logged apart
  (``cs-uri-query``) and joined back as ``stem?query``.
* **nginx / Apache combined** (``$remote_addr - $remote_user [$time_local] "$request" $status
  $body_bytes_sent "$http_referer" "$http_user_agent"``), optionally with a leading
  ``vhost:port`` (Apache ``vhost_combined``) and extra trailing fields; the common log format
  (no referer/agent) is accepted. The two servers' formats are the same, so ``log_type`` is
  ``apache`` only when the file's path says so (``apache``/``httpd``) or the caller forces it.
* **AWS WAF** (AWS WAF Developer Guide, "Log fields"): one JSON object per line;
  ``httpRequest.uri`` and ``httpRequest.args`` (the query string without ``?``) make the URL,
  ``httpRequest.headers`` (a list of ``{name, value}``) goes to ``headers`` as a JSON object,
  ``timestamp`` is epoch milliseconds. WAF logs no response status unless it sent a custom
  response (``responseCodeSent``); ``status`` is NULL otherwise.
"""

from __future__ import annotations

import io
import json
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO
from urllib.parse import unquote

import msgspec
import pyarrow as pa
from isal import igzip

from imdshunt.errors import InputError, UsageError
from imdshunt.schema import HTTP_REQUEST

__all__ = [
    "LOG_TYPES",
    "ParseAccounting",
    "SkippedLine",
    "read_web_log",
    "read_web_logs",
    "sniff_web_log",
]

LOG_TYPES = ("alb", "cloudfront", "nginx", "apache", "waf")
_EXAMPLES_PER_REASON = 5
_GZIP_MAGIC = b"\x1f\x8b"


# --------------------------------------------------------------------------- accounting


@dataclass(frozen=True, slots=True)
class SkippedLine:
    """One line that did not become a row."""

    source_file: str
    line_number: int
    reason: str
    text: str  # the first 200 characters


@dataclass(slots=True)
class ParseAccounting:
    """What was read: ``lines_read == rows + sum(skipped.values())`` always holds.

    ``lines_read`` counts data lines; blank lines and CloudFront ``#`` header lines are
    counted in ``blank_lines`` and ``header_lines``. ``file_errors`` lists files that could
    not be read to the end (truncated gzip ...), with the line reached.
    """

    files: int = 0
    lines_read: int = 0
    rows: int = 0
    blank_lines: int = 0
    header_lines: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[SkippedLine]] = field(default_factory=dict)
    file_errors: list[SkippedLine] = field(default_factory=list)
    by_type: Counter[str] = field(default_factory=Counter)

    def skip(self, source_file: str, line_number: int, reason: str, text: str) -> None:
        self.skipped[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < _EXAMPLES_PER_REASON:
            ex.append(SkippedLine(source_file, line_number, reason, text[:200]))

    @property
    def lines_skipped(self) -> int:
        return sum(self.skipped.values())

    def merge(self, other: ParseAccounting) -> None:
        """Add another accounting into this one."""
        self.files += other.files
        self.lines_read += other.lines_read
        self.rows += other.rows
        self.blank_lines += other.blank_lines
        self.header_lines += other.header_lines
        self.skipped.update(other.skipped)
        for reason, ex in other.examples.items():
            mine = self.examples.setdefault(reason, [])
            mine.extend(ex[: max(0, _EXAMPLES_PER_REASON - len(mine))])
        self.file_errors.extend(other.file_errors)
        self.by_type.update(other.by_type)

    def as_dict(self) -> dict:
        """A JSON-ready summary."""
        return {
            "files": self.files,
            "lines_read": self.lines_read,
            "rows": self.rows,
            "lines_skipped": self.lines_skipped,
            "blank_lines": self.blank_lines,
            "header_lines": self.header_lines,
            "skipped": dict(self.skipped),
            "examples": {
                r: [
                    {"source_file": e.source_file, "line_number": e.line_number, "text": e.text}
                    for e in ex
                ]
                for r, ex in self.examples.items()
            },
            "file_errors": [
                {"source_file": e.source_file, "line_number": e.line_number, "reason": e.reason}
                for e in self.file_errors
            ],
            "by_type": dict(self.by_type),
        }


class _Skip(Exception):
    def __init__(self, reason: str):
        self.reason = reason


# --------------------------------------------------------------------------- sniffing

_ALB_LINE = re.compile(
    rb"^(?:http|https|h2|grpcs|ws|wss) \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z app/\S+ \S+ \S+ "
)
_COMBINED = re.compile(
    r'^(?:(?P<vhost>\S+) )?(?P<ip>[0-9a-fA-F.:\[\]]+|-) (?P<ident>\S+) (?P<user>\S+|"[^"]*") '
    r'\[(?P<time>[^\]]+)\] "(?P<req>(?:[^"\\]|\\.)*)" (?P<status>\d{3}|-) (?P<bytes>\d+|-)'
    r'(?: "(?P<ref>(?:[^"\\]|\\.)*)" "(?P<ua>(?:[^"\\]|\\.)*)")?(?P<rest>.*)$'
)
_ALB_PATH = re.compile(r"(?:^|/)elasticloadbalancing/|_elasticloadbalancing_[^/]*_app\.")
_WAF_PATH = re.compile(r"(?:^|/)WAFLogs/|aws-waf-logs-", re.I)
_CF_PATH = re.compile(r"(?:^|/)E[A-Z0-9]{6,20}\.\d{4}-\d\d-\d\d-\d\d\.[^/]+(?:\.gz)?$")


def _head(first_bytes: bytes) -> bytes:
    if first_bytes[:2] == _GZIP_MAGIC:
        # A prefix of a gzip stream: zlib's streaming decompressor returns what it can, where
        # igzip.decompress needs the whole member.
        try:
            return zlib.decompressobj(wbits=31).decompress(first_bytes, 65536)
        except zlib.error:
            return b""
    return first_bytes


def sniff_web_log(path: str | Path, first_bytes: bytes) -> str | None:
    """Which web log format is this file? One of :data:`LOG_TYPES`, or ``None``.

    Content decides first (the first data line), then the S3 layout of the path
    (``elasticloadbalancing``, ``WAFLogs``, CloudFront's ``<distribution>.YYYY-MM-DD-HH.``
    names). ``first_bytes`` may be the start of a gzip file.
    """
    p = str(path).replace("\\", "/")
    head = _head(first_bytes)
    for raw in head.splitlines()[:20]:
        line = raw.strip()
        if not line:
            continue
        if line.startswith((b"#Version:", b"#Fields:")):
            return "cloudfront"
        if line.startswith(b"{"):
            if b'"httpRequest"' in line and (b'"webaclId"' in line or b'"action"' in line):
                return "waf"
            return None
        if _ALB_LINE.match(line):
            return "alb"
        if _COMBINED.match(line.decode("utf-8", "replace")):
            return "apache" if re.search(r"apache|httpd", p, re.I) else "nginx"
        if line.count(b"\t") >= 10 and _CF_PATH.search(p):
            return "cloudfront"
        break
    if _ALB_PATH.search(p):
        return "alb"
    if _WAF_PATH.search(p):
        return "waf"
    if _CF_PATH.search(p):
        return "cloudfront"
    return None


# --------------------------------------------------------------------------- parsers

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[^\s"]+')


def _dash(v: str | None) -> str | None:
    return None if v in (None, "", "-") else v


def _addr(v: str) -> str | None:
    """``ip:port`` (or ``[v6]:port``) -> ip."""
    if v in ("", "-"):
        return None
    if v.startswith("["):
        return v[1 : v.find("]")] if "]" in v else None
    host, sep, port = v.rpartition(":")
    if sep and port.isdigit() and host.count(":") != 1:
        return host or None
    return v


def _int(v: str | None) -> int | None:
    if v is None or not v.isdigit():
        return None
    n = int(v)
    return n if n < 2**31 else None


def _split_request(req: str) -> tuple[str | None, str | None]:
    """``METHOD URL PROTO`` -> (method, url). A malformed request keeps its raw text as url."""
    parts = req.split(" ")
    if len(parts) >= 3 and parts[-1].startswith(("HTTP/", "-")):
        method = parts[0]
        url = " ".join(parts[1:-1])
        return _dash(method), _dash(url)
    if len(parts) == 2 and parts[0].isupper():
        return parts[0], _dash(parts[1])
    return None, _dash(req)


def _unescape_quoted(tok: str) -> str:
    body = tok[1:-1]
    return body.replace('\\"', '"').replace("\\\\", "\\") if "\\" in body else body


def _authority_host(url: str | None) -> str | None:
    if not url:
        return None
    m = re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://([^/?#\s]*)", url)
    if not m:
        return None
    auth = m.group(1)
    if auth.startswith("["):
        return auth[: auth.find("]") + 1] if "]" in auth else auth
    return auth.rsplit(":", 1)[0] if auth.count(":") == 1 else auth


def _alb_row(line: str) -> dict:
    if line.count('"') - line.count('\\"') * 1 < 0 or (line.count('"') - line.count('\\"')) % 2:
        raise _Skip("broken quoting")
    toks = _TOKEN.findall(line)
    if len(toks) < 14:
        raise _Skip("too few fields")
    if not toks[12].startswith('"') or not toks[13].startswith('"'):
        raise _Skip("broken quoting")
    try:
        t = datetime.fromisoformat(toks[1])
    except ValueError as e:
        raise _Skip("bad timestamp") from e
    method, url = _split_request(_unescape_quoted(toks[12]))
    return {
        "time": t,
        "client_ip": _addr(toks[3]),
        "target_ip": _addr(toks[4]),
        "host": _authority_host(url),
        "method": method,
        "url": url,
        "status": _int(toks[8]),
        "user_agent": _dash(_unescape_quoted(toks[13])),
        "headers": None,
        "body": None,
    }


_CLF_TIME = "%d/%b/%Y:%H:%M:%S %z"
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_CLF_RE = re.compile(r"^(\d{1,2})/([A-Za-z]{3})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$")


def _clf_time(v: str) -> datetime:
    # Parsed by hand: strptime's %b depends on the process locale.
    m = _CLF_RE.match(v)
    if not m or m.group(2) not in _MONTHS:
        raise ValueError(v)
    d, mon, y, hh, mm, ss, sign, oh, om = m.groups()
    from datetime import timedelta, timezone

    off = timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == "+" else -1)
    return datetime(
        int(y), _MONTHS[mon], int(d), int(hh), int(mm), int(ss), tzinfo=timezone(off)
    ).astimezone(UTC)


#: One escape of nginx's or Apache's access log: ``\xHH`` or a backslash and one character.
_COMBINED_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})|\\(.)")
#: Apache's one-letter escapes (``ap_escape_logitem``); any other ``\c`` is kept as written.
_APACHE_ESCAPES = {
    '"': b'"',
    "\\": b"\\",
    "b": b"\b",
    "n": b"\n",
    "r": b"\r",
    "t": b"\t",
    "v": b"\v",
}


def _combined_unescape(v: str | None) -> str | None:
    r"""Undo the escaping nginx and Apache apply to logged request fields, in one pass.

    nginx (``escape=default``) writes a quote, a backslash and every byte outside printable
    ASCII as ``\xHH``; Apache's ``%r`` writes bytes outside printable ASCII as ``\xhh`` and a
    quote, a backslash and some controls as ``\"``, ``\\``, ``\n``. A request sent as raw UTF-8
    (``①⑥⑨``) is logged as its bytes escaped one by one, so the escapes are collected into
    bytes and decoded as UTF-8: reading each as a code point of its own would turn ``\xE2\x91
    \xA0`` into ``â\x91\xa0`` and hide the payload. Bytes that are not UTF-8 stay written as
    ``\xHH``. One pass, because nginx's ``\x5C\x22`` is a backslash and a quote, not ``"``.
    """
    if v is None or "\\" not in v:
        return v
    out = bytearray()
    pos = 0
    for m in _COMBINED_ESCAPE.finditer(v):
        out += v[pos : m.start()].encode("utf-8", "surrogatepass")
        if m.group(1) is not None:
            out.append(int(m.group(1), 16))
        else:
            out += _APACHE_ESCAPES.get(m.group(2)) or m.group(0).encode("utf-8", "surrogatepass")
        pos = m.end()
    out += v[pos:].encode("utf-8", "surrogatepass")
    return out.decode("utf-8", "backslashreplace")


def _combined_row(line: str) -> dict:
    m = _COMBINED.match(line)
    if not m:
        if line.count('"') % 2:
            raise _Skip("broken quoting")
        raise _Skip("not combined log format")
    try:
        t = _clf_time(m.group("time"))
    except ValueError as e:
        raise _Skip("bad timestamp") from e
    method, url = _split_request(_combined_unescape(m.group("req")) or "")
    vhost = m.group("vhost")
    return {
        "time": t,
        "client_ip": _dash(m.group("ip").strip("[]")),
        "target_ip": None,
        "host": vhost.rsplit(":", 1)[0] if vhost and vhost != "-" else None,
        "method": method,
        "url": url,
        "status": _int(m.group("status")),
        "user_agent": _dash(_combined_unescape(m.group("ua"))),
        "headers": None,
        "body": None,
    }


class _CloudFront:
    def __init__(self) -> None:
        self.fields: dict[str, int] | None = None

    def header(self, line: str) -> None:
        if line.startswith("#Fields:"):
            names = line[len("#Fields:") :].split()
            self.fields = {n: i for i, n in enumerate(names)}

    def row(self, line: str) -> dict:
        if self.fields is None:
            raise _Skip("no #Fields header before data")
        cols = line.rstrip("\r").split("\t")
        f = self.fields
        if len(cols) < len(f):
            # Trailing empty columns are sometimes trimmed; the ones we need must be present.
            need = max(f.get(n, 0) for n in ("date", "time", "c-ip", "cs-uri-stem"))
            if len(cols) <= need:
                raise _Skip("too few fields")

        def g(name: str) -> str | None:
            i = f.get(name)
            return _dash(cols[i]) if i is not None and i < len(cols) else None

        try:
            t = datetime.fromisoformat(f"{g('date')}T{g('time')}+00:00")
        except (ValueError, TypeError) as e:
            raise _Skip("bad timestamp") from e
        stem = g("cs-uri-stem") or ""
        query = g("cs-uri-query")
        ua = g("cs(User-Agent)")
        status = g("sc-status")
        return {
            "time": t,
            "client_ip": g("c-ip"),
            "target_ip": None,
            "host": g("x-host-header") or g("cs(Host)"),
            "method": g("cs-method"),
            "url": stem + (f"?{query}" if query else "") or None,
            "status": _int(status),
            "user_agent": unquote(ua) if ua else None,
            "headers": None,
            "body": None,
        }


_waf_decoder = msgspec.json.Decoder()


def _waf_row(line: str) -> dict:
    try:
        rec = _waf_decoder.decode(line)
    except msgspec.DecodeError as e:
        raise _Skip("invalid JSON") from e
    if not isinstance(rec, dict) or not isinstance(rec.get("httpRequest"), dict):
        raise _Skip("no httpRequest")
    req = rec["httpRequest"]
    ts = rec.get("timestamp")
    if not isinstance(ts, int | float):
        raise _Skip("bad timestamp")
    try:
        t = datetime.fromtimestamp(ts / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError) as e:
        raise _Skip("bad timestamp") from e
    headers: dict[str, str] = {}
    host = ua = None
    for h in req.get("headers") or []:
        if not isinstance(h, dict) or not isinstance(h.get("name"), str):
            continue
        name, value = h["name"], h.get("value")
        value = value if isinstance(value, str) else ""
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if name.lower() == "host" and host is None:
            host = value
        elif name.lower() == "user-agent" and ua is None:
            ua = value
    uri = req.get("uri") if isinstance(req.get("uri"), str) else ""
    args = req.get("args") if isinstance(req.get("args"), str) else ""
    status = rec.get("responseCodeSent")
    return {
        "time": t,
        "client_ip": req.get("clientIp") if isinstance(req.get("clientIp"), str) else None,
        "target_ip": None,
        "host": host,
        "method": req.get("httpMethod") if isinstance(req.get("httpMethod"), str) else None,
        "url": (uri + (f"?{args}" if args else "")) or None,
        "status": status if isinstance(status, int) and 0 <= status < 2**31 else None,
        "user_agent": ua,
        "headers": json.dumps(headers, ensure_ascii=False) if headers else None,
        "body": None,
    }


# --------------------------------------------------------------------------- reading


def _open_lines(path: Path, fileobj: IO[bytes] | None) -> tuple[IO[bytes], bytes]:
    raw = fileobj if fileobj is not None else open(path, "rb")  # noqa: SIM115
    head = raw.read(65536)
    rest = io.BufferedReader(_Prefixed(head, raw))  # type: ignore[arg-type]
    if head[:2] == _GZIP_MAGIC:
        return igzip.GzipFile(fileobj=rest, mode="rb"), head
    return rest, head


class _Prefixed(io.RawIOBase):
    """A stream that replays bytes already read from another stream."""

    def __init__(self, prefix: bytes, inner: IO[bytes]):
        self._prefix = prefix
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._inner.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


def _batch(rows: list[dict], log_type: str, source_file: str, lines: list[int]) -> pa.RecordBatch:
    n = len(rows)
    cols = {name: [r[name] for r in rows] for name in rows[0]} if rows else {}
    arrays = []
    for f in HTTP_REQUEST:
        if f.name == "log_type":
            arrays.append(pa.array([log_type] * n, f.type))
        elif f.name == "source_file":
            arrays.append(pa.array([source_file] * n, f.type))
        elif f.name == "line_number":
            arrays.append(pa.array(lines, f.type))
        else:
            arrays.append(pa.array(cols.get(f.name, [None] * n), f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=HTTP_REQUEST)


def read_web_log(
    path: str | Path,
    log_type: str | None = None,
    *,
    accounting: ParseAccounting | None = None,
    fileobj: IO[bytes] | None = None,
    batch_size: int = 50_000,
    source_name: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """Read one web log file into ``http_request`` record batches.

    ``log_type`` forces the format (one of :data:`LOG_TYPES`); otherwise it is sniffed with
    :func:`sniff_web_log` and :class:`~imdshunt.errors.InputError` is raised when that fails.
    Pass a :class:`ParseAccounting` to learn what was skipped and why. ``fileobj`` reads from
    an open binary stream (e.g. an S3 body) instead of ``path``; ``source_name`` overrides the
    ``source_file`` written on each row (e.g. the ``s3://`` URI).
    """
    acc = accounting if accounting is not None else ParseAccounting()
    p = Path(path)
    src = source_name or str(path)
    if log_type is not None and log_type not in LOG_TYPES:
        raise UsageError(f"unknown web log type {log_type!r}; expected one of {LOG_TYPES}")
    try:
        stream, head = _open_lines(p, fileobj)
    except OSError as e:
        raise InputError(src, f"cannot open: {e}") from e
    with stream:
        if log_type is None:
            log_type = sniff_web_log(p, head)
            if log_type is None:
                raise InputError(src, "not a recognised web log (ALB, CloudFront, combined, WAF)")
        acc.files += 1
        parse = {
            "alb": _alb_row,
            "nginx": _combined_row,
            "apache": _combined_row,
            "waf": _waf_row,
        }.get(log_type)
        cf = _CloudFront() if log_type == "cloudfront" else None
        rows: list[dict] = []
        lines: list[int] = []
        lineno = 0
        try:
            for raw in stream:
                lineno += 1
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line.strip():
                    acc.blank_lines += 1
                    continue
                if cf is not None and line.startswith("#"):
                    acc.header_lines += 1
                    cf.header(line)
                    continue
                acc.lines_read += 1
                try:
                    row = cf.row(line) if cf is not None else parse(line)  # type: ignore[misc]
                except _Skip as s:
                    acc.skip(src, lineno, s.reason, line)
                    continue
                rows.append(row)
                lines.append(lineno)
                if len(rows) >= batch_size:
                    acc.rows += len(rows)
                    acc.by_type[log_type] += len(rows)
                    yield _batch(rows, log_type, src, lines)
                    rows, lines = [], []
        except (EOFError, OSError, zlib.error) as e:
            acc.file_errors.append(SkippedLine(src, lineno, f"unreadable after this line: {e}", ""))
        if rows:
            acc.rows += len(rows)
            acc.by_type[log_type] += len(rows)
            yield _batch(rows, log_type, src, lines)


def read_web_logs(
    paths: Iterable[str | Path], log_type: str | None = None
) -> tuple[pa.Table, ParseAccounting]:
    """Read several web log files (files, or folders walked recursively) into one table."""
    acc = ParseAccounting()
    batches: list[pa.RecordBatch] = []
    for path in paths:
        p = Path(path)
        files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
        for f in files:
            batches.extend(read_web_log(f, log_type, accounting=acc))
    return pa.Table.from_batches(batches, schema=HTTP_REQUEST), acc
