"""Erasure (right to be forgotten) against moto + the synthetic Rekognition emulator: the
tombstone, each step, resumption after a fault at any step, the guards that keep an ERASING
user from being enrolled again, and the erase-user handler."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from enrollment import keys
from enrollment.erasure import Erasure, ErasureIncomplete, ErasureMessage, Step, UnknownUser
from enrollment.ledger import Ledger
from enrollment.messages import MessageError
from tests.conftest import load_event

from .conftest import BUCKET, COLLECTION, sqs_event

ERASURE_QUEUE = "face-enrollment-erasure"


# ---- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def erasure(pipeline) -> Erasure:
    url = pipeline.sqs.create_queue(QueueName=ERASURE_QUEUE)["QueueUrl"]
    settings = replace(pipeline.settings, erasure_queue_url=url)
    return Erasure(settings, pipeline.rekognition, pipeline.s3, pipeline.ledger, pipeline.sqs)


class Fault(Exception):
    """Injected by a test (a crash, a network error: anything that interrupts the run)."""


class Faulty:
    """A client whose ``operation`` fails ``times`` times: before the real call, or right after
    it took effect (``after=True``: the process "dies" with the work done but not recorded)."""

    def __init__(self, client: Any, operation: str, *, after: bool = False, times: int = 1):
        self._client, self._operation, self._after, self.remaining = client, operation, after, times

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if name != self._operation:
            return real

        def call(**kwargs: Any) -> Any:
            if self.remaining <= 0:
                return real(**kwargs)
            self.remaining -= 1
            if self._after:
                real(**kwargs)
            raise Fault(f"{name} interrupted by the test")

        return call


def enroll(pipeline, uploads: dict[str, bytes]) -> None:
    """Upload, index and associate ``{key: photo}`` (in order)."""
    stage = pipeline.index_stage()
    for key, body in uploads.items():
        stage.handle_notification(pipeline.upload(key, body))
    messages = dict(pipeline.association_messages())
    if messages:
        _, failures = pipeline.associate_stage().handle_batch(messages)
        assert failures == {}


def versions_under(pipeline, prefix: str) -> list[tuple[str, bool]]:
    page = pipeline.s3.list_object_versions(Bucket=BUCKET, Prefix=prefix)
    return sorted(
        [(v["Key"], False) for v in page.get("Versions", [])]
        + [(m["Key"], True) for m in page.get("DeleteMarkers", [])]
    )


def partition(pipeline, user_id: str) -> list[dict[str, Any]]:
    items = pipeline.ddb.query(
        TableName="face-enrollment-ledger",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"USER#{user_id}"}},
        ConsistentRead=True,
    )["Items"]
    return [{k: next(iter(v.values())) for k, v in item.items()} for item in items]


def queued(pipeline, erasure: Erasure) -> list[dict[str, Any]]:
    """Drain the erasure queue: the message bodies."""
    out = []
    url = erasure.settings.erasure_queue_url
    while True:
        messages = pipeline.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not messages:
            return out
        for m in messages:
            out.append(json.loads(m["Body"]))
            pipeline.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


@dataclass
class Scenario:
    """alice enrolled with versions, a delete marker, a rejected photo and a face the ledger
    does not know; alicex (same leading characters) enrolled beside her."""

    face_ids: set[str]  # every face that came from alice's photos
    ledger_items: int  # alice's partition, tombstone excluded
    sibling_faces: set[str]
    sibling_versions: list[tuple[str, bool]]


@pytest.fixture
def scenario(pipeline, photo) -> Scenario:
    enroll(
        pipeline,
        {
            "enroll/alice/1.jpg": photo("alice", 1),
            "enroll/alice/2.jpg": photo("alice", 2),
            "enroll/alice/blank.jpg": photo(faces=[]),
            "enroll/alicex/1.jpg": photo("alicex", 1),
        },
    )
    enroll(pipeline, {"enroll/alice/1.jpg": photo("alice", 3)})  # a second version of 1.jpg
    pipeline.s3.delete_object(Bucket=BUCKET, Key="enroll/alice/2.jpg")  # a delete marker
    # A face the ledger never heard of, associated to alice directly.
    extra = pipeline.rekognition.index_faces(
        CollectionId=COLLECTION, Image={"Bytes": photo("alice", 4)}, MaxFaces=1
    )["FaceRecords"][0]["Face"]["FaceId"]
    pipeline.rekognition.associate_faces(CollectionId=COLLECTION, UserId="alice", FaceIds=[extra])

    faces = pipeline.user_face_ids("alice")
    assert extra in faces and len(faces) == 4
    assert pipeline.photo("alice", "enroll/alice/blank.jpg")["reason"] == "NO_FACE"
    assert versions_under(pipeline, "enroll/alice/") == [
        ("enroll/alice/1.jpg", False),
        ("enroll/alice/1.jpg", False),
        ("enroll/alice/2.jpg", False),
        ("enroll/alice/2.jpg", True),
        ("enroll/alice/blank.jpg", False),
    ]
    items = [i for i in partition(pipeline, "alice") if i["sk"] != "USER"]
    return Scenario(
        face_ids=faces,
        ledger_items=len(items),
        sibling_faces=pipeline.user_face_ids("alicex"),
        sibling_versions=versions_under(pipeline, "enroll/alicex/"),
    )


EXPECTED_COUNTS = {
    "faces_deleted": 4,
    "user_deleted": True,
    "objects_deleted": 3,  # 1.jpg, 2.jpg, blank.jpg
    "versions_deleted": 4,
    "delete_markers_deleted": 1,
}


def assert_erased(pipeline, scenario: Scenario, receipt: dict[str, Any]) -> None:
    """Nothing of alice is left but her tombstone; alicex is untouched; the receipt is true."""
    assert not (pipeline.collection_face_ids() & scenario.face_ids)
    users = pipeline.rekognition.list_users(CollectionId=COLLECTION)["Users"]
    assert "alice" not in {u["UserId"] for u in users}
    assert versions_under(pipeline, "enroll/alice/") == []
    (tombstone,) = partition(pipeline, "alice")
    assert (tombstone["sk"], tombstone["status"]) == ("USER", "DELETED")
    # The sibling whose prefix starts with the same characters keeps everything.
    assert pipeline.user_face_ids("alicex") == scenario.sibling_faces
    assert versions_under(pipeline, "enroll/alicex/") == scenario.sibling_versions
    assert pipeline.ledger.get_user("alicex")["status"] == "UPDATING"
    assert {k: receipt[k] for k in EXPECTED_COUNTS} == EXPECTED_COUNTS
    assert receipt["ledger_items_deleted"] == scenario.ledger_items
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", receipt["completed_at"])


# ---- request ---------------------------------------------------------------------------------


def test_request_for_an_unknown_user_raises(erasure):
    with pytest.raises(UnknownUser):
        erasure.request("nobody")
    with pytest.raises(UnknownUser):
        erasure.request("not/a user")


def test_a_user_known_only_by_an_object_gets_a_listable_tombstone(pipeline, erasure, photo):
    pipeline.s3.put_object(Bucket=BUCKET, Key="enroll/carol/x.jpg", Body=photo("carol"))

    stored = erasure.request("carol")

    assert stored["status"] == "ERASING"
    assert (stored["kind"], stored["user_id"]) == ("USER", "carol")
    assert stored["erasure"]["step"] == Step.COLLECT
    assert stored["erasure"]["face_ids"] == []
    assert pipeline.ledger.get_user("carol") == stored
    (message,) = queued(pipeline, erasure)
    assert message == {"user_id": "carol", "requested_at": stored["erasure"]["requested_at"]}


def test_a_second_delete_resends_then_changes_nothing(pipeline, erasure, scenario):
    first = erasure.request("alice")
    again = erasure.request("alice")  # still ERASING: the same erasure, its message again

    assert again["erasure"]["requested_at"] == first["erasure"]["requested_at"]
    assert [m["requested_at"] for m in queued(pipeline, erasure)] == [
        first["erasure"]["requested_at"]
    ] * 2

    receipt = erasure.run("alice")
    tombstone = pipeline.ledger.get_user("alice")
    assert erasure.request("alice") == tombstone  # DELETED and nothing left: unchanged
    assert erasure.run("alice") == receipt
    assert queued(pipeline, erasure) == []
    assert_erased(pipeline, scenario, receipt)


def test_a_deleted_tombstone_with_a_later_upload_is_erased_again(pipeline, erasure, photo):
    enroll(pipeline, {"enroll/dan/1.jpg": photo("dan", 1)})
    erasure.request("dan")
    first = erasure.run("dan")
    # Rejected uploads never recreate the user item: the tombstone stays DELETED.
    enroll(pipeline, {"enroll/dan/blank.jpg": photo(faces=[])})
    assert pipeline.ledger.get_user("dan")["status"] == "DELETED"

    stored = erasure.request("dan")

    assert stored["status"] == "ERASING"
    second = erasure.run("dan")
    assert (first["versions_deleted"], second["versions_deleted"]) == (1, 1)
    assert versions_under(pipeline, "enroll/dan/") == []


# ---- run ---------------------------------------------------------------------------------


def test_run_erases_everything_and_leaves_only_the_tombstone(pipeline, erasure, scenario):
    requested = erasure.request("alice")

    receipt = erasure.run("alice")

    assert_erased(pipeline, scenario, receipt)
    tombstone = pipeline.ledger.get_user("alice")
    record = tombstone["erasure"]
    assert record["step"] == Step.DONE
    assert record["requested_at"] == requested["erasure"]["requested_at"]
    assert record["completed_at"] == receipt["completed_at"]
    assert record["receipt"] == receipt
    assert set(record["face_ids"]) == scenario.face_ids
    assert "last_object" not in record
    assert (tombstone["kind"], tombstone["face_count"]) == ("USER", 0)


def test_a_stale_message_does_not_erase_a_user_enrolled_again(pipeline, erasure, photo):
    enroll(pipeline, {"enroll/erin/1.jpg": photo("erin", 1)})
    erasure.request("erin")
    erasure.run("erin")
    enroll(pipeline, {"enroll/erin/2.jpg": photo("erin", 2)})  # a new enrollment
    assert pipeline.ledger.get_user("erin")["status"] == "UPDATING"

    assert erasure.run("erin") == {}  # the old message delivered once more

    assert pipeline.photo("erin", "enroll/erin/2.jpg")["status"] == "ASSOCIATED"
    assert len(pipeline.user_face_ids("erin")) == 1


FAULTS = [
    # (client, operation, after): after=True = the call took effect, then the process died.
    ("rekognition", "list_faces", False),
    ("rekognition", "delete_user", False),
    ("rekognition", "delete_user", True),
    ("rekognition", "delete_faces", False),
    ("rekognition", "delete_faces", True),
    ("s3", "list_object_versions", False),
    ("s3", "delete_objects", False),
    ("ddb", "delete_item", False),
    ("ddb", "delete_item", True),
    ("ddb", "update_item", True),
]


@pytest.mark.parametrize(("client", "operation", "after"), FAULTS)
def test_an_interrupted_erasure_resumes_to_the_same_state(
    pipeline, erasure, scenario, client, operation, after
):
    erasure.request("alice")
    if client == "ddb":
        faulty = replace(
            erasure,
            ledger=Ledger(Faulty(pipeline.ddb, operation, after=after), "face-enrollment-ledger"),
        )
    else:
        faulty = replace(
            erasure, **{client: Faulty(getattr(erasure, client), operation, after=after)}
        )

    with pytest.raises(Fault):
        faulty.run("alice")
    interrupted = pipeline.ledger.get_user("alice")
    assert interrupted["status"] == "ERASING"

    receipt = erasure.run("alice")  # the next delivery (or the next DELETE's message)

    assert_erased(pipeline, scenario, receipt)


def test_partial_delete_objects_errors_are_retried_and_counted_once(pipeline, erasure, scenario):
    real = pipeline.s3

    class Refusing:
        """DeleteObjects refuses the first version of every call (S3 reports it in Errors)."""

        def delete_objects(self, **kwargs):
            objects = kwargs["Delete"]["Objects"]
            response = real.delete_objects(
                Bucket=kwargs["Bucket"], Delete={**kwargs["Delete"], "Objects": objects[1:]}
            )
            response["Errors"] = [{**objects[0], "Code": "InternalError", "Message": "retry"}]
            return response

        def __getattr__(self, name):
            return getattr(real, name)

    erasure.request("alice")
    with pytest.raises(ErasureIncomplete):
        replace(erasure, s3=Refusing()).run("alice")
    progress = pipeline.ledger.get_user("alice")["erasure"]
    assert progress["step"] == Step.OBJECTS
    assert (
        progress["receipt"]["versions_deleted"] + progress["receipt"]["delete_markers_deleted"] == 4
    )
    assert len(versions_under(pipeline, "enroll/alice/")) == 1

    assert_erased(pipeline, scenario, erasure.run("alice"))


def test_the_sweep_removes_work_that_raced_the_erasure(pipeline, erasure, scenario, photo):
    """A batch in flight recreates the user and associates a face, and an upload lands, after
    the erasure's DeleteUser: the final sweep removes them all."""
    real = pipeline.s3
    raced: list[str] = []

    class Racing:
        def delete_objects(self, **kwargs):
            if not raced:
                rekognition = pipeline.rekognition
                rekognition.create_user(CollectionId=COLLECTION, UserId="alice")
                face = rekognition.index_faces(
                    CollectionId=COLLECTION, Image={"Bytes": photo("alice", 9)}, MaxFaces=1
                )["FaceRecords"][0]["Face"]["FaceId"]
                rekognition.associate_faces(CollectionId=COLLECTION, UserId="alice", FaceIds=[face])
                real.put_object(Bucket=BUCKET, Key="enroll/alice/late.jpg", Body=b"late")
                raced.append(face)
            return real.delete_objects(**kwargs)

        def __getattr__(self, name):
            return getattr(real, name)

    erasure.request("alice")
    receipt = replace(erasure, s3=Racing()).run("alice")

    assert raced and raced[0] not in pipeline.collection_face_ids()
    scenario.face_ids.add(raced[0])
    assert receipt["faces_deleted"] == 5 and receipt["versions_deleted"] == 5
    assert receipt["objects_deleted"] == 4
    assert_erased(pipeline, scenario, {**receipt, **EXPECTED_COUNTS})


