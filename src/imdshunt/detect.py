"""Detections: one folder each, found by walking ``imdshunt/detections/``; no registry to edit.

A folder ``detections/<id>/`` holds ``detection.yml`` (metadata and params), ``query.sql`` (DuckDB
dialect over the canonical views) and ``tests/`` (raw-log ``match_*`` / ``nomatch_*`` samples).
The loader refuses a folder whose metadata id differs from its name, and SQL that does not parse.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from imdshunt.errors import ConfigError, DetectionError
from imdshunt.findings import DETECTION_KINDS, FindingKind
from imdshunt.mitre import known_ids, techniques

DETECTIONS_DIR = Path(__file__).resolve().parent / "detections"
#: SQL fragments several detections share, included with ``-- imdshunt: include <name>``.
SHARED_SQL_DIR = DETECTIONS_DIR / "_shared"
_INCLUDE = re.compile(r"^([ \t]*)--[ \t]*imdshunt:[ \t]*include[ \t]+(\w+)[ \t]*$", re.M)
SEVERITIES = ("info", "low", "medium", "high", "critical")
REQUIRED_KEYS = ("id", "title", "severity", "description", "kind")
#: What a detection reads and emits: credential use (CloudTrail) or web requests.
KINDS = tuple(k.value for k in DETECTION_KINDS)
#: ``merge_priority`` of a detection.yml that does not set one: after every one that does.
DEFAULT_MERGE_PRIORITY = 100


@dataclass(frozen=True)
class Detection:
    id: str
    title: str
    severity: str
    kind: FindingKind
    description: str
    sql: str
    folder: Path
    mitre: tuple[str, ...] = ()
    runbook: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    requires: tuple[str, ...] = ()  # tables that must be non-empty, e.g. ("http_request",)
    meta: dict[str, Any] = field(default_factory=dict)
    #: Among detections that fire for one credential and address, the lowest leads the merged
    #: finding (after severity and confidence; see :mod:`imdshunt.merge`).
    merge_priority: int = DEFAULT_MERGE_PRIORITY

    def techniques(self) -> list[dict[str, Any]]:
        """The MITRE ATT&CK techniques the metadata cites, named (see :mod:`imdshunt.mitre`)."""
        return techniques(self.mitre)

    def values(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The parameter values to run with: the defaults, then ``overrides``."""
        values = dict(self.params)
        for k, v in (overrides or {}).items():
            if k not in values:
                raise ConfigError(f"detection {self.id} has no parameter {k!r}")
            values[k] = v
        if int(values.get("max_event_ids") or 0) > MAX_EVENT_IDS:
            raise ConfigError(
                f"detection {self.id}: max_event_ids is at most {MAX_EVENT_IDS} (the call "
                "groups of credential_activity keep that many event ids each)"
            )
        return values

    def render_sql(self, overrides: dict[str, Any] | None = None, dialect: str = "duckdb") -> str:
        """The query with ``$param`` placeholders replaced by literals, in ``dialect``.

        DuckDB itself runs :attr:`sql` as written, with the values bound as parameters; this
        self-contained text is what other engines run and what ``imdshunt sql`` prints.
        """
        values = self.values(overrides)
        # Rendered once per process for each (query, values, dialect): parsing with sqlglot
        # costs more than running most detections on DuckDB.
        return _render(self.sql, str(self.folder), json.dumps(values, sort_keys=True), dialect)


_COMMENT = re.compile(r"--[^\n]*")
_STRING = re.compile(r"'(?:[^']|'')*'")
_PARAM = re.compile(r"\$([A-Za-z_]\w*)")


def _expand_includes(sql: str, folder: Path) -> str:
    """Replace each ``-- imdshunt: include <name>`` line by ``_shared/<name>.sql``, indented
    like the line (its own comment lines left out). Done once, at load: every engine, the
    golden files and ``imdshunt sql`` see the whole query."""

    def fragment(m: re.Match) -> str:
        path = SHARED_SQL_DIR / f"{m.group(2)}.sql"
        if not path.is_file():
            raise DetectionError(str(folder), f"includes unknown SQL fragment {m.group(2)!r}")
        lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("--")]
        return "\n".join(m.group(1) + ln for ln in lines)

    return _INCLUDE.sub(fragment, sql)


