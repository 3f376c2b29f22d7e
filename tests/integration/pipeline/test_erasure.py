"""Erasure acceptance on the local stack (issue #6): Erasure.request (what DELETE /users/{id}
calls) -> erasure queue -> poller -> erase-user handler -> Rekognition emulator, S3, ledger.

After the erasure the collection holds no face from the user's photos (nor the one the ledger
never knew), the bucket no object, version or delete marker under the prefix, the ledger only
the tombstone; a user whose id starts with the same characters is untouched. A second DELETE
is harmless, an erasure interrupted at a step finishes by itself or on the next DELETE with the
same end state and receipt, an upload while ERASING is refused, and after the erasure a new
upload enrolls a new user.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from enroll_local.rekognition.engines.synthetic import make_synthetic_photo
from enrollment.erasure import Erasure, Step
from enrollment.ledger import Ledger
from enrollment.settings import Settings

from .test_end_to_end import list_faces, photo, upload

#: Budget for the pipeline or an erasure to settle (seconds); a healthy run needs a fraction.
SETTLE_TIMEOUT_SECONDS = 90


class Fault(Exception):
    """Injected by the test: the worker "dies" (after the call took effect, when ``after``)."""


class Faulty:
    """A client whose ``operation`` fails ``times`` times (before or right after the call)."""

    def __init__(self, client: Any, operation: str, *, after: bool = False, times: int = 1):
        self._client, self._operation, self._after, self.remaining = client, operation, after, times
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if name != self._operation:
            return real

        def call(**kwargs: Any) -> Any:
            self.calls += 1
            if self.remaining <= 0:
                return real(**kwargs)
            self.remaining -= 1
            if self._after:
                real(**kwargs)
            raise Fault(f"{name} interrupted by the test")

        return call


@contextlib.contextmanager
def erasure_queue(stack: Any) -> Iterator[str]:
    """The stack's erasure queue with a poller running the erase-user handler on it.

    The local stack has both; should it lack them, they are made here the same way.
    """
    from enroll_local.runner.pollers import EventSourceMapping, QueuePoller
    from erase_user.handler import handler as erase_handler

    url = getattr(stack.endpoints, "erasure_queue_url", None)
    if url and any(p.mapping.queue_url == url for p in stack.pollers):
        yield url
        return
    config = stack.config
    url = url or stack.clients.sqs.create_queue(QueueName=config.erasure_queue_name)["QueueUrl"]
    environment = {
        **stack.lambda_environment(config.erasure_service_name),
        "ERASURE_QUEUE_URL": url,
    }
    poller = QueuePoller(
        EventSourceMapping(
            function_name=config.erasure_service_name,
            handler=erase_handler,
            environment=environment,
            queue_url=url,
            queue_arn=f"arn:aws:sqs:{stack.endpoints.region}:{stack.endpoints.account_id}:"
            f"{config.erasure_queue_name}",
            batch_size=1,
            batching_window_seconds=0,
            function_timeout_seconds=300,
            in_flight_visibility_seconds=300,
            retry_delay_seconds=1,
        ),
        stack.clients.sqs,
        region=stack.endpoints.region,
        account_id=stack.endpoints.account_id,
        invoke_lock=getattr(stack, "_invoke_lock", None),
    )
    poller.start()
    try:
        yield url
    finally:
        poller.stop()


def erasure_for(stack: Any, queue_url: str) -> Erasure:
    """An Erasure as the query API builds it: the deployed settings, the stack's clients."""
    settings = Settings.from_env(stack.lambda_environment(stack.config.erasure_service_name))
    return Erasure(
        replace(settings, erasure_queue_url=queue_url),
        rekognition=stack.clients.rekognition,
        s3=stack.clients.s3,
        ledger=Ledger(stack.clients.dynamodb, stack.endpoints.table),
        sqs=stack.clients.sqs,
    )


def wait_for(predicate: Any, what: str, timeout: float = SETTLE_TIMEOUT_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def settle(stack: Any) -> None:
    assert stack.wait_until_idle(SETTLE_TIMEOUT_SECONDS), "the pipeline never went idle"


def versions_under(stack: Any, prefix: str) -> list[tuple[str, bool]]:
    page = stack.clients.s3.list_object_versions(Bucket=stack.endpoints.bucket, Prefix=prefix)
    return sorted(
        [(v["Key"], False) for v in page.get("Versions", [])]
        + [(m["Key"], True) for m in page.get("DeleteMarkers", [])]
    )


def partition(stack: Any, user_id: str) -> list[dict[str, Any]]:
    items = stack.clients.dynamodb.query(
        TableName=stack.endpoints.table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"USER#{user_id}"}},
        ConsistentRead=True,
    )["Items"]
    return [{k: next(iter(v.values())) for k, v in item.items()} for item in items]


