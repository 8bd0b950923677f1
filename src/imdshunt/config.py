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

import os
import tomllib
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


def load_config(path: str | os.PathLike | None = None, *, cwd: Path | None = None) -> Config:
    """Load ``path``, else ``./imdshunt.toml`` when present, else defaults."""
    if path is None:
        candidate = (cwd or Path.cwd()) / CONFIG_NAME
        if not candidate.is_file():
            return Config()
        path = candidate
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: {exc}") from exc
    known = {"allowlist", "allowlist_files", "org_accounts", "inventory", "ip_ranges", "detections"}
    unknown = set(doc) - known
    if unknown:
        raise ConfigError(f"{p}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
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
        detection_params={k: dict(v) for k, v in (doc.get("detections") or {}).items()},
    )
