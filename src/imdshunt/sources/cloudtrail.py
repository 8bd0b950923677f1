"""CloudTrail JSON -> Arrow batches of the canonical ``api_activity`` view.

This is the one place where hunt speed is decided. Instead of building a Python dict for every
record (what ``json.load`` or DuckDB's auto-detecting reader do), msgspec decodes straight into
typed structs that declare only the fields the canonical view needs; everything else is
skipped by the parser without being materialised. Free-form ``requestParameters`` and
``responseElements`` are kept as raw JSON and decoded only for the few credential-vending events.
Gzip is inflated with ISA-L (``isal``), several times faster than zlib.

Accepted layouts (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-log-file-examples.html):
``{"Records": [...]}`` as delivered to S3 (``.json.gz`` or ``.json``), a bare JSON array of
records (CloudTrail Lake / Grimoire exports), and JSON lines with one record per line
(Logstash-style exports carry ``@timestamp`` instead of ``eventTime``; both are accepted).
CloudTrail routed through Amazon EventBridge is read too: each record is the ``detail`` of an
event ``{"detail-type": "AWS API Call via CloudTrail", "account": ..., "region": ...,
"detail": {...}}``, written one per line, or concatenated with no separator at all, as Kinesis
Data Firehose delivers events to S3 unless told to add a delimiter.
"""

from __future__ import annotations

import contextlib
import gc
import operator
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from isal import igzip
from isal.igzip_lib import IsalError

from imdshunt.schema import API_ACTIVITY, CLOUDTRAIL_RECORD, LINEAGE_EVENT_NAMES, RAW_JSON
from imdshunt.sources.discover import (
    GZIP_MAGIC,
    RunStats,
    _read_error_reason,
    is_eventbridge_cloudtrail,
)

Str = str | None


def _derive_structs(fields: dict, name: str, out: dict[str, type]) -> type:
    """msgspec structs for :data:`~imdshunt.schema.CLOUDTRAIL_RECORD` (one per object, keyed by
    its dotted path in ``out``): every leaf ``str | None``, raw JSON kept as ``msgspec.Raw``,
    every object optional. ``@timestamp`` becomes the attribute ``timestamp``."""
    spec = []
    for key, kind in fields.items():
        attr = key.lstrip("@")
        if isinstance(kind, dict):
            path = f"{name}.{key}" if name else key
            sub = _derive_structs(kind, path, out)
            spec.append((attr, sub | None, msgspec.field(default=None, name=key)))
        elif kind == RAW_JSON:
            spec.append((attr, msgspec.Raw, msgspec.field(default_factory=msgspec.Raw, name=key)))
        else:
            spec.append((attr, Str, msgspec.field(default=None, name=key)))
    struct = msgspec.defstruct(name.rsplit(".", 1)[-1] or "Record", spec, gc=False)
    out[name] = struct
    return struct


#: The exact decoder's structs, derived from the one declaration (schema.CLOUDTRAIL_RECORD).
RECORD_STRUCTS: dict[str, type] = {}
_Record = _derive_structs(CLOUDTRAIL_RECORD, "", RECORD_STRUCTS)
_UserIdentity = RECORD_STRUCTS["userIdentity"]
_SessionContext = RECORD_STRUCTS["userIdentity.sessionContext"]
_SessionIssuer = RECORD_STRUCTS["userIdentity.sessionContext.sessionIssuer"]
_Attributes = RECORD_STRUCTS["userIdentity.sessionContext.attributes"]
_WebIdFederation = RECORD_STRUCTS["userIdentity.sessionContext.webIdFederationData"]


class _EventBridgeEvent(msgspec.Struct, gc=False):
    detail_type: Str = msgspec.field(default=None, name="detail-type")
    account: Str = None
    region: Str = None
    detail: _Record | None = None


class _Envelope(msgspec.Struct, gc=False):
    Records: list[_Record] | None = None


class _RawEnvelope(msgspec.Struct, gc=False):
    Records: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


class _Tag(msgspec.Struct, gc=False):
    key: Str = None
    value: Str = None


class _VendRequest(msgspec.Struct, gc=False):
    roleArn: Str = None
    roleSessionName: Str = None
    tags: list[_Tag] | None = None


class _Credentials(msgspec.Struct, gc=False):
    accessKeyId: Str = None
    expiration: Str | int | float = None


class _AssumedRoleUser(msgspec.Struct, gc=False):
    arn: Str = None


class _VendResponse(msgspec.Struct, gc=False):
    credentials: _Credentials | None = None
    assumedRoleUser: _AssumedRoleUser | None = None
    provider: Str = None  # AssumeRoleWithWebIdentity: the IAM OIDC provider (ARN or host)
    subjectFromWebIdentityToken: Str = None