def _check_params(det: Detection) -> None:
    """Refuse a query whose ``$params`` and declared params differ.

    A quick look at the text (comments and string literals left out), so that loading does not
    pay for a full parse: the engine reports any SQL error with the detection's id when it runs,
    and the golden-file tests parse every shipped detection for every dialect.
    """
    used = set(_PARAM.findall(_STRING.sub("''", _COMMENT.sub("", det.sql))))
    undeclared = used - set(det.params)
    if undeclared:
        raise DetectionError(
            str(det.folder), f"query uses undeclared param(s) ${', $'.join(sorted(undeclared))}"
        )
    unused = set(det.params) - used
    if unused:
        raise DetectionError(
            str(det.folder), f"declared param(s) not used by query.sql: {', '.join(sorted(unused))}"
        )


#: Event ids each call group keeps (views/10_credential_activity.sql): the most a finding can list.
MAX_EVENT_IDS = 100


@functools.lru_cache(maxsize=256)
def _render(sql: str, folder: str, values_json: str, dialect: str) -> str:
    import sqlglot  # here, not at import: a DuckDB hunt never transpiles
    import sqlglot.expressions as exp

    values = json.loads(values_json)
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise DetectionError(folder, f"query.sql does not parse: {exc}") from exc

    def substitute(node: Any) -> Any:
        if isinstance(node, exp.Parameter | exp.Placeholder):
            name = node.name if isinstance(node, exp.Placeholder) else node.this.name
            if name not in values:
                raise DetectionError(folder, f"query uses undeclared param ${name}")
            return _literal(values[name])
        return node

    from imdshunt.engine.portable import transpile

    # transpile() adds the rewrites sqlglot does not do (see imdshunt.engine.portable).
    return transpile(tree.transform(substitute), dialect, pretty=True)


def _literal(value: Any) -> Any:
    import sqlglot.expressions as exp

    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    if isinstance(value, list | tuple):
        return exp.Array(expressions=[_literal(v) for v in value])
    return exp.Literal.string(str(value))


def load_detection(folder: Path) -> Detection:
    meta_path = folder / "detection.yml"
    sql_path = folder / "query.sql"
    if not meta_path.is_file() or not sql_path.is_file():
        raise DetectionError(str(folder), "needs detection.yml and query.sql")
    try:
        meta = yaml.safe_load(meta_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DetectionError(str(meta_path), f"invalid YAML: {exc}") from exc
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise DetectionError(str(meta_path), f"missing keys: {', '.join(missing)}")
    if meta["id"] != folder.name:
        raise DetectionError(
            str(meta_path), f"id {meta['id']!r} does not match its folder name {folder.name!r}"
        )
    if meta["severity"] not in SEVERITIES:
        raise DetectionError(str(meta_path), f"severity must be one of {SEVERITIES}")
    try:
        kind: FindingKind | None = FindingKind(meta["kind"])
    except ValueError:
        kind = None
    if kind not in DETECTION_KINDS:  # chains (FindingKind.CORRELATION) are made by correlate
        raise DetectionError(str(meta_path), f"kind must be one of {KINDS}")
    mitre = tuple(str(x) for x in meta.get("mitre") or ())
    unnamed = [m for m in mitre if m not in known_ids()]
    if unnamed:
        raise DetectionError(
            str(meta_path),
            f"MITRE id(s) {', '.join(unnamed)} not in imdshunt/data/mitre.yml (add id, name and "
            "tactics there)",
        )
    merge_priority = meta.get("merge_priority", DEFAULT_MERGE_PRIORITY)
    if not isinstance(merge_priority, int) or isinstance(merge_priority, bool):
        raise DetectionError(str(meta_path), "merge_priority must be an integer")
    params = {}
    for name, spec in (meta.get("params") or {}).items():
        params[name] = spec.get("default") if isinstance(spec, dict) else spec
    det = Detection(
        id=meta["id"],
        title=meta["title"],
        severity=meta["severity"],
        kind=kind,
        description=meta["description"].strip(),
        sql=_expand_includes(sql_path.read_text(), folder),
        folder=folder,
        mitre=mitre,
        runbook=(meta.get("runbook") or "").strip(),
        params=params,
        requires=tuple(meta.get("requires") or ()),
        meta=meta,
        merge_priority=merge_priority,
    )
    _check_params(det)
    return det


def load_detections(root: Path = DETECTIONS_DIR) -> dict[str, Detection]:
    """Every detection folder under ``root``, keyed by id, in name order."""
    out: dict[str, Detection] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name.startswith(("_", ".")) or not (folder / "detection.yml").exists():
            continue
        det = load_detection(folder)
        out[det.id] = det
    return out


def describe(det: Detection) -> dict[str, Any]:
    return {
        "id": det.id,
        "title": det.title,
        "severity": det.severity,
        "kind": det.kind.value,
        "mitre": list(det.mitre),
        "merge_priority": det.merge_priority,
        "params": det.params,
        "description": det.description,
    }


def dumps_params(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)
