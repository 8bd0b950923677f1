"""Scheduled runs: only new files are read, each finding is reported once, kills are harmless."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from imdshunt import api
from imdshunt.cli import cli
from imdshunt.state import hunt_incremental
from tests.test_cloudtrail_source import RANGES, _layout, _records


def _stolen_batch(i: int) -> list[dict]:
    """Three records of the fixture (one on-box, two stolen), with unique event ids."""
    return [
        dict(r, eventID=f"{r['eventID'][:-6]}{i:06d}"[:36] + str(n))
        for n, r in enumerate(_records())
    ]


def _write(root: Path, i: int) -> Path:
    return _layout(root, f"a_CloudTrail_us-east-1_20261102T0915Z_{i:04d}.json.gz", _stolen_batch(i))


def _inc(root, state):
    return hunt_incremental([root], state, ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)


def test_second_run_reads_only_new_files_and_updates_the_finding(tmp_path):
    logs, state = tmp_path / "logs", tmp_path / "state"
    _write(logs, 1)
    first = _inc(logs, state)
    assert len(first.new) == 1 and first.updated == []
    assert first.stats.records_read == 3

    again = _inc(logs, state)
    assert again.new == [] and again.updated == []
    assert again.stats.records_read == 0 and again.files_already_processed == 1

    _write(logs, 2)
    grown = _inc(logs, state)
    assert grown.new == [] and len(grown.updated) == 1
    assert grown.stats.records_read == 3
    assert grown.updated[0]["event_count"] == 4
    assert grown.updated[0]["finding_id"] == first.new[0]["finding_id"]


def test_state_findings_equal_a_one_shot_hunt(tmp_path):
    logs, state = tmp_path / "logs", tmp_path / "state"
    for i in range(3):
        _write(logs, i)
        _inc(logs, state)
    one_shot = api.hunt([logs], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)
    assert _inc(logs, state).findings == one_shot.findings


def test_kill_9_mid_run_then_rerun_gives_the_uninterrupted_result(tmp_path):
    logs = tmp_path / "logs"
    for i in range(150):
        _write(logs, i)
    reference = api.hunt([logs], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)
    cmd = [
        sys.executable,
        "-m",
        "imdshunt",
        "hunt",
        str(logs),
        "--ip-ranges",
        str(RANGES),
        "--format",
        "jsonl",
        "--workers",
        "1",
        "-q",
    ]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    for attempt, delay in enumerate((0.8, 1.6, 2.5)):
        state = tmp_path / f"state{attempt}"
        proc = subprocess.Popen(
            [*cmd, "--state", str(state)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rerun = _inc(logs, state)
        assert rerun.findings == reference.findings
        assert rerun.findings[0]["event_count"] == 300
        # nothing left to read: every file is accounted for exactly once
        assert _inc(logs, state).stats.records_read == 0


def test_memory_limited_hunt_completes_and_agrees(tmp_path):
    logs = tmp_path / "logs"
    for i in range(20):
        _write(logs, i)
    small = api.hunt(
        [logs], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False, memory_limit="64MB"
    )
    plain = api.hunt([logs], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)
    assert small.findings == plain.findings
    assert small.engine.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]


def test_watch_emits_each_change_once_as_json_lines(tmp_path):
    logs, state, out = tmp_path / "logs", tmp_path / "state", tmp_path / "feed.jsonl"
    _write(logs, 1)
    args = [
        "watch",
        str(logs),
        "--state",
        str(state),
        "--ip-ranges",
        str(RANGES),
        "--interval",
        "0",
        "--iterations",
        "2",
        "-o",
        str(out),
    ]
    assert CliRunner().invoke(cli, args).exit_code == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["change"] for x in lines] == ["new"]
    _write(logs, 2)
    assert CliRunner().invoke(cli, args).exit_code == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["change"] for x in lines] == ["new", "updated"]