# ---- guards ------------------------------------------------------------------------------


def test_an_upload_while_erasing_is_rejected_before_indexing(pipeline, erasure, scenario, photo):
    erasure.request("alice")
    faces_before = pipeline.collection_face_ids()
    claims_before = [i for i in partition(pipeline, "alice") if i["sk"].startswith("CONTENT#")]

    outcome = pipeline.index_stage().handle_notification(
        pipeline.upload("enroll/alice/new.jpg", photo("alice", 7))
    )

    (result,) = outcome
    assert (result.status, result.reason) == ("REJECTED", "USER_BEING_ERASED")
    item = pipeline.photo("alice", "enroll/alice/new.jpg")
    assert "once the erasure has completed" in item["detail"]
    assert pipeline.collection_face_ids() == faces_before  # no IndexFaces
    claims = [i for i in partition(pipeline, "alice") if i["sk"].startswith("CONTENT#")]
    assert claims == claims_before  # no content claim either
    assert pipeline.association_messages() == []

    # The erasure then removes the rejected upload too (object, version and ledger item).
    receipt = erasure.run("alice")
    assert versions_under(pipeline, "enroll/alice/") == []
    assert receipt["ledger_items_deleted"] == scenario.ledger_items + 1


def test_a_batch_for_an_erasing_user_is_refused(pipeline, erasure, photo):
    pipeline.index_stage().handle_notification(pipeline.upload("enroll/fay/1.jpg", photo("fay", 1)))
    messages = dict(pipeline.association_messages())
    (message,) = messages.values()
    erasure.request("fay")

    outcomes, failures = pipeline.associate_stage().handle_batch(messages)

    assert failures == {}
    assert outcomes[0].rejected == {message.face_id: "USER_BEING_ERASED"}
    item = pipeline.photo("fay", "enroll/fay/1.jpg")
    assert (item["status"], item["reason"]) == ("REJECTED", "USER_BEING_ERASED")
    assert message.face_id not in pipeline.collection_face_ids()
    users = pipeline.rekognition.list_users(CollectionId=COLLECTION)["Users"]
    assert "fay" not in {u["UserId"] for u in users}  # no CreateUser
    assert pipeline.ledger.get_user("fay")["status"] == "ERASING"  # not resurrected
    assert pipeline.executions() == []


