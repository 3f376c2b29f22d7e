"""The local event source mapping: batching, partial failures, retries and the DLQ (moto SQS)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from enroll_local.runner.lambda_context import LocalLambdaContext
from enroll_local.runner.pollers import (
    EventSourceMapping,
    QueuePoller,
    failed_message_ids,
    sqs_message_to_record,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"
MAX_RECEIVE_COUNT = 3


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def _queue(sqs: Any, name: str = "work") -> tuple[str, str, str]:
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
    url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn, dlq


def _mapping(url: str, arn: str, handler: Any, **overrides: Any) -> EventSourceMapping:
    values: dict[str, Any] = {
        "function_name": "fn",
        "handler": handler,
        "environment": {},
        "queue_url": url,
        "queue_arn": arn,
        "batch_size": 10,
        "batching_window_seconds": 0,
        "function_timeout_seconds": 30,
        "in_flight_visibility_seconds": 30,
        "retry_delay_seconds": 0,
    }
    values.update(overrides)
    return EventSourceMapping(**values)


def _depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


class Recorder:
    """A handler that records its events and fails the bodies it is told to."""

    def __init__(self, fail_bodies: set[str] | None = None, raise_error: bool = False) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.fail_bodies = fail_bodies or set()
        self.raise_error = raise_error

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        self.contexts.append(context)
        if self.raise_error:
            raise RuntimeError("boom")
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]}
                for r in event["Records"]
                if r["body"] in self.fail_bodies
            ]
        }


def test_record_has_the_lambda_sqs_shape(sqs: Any) -> None:
    # Given a message with an attribute, when the poller delivers it
    url, arn, _ = _queue(sqs)
    sqs.send_message(
        QueueUrl=url,
        MessageBody="hello",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "greeting"}},
    )
    handler = Recorder()
    result = QueuePoller(_mapping(url, arn, handler), sqs, region=REGION, account_id=ACCOUNT)
    outcome = result.poll_once(idle_wait_seconds=0)

    # Then the handler saw a real-shaped record and a Lambda-like context, and it was deleted
    assert outcome.received == outcome.succeeded == 1
    record = handler.events[0]["Records"][0]
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["body"] == "hello"
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == arn
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["kind"]["stringValue"] == "greeting"
    context = handler.contexts[0]
    assert context.invoked_function_arn == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn"
    assert 0 < context.get_remaining_time_in_millis() <= 30_000
    assert _depth(sqs, url) == 0


def test_partial_failure_retries_only_failed_messages_then_dead_letters_them(sqs: Any) -> None:
    # Given three messages of which one always fails
    url, arn, dlq = _queue(sqs)
    for body in ("a", "b", "poison"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    handler = Recorder(fail_bodies={"poison"})
    poller = QueuePoller(_mapping(url, arn, handler), sqs, region=REGION, account_id=ACCOUNT)

    # When the poller runs until nothing is left to receive
    first = poller.poll_once(idle_wait_seconds=0)
    for _ in range(MAX_RECEIVE_COUNT + 2):
        poller.poll_once(idle_wait_seconds=0)

    # Then the good ones were deleted at once, the poison one retried with a growing receive
    # count until the redrive policy moved it to the DLQ
    assert (first.received, first.succeeded, first.failed) == (3, 2, 1)
    poison_counts = [
        int(r["attributes"]["ApproximateReceiveCount"])
        for e in handler.events
        for r in e["Records"]
        if r["body"] == "poison"
    ]
    assert poison_counts == list(range(1, MAX_RECEIVE_COUNT + 1))
    assert _depth(sqs, url) == 0
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=dlq)["Messages"]] == ["poison"]


def test_handler_exception_fails_the_whole_batch(sqs: Any) -> None:
    url, arn, _ = _queue(sqs)
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    poller = QueuePoller(
        _mapping(url, arn, Recorder(raise_error=True)), sqs, region=REGION, account_id=ACCOUNT
    )
    outcome = poller.poll_once(idle_wait_seconds=0)
    assert (outcome.received, outcome.failed) == (2, 2)
    assert "boom" in (outcome.error or "")
    assert _depth(sqs, url) == 2


def test_batching_window_gathers_messages_arriving_after_the_first(sqs: Any) -> None:
    # Given a mapping with batch size 25 and a 1.5 s window, and messages arriving over ~0.6 s
    url, arn, _ = _queue(sqs)
    handler = Recorder()
    mapping = _mapping(url, arn, handler, batch_size=25, batching_window_seconds=1.5)
    poller = QueuePoller(mapping, sqs, region=REGION, account_id=ACCOUNT)

    def send_later() -> None:
        for i in range(20):
            sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
            time.sleep(0.03)

    sender = threading.Thread(target=send_later)
    sender.start()
    started = time.monotonic()
    outcome = poller.poll_once(idle_wait_seconds=2)
    elapsed = time.monotonic() - started
    sender.join()

    # Then one invocation received all 20 (more than one ReceiveMessage's 10), within the window
    assert outcome.received == 20 and len(handler.events) == 1
    assert elapsed < 1.5 + 2 + 1


def test_full_batch_is_invoked_without_waiting_for_the_window(sqs: Any) -> None:
    url, arn, _ = _queue(sqs)
    for i in range(10):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    mapping = _mapping(url, arn, Recorder(), batch_size=10, batching_window_seconds=30)
    started = time.monotonic()
    outcome = QueuePoller(mapping, sqs, region=REGION, account_id=ACCOUNT).poll_once(0)
    assert outcome.received == 10
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "m2"}]}, {"m2"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"m1", "m2"}),
        ({"batchItemFailures": [{"itemIdentifier": "other"}]}, {"m1", "m2"}),
        ({"batchItemFailures": [{"wrongKey": "m1"}]}, {"m1", "m2"}),
        ({"batchItemFailures": "m1"}, {"m1", "m2"}),
        ("not a dict", {"m1", "m2"}),
    ],
)
def test_partial_batch_response_follows_lambda_rules(response: Any, expected: set[str]) -> None:
    assert failed_message_ids(response, ["m1", "m2"]) == expected


def test_context_deadline_counts_down() -> None:
    context = LocalLambdaContext("fn", REGION, ACCOUNT, timeout_seconds=0.05)
    assert context.get_remaining_time_in_millis() <= 50
    time.sleep(0.06)
    assert context.get_remaining_time_in_millis() == 0


def test_record_defaults_when_sqs_omits_attributes() -> None:
    record = sqs_message_to_record(
        {"MessageId": "m", "ReceiptHandle": "r", "Body": "{}"}, "arn:q", REGION
    )
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"] == {}


class FlakyReceives:
    """Wraps a client: every ReceiveMessage after the first ``healthy`` ones raises."""

    def __init__(self, sqs: Any, healthy: int) -> None:
        self._sqs = sqs
        self._healthy = healthy

    def receive_message(self, **kwargs: Any) -> Any:
        if self._healthy <= 0:
            raise ConnectionError("endpoint went away")
        self._healthy -= 1
        return self._sqs.receive_message(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)


def test_a_receive_error_inside_the_batching_window_still_invokes_with_the_batch(sqs: Any) -> None:
    # Given a poller with a batching window whose second receive fails
    url, arn, _ = _queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="a")
    recorder = Recorder()
    poller = QueuePoller(
        _mapping(url, arn, recorder, batching_window_seconds=0.5),
        FlakyReceives(sqs, healthy=1),
        region=REGION,
        account_id=ACCOUNT,
    )

    # When it polls
    result = poller.poll_once(idle_wait_seconds=0)

    # Then the message already received is handled (not left in flight), and the poller is idle
    assert result.received == 1 and result.succeeded == 1
    assert _depth(sqs, url) == 0
    assert not poller.busy


def test_the_function_environment_lasts_only_for_its_invocation(
    sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a process whose environment has a setting, and a function deployed with another
    monkeypatch.setenv("MAX_FACES_PER_USER", "100")
    monkeypatch.delenv("ONLY_IN_THE_FUNCTION", raising=False)
    url, arn, _ = _queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    seen: dict[str, str | None] = {}

    def handler(event: dict[str, Any], context: Any) -> None:
        seen.update({n: os.environ.get(n) for n in ("MAX_FACES_PER_USER", "ONLY_IN_THE_FUNCTION")})

    environment = {"MAX_FACES_PER_USER": "2", "ONLY_IN_THE_FUNCTION": "yes"}
    poller = QueuePoller(
        _mapping(url, arn, handler, environment=environment), sqs, region=REGION, account_id=ACCOUNT
    )
    poller.poll_once(idle_wait_seconds=0)

    # Then the handler saw the function's values, and the process has its own back afterwards
    assert seen == environment
    assert os.environ["MAX_FACES_PER_USER"] == "100"
    assert "ONLY_IN_THE_FUNCTION" not in os.environ