def user_item(stack: Any, user_id: str) -> dict[str, Any]:
    return Ledger(stack.clients.dynamodb, stack.endpoints.table).get_user(user_id) or {}


def photo_items(stack: Any, user_id: str) -> list[dict[str, Any]]:
    return [i for i in partition(stack, user_id) if i["sk"].startswith("PHOTO#")]


@dataclass
class Enrolled:
    """Bob, enrolled with versions, a delete marker, a rejected photo and a face the ledger
    never knew; Bobx (same leading characters) enrolled beside him."""

    faces: set[str]  # every face that came from Bob's photos, and the unknown one
    sibling: tuple[Any, ...]  # Bobx's faces, object versions and ledger items


def sibling_state(stack: Any) -> tuple[Any, ...]:
    faces = sorted((f["FaceId"], f.get("UserId")) for f in list_faces(stack))
    bobx_faces = [f for f in faces if f[1] == "Bobx"]
    items = sorted((i["sk"], i.get("status")) for i in partition(stack, "Bobx"))
    return bobx_faces, versions_under(stack, "enroll/Bobx/"), items


def enroll_bob(stack: Any) -> Enrolled:
    upload(stack, "enroll/Bob/1.jpg", photo("Bob", 1))
    upload(stack, "enroll/Bob/1.jpg", photo("Bob", 2))  # a second version of the same key
    upload(stack, "enroll/Bob/2.jpg", photo("Bob", 3))
    upload(stack, "enroll/Bob/blank.jpg", make_synthetic_photo([], seed=5))
    upload(stack, "enroll/Bobx/1.jpg", photo("Bobx", 1))
    settle(stack)
    stack.clients.s3.delete_object(Bucket=stack.endpoints.bucket, Key="enroll/Bob/2.jpg")
    rekognition, collection = stack.clients.rekognition, stack.endpoints.collection_id
    extra = rekognition.index_faces(
        CollectionId=collection, Image={"Bytes": photo("Bob", 4)}, MaxFaces=1
    )["FaceRecords"][0]["Face"]["FaceId"]
    rekognition.associate_faces(CollectionId=collection, UserId="Bob", FaceIds=[extra])

    photos = photo_items(stack, "Bob")
    assert sorted((p["status"], p.get("reason")) for p in photos) == [
        ("ACTIVE", None),
        ("ACTIVE", None),
        ("ACTIVE", None),
        ("REJECTED", "NO_FACE"),
    ]
    assert user_item(stack, "Bobx")["status"] == "ACTIVE"
    faces = {p["face_id"] for p in photos if p.get("face_id")} | {extra}
    assert {f["FaceId"] for f in list_faces(stack) if f.get("UserId") == "Bob"} == faces
    assert [m for _, m in versions_under(stack, "enroll/Bob/")].count(True) == 1
    return Enrolled(faces=faces, sibling=sibling_state(stack))


def assert_erased(stack: Any, enrolled: Enrolled) -> dict[str, Any]:
    """Only the tombstone is left of Bob, and Bobx is untouched; the tombstone."""
    faces = list_faces(stack)
    assert not enrolled.faces & {f["FaceId"] for f in faces}
    assert not [f for f in faces if f.get("UserId") == "Bob"]
    users = stack.clients.rekognition.list_users(CollectionId=stack.endpoints.collection_id)
    assert "Bob" not in {u["UserId"] for u in users["Users"]}
    assert versions_under(stack, "enroll/Bob/") == []
    (tombstone,) = partition(stack, "Bob")
    assert tombstone["sk"] == "USER"
    assert sibling_state(stack) == enrolled.sibling
    item = user_item(stack, "Bob")
    assert item["status"] == "DELETED" and item["erasure"]["step"] == Step.DONE
    return item


def receipt_counts(item: dict[str, Any]) -> dict[str, Any]:
    receipt = item["erasure"]["receipt"]
    assert receipt["completed_at"] == item["erasure"]["completed_at"]
    return {
        k: (v if isinstance(v, bool) else int(v)) for k, v in receipt.items() if k != "completed_at"
    }


