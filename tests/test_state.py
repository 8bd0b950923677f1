"""Scheduled runs: only new files are read, each finding is reported once, kills are harmless."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from imdshunt import api
from imdshunt.cli import cli
from imdshunt.findings import Finding, FindingKind
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
    # nothing new: the findings are the last run's, read back from the state's stored JSON
    assert not again.detected
    assert [f.to_dict() for f in again.findings] == [f.to_dict() for f in first.findings]
    assert again.findings[0].kind is FindingKind.CREDENTIAL

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


def _upload(logs: Path, bucket: str) -> list[dict]:
    """Upload ``logs`` to a new bucket; returns each object's S3 notification record."""
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    records = []
    for p in sorted(logs.rglob("*")):
        if p.is_file():
            key = p.relative_to(logs).as_posix()
            s3.upload_file(str(p), bucket, key)
            head = s3.head_object(Bucket=bucket, Key=key)
            records.append(
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": bucket},
                        "object": {
                            "key": key.replace(" ", "+"),
                            "size": head["ContentLength"],
                            "eTag": head["ETag"].strip('"'),
                        },
                    },
                }
            )
    return records


def _queue(name: str, records: list[dict], visibility: int = 30) -> str:
    """A queue holding one direct S3 notification per record."""
    import boto3

    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility)})[
        "QueueUrl"
    ]
    for r in records:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": [r]}))
    return url


def _queue_size(url: str) -> int:
    import boto3

    attrs = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def _drain(url: str, state: Path):
    """Consume the queue as watch does until it is empty; returns the last run's result."""
    import boto3

    from imdshunt.sources import s3 as s3src
    from imdshunt.sources import sqs

    client, s3 = boto3.client("sqs"), s3src.s3_client()
    result = None
    for _ in range(20):
        result, _messages = sqs.consume(
            client,
            url,
            lambda files: hunt_incremental(
                [],
                state,
                files=files,
                s3_client=s3,
                ip_ranges=RANGES,
                workers=1,
                fetch_ip_ranges=False,
            ),
        )
        if not _queue_size(url):
            break
        time.sleep(1)  # messages in flight when a run was killed come back after the timeout
    return result


