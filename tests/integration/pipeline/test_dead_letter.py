"""The DLQ path on the local stack: a message whose handler keeps failing ends in its DLQ after
MAX_RECEIVE_COUNT deliveries, AND its photo is FAILED in the ledger with a reason (README,
"Photo outcomes"), so nothing vanishes silently.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import unquote_plus

import pytest

from enroll_local.rekognition.engines.synthetic import make_synthetic_photo
from enroll_local.rekognition.errors import RekognitionError
from enroll_local.runner.demo import wait_for_terminal_states
from enroll_local.runner.ledger_report import read_ledger

#: Budget for a poisoned message to reach its DLQ (MAX_RECEIVE_COUNT deliveries, 1 s apart).
DLQ_TIMEOUT_SECONDS = 60
#: A client fault botocore does not retry itself: each delivery fails at once, keeping the
#: test fast; every SQS delivery still fails, which is what matters here.
PERSISTENT_ERROR = "AccessDeniedException"


@contextlib.contextmanager
def failing(stack: Any, operation: str) -> Iterator[list[int]]:
    """Make every ``operation`` the emulator serves fail; yield a one-item list of call counts."""
    emulator = stack.emulator
    original = emulator.dispatch
    calls = [0]

    def dispatch(op: str, params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if op == operation:
            calls[0] += 1
            raise RekognitionError(PERSISTENT_ERROR, f"{op} refused by the test")
        return original(op, params, **kwargs)  # type: ignore[no-any-return]

    emulator.dispatch = dispatch
    try:
        yield calls
    finally:
        emulator.dispatch = original


@contextlib.contextmanager
def no_batching_window(stack: Any) -> Iterator[None]:
    """Run the associate poller without its 5 s window (five deliveries would take 30 s)."""
    previous = stack.settings
    stack.stop_pollers()
    stack.settings = replace(previous, associate_batching_window_seconds=0)
    stack.start_pollers()
    try:
        yield
    finally:
        stack.stop_pollers()
        stack.settings = previous


def dlq_bodies(stack: Any, dlq_url: str) -> list[str]:
    """Wait until ``dlq_url`` holds a message; return the bodies it holds."""
    deadline = time.monotonic() + DLQ_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        messages = stack.clients.sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        if messages:
            return [m["Body"] for m in messages]
    raise AssertionError(f"nothing reached {dlq_url} in {DLQ_TIMEOUT_SECONDS} s")


def message_key(body: dict[str, Any]) -> str:
    """The object key a DLQ message is about: an S3 notification or an association message."""
    if "Records" in body:
        return unquote_plus(body["Records"][0]["s3"]["object"]["key"])
    return str(body["key"])


@pytest.mark.parametrize(
    ("operation", "dlq"),
    [("IndexFaces", "upload_dlq_url"), ("AssociateFaces", "association_dlq_url")],
)
def test_a_message_that_keeps_failing_ends_in_the_dlq_and_its_photo_failed(
    pipeline: Any, operation: str, dlq: str
) -> None:
    # Given the pipeline, with every call of one stage's Rekognition operation failing
    stack = pipeline()
    key = f"{stack.endpoints.prefix}Dora/{operation}.jpg"
    with no_batching_window(stack), failing(stack, operation) as calls:
        # When a photo is uploaded
        stack.clients.s3.put_object(
            Bucket=stack.endpoints.bucket,
            Key=key,
            Body=make_synthetic_photo([{"identity": "Dora", "variant": 0}]),
        )

        # Then after MAX_RECEIVE_COUNT deliveries its message is in that stage's DLQ ...
        bodies = dlq_bodies(stack, getattr(stack.endpoints, dlq))
        max_receive_count = stack.config.max_receive_count
        assert calls[0] == max_receive_count
        assert key in [message_key(json.loads(body)) for body in bodies]

    # ... and the ledger says FAILED, with a reason and a detail naming the error
    _, pending = wait_for_terminal_states(stack, [key], DLQ_TIMEOUT_SECONDS)
    assert not pending
    (item,) = read_ledger(stack.clients.dynamodb, stack.endpoints.table).photos_by_key()[key]
    assert item["status"] == "FAILED"
    # A missing permission says the deployment is wrong (rekognition.CONFIGURATION_ERRORS).
    assert item["reason"] == "CONFIGURATION_ERROR"
    assert PERSISTENT_ERROR in item["detail"] and "DLQ" in item["detail"]
    # ... and no face of it is left in the collection without a user
    faces = stack.clients.rekognition.list_faces(CollectionId=stack.endpoints.collection_id)
    assert [f for f in faces["Faces"] if not f.get("UserId")] == []


def redrive(stack: Any, dlq_url: str, queue_url: str) -> int:
    """Move every message of ``dlq_url`` back to ``queue_url`` (start-message-move-task's job);
    wait for the first one. Returns how many moved."""
    sqs = stack.clients.sqs
    deadline = time.monotonic() + DLQ_TIMEOUT_SECONDS
    moved = 0
    while time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        if not messages and moved:
            return moved
        for message in messages:
            sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    raise AssertionError(f"nothing reached {dlq_url} in {DLQ_TIMEOUT_SECONDS} s")


def wait_for_status(stack: Any, key: str, status: str) -> dict[str, Any]:
    """The photo's ledger item once it has ``status`` (fails after DLQ_TIMEOUT_SECONDS)."""
    deadline = time.monotonic() + DLQ_TIMEOUT_SECONDS
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        ledger = read_ledger(stack.clients.dynamodb, stack.endpoints.table)
        items = ledger.photos_by_key().get(key, [])
        if [item.get("status") for item in items] == [status]:
            return items[0]
        time.sleep(0.25)
    raise AssertionError(f"{key} never reached {status}: {items}")


def test_a_photo_failed_at_association_is_active_once_its_dlq_message_is_redriven(
    pipeline: Any,
) -> None:
    # Given a photo FAILED at association: every AssociateFaces refused, its message in the DLQ
    stack = pipeline()
    endpoints = stack.endpoints
    key = f"{endpoints.prefix}Erin/redriven 1+1 été.jpg"
    with no_batching_window(stack):
        with failing(stack, "AssociateFaces"):
            stack.clients.s3.put_object(
                Bucket=endpoints.bucket,
                Key=key,
                Body=make_synthetic_photo([{"identity": "Erin", "variant": 0}]),
            )
            failed = wait_for_status(stack, key, "FAILED")
        assert failed["reason"] == "CONFIGURATION_ERROR"

        # When the cause is fixed and the association DLQ redriven
        moved = redrive(stack, endpoints.association_dlq_url, endpoints.association_queue_url)

        # Then the photo is indexed again and goes the normal way, to ACTIVE
        active = wait_for_status(stack, key, "ACTIVE")
    assert moved == 1
    assert active["photo_id"] == failed["photo_id"]
    users = stack.clients.rekognition.list_users(CollectionId=endpoints.collection_id)["Users"]
    assert [(u["UserId"], u["UserStatus"]) for u in users] == [("Erin", "ACTIVE")]
    faces = stack.clients.rekognition.list_faces(CollectionId=endpoints.collection_id)["Faces"]
    assert [(f["FaceId"], f.get("UserId")) for f in faces] == [(active["face_id"], "Erin")]
    for dlq in (endpoints.upload_dlq_url, endpoints.association_dlq_url):
        depth = stack.clients.sqs.get_queue_attributes(
            QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        assert depth == "0"
