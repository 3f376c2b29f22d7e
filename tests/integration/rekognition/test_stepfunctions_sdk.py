"""moto's Step Functions runs aws-sdk:rekognition:* tasks against the emulator, for real.

The same minimal state machine runs in-process (``mock_aws``) and on the local endpoint (moto's
server), because the pipeline's activation machine runs in both. Errors must carry the names
real Step Functions gives them ("Rekognition.<Name>Exception") so that Catch clauses written
for AWS work locally.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from enroll_local.testing import ManualClock

REGION = "us-east-1"
COLLECTION = "sfn-faces"
ROLE_ARN = "arn:aws:iam::123456789012:role/activation"
EXECUTION_TIMEOUT_SECONDS = 20.0
POLL_SECONDS = 0.05

DEFINITION = {
    "Comment": "Find the user of a face; a missing collection is caught by its AWS error name.",
    "StartAt": "FindUser",
    "States": {
        "FindUser": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:rekognition:searchUsers",
            "Parameters": {
                "CollectionId.$": "$.collectionId",
                "FaceId.$": "$.faceId",
                "UserMatchThreshold": 80,
            },
            "ResultSelector": {"matches.$": "$.UserMatches"},
            "ResultPath": "$.search",
            "Catch": [
                {
                    "ErrorEquals": ["Rekognition.ResourceNotFoundException"],
                    "ResultPath": "$.error",
                    "Next": "CollectionMissing",
                }
            ],
            "End": True,
        },
        "CollectionMissing": {
            "Type": "Pass",
            "Result": "collection-missing",
            "ResultPath": "$.outcome",
            "End": True,
        },
    },
}


@dataclass
class Stack:
    """Clients on one local AWS plus a way to let the emulator's UPDATING delay pass."""

    rekognition: Any
    sfn: Any
    let_time_pass: Callable[[], None]


@pytest.fixture(params=["in-process", "server"])
def stack(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[Stack]:
    if request.param == "in-process":
        request.getfixturevalue("local_aws")
        yield Stack(
            boto3.client("rekognition", region_name=REGION),
            boto3.client("stepfunctions", region_name=REGION),
            lambda: clock.advance(60),
        )
    else:
        url = request.getfixturevalue("local_endpoint_url")
        yield Stack(
            boto3.client("rekognition", region_name=REGION, endpoint_url=url),
            boto3.client("stepfunctions", region_name=REGION, endpoint_url=url),
            lambda: time.sleep(0.5),  # server emulator: UPDATING lasts 0.2 s of real time
        )


def test_search_users_task_returns_the_user(
    stack: Stack, synthetic_photo: Callable[..., bytes]
) -> None:
    face_id = _enrolled_face(stack, synthetic_photo)

    output = _run(stack, {"collectionId": COLLECTION, "faceId": face_id})

    [match] = output["search"]["matches"]
    assert match["User"] == {"UserId": "alice", "UserStatus": "ACTIVE"}
    assert match["Similarity"] > 80


def test_rekognition_errors_are_caught_by_their_aws_name(stack: Stack) -> None:
    output = _run(
        stack,
        {"collectionId": "no-such-collection", "faceId": "11111111-1111-1111-1111-111111111111"},
    )

    assert output["outcome"] == "collection-missing"
    assert output["error"]["Error"] == "Rekognition.ResourceNotFoundException"
    assert "Rekognition" in output["error"]["Cause"]


def test_uncaught_error_fails_the_execution_with_its_aws_name(
    stack: Stack, synthetic_photo: Callable[..., bytes]
) -> None:
    _enrolled_face(stack, synthetic_photo)

    execution = _execute(stack, {"collectionId": COLLECTION, "faceId": "not-a-face-id"})

    assert execution["status"] == "FAILED"
    assert _failure_error(stack, execution) == "Rekognition.InvalidParameterException"


def _enrolled_face(stack: Stack, photo: Callable[..., bytes]) -> str:
    rekognition = stack.rekognition
    rekognition.create_collection(CollectionId=COLLECTION)
    face_id: str = rekognition.index_faces(
        CollectionId=COLLECTION, Image={"Bytes": photo("alice", 0)}, ExternalImageId="alice-0"
    )["FaceRecords"][0]["Face"]["FaceId"]
    rekognition.create_user(CollectionId=COLLECTION, UserId="alice")
    rekognition.associate_faces(CollectionId=COLLECTION, UserId="alice", FaceIds=[face_id])
    stack.let_time_pass()
    return face_id


def _run(stack: Stack, payload: dict[str, Any]) -> dict[str, Any]:
    execution = _execute(stack, payload)
    assert execution["status"] == "SUCCEEDED", execution
    output: dict[str, Any] = json.loads(execution["output"])
    return output


def _execute(stack: Stack, payload: dict[str, Any]) -> dict[str, Any]:
    machine = stack.sfn.create_state_machine(
        name=f"find-user-{time.monotonic_ns()}", definition=json.dumps(DEFINITION), roleArn=ROLE_ARN
    )
    arn = stack.sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"], input=json.dumps(payload)
    )["executionArn"]
    deadline = time.monotonic() + EXECUTION_TIMEOUT_SECONDS
    while True:
        execution: dict[str, Any] = stack.sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING" or time.monotonic() > deadline:
            return execution
        time.sleep(POLL_SECONDS)


def _failure_error(stack: Stack, execution: dict[str, Any]) -> str | None:
    if execution.get("error"):
        return str(execution["error"])
    events = stack.sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    for event in reversed(events):
        details = event.get("executionFailedEventDetails")
        if details:
            return str(details.get("error"))
    return None
