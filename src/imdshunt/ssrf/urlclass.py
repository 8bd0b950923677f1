"""``url_class``: the metadata-endpoint decision for each distinct request shape.

Like source addresses (classified once per distinct value into ``ip_class``), requests are
classified once per distinct ``(url, host, headers, body)`` key: the decision depends on all
four (a Host header or a header value can carry the address), and web logs repeat the same
request shapes many times, so the distinct set is far smaller than the log.

Only keys that target a metadata endpoint get a row; detection SQL inner-joins
``http_request`` to ``url_class`` on the four key columns, NULL matching NULL (written
``coalesce(x, '') = coalesce(y, '')`` so it transpiles everywhere).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pyarrow as pa

from imdshunt.errors import UsageError
from imdshunt.ssrf.normalize import classify_request

__all__ = ["URL_CLASS", "classify_urls"]

KEY_COLUMNS = ("url", "host", "headers", "body")

#: Schema of the ``url_class`` table.
URL_CLASS = pa.schema(
    [
        ("url", pa.string()),
        ("host", pa.string()),
        ("headers", pa.string()),
        ("body", pa.string()),
        ("ssrf_endpoint", pa.string()),  # ec2-imds-ipv4 | ec2-imds-ipv6 | ecs-credentials | ...
        ("ssrf_address", pa.string()),  # canonical target address
        ("ssrf_decoded", pa.string()),  # the normalised form that matched
        ("ssrf_encoding", pa.string()),  # comma-separated labels: hex,double-percent-encoded,...
        ("ssrf_confidence", pa.string()),  # low | medium | high
        ("ssrf_location", pa.string()),  # url | host-header | header | body
        ("ssrf_path_kind", pa.string()),  # credentials | metadata | NULL (no metadata path)
        # true when written in a spelling resolvers reject: the request cannot have reached it
        ("ssrf_unresolvable", pa.bool_()),
    ]
)


def _headers(value: str | None) -> dict[str, str] | None:
    if not value:
        return None
    try:
        obj = json.loads(value)
    except ValueError:
        return {"x-unparsed-headers": value}
    if not isinstance(obj, dict):
        return None
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()}


def classify_urls(requests: pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch]) -> pa.Table:
    """Build the ``url_class`` table from ``http_request`` rows (a table or record batches).

    One row per distinct ``(url, host, headers, body)`` that targets a metadata endpoint.
    """
    if isinstance(requests, pa.RecordBatch):
        table = pa.Table.from_batches([requests])
    elif isinstance(requests, pa.Table):
        table = requests
    else:
        batches = list(requests)
        if not batches:
            return URL_CLASS.empty_table()
        table = pa.Table.from_batches(batches)
    missing = [c for c in KEY_COLUMNS if c not in table.column_names]
    if missing:
        raise UsageError(f"http_request table lacks columns {missing}")
    if table.num_rows == 0:
        return URL_CLASS.empty_table()
    keys = table.select(list(KEY_COLUMNS)).group_by(list(KEY_COLUMNS)).aggregate([])
    out: dict[str, list] = {name: [] for name in URL_CLASS.names}
    for row in keys.to_pylist():
        m = classify_request(row["url"], row["host"], _headers(row["headers"]), row["body"])
        if m is None:
            continue
        for c in KEY_COLUMNS:
            out[c].append(row[c])
        out["ssrf_endpoint"].append(m.endpoint)
        out["ssrf_address"].append(m.address)
        out["ssrf_decoded"].append(m.decoded)
        out["ssrf_encoding"].append(m.encoding)
        out["ssrf_confidence"].append(m.confidence)
        out["ssrf_location"].append(m.location)
        out["ssrf_path_kind"].append(m.path_kind)
        out["ssrf_unresolvable"].append(m.unresolvable)
    return pa.table(out, schema=URL_CLASS)