#: Events that vend role credentials; their parameters are decoded, all others are not.
#: https://docs.aws.amazon.com/IAM/latest/UserGuide/cloudtrail-integration.html
VENDING_EVENTS = frozenset(
    {"AssumeRole", "AssumeRoleWithWebIdentity", "AssumeRoleWithSAML", "AssumeRoleForPodIdentity"}
)

_EMPTY_UI = _UserIdentity()
_EMPTY_SC = _SessionContext()
_EMPTY_SI = _SessionIssuer()
_EMPTY_ATTR = _Attributes()
_EMPTY_WIF = _WebIdFederation()

_record_decoder = msgspec.json.Decoder(_Record)
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_array_decoder = msgspec.json.Decoder(list[_Record])
_raw_envelope_decoder = msgspec.json.Decoder(_RawEnvelope)
_raw_array_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_eventbridge_decoder = msgspec.json.Decoder(_EventBridgeEvent)
_any_decoder = msgspec.json.Decoder()
_vend_req_decoder = msgspec.json.Decoder(_VendRequest)
_vend_resp_decoder = msgspec.json.Decoder(_VendResponse)

_TAG_COLUMNS = {
    "eks-cluster-name": 0,
    "kubernetes-namespace": 1,
    "kubernetes-service-account": 2,
    "kubernetes-pod-name": 3,
}
_NO_VEND = (None,) * 11
#: IRSA tokens are issued to ``system:serviceaccount:<namespace>:<service account>``
#: (https://docs.aws.amazon.com/eks/latest/userguide/iam-roles-for-service-accounts.html).
_SA_SUBJECT = "system:serviceaccount:"


def _vending(r: _Record) -> tuple:
    req = resp = None
    try:
        if r.requestParameters:
            req = _vend_req_decoder.decode(r.requestParameters)
    except (msgspec.ValidationError, msgspec.DecodeError):
        req = None
    try:
        if r.responseElements:
            resp = _vend_resp_decoder.decode(r.responseElements)
    except (msgspec.ValidationError, msgspec.DecodeError):
        resp = None
    tags = [None, None, None, None]
    if req is not None and req.tags:
        for t in req.tags:
            i = _TAG_COLUMNS.get(t.key or "")
            if i is not None:
                tags[i] = t.value
    creds = resp.credentials if resp is not None else None
    aru = resp.assumedRoleUser if resp is not None else None
    provider = resp.provider if resp is not None else None
    subject = resp.subjectFromWebIdentityToken if resp is not None else None
    if subject and subject.startswith(_SA_SUBJECT) and tags[1] is None and tags[2] is None:
        ns_sa = subject[len(_SA_SUBJECT) :].split(":", 1)
        if len(ns_sa) == 2:
            tags[1], tags[2] = ns_sa
    return (
        req.roleArn if req else None,
        req.roleSessionName if req else None,
        creds.accessKeyId if creds else None,
        aru.arn if aru else None,
        str(creds.expiration) if creds and creds.expiration is not None else None,
        *tags,
        provider,
        subject,
    )


_NO_RAW = (None, None)


def _json_or_none(raw: msgspec.Raw | None) -> str | None:
    text = bytes(raw) if raw is not None else b""
    return None if not text or text == b"null" else text.decode()


def lineage_raw(r: _Record) -> tuple[str | None, str | None]:
    """requestParameters and responseElements as JSON text for a lineage event (see
    :data:`imdshunt.schema.LINEAGE_EVENTS`), else two NULLs."""
    if r.eventName not in LINEAGE_EVENT_NAMES:
        return _NO_RAW
    return _json_or_none(r.requestParameters), _json_or_none(r.responseElements)


def _row(r: _Record, source_file: str, index: int) -> tuple:
    ui = r.userIdentity or _EMPTY_UI
    sc = ui.sessionContext or _EMPTY_SC
    si = sc.sessionIssuer or _EMPTY_SI
    arn = ui.arn
    session_name = None
    role_name = si.userName
    if arn and ":assumed-role/" in arn:
        # arn:aws:sts::<acct>:assumed-role/<role>/<session>; role names have no '/'.
        parts = arn.split(":assumed-role/", 1)[1].split("/", 1)
        if len(parts) == 2:
            session_name = parts[1]
            if role_name is None:
                role_name = parts[0]
    vend = _vending(r) if r.eventName in VENDING_EVENTS else _NO_VEND
    return (
        r.eventTime or r.timestamp,
        r.eventID,
        r.eventType,
        r.eventSource,
        r.eventName,
        r.recipientAccountId or ui.accountId,
        r.awsRegion,
        ui.type,
        arn,
        ui.accountId,
        ui.principalId,
        ui.accessKeyId,
        role_name,
        si.arn,
        session_name,
        (sc.attributes or _EMPTY_ATTR).creationDate,
        sc.ec2RoleDelivery,
        (sc.webIdFederationData or _EMPTY_WIF).federatedProvider,
        sc.sourceIdentity,
        ui.invokedBy,
        r.sourceIPAddress,
        r.userAgent,
        r.vpcEndpointId,
        r.vpcEndpointAccountId,
        r.errorCode,
        *vend,
        *lineage_raw(r),
        source_file,
        index,
    )


