"""What SQS does to messages: duplicates, reordering, garbage, and dead letters redriven.

At-least-once delivery may hand a function the same message twice, late, or in another order;
a message nobody can read must end in its DLQ (never vanish, never block the others); and a
message that went to its DLQ because of a bug must reach a real outcome once the bug is fixed
and the DLQ is redriven.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

from enroll_local.runner.ledger_report import read_ledger

from .conftest import Scenario, wait_for

USERS = ("Max", "Noa")
PHOTOS_PER_USER = 3


def _ledger(run: Scenario) -> dict[str, tuple[str, str | None, str | None]]:
    photos = read_ledger(run.stack.clients.dynamodb, run.stack.endpoints.table).photos
    return {str(p["photo_id"]): (p["status"], p.get("reason"), p.get("face_id")) for p in photos}


def _depth(run: Scenario, url: str) -> int:
    attributes = run.stack.clients.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def _poller(run: Scenario, function_name: str) -> Any:
    return next(p for p in run.stack.pollers if p.mapping.function_name == function_name)


def test_duplicate_and_out_of_order_deliveries_change_nothing(scenario: Any) -> None:
    run: Scenario = scenario()
    stack, config = run.stack, run.stack.config
    # Given photos enrolled, one key overwritten with a second version
    for user in USERS:
        for i in range(PHOTOS_PER_USER):
            run.upload(user, i)
    run.upload(USERS[0], 0, variant=PHOTOS_PER_USER)  # same key, a new version, new bytes
    run.wait_idle()
    before = _ledger(run)
    faces_before = {
        f["FaceId"]
        for f in stack.clients.rekognition.list_faces(
            CollectionId=stack.endpoints.collection_id, MaxResults=4096
        )["Faces"]
    }

    # When every message either function ever received comes again, twice, newest first
    uploads = list(_poller(run, config.index_service_name).delivered_bodies)
    associations = list(_poller(run, config.associate_service_name).delivered_bodies)
    assert uploads and associations
    for body in [*reversed(uploads), *reversed(uploads)]:
        stack.clients.sqs.send_message(QueueUrl=stack.endpoints.upload_queue_url, MessageBody=body)
    for body in [*reversed(associations), *reversed(associations)]:
        stack.clients.sqs.send_message(
            QueueUrl=stack.endpoints.association_queue_url, MessageBody=body
        )
    report = run.settle_and_verify()

    # Then the ledger and the collection are exactly as they were
    assert _ledger(run) == before
    assert report.faces == len(faces_before)
    assert Counter(status for status, _, _ in before.values())["ACTIVE"] >= len(USERS)


def test_malformed_messages_end_in_their_dlq_and_block_nothing(scenario: Any) -> None:
    run: Scenario = scenario()
    stack = run.stack
    endpoints = stack.endpoints
    # Given garbage on both queues, next to a real photo
    garbage = ["not json at all", '{"Records": "nope"}', "{}"]
    for body in garbage:
        stack.clients.sqs.send_message(QueueUrl=endpoints.upload_queue_url, MessageBody=body)
        stack.clients.sqs.send_message(QueueUrl=endpoints.association_queue_url, MessageBody=body)
    key = run.upload("Oli", 1)

    # When the deliveries run out
    wait_for(
        lambda: (
            _depth(run, endpoints.upload_dlq_url) == len(garbage)
            and _depth(run, endpoints.association_dlq_url) == len(garbage)
        ),
        "the malformed messages to reach their DLQs",
    )
    run.settle_and_verify()

    # Then each is kept in its DLQ for a human, and the real photo went on to ACTIVE
    assert _depth(run, endpoints.upload_dlq_url) == len(garbage)
    assert _depth(run, endpoints.association_dlq_url) == len(garbage)
    photos = read_ledger(stack.clients.dynamodb, endpoints.table).photos
    assert [(p["key"], p["status"]) for p in photos] == [(key, "ACTIVE")]


def test_upload_dlq_redrive_after_a_configuration_fix(scenario: Any) -> None:
    # Given an index function deployed with a wrong collection id (a configuration bug)
    run: Scenario = scenario(environment={"COLLECTION_ID": "no-such-collection"})
    stack = run.stack
    endpoints = stack.endpoints
    keys = [run.upload("Pat", i) for i in range(2)]
    # When its messages exhaust their deliveries, the photos are FAILED CONFIGURATION_ERROR ...
    wait_for(lambda: _depth(run, endpoints.upload_dlq_url) == len(keys), "the upload DLQ")
    run.wait_idle()
    failed = Counter(status_reason[:2] for status_reason in _ledger(run).values())
    assert failed == Counter({("FAILED", "CONFIGURATION_ERROR"): len(keys)})

    # ... and after the fix (a redeploy with the right setting) the DLQ is redriven
    settings = stack.settings
    environment = dict(settings.extra_environment)
    environment.pop("COLLECTION_ID")
    stack.stop_pollers()
    stack.settings = replace(settings, extra_environment=environment)
    stack.start_pollers()
    assert stack.redrive(endpoints.upload_dlq_url, endpoints.upload_queue_url) == len(keys)
    run.settle_and_verify()

    # Then every photo reached a real outcome
    assert Counter(s[:2] for s in _ledger(run).values()) == Counter({("ACTIVE", None): len(keys)})


def test_association_dlq_redrive_after_a_bug_fix(scenario: Any) -> None:
    run: Scenario = scenario()
    stack = run.stack
    endpoints = stack.endpoints
    # Given an associate function with a bug that fails every batch of one user
    run.arm("break-association", "Quin")
    keys = [run.upload("Quin", i) for i in range(2)] + [run.upload("Ray", 1)]
    # When Quin's messages exhaust their deliveries, the photos are FAILED, Ray's ACTIVE
    wait_for(lambda: _depth(run, endpoints.association_dlq_url) >= 1, "the association DLQ")
    run.wait_idle()
    outcomes = Counter(s[:2] for s in _ledger(run).values())
    assert outcomes == Counter({("FAILED", "UNEXPECTED_ERROR"): 2, ("ACTIVE", None): 1})

    # ... and after the fix the DLQ is redriven
    run.disarm("break-association")
    assert stack.redrive(endpoints.association_dlq_url, endpoints.association_queue_url) >= 1
    run.settle_and_verify()

    # Then Quin's photos reached a real outcome too
    assert Counter(s[:2] for s in _ledger(run).values()) == Counter({("ACTIVE", None): len(keys)})