def test_mark_user_updating_refuses_an_erasing_user(pipeline, erasure, photo):
    enroll(pipeline, {"enroll/gil/1.jpg": photo("gil", 1)})
    erasure.request("gil")

    with pytest.raises(ClientError) as error:
        pipeline.ledger.mark_user_updating("gil", 1)

    assert error.value.response["Error"]["Code"] == "ConditionalCheckFailedException"


def test_after_the_erasure_a_new_upload_enrolls_a_new_user(pipeline, erasure, photo):
    enroll(pipeline, {"enroll/hal/1.jpg": photo("hal", 1)})
    erasure.request("hal")
    erasure.run("hal")

    enroll(pipeline, {"enroll/hal/again.jpg": photo("hal", 2)})

    assert pipeline.photo("hal", "enroll/hal/again.jpg")["status"] == "ASSOCIATED"
    user = pipeline.ledger.get_user("hal")
    assert user["status"] == "UPDATING" and "erasure" not in user
    assert len(pipeline.user_face_ids("hal")) == 1


# ---- message, token, handler --------------------------------------------------------------


def test_erasure_message_round_trip_and_validation():
    message = ErasureMessage("alice", "2026-11-30T20:15:24.512Z")
    assert ErasureMessage.from_json(message.to_json()) == message
    for body in ("nope", "[]", '{"user_id": "a b", "requested_at": "x"}', '{"user_id": "a"}'):
        with pytest.raises(MessageError):
            ErasureMessage.from_json(body)


