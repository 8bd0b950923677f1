"""MITRE ATT&CK names come from one data file, and every id a detection cites has one."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from imdshunt.correlate import CHAIN_MITRE
from imdshunt.detect import DETECTIONS_DIR, load_detection
from imdshunt.errors import DetectionError
from imdshunt.mitre import MITRE_FILE, technique

CATALOGUE = yaml.safe_load(MITRE_FILE.read_text())
ATTACK_ID = re.compile(r"^T\d{4}(\.\d{3})?$")


def _cited() -> dict[str, list[str]]:
    """Every detection.yml's MITRE ids, read straight from the files (not through the loader)."""
    out = {}
    for meta in sorted(DETECTIONS_DIR.glob("*/detection.yml")):
        out[meta.parent.name] = [str(x) for x in yaml.safe_load(meta.read_text()).get("mitre", [])]
    out["imds_theft_chain"] = list(CHAIN_MITRE)
    return out


def test_every_cited_technique_has_a_name_its_parent_and_known_tactics():
    cited = _cited()
    assert len(cited) >= 10 and all(cited.values())
    for source, ids in cited.items():
        for mid in ids:
            assert ATTACK_ID.match(mid), f"{source}: {mid!r} is not an ATT&CK technique id"
            assert mid in CATALOGUE["techniques"], f"{source} cites {mid}, not in {MITRE_FILE}"
            entry = CATALOGUE["techniques"][mid]
            assert entry["name"] and entry["tactics"], mid
            assert set(entry["tactics"]) <= set(CATALOGUE["tactics"]), mid
            if "." in mid:
                assert mid.split(".")[0] in CATALOGUE["techniques"], f"parent of {mid}"


def test_a_sub_technique_is_named_with_its_parent_and_tactics():
    t = technique("T1552.005")
    assert t == {
        "id": "T1552.005",
        "name": "Cloud Instance Metadata API",
        "tactics": [{"id": "TA0006", "name": "Credential Access"}],
        "parent": {"id": "T1552", "name": "Unsecured Credentials"},
    }
    assert "parent" not in technique("T1190")


def test_the_loader_refuses_a_technique_the_data_file_does_not_name(tmp_path: Path):
    src = DETECTIONS_DIR / "ec2_instance_credential_outside_aws"
    folder = tmp_path / src.name
    shutil.copytree(src, folder)
    meta = folder / "detection.yml"
    meta.write_text(meta.read_text().replace("mitre: [T1552.005,", "mitre: [T1552.005, T9999,"))
    with pytest.raises(DetectionError, match="T9999 not in imdshunt/data/mitre.yml"):
        load_detection(folder)


def test_a_merge_priority_must_be_an_integer(tmp_path: Path):
    src = DETECTIONS_DIR / "ec2_instance_credential_outside_aws"
    folder = tmp_path / src.name
    shutil.copytree(src, folder)
    meta = folder / "detection.yml"
    meta.write_text(meta.read_text().replace("merge_priority: 0", "merge_priority: first"))
    with pytest.raises(DetectionError, match="merge_priority must be an integer"):
        load_detection(folder)
