"""Two batches for one user at the same time, near the cap: 98 faces + 2 x 5.

Both associate functions (MaximumConcurrency 2) plan from the same 98 faces: each thinks there is
room for 2 of its 5. AWS associates up to 100 and returns the rest as unsuccessful (or answers
ServiceQuotaExceededException once the user holds 100); the stage re-plans what was refused from
the user as it is now. Whatever the interleaving, the user ends with exactly 100 faces, every
other photo is REJECTED USER_FACE_LIMIT (or, under keep-best, a worse face is replaced), and no
refused face stays in the collection.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from enroll_local.runner.ledger_report import read_ledger

from .conftest import Scenario, wait_for

SETTLED_FACES = 98
RACING_BATCHES = 2
PHOTOS_PER_BATCH = 5
CAP = 100


def _max_concurrent_executions(stack: Any, function_name: str) -> float:
    """AWS/Lambda ConcurrentExecutions (Maximum) over the last hour, as the dashboard reads it."""
    cloudwatch = boto3.client(
        "cloudwatch",
        endpoint_url=stack.endpoints.endpoint_url,
        region_name=stack.endpoints.region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    now = datetime.now(UTC)
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="ConcurrentExecutions",
        Dimensions=[{"Name": "FunctionName", "Value": function_name}],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    return max(float(p["Maximum"]) for p in points)


def _queue_visible(stack: Any, url: str) -> int:
    attributes = stack.clients.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


@pytest.mark.parametrize("policy", ["reject", "keep-best"])
def test_two_batches_for_one_user_cross_the_cap_together(scenario: Any, policy: str) -> None:
    run: Scenario = scenario(environment={"FACE_CAP_POLICY": policy})
    stack = run.stack
    # Given a user holding 98 faces
    for index in range(SETTLED_FACES):
        run.upload("Racer", index)
    run.wait_idle()
    photos = read_ledger(stack.clients.dynamodb, stack.endpoints.table).photos
    assert Counter(p["status"] for p in photos) == Counter({"ACTIVE": SETTLED_FACES})

    # When 10 more photos are indexed while the associate function is not polling ...
    stack.stop_pollers()
    stack.start_pollers()
    associate = next(
        p for p in stack.pollers if p.mapping.function_name == stack.config.associate_service_name
    )
    associate.stop()
    racing = RACING_BATCHES * PHOTOS_PER_BATCH
    for index in range(SETTLED_FACES, SETTLED_FACES + racing):
        run.upload("Racer", index)
    url = stack.endpoints.association_queue_url
    wait_for(lambda: _queue_visible(stack, url) == racing, "10 association messages")

    # ... and then two associate functions take 5 each and plan at the same moment
    run.arm("rendezvous-associate", str(RACING_BATCHES))
    stack.stop_pollers()
    config = stack.config
    stack.config = replace(config, associate_batch_size=PHOTOS_PER_BATCH)
    try:
        stack.start_pollers()
        report = run.settle_and_verify(max_faces_per_user=CAP)
    finally:
        stack.config = config
    arrivals = run.state / "rendezvous-arrivals"
    assert len(list(arrivals.iterdir())) >= RACING_BATCHES, "the two batches did not race"
    # ... which the dashboard's metric shows too: two associate functions ran at once
    assert _max_concurrent_executions(stack, stack.config.associate_service_name) == RACING_BATCHES

    # Then the user holds exactly 100 faces and every other photo was refused with a reason
    faces = stack.clients.rekognition.list_faces(
        CollectionId=stack.endpoints.collection_id, UserId="Racer", MaxResults=4096
    )["Faces"]
    assert len(faces) == CAP
    photos = read_ledger(stack.clients.dynamodb, stack.endpoints.table).photos
    outcomes = Counter((p["status"], p.get("reason")) for p in photos)
    assert outcomes[("ACTIVE", None)] == CAP
    refused = Counter(
        reason for (status, reason), n in outcomes.items() if status != "ACTIVE" for _ in range(n)
    )
    expected = "USER_FACE_LIMIT" if policy == "reject" else None
    assert sum(refused.values()) == SETTLED_FACES + racing - CAP
    if expected:
        assert set(refused) == {expected}, outcomes
    else:
        assert set(refused) <= {"USER_FACE_LIMIT", "REPLACED_BY_BETTER_PHOTO"}, outcomes
    assert report.faces == CAP
