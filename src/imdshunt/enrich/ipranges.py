"""Where an address is: AWS's published ranges, private and special ranges, operator egress.

AWS publishes its address space at https://ip-ranges.amazonaws.com/ip-ranges.json and changes
it several times a week (https://docs.aws.amazon.com/vpc/latest/userguide/aws-ip-ranges.html).
A prefix usually appears twice, once under ``AMAZON`` (the superset) and once under the
specific service (``EC2``, ``S3`` ...); the most specific prefix wins, and among equal prefixes
the specific service wins over ``AMAZON``.

Lookups are done once per *distinct* address (a hunt sees millions of events but only
thousands of addresses), with a sorted-interval search. We write this small interval index by
hand because the address space is tiny (~17k prefixes) and the stdlib ``ipaddress``
keeps the package free of compiled radix-tree dependencies that lack wheels on some platforms.
The index is a dict per prefix length (longest first), which is exact and fast enough.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import tempfile
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from imdshunt.errors import InputError, IpRangesError

IP_RANGES_URL = "https://ip-ranges.amazonaws.com/ip-ranges.json"
ENV_IP_RANGES = "IMDSHUNT_IP_RANGES"
STALE_AFTER_DAYS = 30

#: Private and special-purpose ranges: none of these is "outside" in the sense of theft,
#: and none is AWS's public space either. RFC 1918, RFC 6598 (carrier-grade NAT shared space),
#: loopback, link-local, RFC 6890 specials; IPv6 ULA (fc00::/7), link-local, loopback.
SPECIAL_RANGES: tuple[tuple[str, str], ...] = (
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "private"),  # RFC 6598 shared address space
    ("127.0.0.0/8", "private"),  # loopback
    ("169.254.0.0/16", "private"),  # link-local
    ("0.0.0.0/8", "special"),
    ("192.0.0.0/24", "special"),
    ("198.18.0.0/15", "special"),  # benchmarking
    ("224.0.0.0/4", "special"),  # multicast
    ("240.0.0.0/4", "special"),  # reserved
    ("fc00::/7", "private"),  # unique local (includes AWS's fd00:ec2:: metadata addresses)
    ("fe80::/10", "private"),  # link-local
    ("::1/128", "private"),
    ("::/128", "special"),
    ("ff00::/8", "special"),
)

#: ``sourceIPAddress`` values that are not addresses but name AWS itself.
#: https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html
AWS_INTERNAL = "AWS Internal"


@dataclass(frozen=True)
class IpRangesInfo:
    path: str
    sync_token: str
    create_date: str
    ipv4_prefixes: int
    ipv6_prefixes: int

    @property
    def created(self) -> dt.datetime | None:
        try:
            return dt.datetime.strptime(self.create_date, "%Y-%m-%d-%H-%M-%S").replace(
                tzinfo=dt.UTC
            )
        except ValueError:
            return None

    def age_days(self, now: dt.datetime | None = None) -> float | None:
        created = self.created
        if created is None:
            return None
        now = now or dt.datetime.now(dt.UTC)
        return (now - created).total_seconds() / 86400


class _PrefixIndex:
    """Most-specific-prefix lookup: one dict per prefix length, longest length first.

    At most 33 (IPv4) or 129 (IPv6) dict probes per address, and in practice ~20.
    """

    def __init__(self, entries: Iterable[tuple[ipaddress._BaseNetwork, str]], bits: int):
        self._bits = bits
        by_len: dict[int, dict[int, str]] = {}
        for net, label in entries:
            by_len.setdefault(net.prefixlen, {})[
                int(net.network_address) >> (bits - net.prefixlen)
            ] = label
        self._levels = sorted(by_len.items(), reverse=True)

    def lookup(self, value: int) -> str | None:
        bits = self._bits
        for plen, table in self._levels:
            label = table.get(value >> (bits - plen))
            if label is not None:
                return label
        return None


class AddressClassifier:
    """Classifies ``sourceIPAddress`` values into the ``network`` labels of the findings contract.

    Labels: ``allowlisted`` (operator egress; wins over everything), ``aws:<SERVICE>:<region>``,
    ``private``, ``special``, ``aws-service`` (a service name or ``AWS Internal``), ``invalid``
    (neither an address nor a service name) and ``internet``.
    """

    def __init__(
        self,
        aws_prefixes: Iterable[tuple[str, str, str]] = (),
        allowlist: Iterable[str] = (),
        info: IpRangesInfo | None = None,
    ):
        self.info = info
        v4: list[tuple[ipaddress._BaseNetwork, str]] = []
        v6: list[tuple[ipaddress._BaseNetwork, str]] = []
        # Equal prefixes: keep the specific service over AMAZON.
        chosen: dict[ipaddress._BaseNetwork, str] = {}
        for prefix, service, region in aws_prefixes:
            net = ipaddress.ip_network(prefix, strict=False)
            label = f"aws:{service}:{region}"
            if net not in chosen or chosen[net].startswith("aws:AMAZON:"):
                chosen[net] = label
        for net, label in chosen.items():
            (v4 if net.version == 4 else v6).append((net, label))
        self._aws = {4: _PrefixIndex(v4, 32), 6: _PrefixIndex(v6, 128)}
        special4, special6 = [], []
        for cidr, label in SPECIAL_RANGES:
            net = ipaddress.ip_network(cidr)
            (special4 if net.version == 4 else special6).append((net, label))
        self._special = {4: _PrefixIndex(special4, 32), 6: _PrefixIndex(special6, 128)}
        allow4, allow6 = [], []
        for cidr in allowlist:
            net = ipaddress.ip_network(cidr, strict=False)
            (allow4 if net.version == 4 else allow6).append((net, "allowlisted"))
        self._allow = {4: _PrefixIndex(allow4, 32), 6: _PrefixIndex(allow6, 128)}
        self.allowlist_size = len(allow4) + len(allow6)

    def classify(self, value: str | None) -> str:
        if value is None or value == "":
            return "invalid"
        if value == AWS_INTERNAL or value.endswith(".amazonaws.com"):
            return "aws-service"
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            return "invalid"
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        n = int(addr)
        fam = addr.version
        return (
            self._allow[fam].lookup(n)
            or self._special[fam].lookup(n)
            or self._aws[fam].lookup(n)
            or "internet"
        )

    def classify_table(self, addresses: Iterable[str | None]) -> pa.Table:
        """One row per distinct address: ``src_ip, network, network_kind, is_aws``.

        ``network_kind`` is the first part of ``network`` (``aws`` for every AWS prefix), which
        is what detections filter on; ``network`` keeps the detail for the finding.
        """
        ips, nets, kinds = [], [], []
        for ip in addresses:
            if ip is None:
                continue
            net = self.classify(ip)
            ips.append(ip)
            nets.append(net)
            kinds.append(net.split(":", 1)[0])
        from imdshunt.schema import IP_CLASS

        is_aws = [k in ("aws", "aws-service") for k in kinds]
        return pa.Table.from_arrays(
            [
                pa.array(v, f.type)
                for v, f in zip((ips, nets, kinds, is_aws), IP_CLASS, strict=True)
            ],
            schema=IP_CLASS,
        )


def parse_ip_ranges(data: bytes | str, path: str = "<ip-ranges>") -> tuple[list, IpRangesInfo]:
    """Parse AWS's ip-ranges.json (format: aws-ip-ranges.html) into prefixes and its header."""
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise IpRangesError(
            f"not valid JSON: {exc.msg} (column {exc.colno})", path=path, line=exc.lineno
        ) from exc
    except ValueError as exc:  # bytes that are not UTF-8
        raise IpRangesError(f"not valid JSON: {exc}", path=path) from exc
    try:
        v4 = [(p["ip_prefix"], p["service"], p["region"]) for p in doc["prefixes"]]
        v6 = [(p["ipv6_prefix"], p["service"], p["region"]) for p in doc.get("ipv6_prefixes", [])]
        info = IpRangesInfo(
            path=path,
            sync_token=str(doc.get("syncToken", "")),
            create_date=str(doc.get("createDate", "")),
            ipv4_prefixes=len(v4),
            ipv6_prefixes=len(v6),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise IpRangesError(
            f"not an AWS ip-ranges.json document (no {exc})"
            if isinstance(exc, KeyError)
            else f"not an AWS ip-ranges.json document ({exc})",
            path=path,
        ) from exc
    return v4 + v6, info


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "imdshunt"


def cached_path() -> Path:
    return cache_dir() / "ip-ranges.json"


def load_allowlist(path: str | os.PathLike) -> list[str]:
    """Read one CIDR or address per line; ``#`` starts a comment. Errors name file and line."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise InputError(
                    str(path), f"not a CIDR or address: {text!r}", line=lineno
                ) from None
            out.append(text)
    return out


def fetch_ip_ranges(
    url: str = IP_RANGES_URL, dest: Path | None = None, timeout: float = 30
) -> IpRangesInfo:
    """Download AWS's current ip-ranges.json into the cache (atomically); returns its header.

    Keeps the cached copy when AWS's ``syncToken`` has not moved.
    """
    dest = dest or cached_path()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (fixed https URL)
            data = resp.read()
    except OSError as exc:
        raise IpRangesError(f"could not fetch {url}: {exc}") from exc
    _, info = parse_ip_ranges(data, url)
    if dest.exists():
        try:
            _, old = parse_ip_ranges(dest.read_bytes(), str(dest))
            if old.sync_token == info.sync_token:
                return IpRangesInfo(
                    str(dest), old.sync_token, old.create_date, old.ipv4_prefixes, old.ipv6_prefixes
                )
        except IpRangesError:
            pass
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, dest)
    return IpRangesInfo(
        str(dest), info.sync_token, info.create_date, info.ipv4_prefixes, info.ipv6_prefixes
    )


def resolve_ip_ranges_path(
    explicit: str | os.PathLike | None = None, *, fetch: bool = True
) -> Path:
    """Which copy to use: an explicit file, ``$IMDSHUNT_IP_RANGES``, the cache, else fetch once."""
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise IpRangesError("ip-ranges file not found", path=p)
        return p
    env = os.environ.get(ENV_IP_RANGES)
    if env:
        return resolve_ip_ranges_path(env, fetch=False)
    cached = cached_path()
    if cached.is_file():
        return cached
    if not fetch:
        raise IpRangesError(
            "no ip-ranges.json available: run 'imdshunt ip-ranges update' or pass --ip-ranges FILE"
        )
    fetch_ip_ranges(dest=cached)
    return cached


def load_classifier(
    ip_ranges: str | os.PathLike | None = None,
    allowlist: Iterable[str] = (),
    *,
    fetch: bool = True,
) -> AddressClassifier:
    path = resolve_ip_ranges_path(ip_ranges, fetch=fetch)
    prefixes, info = parse_ip_ranges(path.read_bytes(), str(path))
    return AddressClassifier(prefixes, allowlist, info)
