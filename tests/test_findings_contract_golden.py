"""The JSON lines contract, byte for byte: a hunt of a fixed synthetic organisation writes
exactly tests/golden/findings/synth_org_seed11.jsonl.

The organisation (seed 11) has every kind of finding: credential thefts (merged across
detections), derived credentials with their lineage, SSRF attempts and theft chains. The file
guards field order, the omission of fields a finding does not carry, nulls, number and time
formats and escaping, whatever the library's own types are. Only the directory the organisation
was written to is replaced by ``<root>``.

After an intended change to the findings (a new field, a detection's new verdict), rewrite it
with ``IMDSHUNT_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from imdshunt.cli import cli
from imdshunt.findings import FindingKind
from imdshunt.synth import generate_org

GOLDEN = Path(__file__).parent / "golden" / "findings" / "synth_org_seed11.jsonl"


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("org")
    generate_org(root, seed=11, records=3000, workers=1)
    out = root.parent / "findings.jsonl"
    result = CliRunner().invoke(
        cli,
        ["hunt", str(root), "--ip-ranges", str(root / "ip-ranges.json"), "--inventory",
         str(root / "inventory"), "--workers", "1", "--format", "jsonl", "-o", str(out), "-q"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # findings
    # Paths inside the contract are JSON strings: the root as JSON writes it.
    return out.read_text().replace(json.dumps(str(root))[1:-1], "<root>")


def test_a_hunt_writes_the_findings_contract_byte_for_byte(jsonl):
    if os.environ.get("IMDSHUNT_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(jsonl)
    assert jsonl == GOLDEN.read_text()


def test_the_golden_covers_every_kind_of_finding():
    kinds = {json.loads(line)["kind"] for line in GOLDEN.read_text().splitlines()}
    assert kinds == {k.value for k in FindingKind}
    detections = {json.loads(line)["detection"] for line in GOLDEN.read_text().splitlines()}
    assert {"derived_credential_use", "imds_ssrf_attempt", "imds_theft_chain"} <= detections
