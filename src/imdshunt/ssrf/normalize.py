"""Decide whether an HTTP request tries to reach an AWS metadata endpoint, in any disguise.

The address of a metadata service has no business inside a request to a web application, so
its presence is the signal. Attackers rarely write it plainly, so every candidate host is
normalised before it is compared:

* percent-decoding is repeated until nothing changes (``%25`` twice is one layer more), and
  Unicode is folded with NFKC (``①⑥⑨.②⑤④.①⑥⑨.②⑤④`` is what WHATWG URL parsers turn into
  ``169.254.169.254``);
* a host is mapped as IDNA resolvers and URL parsers map it before reading an address literal
  (UTS #46 mapping, via the ``idna`` package): the full stops ``。`` (U+3002), ``．`` (U+FF0E)
  and ``｡`` (U+FF61) separate labels like ``.`` (RFC 3490 §3.1; ``socket.getaddrinfo`` on
  ``169。254。169。254`` connects to 169.254.169.254), and compatibility forms fold as in NFKC;
* IPv4 literals are read as BSD ``inet_aton``/``inet_addr`` reads them: one to four parts,
  each decimal, ``0x`` hex or ``0`` octal, the last part filling the remaining bytes, so
  ``2852039166``, ``0xA9FEA9FE``, ``0251.0376.0251.0376``, ``169.254.43518`` and
  ``169.16689662`` are all 169.254.169.254. Out-of-range forms that public payload lists use
  (``425.510.425.510``, ``7147006462``) are matched too, labelled ``overflow`` at lower
  confidence: resolvers reject them, but only someone aiming at the metadata service writes
  them;
* IPv6 literals go through :mod:`ipaddress` (compressed, expanded, IPv4-mapped ``::ffff:``,
  IPv4-compatible ``::a9fe:a9fe``, NAT64 ``64:ff9b::``, zone ids, brackets);
* names: ``instance-data`` and ``instance-data.ec2.internal`` (Amazon-provided DNS answers
  them with 169.254.169.254), and wildcard-DNS names that embed the address
  (``169.254.169.254.nip.io``, ``169-254-169-254.sslip.io``, ``a9fea9fe.nip.io``).

Where a host is looked for, so that benign numbers are not taken for hosts:

* the authority of any URL (``scheme://host`` or a protocol-relative ``//host`` at the start
  of a value), including the request's own URL when it is logged in absolute form (ALB logs
  the ``Host`` header there) and the ``Host``-like headers;
* any token directly followed by a metadata path (``.../169.254.169.254/latest/meta-data/``);
* a whole parameter value, but only in the unambiguous spellings (dotted-quad decimal and
  IPv6, including IPv4-mapped). A bare number such as ``?order=2852039166`` is never a host,
  nor a bare word such as ``?q=instance-data`` (a search for the name is not a request to it).

Targets (AWS docs: "Instance metadata service" in the EC2 User Guide; "Amazon ECS task IAM
role"; "EKS Pod Identity agent"):

==================== ===================================
``ec2-imds-ipv4``    169.254.169.254 (and ``instance-data``)
``ec2-imds-ipv6``    fd00:ec2::254
``ecs-credentials``  169.254.170.2
``eks-pod-identity`` 169.254.170.23, fd00:ec2::23
==================== ===================================

Nothing here raises except :class:`imdshunt.errors.UsageError` for a non-text argument.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass, replace
from functools import lru_cache
from urllib.parse import parse_qsl, unquote

import idna

from imdshunt.errors import UsageError

__all__ = [
    "CONFIDENCE_ORDER",
    "ENDPOINTS",
    "HostMatch",
    "SsrfMatch",
    "classify_host",
    "classify_request",
    "find_targets",
    "full_decode",
    "idna_map_host",
    "normalize_url",
    "parse_ipv4",
]

#: Canonical address -> endpoint label.
ENDPOINTS: dict[str, str] = {
    "169.254.169.254": "ec2-imds-ipv4",
    "fd00:ec2::254": "ec2-imds-ipv6",
    "169.254.170.2": "ecs-credentials",
    "169.254.170.23": "eks-pod-identity",
    "fd00:ec2::23": "eks-pod-identity",
}
_V4_TARGETS = {int(ipaddress.IPv4Address(a)): a for a in ENDPOINTS if ":" not in a}
_V6_TARGETS = {ipaddress.IPv6Address(a): a for a in ENDPOINTS if ":" in a}

#: Names that Amazon-provided DNS resolves to the IMDS address.
_IMDS_NAMES = {"instance-data": "169.254.169.254", "instance-data.ec2.internal": "169.254.169.254"}
#: Public wildcard-DNS services that answer a name with the address embedded in it.
_WILDCARD_DNS = ("nip.io", "sslip.io", "xip.io", "traefik.me", "nip.direct", "backname.io")

CONFIDENCE_ORDER = {"low": 1, "medium": 2, "high": 3}
_LOWER = {"high": "medium", "medium": "low", "low": "low"}

#: Paths served by the metadata endpoints. Credential and token paths are the theft itself.
_CREDENTIAL_PATH = re.compile(
    r"/latest/meta-data/iam/security-credentials|/latest/api/token|/v2/credentials|"
    r"/v1/credentials|/latest/meta-data/identity-credentials",
    re.I,
)
_METADATA_PATH = re.compile(
    r"/latest/(?:meta-data|api/token|user-data|dynamic)|/v[12]/credentials|"
    r"/\d{4}-\d{2}-\d{2}/(?:meta-data|user-data|dynamic)",
    re.I,
)


@dataclass(frozen=True, slots=True)
class HostMatch:
    """A host string that designates a metadata endpoint."""

    address: str  # canonical address: 169.254.169.254, fd00:ec2::254 ...
    endpoint: str
    encodings: tuple[str, ...]  # how the host was written: dotted, integer, hex, octal ...
    weak: bool = False  # written in a form resolvers reject or that needs outside DNS
    #: resolvers reject the spelling (an overflowed number): the request cannot have reached
    #: the endpoint. A name that needs someone's wildcard DNS is weak, yet may resolve.
    unresolvable: bool = False


@dataclass(frozen=True, slots=True)
class SsrfMatch:
    """The decision for one request (or one piece of it)."""

    endpoint: str  # ec2-imds-ipv4 | ec2-imds-ipv6 | ecs-credentials | eks-pod-identity
    address: str  # canonical target address
    decoded: str  # the normalised form that matched, e.g. http://169.254.169.254/latest/...
    encodings: tuple[str, ...]  # e.g. ("hex", "double-percent-encoded", "embedded-url")
    confidence: str  # low | medium | high
    location: str  # url | host-header | header | body
    #: written in a spelling resolvers reject (an overflowed number): it names the endpoint
    #: but cannot have reached it.
    unresolvable: bool = False

    @property
    def path_kind(self) -> str | None:
        """``credentials`` (credential or token path), ``metadata`` (other) or None."""
        path = _clean_path("/" + self.decoded.split("://", 1)[-1].split("/", 1)[-1])
        if _CREDENTIAL_PATH.search(path):
            return "credentials"
        if _METADATA_PATH.search(path):
            return "metadata"
        return None

    @property
    def encoding(self) -> str:
        """The encoding labels as one comma-separated string (the findings field)."""
        return ",".join(self.encodings)


# --------------------------------------------------------------------------- decoding


def full_decode(text: str) -> tuple[str, int, bool]:
    """Percent-decode and NFKC-fold ``text`` until it no longer changes.

    Returns ``(decoded, percent_layers, unicode_folded)``. A single ``unquote`` only peels one
    layer (``%252F`` -> ``%2F``); attackers stack layers because each hop (WAF, proxy, app)
    decodes once. The loop ends because every changing ``unquote`` shortens the string; the
    cap only guards against NFKC re-creating ``%`` sequences forever, which no real log line
    can do within 64 rounds.
    """
    layers = 0
    folded = False
    for _ in range(64):
        nf = unicodedata.normalize("NFKC", text)
        if nf != text:
            folded = True
            text = nf
        dec = unquote(text, errors="surrogateescape")
        if dec == text:
            break
        layers += 1
        text = dec
    return text, layers, folded


# --------------------------------------------------------------------------- IPv4

_PART = re.compile(r"^(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$")


def _part_value(part: str) -> tuple[int, str] | None:
    if not _PART.match(part):
        return None
    if part[:2] in ("0x", "0X"):
        return (int(part[2:], 16) if len(part) > 2 else 0), "hex"
    if len(part) > 1 and part[0] == "0":
        return int(part, 8), "octal"
    return int(part), "decimal"


def parse_ipv4(text: str) -> tuple[ipaddress.IPv4Address, tuple[str, ...], bool] | None:
    """Read an IPv4 literal the way BSD/glibc ``inet_aton`` does (plus overflow forms).

    Returns ``(address, labels, overflow)`` or ``None``. Written by hand rather than calling
    :func:`socket.inet_aton` because the libc behaviour differs across platforms (glibc accepts
    anything after a space: ``"1.2.3.4 junk"``), while this must be deterministic. ``overflow``
    is true when a part is out of range and the value was wrapped (``425.510.425.510``,
    ``7147006462``): resolvers reject those, but SSRF payload lists use them.
    """
    if not text or len(text) > 80:
        return None
    parts = text.split(".")
    if len(parts) > 4 or any(p == "" for p in parts):
        return None
    vals = []
    kinds = set()
    for p in parts:
        pv = _part_value(p)
        if pv is None:
            return None
        vals.append(pv[0])
        kinds.add(pv[1])
    n = len(vals)
    overflow = False
    # inet_aton: the last part fills the remaining 4-(n-1) bytes; the others are one byte each.
    limits = [256] * (n - 1) + [256 ** (5 - n)]
    for i, (v, lim) in enumerate(zip(vals, limits, strict=True)):
        if v >= lim:
            if n not in (1, 4):
                return None
            overflow = True
            vals[i] = v % lim
    value = 0
    for v in vals[:-1]:
        value = value * 256 + v
    value = value * (256 ** (5 - n)) + vals[-1]
    labels: list[str] = []
    if n == 4 and kinds == {"decimal"} and not overflow:
        labels.append("dotted")
    elif n == 1 and kinds == {"decimal"}:
        labels.append("integer")
    else:
        if n in (2, 3):
            labels.append("short")
        if "hex" in kinds:
            labels.append("hex")
        if "octal" in kinds:
            labels.append("octal")
        if len(kinds) > 1:
            labels.append("mixed")
        if not labels:  # 4 decimal parts with overflow
            labels.append("dotted")
    if overflow:
        labels.append("overflow")
    return ipaddress.IPv4Address(value), tuple(labels), overflow


# --------------------------------------------------------------------------- hosts

_HEX8 = re.compile(r"^[0-9a-f]{8}$")


def _v6_match(text: str) -> HostMatch | None:
    t = text
    if t.startswith("[") and t.endswith("]"):
        t = t[1:-1]
    if ":" not in t:
        return None
    t = t.split("%", 1)[0]  # zone id (fe80::1%eth0, or %25eth0 once decoded)
    try:
        a6 = ipaddress.IPv6Address(t)
    except ValueError:
        return None
    if a6 in _V6_TARGETS:
        addr = _V6_TARGETS[a6]
        labels = ["ipv6"] if "::" in t else ["ipv6", "expanded-ipv6"]
        return HostMatch(addr, ENDPOINTS[addr], tuple(labels))
    inner, label = None, ""
    if a6.ipv4_mapped is not None:
        inner, label = a6.ipv4_mapped, "ipv4-mapped-ipv6"
    elif int(a6) >> 32 == 0 and int(a6) > 0xFFFF:
        inner, label = ipaddress.IPv4Address(int(a6) & 0xFFFFFFFF), "ipv4-compatible-ipv6"
    elif int(a6) >> 32 == int(ipaddress.IPv6Address("64:ff9b::")) >> 32:
        inner, label = ipaddress.IPv4Address(int(a6) & 0xFFFFFFFF), "nat64-ipv6"
    if inner is not None and int(inner) in _V4_TARGETS:
        addr = _V4_TARGETS[int(inner)]
        return HostMatch(addr, ENDPOINTS[addr], (label,))
    return None


def _embedded_name_match(name: str) -> HostMatch | None:
    """nip.io/sslip.io-style names: the address written inside the DNS name."""
    labels = name.split(".")
    known = name.endswith(_WILDCARD_DNS)
    # dotted: four consecutive decimal labels
    for i in range(len(labels) - 3):
        quad = labels[i : i + 4]
        if all(q.isdigit() and len(q) <= 3 for q in quad):
            parsed = parse_ipv4(".".join(q.lstrip("0") or "0" for q in quad))
            if parsed and int(parsed[0]) in _V4_TARGETS:
                addr = _V4_TARGETS[int(parsed[0])]
                return HostMatch(addr, ENDPOINTS[addr], ("dns-name", "dotted"), weak=not known)
    for lab in labels:
        pieces = lab.split("-")
        for i in range(len(pieces) - 3):
            quad = pieces[i : i + 4]
            if all(q.isdigit() and len(q) <= 3 for q in quad):
                v = ".".join(str(int(q)) for q in quad)
                try:
                    val = int(ipaddress.IPv4Address(v))
                except ValueError:
                    continue
                if val in _V4_TARGETS:
                    addr = _V4_TARGETS[val]
                    return HostMatch(addr, ENDPOINTS[addr], ("dns-name", "dashed"), weak=not known)
        if known:
            for piece in pieces:
                if _HEX8.match(piece) and int(piece, 16) in _V4_TARGETS:
                    addr = _V4_TARGETS[int(piece, 16)]
                    return HostMatch(addr, ENDPOINTS[addr], ("dns-name", "hex"))
    return None


@lru_cache(maxsize=4096)
def _uts46_char(ch: str) -> str:
    try:
        return idna.uts46_remap(ch, std3_rules=False, transitional=False)
    except (idna.IDNAError, ValueError):
        return ch  # disallowed in hostnames (U+FFFD, lone surrogates ...): left as written


def idna_map_host(host: str) -> str:
    """``host`` mapped as IDNA (UTS #46, non-transitional) maps a name before lookup.

    The ideographic and fullwidth full stops become ``.``, compatibility characters fold
    (``⑯⑨`` -> ``169``, ``ⓧ`` -> ``x``), letters are case-folded. Characters that UTS #46
    disallows are kept as they are rather than rejecting the whole host: a host that a resolver
    would refuse still tells us what its sender aimed at. ASCII hosts come back lower-cased.
    """
    if host.isascii():
        return host.lower()
    try:
        return idna.uts46_remap(host, std3_rules=False, transitional=False)
    except (idna.IDNAError, ValueError):
        # Character by character so one disallowed character does not hide the rest.
        return unicodedata.normalize("NFC", "".join(_uts46_char(c) for c in host))


def classify_host(host: str) -> HostMatch | None:
    """Does this host string (no scheme, no path; a port is allowed) name a metadata endpoint?

    ``host`` should already be decoded (see :func:`full_decode`); it is mapped with
    :func:`idna_map_host` here.
    """
    if not isinstance(host, str):
        raise UsageError(f"host must be text, not {type(host).__name__}")
    # A C resolver reads a host up to its first NUL (169.254.169.254%00.example.com).
    stripped = host.split("\x00", 1)[0].strip().strip("'\"")
    if len(stripped) > 1024:
        return None
    h = idna_map_host(stripped)
    if h != stripped.lower():
        hm = _classify_mapped(h)
        return hm and replace(hm, encodings=hm.encodings + ("idna",))
    return _classify_mapped(h)


def _classify_mapped(h: str) -> HostMatch | None:
    if "@" in h:  # userinfo: the host is what follows the last @
        h = h.rsplit("@", 1)[1]
    if not h or len(h) > 255:
        return None
    if h.startswith("["):
        end = h.find("]")
        if end < 0:
            return None
        return _v6_match(h[: end + 1])
    m6 = _v6_match(h)
    if m6:
        return m6
    if ":" in h:  # host:port
        h, _, port = h.rpartition(":")
        if port and not port.isdigit():
            return None
    h = h.rstrip(".") if h.endswith(".") and not h.endswith("..") else h
    if not h:
        return None
    if h in _IMDS_NAMES:
        addr = _IMDS_NAMES[h]
        return HostMatch(addr, ENDPOINTS[addr], ("dns-name",))
    parsed = parse_ipv4(h)
    if parsed is not None:
        a4, labels, overflow = parsed
        if int(a4) in _V4_TARGETS:
            addr = _V4_TARGETS[int(a4)]
            return HostMatch(addr, ENDPOINTS[addr], labels, weak=overflow, unresolvable=overflow)
        return None
    if re.fullmatch(r"[a-z0-9_.-]+", h):
        return _embedded_name_match(h)
    return None


# --------------------------------------------------------------------------- scanning

# scheme://authority[path] or a protocol-relative //authority at the start of a value.
_URL = re.compile(
    r"(?:(?P<scheme>[a-z][a-z0-9+.\-]{0,15}):/{1,3}|(?:(?<=[=\s\"'(,;{\[])|^)//)"
    r"(?P<auth>[^\s/?#\"'<>\\]*)(?P<path>[^\s\"'<>]*)",
    re.I,
)
# a host-like token directly followed by a metadata path.
_HOST_THEN_PATH = re.compile(
    r"(?P<host>\[[0-9a-f:.%]+\]|[^\s/?#&=@\"'<>\\,;(){}]+)(?P<path>(?:"
    + _METADATA_PATH.pattern
    + r")[^\s\"'<>&]*)",
    re.I,
)
#: Spellings that identify an address even as a whole parameter value (no scheme, no path).
_PLAIN_VALUE_FORMS = {"dotted", "ipv6", "expanded-ipv6", "ipv4-mapped-ipv6", "idna"}
_PATH_END = re.compile(r"[\s\"'<>]")
_USERINFO_HOST = re.compile(r"@(?P<host>\[[0-9a-f:.%]+\]|[^\s/?#@&\"'<>\\+]+)", re.I)


def _clean_path(path: str) -> str:
    """Collapse ``//`` and resolve ``.``/``..`` segments, as servers do before routing."""
    out: list[str] = []
    for seg in re.split(r"/+", path):
        if seg == "..":
            if out:
                out.pop()
        elif seg not in (".", ""):
            out.append(seg)
    tail = "/" if path.endswith("/") and out else ""
    return ("/" + "/".join(out) + tail) if out else ("/" if path.startswith("/") else "")


def _canonical_host(addr: str) -> str:
    return f"[{addr}]" if ":" in addr else addr


def _confidence(hm: HostMatch, path: str, *, bare: bool = False) -> str:
    p = _clean_path(path.split("?", 1)[0].split("#", 1)[0])
    conf = "high" if _METADATA_PATH.search(p) else "medium"
    if hm.weak or bare:
        conf = _LOWER[conf]
    return conf


@dataclass(slots=True)
class _Found:
    hm: HostMatch
    decoded: str
    extra: tuple[str, ...]
    confidence: str


def _scan_text(text: str, *, values: bool) -> list[_Found]:
    """Matches inside one decoded piece of text (a URL, a header value or a body)."""
    found: list[_Found] = []
    t = text.replace("\\", "/")
    pos = 0
    while (m := _URL.search(t, pos)) is not None:
        # Continue right after the authority: the path may hold further embedded URLs.
        pos = max(m.end("auth"), m.start() + 1)
        auth = m.group("auth")
        path = m.group("path") or ""
        scheme = (m.group("scheme") or "").lower()
        candidates = [auth]
        if "@" in auth:  # every reading of a confusing authority (CRS 934120 evasion tests)
            # "host&@other" (Orange Tsai's parser confusion): some parsers stop the host at "&"
            candidates += [
                c for part in auth.split("@") for c in dict.fromkeys((part, part.rstrip("&")))
            ]
        for cand in candidates:
            hm = classify_host(cand)
            if hm:
                pre = f"{scheme}://" if scheme else "//"
                clean = _clean_path(path) if path else ""
                found.append(
                    _Found(hm, pre + _canonical_host(hm.address) + clean, (), _confidence(hm, path))
                )
                break
        rest = t[m.end("auth") :]
        tok_end = re.search(r"[\s\"'<>]", rest)
        token = rest[: tok_end.start()] if tok_end else rest
        for um in _USERINFO_HOST.finditer(token):
            hm = classify_host(um.group("host"))
            if hm:
                found.append(_Found(hm, f"{scheme}://{_canonical_host(hm.address)}", (), "medium"))
    for m in _HOST_THEN_PATH.finditer(t):
        host = m.group("host")
        hm = classify_host(host)
        if hm:
            path = m.group("path")
            decoded = _canonical_host(hm.address) + _clean_path(path)
            found.append(_Found(hm, decoded, ("embedded-path",), _confidence(hm, path)))
    if values:
        query = t.split("?", 1)[1] if "?" in t else t
        try:
            pairs = parse_qsl(query, keep_blank_values=True)
        except ValueError:
            pairs = []
        for _, v in pairs:
            v = v.strip()
            hm = classify_host(v) if v and "/" not in v else None
            if hm and set(hm.encodings) <= _PLAIN_VALUE_FORMS:
                found.append(_Found(hm, _canonical_host(hm.address), ("parameter",), "medium"))
    return found


def _layers(text: str) -> list[tuple[str, int, bool]]:
    """The text at each decoding layer: raw, once decoded, twice ..., then NFKC-folded."""
    out = [(text, 0, False)]
    cur = text
    for i in range(1, 65):
        dec = unquote(cur, errors="surrogateescape")
        if dec == cur:
            break
        out.append((dec, i, False))
        cur = dec
    final, layers, folded = full_decode(text)
    if folded or final != cur:
        out.append((final, layers, folded))
    return out


#: Every rule above needs one of these in the (lower-cased) raw text: a URL or protocol-relative
#: ``//``, an encoding (``%``, ``\\``, non-ASCII for NFKC), brackets or userinfo, a metadata
#: path, or the unambiguous spellings a bare value may use. Checked first because almost every
#: logged URL has none of them, and the full scan is ~100x slower.
_TRIGGERS = ("//", "%", "\\", "[", "@", "/latest/", "/credentials", "169.254.", "fd00:", "a9fe")


def _might_match(text: str) -> bool:
    if not text.isascii():
        return True
    low = text.lower()
    return any(t in low for t in _TRIGGERS)


def find_targets(
    text: str, *, location: str = "url", values: bool = True, fast: bool = True
) -> list[SsrfMatch]:
    """Every metadata target written in ``text`` (a URL as logged, a header value or a body).

    Each match is reported at the first decoding layer where it appears, so its encodings say
    how deep it was hidden. ``values`` also checks whole query-parameter values. ``fast``
    skips texts that hold none of the characters any rule needs (same result, much quicker).
    """
    if not isinstance(text, str):
        raise UsageError(f"text must be text, not {type(text).__name__}")
    if not text or (fast and not _might_match(text)):
        return []
    results: dict[tuple[str, str], SsrfMatch] = {}
    for layer_text, depth, folded in _layers(text[:65536]):
        for f in _scan_text(layer_text, values=values):
            enc = list(f.hm.encodings)
            if depth == 1:
                enc.append("percent-encoded")
            elif depth >= 2:
                enc.append("double-percent-encoded")
            if folded:
                enc.append("unicode")
            enc.extend(f.extra)
            key = (f.hm.address, f.decoded)
            if key in results:
                continue
            results[key] = SsrfMatch(
                endpoint=f.hm.endpoint,
                address=f.hm.address,
                decoded=f.decoded,
                encodings=tuple(dict.fromkeys(enc)),
                confidence=f.confidence,
                location=location,
                unresolvable=f.hm.unresolvable,
            )
    return list(results.values())


def _best(matches: list[SsrfMatch]) -> SsrfMatch | None:
    if not matches:
        return None
    kinds = {"credentials": 2, "metadata": 1, None: 0}
    return max(
        matches,
        key=lambda m: (
            CONFIDENCE_ORDER[m.confidence],
            kinds[m.path_kind],
            not m.unresolvable,
            -len(m.encodings),
        ),
    )


_HOST_HEADERS = {"host", "x-forwarded-host", "x-host", "x-original-host", "x-forwarded-server"}


def classify_request(
    url: str | None,
    host: str | None = None,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    body: str | None = None,
) -> SsrfMatch | None:
    """The strongest metadata target in one request, or ``None``.

    ``url`` is as logged: a path and query (nginx, CloudFront, WAF) or an absolute URL (ALB
    logs ``scheme://Host-header:port/path?query``, so its authority *is* the Host header and is
    labelled ``host-header``). ``host`` is a logged Host header; ``headers`` the logged request
    headers (WAF); ``body`` a logged body fragment.
    """
    matches: list[SsrfMatch] = []
    if url:
        if not isinstance(url, str):
            raise UsageError(f"url must be text, not {type(url).__name__}")
        own = re.match(r"^([a-z][a-z0-9+.\-]*)://([^/?#\s\\%@\[]*)", url, re.I)
        if own and not _might_match(url[own.end() :]):
            # Fast path for absolute URLs (every ALB line): only the authority can match.
            hm = classify_host(own.group(2))
            if hm:
                decoded = (
                    f"{own.group(1).lower()}://{_canonical_host(hm.address)}"
                    f"{_clean_path(_PATH_END.split(url[own.end() :], maxsplit=1)[0])}"
                )
                matches.append(
                    SsrfMatch(
                        hm.endpoint,
                        hm.address,
                        decoded,
                        hm.encodings + ("host-header",),
                        "low" if hm.weak else "medium",
                        "host-header",
                        hm.unresolvable,
                    )
                )
            url = ""
        for m in find_targets(url, location="url") if url else ():
            if own and m.decoded.startswith(url[: url.find("://") + 3].lower()):
                own_host = classify_host(full_decode(own.group(2))[0])
                if own_host and own_host.address == m.address and m.decoded.count("://") == 1:
                    enc = tuple(e for e in m.encodings if e != "parameter") + ("host-header",)
                    m = replace(m, encodings=enc, location="host-header")
            elif not {"parameter", "embedded-path"} & set(m.encodings):
                m = replace(m, encodings=m.encodings + ("embedded-url",))
            matches.append(m)
    hdrs: list[tuple[str, str]] = []
    if host:
        hdrs.append(("host", host))
    if headers:
        items = headers.items() if isinstance(headers, dict) else headers
        hdrs.extend((str(k), str(v)) for k, v in items)
    for name, value in hdrs:
        lname = name.lower()
        if lname in _HOST_HEADERS:
            hm = classify_host(full_decode(value)[0])
            if hm:
                matches.append(
                    SsrfMatch(
                        hm.endpoint,
                        hm.address,
                        _canonical_host(hm.address),
                        hm.encodings + ("host-header",),
                        "low" if hm.weak else "medium",
                        "host-header",
                        hm.unresolvable,
                    )
                )
                continue
        if lname in ("referer", "user-agent", "cookie"):
            continue  # a referer naming a URL is not a request for it
        for m in find_targets(value, location="header", values=False):
            matches.append(replace(m, encodings=m.encodings + ("embedded-url",)))
    if body:
        for m in find_targets(body, location="body"):
            matches.append(replace(m, encodings=m.encodings + ("embedded-url",)))
    return _best(matches)


def normalize_url(text: str) -> str:
    """The normalised form of a logged URL: fully decoded, NFKC-folded, backslashes as slashes,
    and every metadata-address host rewritten to its canonical literal.

    Idempotent: ``normalize_url(normalize_url(x)) == normalize_url(x)``.
    """
    if not isinstance(text, str):
        raise UsageError(f"text must be text, not {type(text).__name__}")
    for _ in range(64):
        dec = full_decode(text)[0].replace("\\", "/")
        out = _URL.sub(_rewrite_authority, dec)
        if out == text:
            break
        text = out
    return text


def _rewrite_authority(m: re.Match[str]) -> str:
    path = m.group("path") or ""
    if path:  # the path may hold further embedded URLs
        path = path[0] + _URL.sub(_rewrite_authority, path[1:])
    hm = classify_host(m.group("auth"))
    if hm is None or "dns-name" in hm.encodings:
        return m.group(0)[: m.start("path") - m.start()] + path
    scheme = m.group("scheme")
    pre = f"{scheme.lower()}://" if scheme else "//"
    return pre + _canonical_host(hm.address) + path