def test_delete_user_token_is_per_request():
    token = keys.delete_user_token("alice", "2026-01-01T00:00:00.000Z", collection_id="c")
    assert token == keys.delete_user_token("alice", "2026-01-01T00:00:00.000Z", collection_id="c")
    assert token != keys.delete_user_token("alice", "2026-01-02T00:00:00.000Z", collection_id="c")
    assert token != keys.delete_user_token("alicex", "2026-01-01T00:00:00.000Z", collection_id="c")
    assert re.fullmatch(r"[a-zA-Z0-9\-_]{1,64}", token)


@dataclass
class FakeContext:
    function_name: str = "erase-user"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:erase-user"
    aws_request_id: str = "req-erase"


@pytest.fixture
def handler(pipeline, erasure, monkeypatch) -> Callable[..., Any]:
    from erase_user import handler as module

    for name, value in pipeline.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ERASURE_QUEUE_URL", erasure.settings.erasure_queue_url)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "erase-user")
    return module


def test_the_handler_runs_the_queued_erasure(pipeline, erasure, scenario, handler):
    erasure.request("alice")
    bodies = [json.dumps(m) for m in queued(pipeline, erasure)]

    response = handler.handler(sqs_event(bodies, ids=["e-1"]), FakeContext())

    assert response == {"batchItemFailures": []}
    assert_erased(pipeline, scenario, pipeline.ledger.get_user("alice")["erasure"]["receipt"])


