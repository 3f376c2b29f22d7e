"""Functions that die mid-invocation, and an activation that gives up before the user is ACTIVE.

A killed execution environment is what Lambda gives on a crash, an out-of-memory kill or a
timeout: the batch fails as a whole and comes back after the retry delay, and the effects made
before the kill (a face indexed, faces associated) are already in Rekognition while the ledger
knows nothing of them.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from enroll_local.rekognition.service import EmulatorConfig
from enroll_local.runner.ledger_report import read_ledger

from .conftest import Scenario, wait_for

USERS = ("Kim", "Lee")
PHOTOS_PER_USER = 4


def _statuses(run: Scenario) -> Counter[tuple[str, str | None]]:
    photos = read_ledger(run.stack.clients.dynamodb, run.stack.endpoints.table).photos
    return Counter((p["status"], p.get("reason")) for p in photos)


def _crash_errors(run: Scenario) -> list[str]:
    return [e for poller in run.stack.pollers for e in poller.stats.errors if "exited" in e]


@pytest.mark.parametrize(
    "fault", ["kill-after-index-faces", "kill-after-associate-faces"], ids=["index", "associate"]
)
def test_a_function_killed_between_rekognition_and_the_ledger(scenario: Any, fault: str) -> None:
    run: Scenario = scenario()
    # Given a function that dies right after its Rekognition call, before the ledger write
    run.arm(fault)
    # When photos arrive
    keys = [run.upload(user, i) for i in range(PHOTOS_PER_USER) for user in USERS]
    report = run.settle_and_verify()

    # Then the process really died, its batch came back, and every photo is ACTIVE once, with
    # one face each (the re-delivery found the face IndexFaces/AssociateFaces had made)
    assert run.fired(fault)
    assert _crash_errors(run), "the invocation did not fail"
    assert _statuses(run) == Counter({("ACTIVE", None): len(keys)})
    assert report.faces == len(keys)


def test_an_activation_that_times_out_and_then_the_user_turns_active(scenario: Any) -> None:
    # Given users that stay UPDATING for 8 s, and activations that give up after 2 s of checks
    run: Scenario = scenario(
        emulator_config=EmulatorConfig(update_delay_seconds=8.0),
        environment={"ACTIVATION_WAIT_SCHEDULE": "1,1"},
    )
    keys = [run.upload(user, i) for i in range(2) for user in USERS]
    # When the activations time out, the photos are FAILED with the reason ...
    wait_for(
        lambda: _statuses(run)[("FAILED", "ACTIVATION_TIMEOUT")] == len(keys),
        "the activations to time out",
    )
    run.wait_idle()
    # ... and the users turn ACTIVE later in Rekognition
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        users = run.stack.clients.rekognition.list_users(
            CollectionId=run.stack.endpoints.collection_id
        )["Users"]
        if {u["UserId"]: u["UserStatus"] for u in users} == dict.fromkeys(USERS, "ACTIVE"):
            break
        time.sleep(0.5)

    # Then the reconciler re-checks them: the photos become ACTIVE, and every invariant holds
    report = run.settle_and_verify()
    assert run.first_reconcile is not None and run.first_reconcile["total"] > 0
    assert _statuses(run) == Counter({("ACTIVE", None): len(keys)})
    assert report.faces == len(keys)
