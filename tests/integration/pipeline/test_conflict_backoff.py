"""ConflictException while a user is UPDATING, on the local stack (issue 8 point 3).

The emulator answers every AssociateFaces of an UPDATING user with ConflictException (its opt-in
fault). The associate function must re-send such records with a delay of seconds, spend none of
their deliveries on it (no batch item failure, nothing in the DLQ), and every photo must still
end ACTIVE.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from enroll_local.rekognition.engines.synthetic import make_synthetic_photo
from enroll_local.rekognition.errors import RekognitionError
from enroll_local.rekognition.quotas import FaultConfig
from enroll_local.rekognition.service import EmulatorConfig
from enroll_local.runner.demo import wait_for_terminal_states
from enroll_local.runner.ledger_report import read_ledger

#: How long the user stays UPDATING after each association (seconds): long enough for the next
#: photo to meet it, short enough for the activations' test schedule (17 s in all).
UPDATE_DELAY_SECONDS = 2.0
#: Budget for the scenario (seconds); a healthy run needs about 10.
TIMEOUT_SECONDS = 45
#: Ledger poll period while waiting for the first photo (seconds).
POLL_SECONDS = 0.1


@pytest.fixture
def conflicting_stack(session_stack: Any) -> Iterator[Any]:
    """The shared stack, reset with conflicts while UPDATING, the associate poller unbatched
    (its 5 s window would outlast UPDATING and hide the conflict)."""
    previous = session_stack.settings
    session_stack.stop_pollers()
    session_stack.reset(
        engine="synthetic",
        emulator_config=EmulatorConfig(
            update_delay_seconds=UPDATE_DELAY_SECONDS,
            faults=FaultConfig(conflict_while_updating=1.0),
        ),
    )
    session_stack.settings = replace(session_stack.settings, associate_batching_window_seconds=0)
    session_stack.start_pollers()
    try:
        yield session_stack
    finally:
        session_stack.stop_pollers()
        session_stack.settings = previous


def _photo_status(stack: Any, key: str) -> str | None:
    items = read_ledger(stack.clients.dynamodb, stack.endpoints.table).photos_by_key().get(key)
    return str(items[0]["status"]) if items else None


def test_conflicts_back_off_in_seconds_spend_no_delivery_and_every_photo_ends_active(
    conflicting_stack: Any,
) -> None:
    stack = conflicting_stack
    prefix = f"{stack.endpoints.prefix}Carol/"
    conflicts = [0]
    emulator = stack.emulator
    original = emulator.dispatch

    def dispatch(operation: str, params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        try:
            return original(operation, params, **kwargs)  # type: ignore[no-any-return]
        except RekognitionError as error:
            if error.code == "ConflictException" and operation == "AssociateFaces":
                conflicts[0] += 1
            raise

    emulator.dispatch = dispatch
    try:
        # Given a user whose first photo was just associated (the user is now UPDATING)
        first = prefix + "0.jpg"
        stack.clients.s3.put_object(
            Bucket=stack.endpoints.bucket,
            Key=first,
            Body=make_synthetic_photo([{"identity": "Carol", "variant": 0}], seed=0),
        )
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while _photo_status(stack, first) not in ("ASSOCIATED", "ACTIVE"):
            assert time.monotonic() < deadline, f"{first} never associated"
            time.sleep(POLL_SECONDS)

        # When more photos of that user arrive while it is UPDATING
        keys = [first]
        for variant in (1, 2):
            key = f"{prefix}{variant}.jpg"
            stack.clients.s3.put_object(
                Bucket=stack.endpoints.bucket,
                Key=key,
                Body=make_synthetic_photo(
                    [{"identity": "Carol", "variant": variant}], seed=variant
                ),
            )
            keys.append(key)

        # Then every photo ends ACTIVE within seconds ...
        snapshot, pending = wait_for_terminal_states(stack, keys, TIMEOUT_SECONDS)
    finally:
        emulator.dispatch = original
    assert not pending, f"still pending: {pending}"
    statuses = {key: items[0]["status"] for key, items in snapshot.photos_by_key().items()}
    assert statuses == dict.fromkeys(keys, "ACTIVE")
    # ... the conflicts really happened, and none cost a delivery: no record of the associate
    # function failed (each conflict was a delayed re-send), and its DLQ is empty
    assert conflicts[0] >= 1
    [associate] = [
        p for p in stack.pollers if p.mapping.function_name == stack.config.associate_service_name
    ]
    assert associate.stats.failed == 0, associate.stats
    dlq = stack.clients.sqs.get_queue_attributes(
        QueueUrl=stack.endpoints.association_dlq_url,
        AttributeNames=["ApproximateNumberOfMessages"],
    )["Attributes"]
    assert dlq["ApproximateNumberOfMessages"] == "0"