def test_the_handler_fails_the_record_and_says_so_on_the_last_delivery(
    pipeline, erasure, scenario, handler, caplog
):
    erasure.request("alice")
    bodies = [json.dumps(m) for m in queued(pipeline, erasure)]
    worker = handler.erasure()
    real = worker.s3
    worker.s3 = Faulty(real, "delete_objects", times=10)
    try:
        first = handler.handler(sqs_event(bodies, ids=["e-1"]), FakeContext())
        last = handler.handler(sqs_event(bodies, ids=["e-1"], receive_count=5), FakeContext())
    finally:
        worker.s3 = real

    assert first == last == {"batchItemFailures": [{"itemIdentifier": "e-1"}]}
    said = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert [m for m in said if "erasure" in m] == [
        "erasure incomplete after its last delivery; the user stays ERASING and the next "
        "DELETE of the user resumes it"
    ]
    assert pipeline.ledger.get_user("alice")["status"] == "ERASING"

    # The next DELETE sends the message again; this delivery finishes the erasure.
    erasure.request("alice")
    bodies = [json.dumps(m) for m in queued(pipeline, erasure)]
    assert handler.handler(sqs_event(bodies, ids=["e-2"]), FakeContext()) == {
        "batchItemFailures": []
    }
    assert_erased(pipeline, scenario, pipeline.ledger.get_user("alice")["erasure"]["receipt"])


