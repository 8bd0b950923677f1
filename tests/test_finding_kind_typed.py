"""A finding's kind is a :class:`~imdshunt.findings.FindingKind`, decided by the type, never by
comparing strings.

The source scan walks every module of ``src/imdshunt`` (outside :mod:`imdshunt.findings`, which
defines the type) and fails on a comparison with a kind's string value (``kind == "web"``,
``"credential" in kinds``) or on comparing ``"kind"`` read off a record by key
(``f.get("kind") != x``). Other things called kind (an artifact's kind, a SQL ``CREATE`` kind)
compare other values and pass; a module whose records' ``"kind"`` is not a finding's is named
below.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import imdshunt
from imdshunt.detect import load_detections
from imdshunt.findings import DETECTION_KINDS, Finding, FindingKind

SRC = Path(imdshunt.__file__).parent
KIND_VALUES = {k.value for k in FindingKind} | {"exposure"}  # exposure: a kind once declared
#: Modules whose ``"kind"`` keys belong to other records than findings.
OTHER_KINDS = {"enrich/inventory_workloads.py": "a Kubernetes object's kind (List, Pod)"}


def _strings(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return {e.value for e in node.elts if isinstance(e, ast.Constant)}
    return set()


def _kind_by_key(node: ast.AST) -> bool:
    """``x["kind"]`` or ``x.get("kind")``."""
    if isinstance(node, ast.Subscript):
        return _strings(node.slice) == {"kind"}
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and bool(node.args)
        and _strings(node.args[0]) == {"kind"}
    )


def _violations(rel: str, source: str) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(source, rel)):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        if any(_strings(s) & KIND_VALUES for s in sides) or (
            rel not in OTHER_KINDS and any(_kind_by_key(s) for s in sides)
        ):
            out.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    return out


def test_no_module_compares_a_finding_kind_as_a_string():
    found = [
        v
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "findings.py" and "synth" not in path.relative_to(SRC).parts
        for v in _violations(path.relative_to(SRC).as_posix(), path.read_text())
    ]
    assert found == [], "decide by FindingKind (f.kind is FindingKind.WEB):\n" + "\n".join(found)


def test_the_scan_catches_string_comparisons():
    probe = 'def a(f, kinds):\n    return f.get("kind") == "web" or "credential" in kinds\n'
    assert _violations("probe.py", probe) == [
        "probe.py:2: f.get('kind') == 'web'",
        "probe.py:2: 'credential' in kinds",
    ]
    probe = 'def b(f, kinds):\n    return f["kind"] in kinds\n'
    assert _violations("probe.py", probe) == ["probe.py:2: f['kind'] in kinds"]
    assert _violations("probe.py", 'def c(a):\n    return a["type"] == "role-session"\n') == []


def test_the_kinds_are_exactly_the_ones_a_hunt_emits():
    golden = Path(__file__).parent / "golden" / "findings" / "synth_org_seed11.jsonl"
    emitted = {json.loads(line)["kind"] for line in golden.read_text().splitlines()}
    assert {k.value for k in FindingKind} == emitted
    assert {d.kind for d in load_detections().values()} == set(DETECTION_KINDS)


def test_a_detection_declaring_a_kind_no_detection_emits_is_refused(tmp_path):
    from imdshunt.detect import load_detection
    from imdshunt.errors import DetectionError

    source = SRC / "detections" / "imds_ssrf_attempt"
    folder = tmp_path / "imds_ssrf_attempt"
    folder.mkdir()
    (folder / "query.sql").write_text((source / "query.sql").read_text())
    meta = (source / "detection.yml").read_text()
    assert "kind: web" in meta
    for kind in ("correlation", "exposure"):
        (folder / "detection.yml").write_text(meta.replace("kind: web", f"kind: {kind}"))
        with pytest.raises(DetectionError, match="kind must be one of"):
            load_detection(folder)


def test_a_finding_reads_its_fields_as_attributes_and_serialises_as_before():
    f = Finding({"detection": "d", "kind": "web", "time": None, "finding_id": "x"})
    assert f.kind is FindingKind.WEB and f.time is None and f.source_ip is None
    f.target_instance = "i-0123456789abcdef0"
    # leading web fields first, then the rest in the order set; absent fields left out
    assert list(f.to_dict()) == ["finding_id", "detection", "time", "target_instance", "kind"]
    assert json.dumps(f.to_dict()) == (
        '{"finding_id": "x", "detection": "d", "time": null, '
        '"target_instance": "i-0123456789abcdef0", "kind": "web"}'
    )
    assert Finding(json.loads(json.dumps(f.record))) == f
    with pytest.raises(ValueError, match="kind must be one of"):
        Finding({"kind": "exposure"})
    with pytest.raises(TypeError):
        f["severity"] = "high"  # type: ignore[index]
