"""No dead ends, on the local stack (issue #8): the same bytes uploaded again after a rejection
whose cause went away are enrolled, while a rejection that is final for the bytes stays a
DUPLICATE_PHOTO of the first upload (README, "Photo outcomes").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from enroll_local.rekognition.engines.synthetic import make_synthetic_photo
from enroll_local.runner.demo import wait_for_terminal_states
from enroll_local.runner.ledger_report import LedgerSnapshot, read_ledger

#: Budget for one step to settle (seconds); a healthy run needs a fraction of it.
SETTLE_TIMEOUT_SECONDS = 90


@contextlib.contextmanager
def function_environment(stack: Any, **values: str) -> Iterator[None]:
    """Run the pollers with ``values`` added to every function's environment (a redeploy)."""
    previous = stack.settings
    stack.stop_pollers()
    stack.settings = replace(previous, extra_environment={**previous.extra_environment, **values})
    stack.start_pollers()
    try:
        yield
    finally:
        stack.stop_pollers()
        stack.settings = previous


def upload_and_settle(stack: Any, uploads: dict[str, bytes]) -> LedgerSnapshot:
    """Upload ``{key: bytes}``; wait until each key is terminal and nothing runs any more."""
    for key, data in uploads.items():
        stack.clients.s3.put_object(Bucket=stack.endpoints.bucket, Key=key, Body=data)
    _, pending = wait_for_terminal_states(stack, list(uploads), SETTLE_TIMEOUT_SECONDS)
    assert not pending, f"still pending after {SETTLE_TIMEOUT_SECONDS} s: {pending}"
    assert stack.wait_until_idle(SETTLE_TIMEOUT_SECONDS), "queues or executions never went idle"
    return read_ledger(stack.clients.dynamodb, stack.endpoints.table)


def outcome(snapshot: LedgerSnapshot, key: str) -> tuple[str, str | None]:
    [item] = snapshot.photos_by_key()[key]
    return item["status"], item.get("reason")


def test_a_fixed_rejection_enrolls_on_reupload_and_a_final_one_stays_a_duplicate(
    pipeline: Any,
) -> None:
    # Given a user at a cap of one face, whose second photo is rejected USER_FACE_LIMIT, and a
    # photo without a face (NO_FACE: final for its bytes)
    stack = pipeline()
    user = f"{stack.endpoints.prefix}Erin/"
    second = make_synthetic_photo([{"identity": "Erin", "variant": 2}], seed=2)
    wall = make_synthetic_photo([], seed=7)
    with function_environment(stack, MAX_FACES_PER_USER="1"):
        upload_and_settle(
            stack, {f"{user}1.jpg": make_synthetic_photo([{"identity": "Erin", "variant": 1}])}
        )
        before = upload_and_settle(stack, {f"{user}2.jpg": second, f"{user}wall.jpg": wall})
    assert outcome(before, f"{user}2.jpg") == ("REJECTED", "USER_FACE_LIMIT")
    assert outcome(before, f"{user}wall.jpg") == ("REJECTED", "NO_FACE")

    # When the cap is raised (the user is under it again) and the same bytes come back
    with function_environment(stack, MAX_FACES_PER_USER="2"):
        after = upload_and_settle(
            stack, {f"{user}2 again.jpg": second, f"{user}wall again.jpg": wall}
        )

    # Then the photo rejected for the cap is enrolled, the faceless one is a duplicate
    assert outcome(after, f"{user}2 again.jpg") == ("ACTIVE", None)
    assert outcome(after, f"{user}wall again.jpg") == ("REJECTED", "DUPLICATE_PHOTO")
    [duplicate] = after.photos_by_key()[f"{user}wall again.jpg"]
    assert f"{user}wall.jpg" in duplicate["detail"]
    erin = after.users_by_id()["Erin"]
    assert (erin["status"], erin["face_count"]) == ("ACTIVE", 2)
    # and every face in the collection is an ACTIVE photo's face, held by the user.
    faces = stack.clients.rekognition.list_faces(CollectionId=stack.endpoints.collection_id)
    active = {p["face_id"] for p in after.photos if p["status"] == "ACTIVE"}
    assert {f["FaceId"] for f in faces["Faces"]} == active
    assert all(f.get("UserId") == "Erin" for f in faces["Faces"])
