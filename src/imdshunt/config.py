"""``imdshunt.toml``: what an operator sets once. Command-line flags override it.

Example::

    allowlist = ["198.51.100.0/24"]          # our NAT/proxy egress that is not AWS's
    allowlist_files = ["egress.txt"]
    org_accounts = ["111111111111", "222222222222"]
    inventory = ["inventory/"]
    ip_ranges = "/opt/aws/ip-ranges.json"

    [detections.ec2_instance_credential_outside_aws]
    max_event_ids = 100
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imdshunt.errors import ConfigError

CONFIG_NAME = "imdshunt.toml"


@dataclass
class Config:
    path: Path | None = None
    allowlist: list[str] = field(default_factory=list)
    allowlist_files: list[str] = field(default_factory=list)
    org_accounts: list[str] = field(default_factory=list)
    inventory: list[str] = field(default_factory=list)
    ip_ranges: str | None = None
    detection_params: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_config(
    path: str | os.PathLike | None = None,
    *,
    cwd: Path | None = None,
    detections: Mapping[str, Any] | None = None,
) -> Config:
    """Load ``path``, else ``./imdshunt.toml`` when present, else defaults.

    Refuses (:class:`~imdshunt.errors.ConfigError` naming the file, and the line where it can
    be found) unknown keys, ``[detections.<id>]`` tables for detections that do not exist and
    parameters a detection does not have. ``detections`` is the catalogue to check against
    (default: the shipped detections).
    """
    if path is None:
        candidate = (cwd or Path.cwd()) / CONFIG_NAME
        if not candidate.is_file():
            return Config()
        path = candidate
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", path=p) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", path=p) from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib has no line attribute before Python 3.14; its message ends "(at line N, ...)"
        at = _TOML_AT.search(str(exc))
        message = _TOML_AT.sub("", str(exc)).strip()
        raise ConfigError(
            f"not valid TOML: {message}" + (f" (column {at.group(2)})" if at else ""),
            path=p,
            line=int(at.group(1)) if at else None,
        ) from exc
    known = {"allowlist", "allowlist_files", "org_accounts", "inventory", "ip_ranges", "detections"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
            path=p,
            line=_line_of(text, rf"\[?\s*{re.escape(unknown[0])}\b"),
        )
    detection_params = _detection_params(doc.get("detections") or {}, text, p, detections)
    base = p.parent

    def rel(v: str) -> str:
        return str((base / v).resolve()) if not os.path.isabs(v) else v

    return Config(
        path=p,
        allowlist=[str(x) for x in doc.get("allowlist", [])],
        allowlist_files=[rel(x) for x in doc.get("allowlist_files", [])],
        org_accounts=[str(x) for x in doc.get("org_accounts", [])],
        inventory=[rel(x) for x in doc.get("inventory", [])],
        ip_ranges=rel(doc["ip_ranges"]) if doc.get("ip_ranges") else None,
        detection_params=detection_params,
    )


_TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)")


def _line_of(text: str, pattern: str) -> int | None:
    """The first line of the file where ``pattern`` starts a line (1-based), if any.

    tomllib gives parsed values without positions; a look at the text finds where a key or
    table was written in the usual way (a dotted key or inline table gives no line).
    """
    match = re.search(rf"^[ \t]*{pattern}", text, re.M)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _detection_params(
    tables: Any, text: str, p: Path, detections: Mapping[str, Any] | None
) -> dict[str, dict[str, Any]]:
    if not isinstance(tables, dict):
        raise ConfigError("detections must be a table of [detections.<id>] tables", path=p)
    if detections is None:
        from imdshunt.detect import load_detections

        detections = load_detections()
    out = {}
    for det_id, params in tables.items():
        line = _line_of(text, rf"\[\s*detections\s*\.\s*[\"']?{re.escape(det_id)}[\"']?\s*\]")
        if det_id not in detections:
            close = difflib.get_close_matches(det_id, list(detections), n=1)
            raise ConfigError(
                f"[detections.{det_id}]: no detection has this id"
                + (f" (did you mean {close[0]}?)" if close else "")
                + "; 'imdshunt detections list' lists them",
                path=p,
                line=line,
            )
        if not isinstance(params, dict):
            raise ConfigError(f"detections.{det_id} must be a table of parameters", path=p)
        known = detections[det_id].params
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ConfigError(
                f"[detections.{det_id}]: no parameter(s) {', '.join(unknown)}; it has "
                + (", ".join(sorted(known)) or "none"),
                path=p,
                line=line,
            )
        out[det_id] = dict(params)
    return out
