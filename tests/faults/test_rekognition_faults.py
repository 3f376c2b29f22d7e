"""Rekognition misbehaving while photos flow: throttling bursts, quota throttling, conflicts while
a user is UPDATING, and internal errors, with every function running concurrently.

Each burst hits every operation the pipeline calls (IndexFaces, CreateUser, ListFaces,
AssociateFaces, SearchUsers from the state machine, DeleteFaces...) for a while, then ends.
Whatever failed in between is retried (botocore, SQS redeliveries, the state machine's Retry, the
conflict backoff) or finished by the reconciler; at the end every invariant holds, and since each
burst ends, every photo is ACTIVE.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from enroll_local.rekognition.errors import RekognitionError
from enroll_local.rekognition.quotas import FaultConfig
from enroll_local.rekognition.service import EmulatorConfig
from enroll_local.runner.ledger_report import read_ledger

from .conftest import TEST_UPDATE_DELAY_SECONDS, Scenario, wait_for

USERS = ("Ann", "Ben", "Cat")
PHOTOS_PER_USER = 6
#: A burst lasts until it has failed at least one call of each of these (the index function,
#: the associate function, the state machine's status check) ...
BURST_TARGETS = frozenset({"IndexFaces", "AssociateFaces", "SearchUsers"})
#: ... or this long (seconds).
BURST_MAX_SECONDS = 60


@contextmanager
def counting_errors(stack: Any) -> Iterator[Counter[tuple[str, str]]]:
    """Count the errors the emulator answers, by (operation, error code)."""
    errors: Counter[tuple[str, str]] = Counter()
    emulator = stack.emulator
    original = emulator.dispatch

    def dispatch(operation: str, params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        try:
            return original(operation, params, **kwargs)  # type: ignore[no-any-return]
        except RekognitionError as error:
            errors[(operation, error.code)] += 1
            raise

    emulator.dispatch = dispatch
    try:
        yield errors
    finally:
        emulator.dispatch = original


def _upload_all(run: Scenario) -> list[str]:
    return [run.upload(user, i) for i in range(PHOTOS_PER_USER) for user in USERS]


def _assert_every_photo_active(run: Scenario, keys: list[str]) -> None:
    photos = read_ledger(run.stack.clients.dynamodb, run.stack.endpoints.table).photos
    assert {p["key"] for p in photos} == set(keys)
    statuses = Counter((p["status"], p.get("reason")) for p in photos)
    assert statuses == Counter({("ACTIVE", None): len(keys)}), statuses


@pytest.mark.parametrize(
    ("faults", "expected_code"),
    [
        (FaultConfig(throttle_rate=0.5, seed=11), "ThrottlingException"),
        (FaultConfig(internal_error_rate=0.4, seed=12), "InternalServerError"),
    ],
    ids=["throttling-burst", "internal-errors"],
)
def test_a_burst_of_errors_on_every_operation(
    scenario: Any, faults: FaultConfig, expected_code: str
) -> None:
    run: Scenario = scenario()
    with counting_errors(run.stack) as errors:
        # Given a burst of errors on every Rekognition operation ...
        run.stack.emulator.set_faults(faults)
        # ... while 3 users upload 6 photos each
        keys = _upload_all(run)
        # ... lasting until it has hit each stage's calls: index, associate, activation
        wait_for(
            lambda: (
                {operation for (operation, code) in errors if code == expected_code}
                >= BURST_TARGETS
            ),
            f"{expected_code} on {sorted(BURST_TARGETS)}",
            timeout=BURST_MAX_SECONDS,
        )
        # When the burst ends
        run.stack.emulator.set_faults(FaultConfig())
        run.settle_and_verify()

    # Then every photo still ended ACTIVE
    _assert_every_photo_active(run, keys)


def test_quota_throttling_at_a_fifth_of_the_default_quotas(scenario: Any) -> None:
    # Given every operation limited to a fifth of its default TPS (AssociateFaces and CreateUser
    # 1/s, IndexFaces 10/s; a bucket holds one second's worth, so less than 1/s would refuse all)
    from enroll_local.rekognition.quotas import DEFAULT_QUOTA_TPS

    scaled = {operation: tps / 5 for operation, tps in DEFAULT_QUOTA_TPS.items()}
    run: Scenario = scenario(
        emulator_config=EmulatorConfig(
            update_delay_seconds=TEST_UPDATE_DELAY_SECONDS, quotas_enabled=True, quota_tps=scaled
        )
    )
    with counting_errors(run.stack) as errors:
        # When 3 users upload 6 photos each at once
        keys = _upload_all(run)
        run.settle_and_verify()

    # Then calls were refused for the quota, and every photo still ended ACTIVE
    assert any(code == "ProvisionedThroughputExceededException" for _, code in errors), errors
    _assert_every_photo_active(run, keys)


def _all_associated(run: Scenario, keys: list[str]) -> bool:
    """Whether every photo at ``keys`` is past INDEXED (its AssociateFaces call was made)."""
    photos = read_ledger(run.stack.clients.dynamodb, run.stack.endpoints.table).photos
    status = {p.get("key"): p.get("status") for p in photos}
    return all(status.get(key) in ("ASSOCIATED", "ACTIVE") for key in keys)


def test_conflicts_while_a_user_is_updating(scenario: Any) -> None:
    # Given a user that stays UPDATING for 6 s after each change, and AssociateFaces (or
    # DisassociateFaces, DeleteUser) answering ConflictException meanwhile
    run: Scenario = scenario(
        emulator_config=EmulatorConfig(
            update_delay_seconds=6.0, faults=FaultConfig(conflict_while_updating=1.0)
        )
    )
    with counting_errors(run.stack) as errors:
        # When each user's photos arrive in waves, each wave uploaded as soon as the previous
        # one is associated, so that its AssociateFaces meets the previous one's UPDATING (a
        # wave sent earlier would be associated with it, as its waiting siblings)
        keys: list[str] = []
        for wave in range(3):
            sent = [run.upload(user, wave * 2 + i) for user in USERS for i in range(2)]
            keys += sent
            wait_for(lambda sent=sent: _all_associated(run, sent), f"wave {wave} associated")
        run.settle_and_verify()

    # Then conflicts happened, cost no delivery (nothing in a DLQ), and every photo is ACTIVE
    assert errors[("AssociateFaces", "ConflictException")] > 0, errors
    depths = run.stack.queue_depths()
    assert all(depth == 0 for name, depth in depths.items() if name.endswith("-dlq")), depths
    _assert_every_photo_active(run, keys)
