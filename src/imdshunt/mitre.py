"""MITRE ATT&CK names of the technique ids detections cite, from ``data/mitre.yml``.

A finding carries its detection's techniques as ``mitre``: a list of
``{"id", "name", "tactics": [{"id", "name"}], "parent": {"id", "name"}}`` (``parent`` only for
a sub-technique), so outputs (OCSF, ASFF, the report) name them without reloading anything.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

MITRE_FILE = Path(__file__).resolve().parent / "data" / "mitre.yml"


class UnknownTechnique(KeyError):
    """A technique id that ``data/mitre.yml`` does not name."""


@functools.cache
def _catalogue() -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    doc = yaml.safe_load(MITRE_FILE.read_text(encoding="utf-8"))
    return dict(doc["tactics"]), dict(doc["techniques"])


def known_ids() -> set[str]:
    """Every technique id the data file names."""
    return set(_catalogue()[1])


def technique(technique_id: str) -> dict[str, Any]:
    """One technique as findings carry it; :class:`UnknownTechnique` when it is not listed."""
    tactics, techniques = _catalogue()
    entry = techniques.get(technique_id)
    if entry is None:
        raise UnknownTechnique(technique_id)
    out: dict[str, Any] = {
        "id": technique_id,
        "name": entry["name"],
        "tactics": [{"id": t, "name": tactics[t]} for t in entry.get("tactics") or ()],
    }
    parent_id = technique_id.split(".")[0]
    if parent_id != technique_id:
        parent = techniques.get(parent_id)
        if parent is None:
            raise UnknownTechnique(parent_id)
        out["parent"] = {"id": parent_id, "name": parent["name"]}
    return out


def techniques(ids: Iterable[str]) -> list[dict[str, Any]]:
    """:func:`technique` of each id, in the order given, each once."""
    return [technique(i) for i in dict.fromkeys(ids)]