@pytest.mark.parametrize("mode", ["folder", "prefix", "sqs"])
def test_kill_9_mid_run_then_rerun_gives_the_uninterrupted_result(mode, tmp_path, request):
    logs = tmp_path / "logs"
    for i in range(150):
        _write(logs, i)
    reference = api.hunt([logs], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)
    common = ["--ip-ranges", str(RANGES)]
    source: list[str] = [str(logs)]
    if mode != "folder":
        request.getfixturevalue("aws_env")
        bucket = f"kill-{mode}-{tmp_path.name.lower().replace('_', '-')[:30]}"
        records = _upload(logs, bucket)
        source = [f"s3://{bucket}/"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    for attempt, delay in enumerate((0.8, 1.6, 2.5)):
        state = tmp_path / f"state{attempt}"
        if mode == "sqs":
            url = _queue(f"{bucket}-{attempt}", records, visibility=1)
            args = ["watch", "--sqs-queue", url, "--iterations", "1", "-o", os.devnull]
        else:
            args = ["hunt", *source, "--format", "jsonl", "--workers", "1", "-q"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "imdshunt", *args, *common, "--state", str(state)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if mode == "sqs":
            _drain(url, state)
            assert _queue_size(url) == 0, "every message is deleted once its file is committed"
            everything = hunt_incremental(
                [], state, files=[], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False
            )
            assert everything.findings == reference.findings
            assert everything.findings[0]["event_count"] == 300
            continue
        rerun = hunt_incremental(source, state, ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)
        assert rerun.findings == _with_source(reference.findings, str(logs), source[0])
        assert rerun.findings[0]["event_count"] == 300
        # nothing left to read: every file is accounted for exactly once
        again = hunt_incremental(source, state, ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)
        assert again.stats.records_read == 0


def _with_source(findings: list[Finding], local: str, remote: str) -> list[dict]:
    """The findings' serialised form, with the local source folder named as the remote one."""
    text = json.dumps([f.to_dict() for f in findings])
    return json.loads(text.replace(local.rstrip("/") + "/", remote.rstrip("/") + "/"))


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


def _link_days(org: Path, logs: Path, days: set[str]) -> None:
    """Make the organisation's files of ``days`` (YYYY/MM/DD) appear under ``logs``."""
    for p in sorted((org / "AWSLogs").rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(org)
        parts = rel.parts
        day = next(
            (
                "/".join(parts[i : i + 3])
                for i in range(len(parts) - 3)
                if parts[i].isdigit() and len(parts[i]) == 4
            ),
            None,
        )
        target = logs / rel
        if (day is None or day in days) and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(p, target)


def test_days_added_one_by_one_give_the_plain_hunt_of_all_days(tmp_path):
    from imdshunt.synth import generate_org

    org, logs, state = tmp_path / "org", tmp_path / "logs", tmp_path / "state"
    generate_org(org, seed=5, records=2500, days=3, workers=1)
    kw = dict(
        ip_ranges=org / "ip-ranges.json",
        inventory=[org / "inventory"],
        fetch_ip_ranges=False,
        workers=1,
    )
    days = sorted(
        {"/".join(p.parts[-4:-1]) for p in (org / "AWSLogs").rglob("*.gz") if p.parts[-4].isdigit()}
    )
    assert len(days) >= 3
    runs = []
    for i in range(len(days)):
        _link_days(org, logs, set(days[: i + 1]))
        runs.append(hunt_incremental([logs / "AWSLogs"], state, **kw))
    plain = api.hunt([logs / "AWSLogs"], **kw)
    assert runs[-1].findings == plain.findings
    assert runs[-1].naive == plain.naive and runs[-1].notes == plain.notes
    reported = {f["finding_id"] for r in runs for f in r.new}
    assert reported == {f["finding_id"] for f in plain.findings}
    assert sum(r.stats.records_present for r in runs) == plain.stats.records_present
    assert any(r.updated for r in runs[1:]), "a finding grows as later days arrive"
    # the state keeps groups, not rows
    rows = plain.engine.scalar("SELECT count(*) FROM api_activity")
    from imdshunt.state import HuntState

    with HuntState(state) as st:
        groups = st.engine.execute("SELECT count(*) FROM st.call_group")[0][0]
        assert 0 < groups < rows
        assert not st.engine.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'st' "
            "AND table_name LIKE 'api_activity%'"
        )[0][0]


def test_retention_forgets_old_groups_but_keeps_each_instances_first_egress(tmp_path):
    from imdshunt.state import HuntState
    from imdshunt.synth import generate_org

    org, state = tmp_path / "org", tmp_path / "state"
    generate_org(org, seed=5, records=1500, days=3, workers=1)
    kw = dict(ip_ranges=org / "ip-ranges.json", fetch_ip_ranges=False, workers=1)
    hunt_incremental([org / "AWSLogs"], tmp_path / "kept", retention_days=None, **kw)
    hunt_incremental([org / "AWSLogs"], state, retention_days=1, **kw)
    with HuntState(tmp_path / "kept") as kept, HuntState(state) as bounded:
        newest = bounded.newest_event()
        all_groups = kept.engine.execute("SELECT count(*) FROM st.call_group")[0][0]
        left = bounded.engine.execute("SELECT count(*) FROM st.call_group")[0][0]
        old = bounded.engine.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT regexp_full_match(session_name, "
            "'[iI]-([0-9a-fA-F]{8}|[0-9a-fA-F]{17})')) FROM st.call_group "
            "WHERE last_seen < ?::TIMESTAMPTZ - INTERVAL 1 DAY",
            [newest],
        )[0]
        assert left < all_groups
        assert old[0] > 0, "instances' first groups at each address stay"
        assert old[1] == 0, "nothing else older than the retention stays"
        instances = "SELECT count(DISTINCT lower(session_name)) FROM st.call_group WHERE " + (
            "regexp_full_match(session_name, '[iI]-([0-9a-fA-F]{8}|[0-9a-fA-F]{17})')"
        )
        assert kept.engine.execute(instances) == bounded.engine.execute(instances)


def test_a_second_run_on_a_busy_state_waits_then_exits_2(tmp_path, monkeypatch):
    from imdshunt.state import HuntState

    logs, state = tmp_path / "logs", tmp_path / "state"
    _write(logs, 1)
    monkeypatch.setenv("IMDSHUNT_STATE_LOCK_TIMEOUT", "0.5")
    args = ["hunt", str(logs), "--state", str(state), "--ip-ranges", str(RANGES), "-q"]
    with HuntState(state):  # another run holds the folder
        started = time.monotonic()
        busy = CliRunner().invoke(cli, args)
        waited = time.monotonic() - started
    assert busy.exit_code == 2
    assert "another imdshunt run holds this state folder" in busy.output
    assert waited >= 0.5
    assert CliRunner().invoke(cli, args).exit_code == 1  # free again: the finding is reported
