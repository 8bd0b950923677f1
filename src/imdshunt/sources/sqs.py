"""S3 ``ObjectCreated`` notifications read from an SQS queue: which objects a run should read.

Three shapes reach a queue, and all name the bucket, key, size and ETag of the new object:

* S3 -> SQS directly: ``{"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name"},
  "object": {"key", "size", "eTag"}}}]}``; the key is URL-encoded (spaces as ``+``), see
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html;
* through SNS: the same document as a string in ``Message`` of an SNS ``Notification``
  (or as is, with raw message delivery);
* EventBridge ``Object Created``: ``{"detail-type": "Object Created", "source": "aws.s3",
  "detail": {"bucket": {"name"}, "object": {"key", "size", "etag"}}}``; the key is not
  encoded, see https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html.

S3 also sends an ``s3:TestEvent`` when a notification is configured: it names no object.

The consumer (:func:`consume`) deletes a message only after the state has committed every
object it names (at-least-once: a run killed before the commit leaves the messages to be
received again). Objects are identified by bucket, key, size and ETag, so a message received
twice, or two messages about one object, read it once.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from imdshunt.sources.inputs import InputFile


@dataclass
class Message:
    """One received message and the objects it names (none for a test event)."""

    receipt_handle: str
    objects: list[InputFile] = field(default_factory=list)
    #: Why the body was not understood (such a message is left for the queue's redrive).
    error: str | None = None


def objects_in(body: str) -> list[InputFile]:
    """The S3 objects a notification names. Raises ValueError on a body of no known shape."""
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    if doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        return objects_in(doc["Message"])  # through SNS
    if doc.get("Event") == "s3:TestEvent":
        return []
    if doc.get("detail-type") == "Object Created" and doc.get("source") == "aws.s3":
        d = doc.get("detail") or {}
        obj = d.get("object") or {}
        return [
            InputFile.s3(
                (d.get("bucket") or {})["name"],
                obj["key"],
                int(obj.get("size") or 0),
                obj.get("etag") or "",
            )
        ]
    if isinstance(doc.get("Records"), list):
        out = []
        for r in doc["Records"]:
            if r.get("eventSource") != "aws:s3" or not str(r.get("eventName", "")).startswith(
                "ObjectCreated"
            ):
                continue
            s3 = r.get("s3") or {}
            obj = s3.get("object") or {}
            key = urllib.parse.unquote_plus(obj["key"])
            out.append(
                InputFile.s3(
                    s3["bucket"]["name"], key, int(obj.get("size") or 0), obj.get("eTag") or ""
                )
            )
        return out
    raise ValueError(
        "neither an S3 event notification, an SNS notification of one, "
        "nor an EventBridge Object Created event"
    )


def receive(client: Any, queue_url: str, *, max_messages: int = 1000, wait_seconds: int = 1):
    """Up to ``max_messages`` messages now on the queue (long-polled ``wait_seconds`` for the
    first batch, then taken while the queue answers with more).

    A message whose visibility timeout runs out while the batch is being taken comes back:
    it is kept once, with its newest receipt handle (SQS deletes a message received twice
    only by the handle of its last receipt,
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html),
    and a batch of nothing new ends the taking: otherwise a short timeout would make the
    queue look endless and the same messages would be taken up to ``max_messages`` times.
    """
    by_id: dict[str, Message] = {}
    wait = wait_seconds
    while len(by_id) < max_messages:
        resp = client.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, max_messages - len(by_id)),
            WaitTimeSeconds=wait,
        )
        batch = resp.get("Messages") or []
        new = 0
        for m in batch:
            message_id = m.get("MessageId") or m["ReceiptHandle"]
            if message_id in by_id:
                by_id[message_id].receipt_handle = m["ReceiptHandle"]
                continue
            new += 1
            try:
                by_id[message_id] = Message(m["ReceiptHandle"], objects_in(m.get("Body") or ""))
            except (ValueError, KeyError, TypeError) as exc:
                by_id[message_id] = Message(m["ReceiptHandle"], error=str(exc))
        if not new:
            break
        wait = 0
    return list(by_id.values())


def delete(client: Any, queue_url: str, messages: list[Message]) -> None:
    """Delete ``messages`` (ten per call, as SQS takes them)."""
    for i in range(0, len(messages), 10):
        chunk = messages[i : i + 10]
        client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": m.receipt_handle} for n, m in enumerate(chunk)
            ],
        )


def consume(
    client: Any,
    queue_url: str,
    run: Callable[[list[InputFile]], Any],
    *,
    max_messages: int = 1000,
    wait_seconds: int = 1,
) -> tuple[Any, list[Message]]:
    """Receive messages, run ``run`` over the objects they name (an incremental hunt that
    commits and returns its result with ``committed`` and ``files_already_processed``), then
    delete every message whose objects are all committed or were already. Returns the run's
    result and the messages received."""
    messages = receive(client, queue_url, max_messages=max_messages, wait_seconds=wait_seconds)
    named: dict[str, InputFile] = {}
    for m in messages:
        for f in m.objects:
            named[f"{f.key}\0{f.version}"] = f
    result = run(list(named.values()))
    # committed now, or before (a message received again after a kill, or a duplicate)
    unread = {f"{f.key}\0{f.version}" for f in getattr(result, "unread", [])}
    done = [
        m
        for m in messages
        if m.error is None and not any(f"{f.key}\0{f.version}" in unread for f in m.objects)
    ]
    delete(client, queue_url, done)
    return result, messages
