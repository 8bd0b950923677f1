"""docs/architecture.md's "What a newcomer touches" lists are true.

Each test adds one thing the way the page says, touching only the places it lists, and shows a
hunt uses it:

* a source: a :class:`~imdshunt.sources.registry.Source` subclass and its entry in ``SOURCES``
  (plain hunts and ``--state`` runs read it; ``ingest`` skips it unless it can ``compile``);
* an output: an :class:`~imdshunt.outputs.base.Output` subclass, its entry in ``OUTPUTS`` and
  its name in the ``--format`` choice of ``cli.py``;
* a detection: one folder (``detection.yml``, ``query.sql``).

If adding one of them needs another place, the test fails here first, and the page must say so.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import click
import pytest
from click.testing import CliRunner

import imdshunt
from imdshunt import api, store
from imdshunt.cli import cli
from imdshunt.detect import DETECTIONS_DIR, load_detections
from imdshunt.findings import Finding, FindingKind
from imdshunt.outputs import OUTPUTS
from imdshunt.outputs.base import Output, RunContext
from imdshunt.sources import registry
from imdshunt.sources.inputs import InputFile
from imdshunt.sources.registry import Claim, LoadContext, Source
from imdshunt.state import hunt_incremental
from tests.test_cloudtrail_source import RANGES, _records

THIEF = "198.199.65.17"  # the fixture's off-box address


class SiemExportSource(Source):
    """CloudTrail events as a SIEM exports them: ``{"exported": [<CloudTrail record>, ...]}``,
    claimed by their first bytes (the name says nothing)."""

    name = "siem-export"
    table = "api_activity"

    def claim(self, f: InputFile, head: bytes | None) -> Claim:
        if head is None:
            return None  # read the first bytes
        return True if head.lstrip().startswith(b'{"exported"') else None

    def load(self, files: Sequence[InputFile], engine: Any, ctx: LoadContext) -> None:
        from imdshunt.sources.cloudtrail import decode_records, records_to_batch

        decoded = []
        for f, data in ctx.reader.fetch_all(files):
            if isinstance(data, str):
                ctx.stats.skip_file(f.uri, data)
                continue
            records = json.loads(data)["exported"]
            res = decode_records(json.dumps({"Records": records}).encode(), f.uri)
            ctx.stats.merge(res.stats)
            ctx.done.append(f)
            decoded.append(res)
        engine.load_api_activity([records_to_batch(decoded)])


@pytest.fixture()
def siem_source() -> Iterator[None]:
    """SOURCES with the new source asked first (the CloudTrail source would otherwise skip the
    file as JSON that is not CloudTrail), as its entry in the registry would be."""
    before = dict(registry.SOURCES)
    registry.SOURCES.clear()
    registry.SOURCES.update({SiemExportSource.name: SiemExportSource(), **before})
    yield
    registry.SOURCES.clear()
    registry.SOURCES.update(before)


def test_a_source_is_a_class_and_its_registry_entry(siem_source, tmp_path):
    export = tmp_path / "exports" / "2026-11-02.json"
    export.parent.mkdir()
    export.write_text(json.dumps({"exported": _records()}))

    result = api.hunt([tmp_path], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)

    assert [f.source_ip for f in result.findings if f.kind is FindingKind.CREDENTIAL] == [THIEF]
    assert result.stats.records_read == len(_records())
    assert result.stats.files_skipped == []
    # --state runs read it the same way
    incremental = hunt_incremental(
        [tmp_path / "exports"], tmp_path / "state", ip_ranges=RANGES, workers=1,
        fetch_ip_ranges=False,
    )  # fmt: skip
    assert [f.to_dict() for f in incremental.findings] == [f.to_dict() for f in result.findings]
    # a source without ``compile`` stays out of a store, and ingest says why
    ingested = store.ingest([tmp_path / "exports"], tmp_path / "store", workers=1)
    assert ingested.records == 0
    assert [(s.path, s.reason) for s in ingested.stats.files_skipped] == [
        (str(export), "siem-export log (its source cannot be compiled into a store)")
    ]


class KindCountOutput(Output):
    """One line per kind of finding: how many."""

    name = "kind-count"

    def write(self, findings: list[Finding], stream: TextIO, context: RunContext) -> None:
        for kind in FindingKind:
            stream.write(f"{kind}: {sum(1 for f in findings if f.kind is kind)}\n")


def test_an_output_is_a_class_its_registry_entry_and_its_format_choice(monkeypatch, tmp_path):
    monkeypatch.setitem(OUTPUTS, KindCountOutput.name, KindCountOutput)
    (fmt,) = [p for p in cli.commands["hunt"].params if "--format" in getattr(p, "opts", ())]
    assert isinstance(fmt.type, click.Choice)
    monkeypatch.setattr(fmt.type, "choices", (*fmt.type.choices, KindCountOutput.name))
    logs = tmp_path / "trail.json"
    logs.write_text(json.dumps({"Records": _records()}))

    out = tmp_path / "counts.txt"
    args = ["hunt", str(logs), "--ip-ranges", str(RANGES), "--workers", "1"]
    run = CliRunner().invoke(cli, [*args, "--format", KindCountOutput.name, "-o", str(out), "-q"])

    assert run.exit_code == 1, run.output  # findings
    assert out.read_text() == "credential: 1\nweb: 0\ncorrelation: 0\n"


def test_a_detection_is_one_folder(tmp_path):
    """A copy of the outside-AWS detection under a new id, in a folder of its own: loaded with
    the catalogue, run by the hunt, and named in the merged finding's ``detections``."""
    source = DETECTIONS_DIR / "ec2_instance_credential_outside_aws"
    folder = tmp_path / "detections" / "ec2_instance_credential_outside_aws_copy"
    folder.mkdir(parents=True)
    shutil.copy(source / "query.sql", folder / "query.sql")
    meta = (source / "detection.yml").read_text()
    (folder / "detection.yml").write_text(
        meta.replace("id: ec2_instance_credential_outside_aws", f"id: {folder.name}")
    )
    catalogue = {**load_detections(), **load_detections(folder.parent)}
    logs = tmp_path / "trail.json"
    logs.write_text(json.dumps({"Records": _records()}))

    result = api.hunt(
        [logs], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False, detections=catalogue
    )

    [finding] = [f for f in result.findings if f.source_ip == THIEF]
    assert folder.name in finding.detections
    assert "ec2_instance_credential_outside_aws" in finding.detections


ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
SRC = Path(imdshunt.__file__).parent


def test_the_page_lists_every_module_and_package_of_the_library():
    page = ARCHITECTURE.read_text()
    names = sorted(
        p.name if p.is_file() else p.name + "/"
        for p in SRC.iterdir()
        if not p.name.startswith(("_", ".")) or p.name == "__main__.py"
        if p.suffix == ".py" or (p.is_dir() and p.name != "__pycache__")
    )
    # a package may be named by one of its files (``commands/_common.py``, ``views/*.sql``)
    missing = [
        n
        for n in names
        if not re.search(rf"^  {re.escape(n)}" + ("" if n.endswith("/") else r"(\s|$)"), page, re.M)
    ]
    assert missing == [], "docs/architecture.md's tree does not name: " + ", ".join(missing)
