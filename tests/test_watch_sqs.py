"""watch --sqs-queue: S3 ObjectCreated notifications in all three shapes, deleted once committed."""

from __future__ import annotations

import json

import boto3
import pytest
from click.testing import CliRunner

from imdshunt import api
from imdshunt.cli import cli
from imdshunt.sources.sqs import objects_in
from tests.test_cloudtrail_source import RANGES
from tests.test_state import _queue_size, _upload, _write

KEY = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/02/a b.json.gz"


def _direct(bucket: str, key: str, size: int, etag: str) -> dict:
    obj = {"key": key.replace(" ", "+"), "size": size, "eTag": etag}
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": obj},
            }
        ]
    }


def _eventbridge(bucket: str, key: str, size: int, etag: str) -> dict:
    return {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": size, "etag": etag}},
    }


def _sns(doc: dict) -> dict:
    return {
        "Type": "Notification",
        "TopicArn": "arn:aws:sns:us-east-1:1:t",
        "Message": json.dumps(doc),
    }


def test_every_shape_names_the_same_object():
    shapes = [
        _direct("b", KEY, 7, "abc"),
        _sns(_direct("b", KEY, 7, "abc")),
        _eventbridge("b", KEY, 7, "abc"),
    ]
    named = [objects_in(json.dumps(s)) for s in shapes]
    assert named[0] == named[1] == named[2]
    assert named[0][0].uri == f"s3://b/{KEY}" and named[0][0].version == "7:abc"
    assert objects_in(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []
    with pytest.raises(ValueError):
        objects_in('{"hello": 1}')


@pytest.mark.moto
def test_watch_reads_each_notified_object_once_and_deletes_the_messages(tmp_path, aws_env):
    logs, state, out = tmp_path / "logs", tmp_path / "state", tmp_path / "feed.jsonl"
    for i in range(4):
        _write(logs, i)
    records = _upload(logs, "notified")
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="notified")["QueueUrl"]
    bodies = [json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})]
    for n, r in enumerate(records):
        o = r["s3"]["object"]
        args = ("notified", o["key"], o["size"], o["eTag"])
        shape = [_direct(*args), _sns(_direct(*args)), _eventbridge(*args)][n % 3]
        bodies.append(json.dumps(shape))
    bodies.append(bodies[1])  # the same notification twice
    for b in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=b)
    args = ["watch", "--sqs-queue", url, "--state", str(state), "--ip-ranges", str(RANGES)]
    args += ["--interval", "0", "--iterations", "1", "-o", str(out)]
    run = CliRunner().invoke(cli, args)
    assert run.exit_code == 0, run.output
    status = json.loads(run.stderr.strip().splitlines()[-1])
    assert status["files"] == 4 and status["records"] == 12 and status["messages"] == 6
    assert status["new"] == 1 and status["lag_seconds"] is not None
    assert _queue_size(url) == 0
    plain = api.hunt([logs], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)
    feed = [json.loads(x) for x in out.read_text().splitlines()]
    assert [f["event_count"] for f in feed] == [f["event_count"] for f in plain.findings]

    # a message received again (e.g. after a kill) reads nothing; one naming an object that
    # cannot be fetched is kept for a later poll
    sqs.send_message(QueueUrl=url, MessageBody=bodies[1])
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(_direct("notified", "gone.gz", 1, "x")))
    run = CliRunner().invoke(cli, args)
    status = json.loads(run.stderr.strip().splitlines()[-1])
    assert status["files"] == 0 and status["files_unread"] == 1 and status["new"] == 0
    assert _queue_size(url) == 1


def test_messages_that_come_back_while_a_batch_is_taken_are_taken_once(aws_env):
    """With a visibility timeout shorter than the taking of a batch, messages come back: each
    is kept once per poll, with the receipt handle SQS deletes it by (its newest), and the
    poll ends instead of taking the same messages up to its limit."""
    from imdshunt.sources.sqs import delete, receive

    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="short-visibility", Attributes={"VisibilityTimeout": "0"})[
        "QueueUrl"
    ]
    for n in range(25):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(_direct("b", f"k{n}.gz", 1, "e")))
    taken: list[str] = []
    for _poll in range(25):
        messages = receive(sqs, url, max_messages=1000)
        keys = [f.path.as_posix() for m in messages for f in m.objects]
        assert len(keys) == len(set(keys)) == len(messages) <= 25
        taken += keys
        delete(sqs, url, messages)
        if not _queue_size(url):
            break
    assert sorted(set(taken)) == sorted(f"k{n}.gz" for n in range(25))