_N_COLUMNS = len(API_ACTIVITY)
_TS_COLUMNS = {
    API_ACTIVITY.get_field_index("event_time"),
    API_ACTIVITY.get_field_index("session_created"),
}


def _parse_times(values: list | pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    arr = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
    try:
        return pc.cast(arr, API_ACTIVITY.field("event_time").type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Non-ISO or odd values: parse one by one, leaving unparsable ones null.
        return pc.cast(
            pa.array([_lenient_time(v) for v in arr.to_pylist()], pa.string()),
            API_ACTIVITY.field("event_time").type,
        )


def _lenient_time(v: str | None) -> str | None:
    import datetime as dt

    if not v:
        return None
    try:
        t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: See :func:`record_projection_sql`.
RECORD_PROJECTION_FILE = Path(__file__).with_name("cloudtrail_record.sql")


def record_projection_sql() -> str:
    """DuckDB-dialect SELECT of the canonical ``api_activity`` columns from a relation named
    ``cloudtrail_record`` (schema.CLOUDTRAIL_RECORD's columns plus ``source_file`` and
    ``source_record``): the same rows as this module's exact decoder, for engines that parse
    raw CloudTrail themselves (Spark runs it through engine.portable.transpile)."""
    names = ", ".join(f"'{name}'" for name in sorted(LINEAGE_EVENT_NAMES))
    return RECORD_PROJECTION_FILE.read_text().replace("$lineage_event_names", names)


def rows_to_batch(rows: list[tuple]) -> pa.RecordBatch:
    """Transpose row tuples into a record batch of the canonical schema."""
    if not rows:
        return pa.RecordBatch.from_pylist([], schema=API_ACTIVITY)
    cols = list(zip(*rows, strict=True))
    arrays = []
    for i, f in enumerate(API_ACTIVITY):
        if i in _TS_COLUMNS:
            arrays.append(_parse_times(cols[i]))
        else:
            arrays.append(pa.array(cols[i], f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=API_ACTIVITY)


_EVENT_TIME = operator.attrgetter("eventTime")
_UTF8 = pa.string()
#: Columns of credential-vending events, in schema order (they follow error_code).
_VEND_NAMES = API_ACTIVITY.names[
    API_ACTIVITY.get_field_index("error_code") + 1 : API_ACTIVITY.get_field_index(
        "request_parameters"
    )
]
#: The raw JSON columns of lineage events (they follow the vending columns).
_RAW_NAMES = ("request_parameters", "response_elements")
#: Role and session from ``arn:aws:sts::<acct>:assumed-role/<role>/<session>`` (as in _row).
_ASSUMED_ROLE_RE = r"(?s):assumed-role/(?P<role>[^/]*)/(?P<session>.*)$"


#: (column, path) of the plain string columns, read with one C-level attrgetter per column.
_PLAIN = (
    ("event_id", "eventID"),
    ("event_type", "eventType"),
    ("event_source", "eventSource"),
    ("event_name", "eventName"),
    ("recipient", "recipientAccountId"),
    ("region", "awsRegion"),
    ("src_ip", "sourceIPAddress"),
    ("user_agent", "userAgent"),
    ("vpce_id", "vpcEndpointId"),
    ("vpce_account_id", "vpcEndpointAccountId"),
    ("error_code", "errorCode"),
)
_UI = (
    ("actor_type", "type"),
    ("actor_arn", "arn"),
    ("actor_account_id", "accountId"),
    ("principal_id", "principalId"),
    ("access_key_id", "accessKeyId"),
    ("invoked_by", "invokedBy"),
)
_SC = (("role_delivery", "ec2RoleDelivery"), ("source_identity", "sourceIdentity"))
_SI = (("si_user", "userName"), ("role_arn", "arn"))
_GETTERS = [
    (group, [(name, operator.attrgetter(path)) for name, path in fields])
    for group, fields in (("rec", _PLAIN), ("ui", _UI), ("sc", _SC), ("si", _SI))
]


#: Columns a file's records yield directly; the rest are derived per batch (_derive).
_RAW_SCHEMA = pa.schema(
    [(name, _UTF8) for _, fields in _GETTERS for name, _ in fields]
    + [
        ("event_time", _UTF8),
        ("session_created", _UTF8),
        ("web_id_provider", _UTF8),
        ("source_file", _UTF8),
        ("source_record", pa.int32()),
    ]
    + [(name, API_ACTIVITY.field(name).type) for name in _VEND_NAMES]
    + [(name, _UTF8) for name in _RAW_NAMES]
)


def _file_batch(res: DecodedFile) -> pa.RecordBatch:
    """One file's kept records as raw columns (see _RAW_SCHEMA), converted while hot in cache."""
    recs, index = zip(*res.kept, strict=True)
    n = len(recs)
    uis = [r.userIdentity or _EMPTY_UI for r in recs]
    scs = [u.sessionContext or _EMPTY_SC for u in uis]
    sis = [c.sessionIssuer or _EMPTY_SI for c in scs]
    groups = {"rec": recs, "ui": uis, "sc": scs, "si": sis}
    arrays = [
        pa.array(list(map(getter, groups[group])), _UTF8)
        for group, fields in _GETTERS
        for _, getter in fields
    ]
    times = list(map(_EVENT_TIME, recs))
    if None in times or "" in times:
        times = [r.eventTime or r.timestamp for r in recs]
    arrays += [
        pa.array(times, _UTF8),
        pa.array([(c.attributes or _EMPTY_ATTR).creationDate for c in scs], _UTF8),
        pa.array([(c.webIdFederationData or _EMPTY_WIF).federatedProvider for c in scs], _UTF8),
        pa.array([res.source] * n, _UTF8),
        pa.array(index, pa.int32()),
    ]
    vend_cols: list[list] = [[None] * n for _ in _VEND_NAMES]
    for i, r in enumerate(recs):
        if r.eventName in VENDING_EVENTS:
            for col, value in zip(vend_cols, _vending(r), strict=True):
                col[i] = value
    for name, values in zip(_VEND_NAMES, vend_cols, strict=True):
        arrays.append(pa.array(values, API_ACTIVITY.field(name).type))
    raw_cols: list[list] = [[None] * n for _ in _RAW_NAMES]
    for i, r in enumerate(recs):
        if r.eventName in LINEAGE_EVENT_NAMES:
            raw_cols[0][i], raw_cols[1][i] = lineage_raw(r)
    arrays += [pa.array(values, _UTF8) for values in raw_cols]
    return pa.RecordBatch.from_arrays(arrays, schema=_RAW_SCHEMA)


def _derive(raw: pa.Table) -> pa.Table:
    """Raw columns of many files -> the canonical table: times parsed, the account, role and
    session derived, in Arrow kernels once per batch rather than once per file."""
    raw = raw.combine_chunks()
    parts = pc.extract_regex(raw["actor_arn"], _ASSUMED_ROLE_RE)
    cols = {name: raw[name] for name in raw.schema.names}
    cols.update(
        event_time=_parse_times(raw["event_time"]),
        session_created=_parse_times(raw["session_created"]),
        account_id=pc.coalesce(raw["recipient"], raw["actor_account_id"]),
        role_name=pc.coalesce(raw["si_user"], pc.struct_field(parts, "role")),
        session_name=pc.struct_field(parts, "session"),
    )
    return pa.Table.from_arrays([cols[f] for f in API_ACTIVITY.names], schema=API_ACTIVITY)


def records_to_batch(results: list[DecodedFile]) -> pa.RecordBatch:
    """The canonical batch of the kept records of ``results``.

    Equal to ``rows_to_batch`` of their rows, without a tuple per record: for each file (its
    records still in cache) every column is one C-level ``map(attrgetter)`` pass and one
    Arrow conversion; times, role and session names are then derived by Arrow kernels.
    """
    batches = [_file_batch(r) for r in results if r.kept]
    if not batches:
        return pa.RecordBatch.from_pylist([], schema=API_ACTIVITY)
    table = _derive(pa.Table.from_batches(batches, schema=_RAW_SCHEMA))
    return table.combine_chunks().to_batches()[0]


@dataclass
class FileResult:
    """Canonical row tuples of one file (the row-wise interface other sources share)."""

    rows: list[tuple]
    stats: RunStats


@dataclass
class DecodedFile:
    """One CloudTrail file's records that have a time, each with its 1-based index (or line
    number); ``rows`` gives them as canonical row tuples like :class:`FileResult`."""

    kept: list[tuple[_Record, int]]
    stats: RunStats
    source: str = ""

    @property
    def rows(self) -> list[tuple]:
        """The records as canonical row tuples (slow path; batches use records_to_batch)."""
        return [_row(r, self.source, i) for r, i in self.kept]


def read_bytes(path: str | os.PathLike) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read()
    if data.startswith(GZIP_MAGIC):
        data = igzip.decompress(data)
    return data


def _keep(rec: _Record, rows: list, stats: RunStats, source: str, index: int) -> None:
    if not (rec.eventTime or rec.timestamp):
        stats.skip_records("record without eventTime", example=f"{source}:{index}")
        return
    rows.append((rec, index))


def decode_records(data: bytes, source: str) -> DecodedFile:
    """Decode one file's bytes. Never raises on bad content: it accounts for it instead."""
    try:
        return _decode_records(data, source)
    except UnicodeDecodeError as exc:
        stats = RunStats()
        stats.skip_file(source, f"invalid JSON (not UTF-8: {exc.reason} at byte {exc.start})")
        return DecodedFile([], stats, source)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        # msgspec validates while it parses, so a type error can hide a later syntax error.
        stats = RunStats()
        stats.skip_file(source, f"invalid JSON ({exc})")
        return DecodedFile([], stats, source)


def _decode_records(data: bytes, source: str) -> DecodedFile:
    stats = RunStats()
    rows: list[tuple[_Record, int]] = []
    text = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        stats.skip_file(source, "empty file")
        return DecodedFile(rows, stats, source)
    if is_eventbridge_cloudtrail(text):
        return _decode_eventbridge(text, source)
    if text[:1] == b"{":
        try:
            env = _envelope_decoder.decode(text)
        except msgspec.ValidationError:
            env = None  # some record has an unexpected type: go record by record below
        except msgspec.DecodeError as exc:
            if "trailing characters" in str(exc):
                return _decode_json_lines(data, source)
            stats.skip_file(source, f"invalid JSON ({exc})")
            return DecodedFile(rows, stats, source)
        if env is not None and env.Records is not None:
            recs = env.Records
            times = list(map(_EVENT_TIME, recs))
            if None in times or "" in times:
                for i, rec in enumerate(recs, 1):
                    _keep(rec, rows, stats, source, i)
            else:
                rows = list(zip(recs, range(1, len(recs) + 1), strict=True))
            stats.files_read += 1
            stats.records_read = len(rows)
            return DecodedFile(rows, stats, source)
        raw_env = _raw_envelope_decoder.decode(text)
        if not raw_env.Records or bytes(raw_env.Records) == b"null":
            # A lone record (one event per file) is accepted; anything else is not CloudTrail.
            try:
                rec = _record_decoder.decode(text)
            except msgspec.ValidationError as exc:
                stats.skip_file(source, f"record has unexpected types ({exc})")
                return DecodedFile(rows, stats, source)
            if rec.eventName is None and rec.eventID is None:
                stats.skip_file(source, "JSON that is not CloudTrail")
                return DecodedFile(rows, stats, source)
            _keep(rec, rows, stats, source, 1)
            stats.files_read += 1
            stats.records_read = len(rows)
            return DecodedFile(rows, stats, source)
        items = raw_env.Records
    elif text[:1] == b"[":
        try:
            recs = _array_decoder.decode(text)
            for i, rec in enumerate(recs, 1):
                _keep(rec, rows, stats, source, i)
            stats.files_read += 1
            stats.records_read = len(rows)
            return DecodedFile(rows, stats, source)
        except msgspec.ValidationError:
            items = msgspec.Raw(text)
        except msgspec.DecodeError as exc:
            stats.skip_file(source, f"invalid JSON ({exc})")
            return DecodedFile(rows, stats, source)
    else:
        stats.skip_file(source, "not JSON")
        return DecodedFile(rows, stats, source)
    return _decode_one_by_one(items, source, stats)


def _decode_one_by_one(items: msgspec.Raw, source: str, stats: RunStats) -> DecodedFile:
    rows: list[tuple[_Record, int]] = []
    try:
        raw_records = _raw_array_decoder.decode(items)
    except (msgspec.ValidationError, msgspec.DecodeError):
        stats.skip_file(source, "Records is not a list")
        return DecodedFile(rows, stats, source)
    for i, raw in enumerate(raw_records, 1):
        try:
            rec = _record_decoder.decode(raw)
        except msgspec.ValidationError as exc:
            reason = (
                "record is not an object"
                if "Expected `object`" in str(exc)
                else ("record field has an unexpected type")
            )
            stats.skip_records(reason, example=f"{source}:{i}: {exc}")
            continue
        _keep(rec, rows, stats, source, i)
    stats.files_read += 1
    stats.records_read = len(rows)
    return DecodedFile(rows, stats, source)


def _decode_json_lines(data: bytes, source: str) -> DecodedFile:
    stats = RunStats()
    rows: list[tuple[_Record, int]] = []
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = _record_decoder.decode(line)
        except msgspec.ValidationError as exc:
            stats.skip_records(
                "record field has an unexpected type", example=f"{source}:{lineno}: {exc}"
            )
            continue
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            stats.skip_records("line is not valid JSON", example=f"{source}:{lineno}: {exc}")
            continue
        _keep(rec, rows, stats, source, lineno)
    stats.files_read += 1
    stats.records_read = len(rows)
    return DecodedFile(rows, stats, source)


#: Where one JSON object may end and the next begin: "}" then optional whitespace then "{".
#: Between two members of one object there is always a comma, so outside strings this only
#: occurs between documents; inside a string it may, and decoding then tells (see below).
_DOCUMENT_GAP = re.compile(rb"\}\s*\{")


def _concatenated_documents(text: bytes, decoder: msgspec.json.Decoder) -> Iterator[tuple]:
    """Decode JSON objects written one after another, with or without whitespace between them.

    Yields ``(index, value, error)`` per document, ``error`` a :class:`msgspec.ValidationError`
    when the document is JSON but not of ``decoder``'s type (``value`` is then None) or a
    :class:`msgspec.DecodeError` for a trailing piece that is not JSON. Hand-written because
    neither msgspec nor the standard library reads a stream of concatenated documents without
    building every one as dicts; each document is parsed once unless a candidate gap falls
    inside a string, where the too-short piece fails to parse and is extended.
    """
    start = 0
    index = 0
    view = memoryview(text)  # pieces without copies
    for gap in _DOCUMENT_GAP.finditer(text):
        piece = view[start : gap.start() + 1]
        try:
            value, error = decoder.decode(piece), None
        except msgspec.ValidationError as exc:
            try:
                _any_decoder.decode(piece)
            except msgspec.DecodeError:
                continue  # the type error came before the piece ran out: not a whole document
            value, error = None, exc
        except msgspec.DecodeError:
            continue  # the gap was inside a string: the document goes on
        index += 1
        yield index, value, error
        start = gap.end() - 1
    piece = view[start:]
    if bytes(piece).strip():
        try:
            yield index + 1, decoder.decode(piece), None
        except msgspec.DecodeError as exc:
            yield index + 1, None, exc


def _decode_eventbridge(text: bytes, source: str) -> DecodedFile:
    """CloudTrail records delivered as EventBridge events (see the module docstring).

    The record is the event's ``detail``; the event's ``account`` and ``region`` fill a record
    that lacks ``recipientAccountId`` or ``awsRegion``. Events of other kinds in the same
    stream (EventBridge rules often forward several sources) and CloudTrail Insights events
    (API-rate anomalies, not calls) are counted as skipped records.
    """
    stats = RunStats()
    rows: list[tuple[_Record, int]] = []
    for index, event, error in _concatenated_documents(text, _eventbridge_decoder):
        if error is not None:
            reason = (
                "record field has an unexpected type"
                if isinstance(error, msgspec.ValidationError)
                else "event is not valid JSON"
            )
            stats.skip_records(reason, example=f"{source}:{index}: {error}")
            continue
        kind = event.detail_type or ""
        if event.detail is None or not kind.endswith("via CloudTrail"):
            stats.skip_records(
                "EventBridge event that is not CloudTrail", example=f"{source}:{index}: {kind}"
            )
            continue
        if kind.startswith("AWS Insight"):
            stats.skip_records("CloudTrail Insights event", example=f"{source}:{index}")
            continue
        rec = event.detail
        if rec.recipientAccountId is None:
            rec.recipientAccountId = event.account
        if rec.awsRegion is None:
            rec.awsRegion = event.region
        _keep(rec, rows, stats, source, index)
    stats.files_read += 1
    stats.records_read = len(rows)
    return DecodedFile(rows, stats, source)


def read_file(path: str | os.PathLike) -> DecodedFile:
    """Read one CloudTrail file into canonical rows, accounting for everything it skipped."""
    source = str(path)
    try:
        data = read_bytes(path)
    except (OSError, EOFError, ValueError, IsalError) as exc:
        stats = RunStats()
        stats.skip_file(source, _read_error_reason(exc))
        return DecodedFile([], stats, source)
    return decode_records(data, source)


#: What a decoder worker is handed: a local path it reads itself, or a file already fetched
#: (an S3 object: its URI and stored bytes, or the reason it could not be fetched).
Item = str | tuple[str, bytes | str]


def read_item(item: Item) -> DecodedFile:
    """:func:`read_file` for a path, or the same decoding of bytes fetched elsewhere."""
    if isinstance(item, str):
        return read_file(item)
    source, payload = item
    if isinstance(payload, str):  # the fetch failed: accounted like an unreadable local file
        stats = RunStats()
        stats.skip_file(source, payload)
        return DecodedFile([], stats, source)
    try:
        data = igzip.decompress(payload) if payload.startswith(GZIP_MAGIC) else payload
    except (OSError, EOFError, ValueError, IsalError) as exc:
        stats = RunStats()
        stats.skip_file(source, _read_error_reason(exc))
        return DecodedFile([], stats, source)
    return decode_records(data, source)


def _item_source(item: Item) -> str:
    return item if isinstance(item, str) else item[0]


def _item_size(item: Item) -> int:
    if isinstance(item, str):
        try:
            return os.stat(item).st_size
        except OSError:
            return 0  # reading it will account for the error
    return len(item[1])


BATCH_ROWS = 65_536


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic GC: decoding allocates millions of acyclic objects, and every
    generation-2 pass would walk all rows held so far (quadratic in the chunk size)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _chunk_batches(paths: list[Item], stats: RunStats) -> Iterator[pa.RecordBatch]:
    """Read several files; yield batches of at most about BATCH_ROWS rows."""
    for table in _chunk_tables(paths, stats):
        yield from table.combine_chunks().to_batches()


def _chunk_tables(paths: list[Item], stats: RunStats) -> Iterator[pa.Table]:
    """Read several files; yield tables of about BATCH_ROWS rows (one small batch per file).

    Each file is converted to Arrow right after it is decoded, while its records are still
    in the CPU cache (measurably cheaper than converting a whole chunk's records at once).
    """
    pending: list[pa.RecordBatch] = []
    n = 0
    with _no_gc():
        for p in paths:
            res = read_item(p)
            stats.merge(res.stats)
            if not res.kept:
                continue
            batch = _file_batch(res)
            del res
            pending.append(batch)
            n += batch.num_rows
            if n >= BATCH_ROWS:
                yield _derive(pa.Table.from_batches(pending, schema=_RAW_SCHEMA))
                pending, n = [], 0
        if n:
            yield _derive(pa.Table.from_batches(pending, schema=_RAW_SCHEMA))


def _read_chunk(paths: list[Item]) -> tuple[list[pa.RecordBatch], RunStats, list[str]]:
    """Worker: read several files, return batches of at most BATCH_ROWS rows."""
    stats = RunStats()
    batches = list(_chunk_batches(paths, stats))
    return batches, stats, [_item_source(p) for p in paths]


def _map_chunks(fn: Callable, chunks: Iterable, workers: int) -> Iterator:
    """``fn`` over ``chunks`` in order, in worker processes when worthwhile.

    ``chunks`` may be lazy (S3 objects fetched as the workers go): memory stays bounded, at
    most ``2 * workers`` chunks are in flight at any time.
    """
    it = iter(chunks)
    first = next(it, None)
    if first is None:
        return
    second = next(it, None)
    if workers <= 1 or second is None:
        yield fn(first)
        if second is not None:
            yield fn(second)
            for chunk in it:
                yield fn(chunk)
        return
    import concurrent.futures as cf
    import itertools
    import multiprocessing as mp

    it = itertools.chain([first, second], it)
    ctx = mp.get_context("forkserver")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: list[cf.Future] = []
        for chunk in it:
            pending.append(pool.submit(fn, chunk))
            if len(pending) >= 2 * workers:
                break
        while pending:
            fut = pending.pop(0)
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(fn, nxt))
            yield fut.result()


#: A worker's unit of work: files up to this many bytes (as stored, usually gzip) or
#: CHUNK_FILES files, whichever comes first. Big enough that per-chunk costs (a process
#: round trip, a Parquet file that every scan opens) stay small next to decoding; small enough
#: that the 2 x workers chunks in flight stay within tens of MB.
CHUNK_BYTES = 2 << 20
CHUNK_FILES = 256


def _chunks(
    paths: Iterable[Path | str | Item],
    chunk_files: int = CHUNK_FILES,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[list[Item]]:
    """Group items into chunks lazily (fetched S3 bytes are not all held at once)."""
    current: list[Item] = []
    size = 0
    for p in paths:
        item: Item = p if isinstance(p, tuple) else str(p)
        size += _item_size(item)
        current.append(item)
        if len(current) >= chunk_files or size >= chunk_bytes:
            yield current
            current, size = [], 0
    if current:
        yield current


def iter_batches(
    paths: Iterable[Path | str | Item],
    stats: RunStats,
    *,
    workers: int | None = None,
    chunk_files: int = CHUNK_FILES,
    on_chunk: Callable[[list[str], RunStats], None] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Decode files into batches, in parallel processes when there are many files.

    Memory stays bounded: at most ``2 * workers`` chunks are in flight at any time.
    ``on_chunk(source_files, chunk_stats)`` is called as chunks finish.
    """
    workers = workers if workers is not None else (os.cpu_count() or 1)
    for batches, st, sources in _map_chunks(_read_chunk, _chunks(paths, chunk_files), workers):
        stats.merge(st)
        if on_chunk is not None:
            on_chunk(sources, st)
        yield from batches


# -- decoding straight to files ------------------------------------------------------------
#: ``parquet``: zstd Parquet, read by DuckDB natively (parallel, projection pushdown, within
#: its memory limit): a hunt's scratch files, and the compiled store (partitioned by date and
#: account). ``ipc``: uncompressed Arrow IPC, cheaper to write but scanned through pyarrow,
#: which held whole files in memory in our measurements.
FILE_FORMATS = ("ipc", "parquet")


@dataclass
class ChunkOutput:
    """What one worker wrote: the files (with their row counts) and the accounting."""

    files: list[tuple[str, int]]
    stats: RunStats
    sources: list[str] = field(default_factory=list)  # the inputs it read, by source name


def _partition_keys(table: pa.Table) -> list[tuple[str, str, pa.Table]]:
    """Split ``table`` by (event date, account); nulls go to ``unknown``."""
    dates = pc.fill_null(pc.strftime(table["event_time"], format="%Y-%m-%d"), "unknown")
    accounts = pc.fill_null(table["account_id"], "unknown")
    keys = pc.binary_join_element_wise(dates, accounts, "/")
    uniq = pc.unique(keys).to_pylist()
    if len(uniq) == 1:
        d, a = uniq[0].split("/", 1)
        return [(d, a, table)]
    out = []
    for k in uniq:
        d, a = k.split("/", 1)
        out.append((d, a, table.filter(pc.equal(keys, k))))
    return out


def _safe_part(value: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in value) or "unknown"


def _write_chunk(job: tuple[list[Item], str, str, bool]) -> ChunkOutput:
    """Worker: decode a chunk of files and write it under ``out_dir`` in ``fmt``."""
    paths, out_dir, fmt, partition = job
    stats = RunStats()
    written: list[tuple[str, int]] = []
    sources = [_item_source(p) for p in paths]
    name = uuid.uuid4().hex
    tables = list(_chunk_tables(paths, stats))
    if not tables:
        return ChunkOutput(written, stats, sources)
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    if fmt == "ipc":
        path = os.path.join(out_dir, f"part-{name}.arrow")
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, API_ACTIVITY) as writer:
            writer.write_table(table)
        return ChunkOutput([(path, table.num_rows)], stats, sources)
    written = write_parquet(table, out_dir, partition=partition, name=name)
    return ChunkOutput(written, stats, sources)


def write_parquet(
    table: pa.Table, out_dir: str, *, partition: bool, name: str | None = None
) -> list[tuple[str, int]]:
    """Write canonical rows as zstd Parquet under ``out_dir`` (Hive ``date=``/``account=``
    folders with ``partition``); returns (file, rows) for each file written."""
    import pyarrow.parquet as pq

    name = name or uuid.uuid4().hex
    written: list[tuple[str, int]] = []
    parts = _partition_keys(table) if partition else [("", "", table)]
    for d, a, part in parts:
        folder = out_dir
        if partition:
            folder = os.path.join(out_dir, f"date={_safe_part(d)}", f"account={_safe_part(a)}")
            os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"part-{name}.parquet")
        # zstd level 1 costs no more CPU than no compression here, and is 15x smaller.
        pq.write_table(
            part, path, compression="zstd", compression_level=1, row_group_size=BATCH_ROWS
        )
        written.append((path, part.num_rows))
    return written


def write_files(
    paths: Iterable[Path | str | Item],
    stats: RunStats,
    out_dir: str | os.PathLike,
    *,
    fmt: str = "parquet",
    partition: bool = False,
    workers: int | None = None,
    chunk_files: int = CHUNK_FILES,
    on_chunk: Callable[[list[str], ChunkOutput], None] | None = None,
) -> list[tuple[str, int]]:
    """Decode CloudTrail files into ``fmt`` files under ``out_dir``; returns (file, rows).

    Nothing but file names travels back from the workers, so the parent process stays small
    whatever the input size. ``on_chunk(source_files, output)`` is called as chunks finish.
    """
    if fmt not in FILE_FORMATS:
        raise ValueError(f"fmt must be one of {FILE_FORMATS}")
    workers = workers if workers is not None else (os.cpu_count() or 1)
    out = str(out_dir)
    jobs = ((c, out, fmt, partition) for c in _chunks(paths, chunk_files))
    written: list[tuple[str, int]] = []
    for res in _map_chunks(_write_chunk, jobs, workers):
        stats.merge(res.stats)
        written.extend(res.files)
        if on_chunk is not None:
            on_chunk(res.sources, res)
    return written
