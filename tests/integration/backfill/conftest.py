"""The local stack for the backfill tests: photos that were in the bucket before the pipeline.

One stack for the package (the handlers' clients are created once per "cold start"), reset by each
test. ``existing_photos`` puts objects while the bucket has no notification configuration, exactly
the state of a bucket that held photos before the pipeline was deployed: S3 sends nothing for
them. The configuration is then restored (S3 sends its s3:TestEvent, which the index stage
ignores) and the pollers start, so live uploads and the backfill meet the same running pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from enroll_local.rekognition.engines.synthetic import make_synthetic_photo
from enroll_local.runner.demo import wait_for_terminal_states
from enroll_local.runner.invariants import check_invariants
from enroll_local.runner.ledger_report import LedgerSnapshot
from enrollment.messages import parse_s3_notification

#: Activation re-checks every 1-2 s in tests (the deployed schedule waits up to 60 s).
TEST_WAIT_SCHEDULE = "1,1,1,2,2,2,4,4"
#: Seconds a user stays UPDATING after AssociateFaces in the emulator.
TEST_UPDATE_DELAY_SECONDS = 0.3
#: Budget for a scenario to settle (seconds); a healthy run needs a fraction of it.
SETTLE_TIMEOUT_SECONDS = 120


@pytest.fixture(scope="package")
def backfill_stack() -> Iterator[Any]:
    from enroll_local.runner.stack import LocalSettings, LocalStack
    from enroll_local.testing import aws_test_environment

    settings = LocalSettings(
        engine="synthetic",
        retry_delay_seconds=1,
        record_deliveries=True,
        start_pollers=False,
        extra_environment={
            "ACTIVATION_WAIT_SCHEDULE": TEST_WAIT_SCHEDULE,
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        },
    )
    with aws_test_environment(), LocalStack(settings) as stack:
        yield stack


@pytest.fixture
def stack(backfill_stack: Any) -> Iterator[Any]:
    """The stack, reset, pollers stopped until ``start_pipeline(stack)``."""
    from enroll_local.rekognition.service import EmulatorConfig

    backfill_stack.reset(
        engine="synthetic",
        emulator_config=EmulatorConfig(update_delay_seconds=TEST_UPDATE_DELAY_SECONDS),
    )
    yield backfill_stack
    backfill_stack.stop_pollers()


def photo(identity: str, variant: int) -> bytes:
    return make_synthetic_photo([{"identity": identity, "variant": variant}], seed=variant)


def existing_photos(stack: Any, per_user: dict[str, int]) -> list[str]:
    """Put ``per_user[user]`` photos of each user without S3 notifying them; their keys."""
    s3, bucket, prefix = stack.clients.s3, stack.endpoints.bucket, stack.endpoints.prefix
    saved = s3.get_bucket_notification_configuration(Bucket=bucket)
    saved.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    put: list[str] = []
    try:
        for user, count in per_user.items():
            for n in range(count):
                key = f"{prefix}{user}/{n:02}.jpg"
                s3.put_object(Bucket=bucket, Key=key, Body=photo(user, n))
                put.append(key)
    finally:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=saved)
    assert queued_objects(stack) == [], "S3 notified the 'existing' photos"
    return put


def queued_objects(stack: Any) -> list[str]:
    """Keys of the ObjectCreated records waiting in the upload queue (left visible)."""
    keys: list[str] = []
    while True:
        got = stack.clients.sqs.receive_message(
            QueueUrl=stack.endpoints.upload_queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=2,
        ).get("Messages", [])
        if not got:
            break
        for message in got:
            keys += [o.key for o in parse_s3_notification(message["Body"])]
    # What was looked at turns visible again after 2 s, for the pollers.
    return keys


def start_pipeline(stack: Any) -> None:
    stack.start_pollers()


def delivered_objects(stack: Any) -> list[str]:
    """Keys of every ObjectCreated record the index poller delivered so far (redeliveries too)."""
    poller = stack.pollers[0]
    return [o.key for body in list(poller.delivered_bodies) for o in parse_s3_notification(body)]


def settle(stack: Any, keys: list[str]) -> LedgerSnapshot:
    """Every key terminal, the stack idle, and every invariant holding."""
    snapshot, pending = wait_for_terminal_states(stack, keys, SETTLE_TIMEOUT_SECONDS)
    assert not pending, f"still pending after {SETTLE_TIMEOUT_SECONDS} s: {pending}"
    assert stack.wait_until_idle(SETTLE_TIMEOUT_SECONDS), "queues or executions never went idle"
    violations = check_invariants(stack).violations()
    assert violations == {}, violations
    return snapshot


def statuses(snapshot: LedgerSnapshot, keys: list[str]) -> dict[str, str]:
    by_key = snapshot.photos_by_key()
    return {key: str(by_key[key][0]["status"]) for key in keys}