def test_the_sample_event_and_malformed_messages(pipeline, handler):
    # The sample names a user with no erasure under way: nothing to do, nothing failed.
    assert handler.handler(load_event("erasure_sqs"), FakeContext()) == {"batchItemFailures": []}
    response = handler.handler(sqs_event(["{}"], ids=["bad"]), FakeContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "bad"}]}


def test_objects_are_counted_once_across_pages_and_resumed_runs(
    pipeline, erasure, photo, monkeypatch
):
    """Pages of 2 entries cut keys with several versions; a run dies mid-way."""
    import enrollment.erasure as module

    monkeypatch.setattr(module, "S3_LIST_PAGE_SIZE", 2)
    for name, versions in (("a", 3), ("b", 1), ("c", 2), ("d", 1)):
        for v in range(versions):
            pipeline.s3.put_object(
                Bucket=BUCKET, Key=f"enroll/ivy/{name}.jpg", Body=f"{name}{v}".encode()
            )
    pipeline.s3.delete_object(Bucket=BUCKET, Key="enroll/ivy/c.jpg")
    pipeline.s3.put_object(Bucket=BUCKET, Key="enroll/ivyx/a.jpg", Body=b"x")
    erasure.request("ivy")

    with pytest.raises(Fault):
        _die_on_third_page(erasure, pipeline.s3).run("ivy")
    assert 0 < len(versions_under(pipeline, "enroll/ivy/")) < 8
    receipt = erasure.run("ivy")

    assert versions_under(pipeline, "enroll/ivy/") == []
    assert versions_under(pipeline, "enroll/ivyx/") == [("enroll/ivyx/a.jpg", False)]
    assert (
        receipt["objects_deleted"],
        receipt["versions_deleted"],
        receipt["delete_markers_deleted"],
    ) == (4, 7, 1)


def _die_on_third_page(erasure: Erasure, s3: Any) -> Erasure:
    class Dying:
        calls = 0

        def delete_objects(self, **kwargs):
            Dying.calls += 1
            if Dying.calls == 3:
                raise Fault("the worker died on the third page")
            return s3.delete_objects(**kwargs)

        def __getattr__(self, name):
            return getattr(s3, name)

    return replace(erasure, s3=Dying())
