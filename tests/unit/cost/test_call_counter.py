"""Classifying endpoint requests and counting state transitions from execution histories."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

from enroll_local.runner.call_counter import (
    CallCounter,
    classify,
    count_state_transitions,
    s3_operation,
    transitions_of,
)

AUTH = "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/{}/aws4_request, SignedHeaders=host"


def environ(signing: str, **extra: Any) -> dict[str, Any]:
    return {"HTTP_AUTHORIZATION": AUTH.format(signing), "PATH_INFO": "/", **extra}


def test_json_cbor_query_and_rest_protocols() -> None:
    target = {"HTTP_X_AMZ_TARGET": "RekognitionService.IndexFaces"}
    assert classify(environ("rekognition", **target)) == ("rekognition", "IndexFaces")
    sqs = {"HTTP_X_AMZ_TARGET": "AmazonSQS.SendMessageBatch"}
    assert classify(environ("sqs", **sqs)) == ("sqs", "SendMessageBatch")
    sfn = {"HTTP_X_AMZ_TARGET": "AWSStepFunctions.StartExecution"}
    assert classify(environ("states", **sfn)) == ("stepfunctions", "StartExecution")
    cbor = {"PATH_INFO": "/service/GraniteServiceVersion20100801/operation/PutMetricData"}
    assert classify(environ("monitoring", **cbor)) == ("cloudwatch", "PutMetricData")
    body = b"Action=SendMessage&Version=2012-11-05"
    query = environ(
        "sqs",
        CONTENT_TYPE="application/x-www-form-urlencoded; charset=utf-8",
        CONTENT_LENGTH=str(len(body)),
        **{"wsgi.input": io.BytesIO(body)},
    )
    assert classify(query) == ("sqs", "SendMessage")
    assert query["wsgi.input"].read() == body  # left for moto to read
    put = environ("s3", REQUEST_METHOD="PUT", PATH_INFO="/bucket/enroll/u/1.jpg")
    assert classify(put) == ("s3", "PutObject")


def test_s3_rest_operations() -> None:
    assert s3_operation("GET", "/b/k.jpg", "") == "GetObject"
    assert s3_operation("HEAD", "/b/k.jpg", "") == "HeadObject"
    assert s3_operation("PUT", "/b/k.jpg", "", copy_source=True) == "CopyObject"
    assert s3_operation("GET", "/b", "list-type=2&prefix=enroll") == "ListObjectsV2"
    assert s3_operation("GET", "/b", "versions") == "ListObjectVersions"
    assert s3_operation("PUT", "/b", "notification") == "PutBucketNotification"
    assert s3_operation("POST", "/b", "delete") == "DeleteObjects"
    assert s3_operation("DELETE", "/b/k.jpg", "") == "DeleteObject"


def test_counter_keeps_pipeline_and_runner_apart() -> None:
    counter = CallCounter()
    counter.record("sqs", "SendMessage")
    counter.record("sqs", "SendMessage")
    counter.record("sqs", "ReceiveMessage", runner=True)
    counter.record("rekognition", "IndexFaces", refused=True)  # throttled: not billed
    assert counter.snapshot() == {
        "requests": {"sqs": {"SendMessage": 2}},
        "runner_requests": {"sqs": {"ReceiveMessage": 1}},
        "refused_requests": {"rekognition": {"IndexFaces": 1}},
    }
    counter.reset()
    assert counter.snapshot() == {"requests": {}, "runner_requests": {}, "refused_requests": {}}


T0 = datetime(2025, 1, 1, tzinfo=UTC)


def event(kind: str, second: float, name: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": kind, "timestamp": T0 + timedelta(seconds=second)}
    if name:
        entry["stateEnteredEventDetails"] = {"name": name}
    return entry


#: Check (one throttling retry), a Map of 2 iterations of one Pass each, a Wait, a check, Succeed.
HISTORY = [
    event("ExecutionStarted", 0),
    event("TaskStateEntered", 0, "CheckUserStatus"),
    event("TaskScheduled", 0),
    event("TaskFailed", 0.1),
    event("TaskScheduled", 1),
    event("TaskSucceeded", 1.1),
    event("MapStateEntered", 1.1, "ReadUserStatus"),
    event("MapIterationStarted", 1.1),
    event("PassStateEntered", 1.1, "OtherUser"),
    event("MapIterationStarted", 1.1),
    event("PassStateEntered", 1.1, "ThisUsersStatus"),
    event("WaitStateEntered", 1.2, "WaitBeforeNextCheck"),
    event("TaskStateEntered", 2.2, "CheckUserStatus"),
    event("TaskScheduled", 2.2),
    event("SucceedStateEntered", 2.5, "Activated"),
    event("ExecutionSucceeded", 2.5),
]


def test_transitions_count_states_entered_map_iterations_and_retries() -> None:
    # 7 states entered (Task, Map, 2 x Pass, Wait, Task, Succeed) + 1 retry.
    assert transitions_of(HISTORY) == {"transitions": 8, "status_checks": 2, "retries": 1}


class FakeStepFunctions:
    """GetExecutionHistory in two pages, as the paginator would ask for them."""

    class Paginator:
        def __init__(self, pages: list[dict[str, Any]]) -> None:
            self.pages = pages

        def paginate(self, **_: Any) -> list[dict[str, Any]]:
            return self.pages

    def get_paginator(self, name: str) -> Any:
        if name == "list_executions":
            return self.Paginator([{"executions": [{"executionArn": "a"}, {"executionArn": "b"}]}])
        return self.Paginator([{"events": HISTORY[:8]}, {"events": HISTORY[8:]}])


def test_count_over_every_execution_and_page() -> None:
    totals = count_state_transitions(FakeStepFunctions(), "arn:sm")
    assert totals == {
        "executions": 2,
        "transitions": 16,
        "status_checks": 4,
        "retries": 2,
        "execution_seconds": 5.0,
    }