def test_delete_erases_everything_refuses_uploads_meanwhile_and_is_harmless_twice(
    pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Bob enrolled (versions, a delete marker, a rejected photo, an unknown face) and Bobx
    # (handlers in-process: the worker's fault is patched into its module)
    stack = pipeline("synthetic", isolation="inline")
    enrolled = enroll_bob(stack)
    with erasure_queue(stack) as queue_url:
        erasure = erasure_for(stack, queue_url)
        # ... and a worker that dies right after DeleteUser took effect, at every delivery
        from erase_user import handler as erase_module

        dying = Faulty(stack.clients.rekognition, "delete_user", after=True, times=1000)
        monkeypatch.setattr(erase_module, "erasure", lambda: replace(erasure, rekognition=dying))

        # When Bob's erasure is requested
        requested = erasure.request("Bob")
        assert requested["status"] == "ERASING"
        wait_for(lambda: dying.calls >= 2, "the worker to be retried")

        # Then while it is stuck ERASING, a new upload is refused before any face is stored
        faces_before = {f["FaceId"] for f in list_faces(stack)}
        upload(stack, "enroll/Bob/during.jpg", photo("Bob", 6))
        during = wait_for(
            lambda: [p for p in photo_items(stack, "Bob") if p["key"] == "enroll/Bob/during.jpg"],
            "the upload during the erasure to be recorded",
        )
        assert (during[0]["status"], during[0]["reason"]) == ("REJECTED", "USER_BEING_ERASED")
        assert {f["FaceId"] for f in list_faces(stack)} == faces_before
        assert user_item(stack, "Bob")["status"] == "ERASING"
        assert user_item(stack, "Bob")["erasure"]["step"] == Step.USER

        # When the worker recovers and Bob is deleted again (the message may be in the DLQ)
        monkeypatch.setattr(erase_module, "erasure", lambda: erasure)
        again = erasure.request("Bob")
        assert again["erasure"]["requested_at"] == requested["erasure"]["requested_at"]
        wait_for(lambda: user_item(stack, "Bob").get("status") == "DELETED", "the erasure")

        # Then only the tombstone is left, with a true receipt (the DeleteUser whose effect
        # was never recorded is known from its token's replay)
        item = assert_erased(stack, enrolled)
        assert receipt_counts(item) == {
            "faces_deleted": 4,
            "user_deleted": True,
            "objects_deleted": 4,  # 1.jpg, 2.jpg, blank.jpg, during.jpg
            "versions_deleted": 5,
            "delete_markers_deleted": 1,
            "ledger_items_deleted": 9,  # 5 photos + 4 content claims
        }
        assert set(item["erasure"]["face_ids"]) == enrolled.faces

        # When Bob is deleted once more, nothing changes
        assert erasure.request("Bob") == user_item(stack, "Bob")
        assert erasure.run("Bob") == item["erasure"]["receipt"]
        settle(stack)
        assert user_item(stack, "Bob") == item

        # And a new upload after the erasure enrolls a new user
        upload(stack, "enroll/Bob/new.jpg", photo("Bob", 7))
        settle(stack)
        (new,) = photo_items(stack, "Bob")
        assert (new["key"], new["status"]) == ("enroll/Bob/new.jpg", "ACTIVE")
        fresh = user_item(stack, "Bob")
        assert fresh["status"] == "ACTIVE" and "erasure" not in fresh
        assert fresh["created_at"] > item["erasure"]["completed_at"]


@pytest.mark.parametrize(
    ("client", "operation", "after"),
    [("s3", "delete_objects", False), ("rekognition", "delete_faces", True)],
)
def test_an_erasure_interrupted_between_steps_finishes_by_itself(
    pipeline: Any, monkeypatch: pytest.MonkeyPatch, client: str, operation: str, after: bool
) -> None:
    # Given Bob enrolled, and a worker whose first run fails at one step (patched in-process)
    stack = pipeline("synthetic", isolation="inline")
    enrolled = enroll_bob(stack)
    with erasure_queue(stack) as queue_url:
        erasure = erasure_for(stack, queue_url)
        from erase_user import handler as erase_module

        faulty = Faulty(getattr(erasure, client), operation, after=after)
        monkeypatch.setattr(erase_module, "erasure", lambda: replace(erasure, **{client: faulty}))

        # When the erasure is requested
        erasure.request("Bob")

        # Then SQS delivers the message again and the erasure resumes to the same end state
        wait_for(lambda: user_item(stack, "Bob").get("status") == "DELETED", "the erasure")
        assert faulty.remaining == 0 and faulty.calls >= 2
        item = assert_erased(stack, enrolled)
        assert receipt_counts(item) == {
            "faces_deleted": 4,
            "user_deleted": True,
            "objects_deleted": 3,
            "versions_deleted": 4,
            "delete_markers_deleted": 1,
            "ledger_items_deleted": 8,
        }
