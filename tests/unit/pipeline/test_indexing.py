"""Index stage against moto + the synthetic Rekognition emulator."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from enrollment.indexing import IGNORED, IndexRetryableError
from enrollment.keys import UNROUTED_PK, photo_id

from .conftest import BUCKET, notification


def test_one_face_is_indexed_and_announced(pipeline, photo):
    body = pipeline.upload("enroll/alice/a.jpg", photo("alice"))

    [outcome] = pipeline.index_stage().handle_notification(body)

    assert outcome.status == "INDEXED"
    item = pipeline.photo("alice", "enroll/alice/a.jpg")
    assert item["status"] == "INDEXED"
    assert item["face_id"] == outcome.face_id
    assert 0 < item["quality"] <= 100
    [(_, message)] = pipeline.association_messages()
    assert message.user_id == "alice"
    assert message.face_id == outcome.face_id
    assert message.photo_id == item["photo_id"]
    assert message.key == "enroll/alice/a.jpg"
    # The API shows when the face was indexed: the ledger and the message carry the same time.
    assert item["indexed_at"] == message.indexed_at
    # The ExternalImageId IndexFaces stored is the photo id.
    face = pipeline.rekognition.list_faces(CollectionId="face-enrollment")["Faces"][0]
    assert face["ExternalImageId"] == item["photo_id"]


def test_same_notification_twice_changes_nothing(pipeline, photo):
    body = pipeline.upload("enroll/alice/a.jpg", photo("alice"))
    stage = pipeline.index_stage()
    first = stage.handle_notification(body)
    item_before = pipeline.photo("alice", "enroll/alice/a.jpg")

    second = stage.handle_notification(body)

    assert second[0].replayed and second[0].face_id == first[0].face_id
    assert pipeline.photo("alice", "enroll/alice/a.jpg") == item_before
    assert len(pipeline.collection_face_ids()) == 1
    # The replay re-sends the (idempotent) association message of an INDEXED photo, with the
    # original indexing time (keep order follows it under the reject cap policy).
    messages = pipeline.association_messages()
    assert {m.face_id for _, m in messages} == {first[0].face_id}
    assert {m.indexed_at for _, m in messages} == {item_before["indexed_at"]}


@pytest.mark.parametrize(
    "key",
    [
        "enroll/alice/summer holiday.jpg",
        "enroll/alice/1+1=2.jpg",
        "enroll/alice/été à Noël ü 写真.jpg",
        "enroll/a.b-c_d:e/100% sure.jpg",
    ],
)
def test_awkward_keys_are_decoded_before_indexing(pipeline, photo, key):
    body = pipeline.upload(key, photo("alice"))
    assert json.loads(body)["Records"][0]["s3"]["object"]["key"] != key  # really encoded

    [outcome] = pipeline.index_stage().handle_notification(body)

    assert outcome.status == "INDEXED", outcome
    user = key.split("/")[1]
    assert pipeline.photo(user, key)["key"] == key


def test_s3_test_event_is_ignored(pipeline):
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET})
    assert pipeline.index_stage().handle_notification(body) == []
    assert pipeline.association_messages() == []


@pytest.mark.parametrize("key", ["other/alice/a.jpg", "enroll/alice/"])
def test_keys_outside_the_prefix_and_folder_markers_are_ignored(pipeline, photo, key):
    body = pipeline.upload(key, photo("alice"))
    [outcome] = pipeline.index_stage().handle_notification(body)
    assert outcome.status == IGNORED
    assert pipeline.collection_face_ids() == set()


@pytest.mark.parametrize("key", ["enroll/a.jpg", "enroll/bad user/a.jpg", "enroll/x/y/z.jpg"])
def test_key_without_valid_user_id_is_rejected_unrouted(pipeline, photo, key):
    body = pipeline.upload(key, photo("alice"))

    [outcome] = pipeline.index_stage().handle_notification(body)

    assert (outcome.status, outcome.reason) == ("REJECTED", "INVALID_USER_ID")
    version = pipeline.s3.head_object(Bucket=BUCKET, Key=key)["VersionId"]
    item = pipeline.ledger._get(UNROUTED_PK, f"PHOTO#{photo_id(BUCKET, key, version)}")
    assert item is not None and item["reason"] == "INVALID_USER_ID"
    assert pipeline.collection_face_ids() == set()


def test_group_photo_is_rejected_without_orphan_faces(pipeline, photo):
    group = photo(
        faces=[
            {"identity": "alice", "box": [0.05, 0.1, 0.4, 0.5]},
            {"identity": "bob", "box": [0.55, 0.1, 0.35, 0.45]},
        ]
    )
    body = pipeline.upload("enroll/alice/group.jpg", group)

    [outcome] = pipeline.index_stage().handle_notification(body)

    assert (outcome.status, outcome.reason) == ("REJECTED", "MULTIPLE_FACES")
    assert pipeline.collection_face_ids() == set()
    assert pipeline.association_messages() == []


def test_group_photo_with_index_max_faces_above_one_still_leaves_no_orphan(pipeline, photo):
    group = photo(
        faces=[
            {"identity": "alice", "box": [0.05, 0.1, 0.4, 0.5]},
            {"identity": "bob", "box": [0.55, 0.1, 0.35, 0.45]},
        ]
    )
    body = pipeline.upload("enroll/alice/group.jpg", group)

    [outcome] = pipeline.index_stage(index_max_faces=10).handle_notification(body)

    assert outcome.reason == "MULTIPLE_FACES"
    assert pipeline.collection_face_ids() == set()


def test_group_photo_with_largest_policy_keeps_only_the_largest(pipeline, photo):
    group = photo(
        faces=[
            {"identity": "alice", "box": [0.05, 0.1, 0.45, 0.55]},
            {"identity": "bob", "box": [0.6, 0.1, 0.3, 0.35]},
        ]
    )
    body = pipeline.upload("enroll/alice/group.jpg", group)

    [outcome] = pipeline.index_stage(
        multi_face_policy="largest", index_max_faces=5
    ).handle_notification(body)

    assert outcome.status == "INDEXED"
    assert pipeline.collection_face_ids() == {outcome.face_id}


def test_no_face_and_filtered_faces_say_why(pipeline, photo):
    stage = pipeline.index_stage()
    empty = stage.handle_notification(pipeline.upload("enroll/alice/wall.jpg", photo(faces=[])))
    blurry = stage.handle_notification(
        pipeline.upload("enroll/alice/blurry.jpg", photo("alice", sharpness=2.0))
    )

    assert empty[0].reason == "NO_FACE"
    assert blurry[0].reason == "LOW_SHARPNESS"
    assert "LOW_SHARPNESS" in pipeline.photo("alice", "enroll/alice/blurry.jpg")["detail"]


def test_terminal_rekognition_errors_are_rejections(pipeline, photo):
    stage = pipeline.index_stage()
    not_image = stage.handle_notification(pipeline.upload("enroll/alice/doc.jpg", b"%PDF-1.4"))
    gone = notification("enroll/alice/never-uploaded.jpg", "abc123", None)
    missing = stage.handle_notification(gone)

    assert not_image[0].reason == "INVALID_IMAGE_FORMAT"
    assert missing[0].reason == "OBJECT_NOT_FOUND"
    assert pipeline.ledger.get_photo("alice", missing[0].photo_id)["status"] == "REJECTED"


def test_tiny_image_is_invalid_image_with_the_message(pipeline, photo):
    from enroll_local.rekognition.engines.synthetic import make_synthetic_photo

    tiny = make_synthetic_photo([{"identity": "alice"}], size=(60, 60))
    [outcome] = pipeline.index_stage().handle_notification(
        pipeline.upload("enroll/alice/tiny.jpg", tiny)
    )
    assert outcome.reason == "INVALID_IMAGE"
    assert pipeline.photo("alice", "enroll/alice/tiny.jpg")["detail"]


def test_same_content_under_two_keys_is_a_duplicate(pipeline, photo):
    content = photo("alice")
    stage = pipeline.index_stage()
    first = stage.handle_notification(pipeline.upload("enroll/alice/a.jpg", content))
    second = stage.handle_notification(pipeline.upload("enroll/alice/copy of a.jpg", content))

    assert first[0].status == "INDEXED"
    assert (second[0].status, second[0].reason) == ("REJECTED", "DUPLICATE_PHOTO")
    assert "enroll/alice/a.jpg" in pipeline.photo("alice", "enroll/alice/copy of a.jpg")["detail"]
    # The duplicate never reached IndexFaces.
    assert len(pipeline.collection_face_ids()) == 1
    # Same content for another user is not a duplicate.
    other = stage.handle_notification(pipeline.upload("enroll/bob/a.jpg", content))
    assert other[0].status == "INDEXED"


class _Throttled:
    """Rekognition client whose IndexFaces is throttled; everything else is the real one."""

    def __init__(self, real, code="ThrottlingException"):
        self._real, self._code = real, code

    def index_faces(self, **_):
        raise ClientError({"Error": {"Code": self._code, "Message": "Slow down"}}, "IndexFaces")

    def __getattr__(self, name):
        return getattr(self._real, name)


def test_throttling_fails_the_record_and_records_nothing_before_the_last_delivery(pipeline, photo):
    stage = pipeline.index_stage()
    stage.rekognition = _Throttled(pipeline.rekognition)
    body = pipeline.upload("enroll/alice/a.jpg", photo("alice"))

    with pytest.raises(IndexRetryableError, match="ThrottlingException"):
        stage.handle_notification(body, receive_count=1)

    with pytest.raises(AssertionError):
        pipeline.photo("alice", "enroll/alice/a.jpg")


def test_last_delivery_records_failed_and_a_redrive_recovers(pipeline, photo):
    stage = pipeline.index_stage()
    stage.rekognition = _Throttled(pipeline.rekognition, "InternalServerError")
    body = pipeline.upload("enroll/alice/a.jpg", photo("alice"))

    with pytest.raises(IndexRetryableError):
        stage.handle_notification(body, receive_count=pipeline.settings.max_receive_count)

    item = pipeline.photo("alice", "enroll/alice/a.jpg")
    assert (item["status"], item["reason"]) == ("FAILED", "SERVICE_ERROR")
    assert "InternalServerError" in item["detail"]

    # Redriven from the DLQ once Rekognition is healthy: FAILED is not final for the index step.
    [outcome] = pipeline.index_stage().handle_notification(body)
    assert outcome.status == "INDEXED"


class _SendFails:
    def __init__(self, real):
        self._real = real

    def send_message(self, **kwargs):
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "x"}}, "SendMessage")

    def __getattr__(self, name):
        return getattr(self._real, name)


def test_last_delivery_after_indexing_leaves_no_orphan_face(pipeline, photo):
    stage = pipeline.index_stage()
    stage.sqs = _SendFails(pipeline.sqs)
    body = pipeline.upload("enroll/alice/a.jpg", photo("alice"))
    with pytest.raises(IndexRetryableError):
        stage.handle_notification(body, receive_count=1)
    face_id = pipeline.photo("alice", "enroll/alice/a.jpg")["face_id"]
    assert face_id in pipeline.collection_face_ids()

    with pytest.raises(IndexRetryableError):
        stage.handle_notification(body, receive_count=pipeline.settings.max_receive_count)

    item = pipeline.photo("alice", "enroll/alice/a.jpg")
    assert (item["status"], item["reason"]) == ("FAILED", "SERVICE_ERROR")
    # No association message ever left: nothing would associate or delete the face later.
    assert pipeline.collection_face_ids() == set()
    # A redrive from the DLQ still reaches a real outcome.
    [outcome] = pipeline.index_stage().handle_notification(body)
    assert outcome.status == "INDEXED"
    assert pipeline.collection_face_ids() == {outcome.face_id}


# ---- no dead ends: which rejections keep the bytes -----------------------------------------


class _CountingIndex:
    """Rekognition client counting IndexFaces calls; everything else is the real one."""

    def __init__(self, real):
        self._real, self.calls = real, 0

    def index_faces(self, **kwargs):
        self.calls += 1
        return self._real.index_faces(**kwargs)

    def __getattr__(self, name):
        return getattr(self._real, name)


def test_rejected_then_fixed_photo_enrolls_on_reupload(pipeline, photo):
    # Given a user at a cap of 1 whose second photo was rejected USER_FACE_LIMIT
    uploads = {"enroll/alice/1.jpg": photo("alice", 1), "enroll/alice/2.jpg": photo("alice", 2)}
    stage = pipeline.index_stage()
    for key, content in uploads.items():
        stage.handle_notification(pipeline.upload(key, content))
    pipeline.associate_stage(max_faces_per_user=1).handle_batch(
        dict(pipeline.association_messages())
    )
    [rejected_key] = [
        k for k in uploads if pipeline.photo("alice", k).get("reason") == "USER_FACE_LIMIT"
    ]

    # When the cause goes away (the user is under the cap again) and the same bytes come back
    # under a new key
    body = pipeline.upload("enroll/alice/again.jpg", uploads[rejected_key])
    [indexed] = stage.handle_notification(body)
    outcomes, failures = pipeline.associate_stage(max_faces_per_user=2).handle_batch(
        dict(pipeline.association_messages())
    )

    # Then the photo is enrolled, not a DUPLICATE_PHOTO of the rejected one
    assert indexed.status == "INDEXED", indexed
    assert failures == {} and outcomes[0].associated == [indexed.face_id]
    assert pipeline.photo("alice", "enroll/alice/again.jpg")["status"] == "ASSOCIATED"
    assert len(pipeline.user_face_ids("alice")) == 2
    # The rejected photo keeps its own outcome.
    assert pipeline.photo("alice", rejected_key)["status"] == "REJECTED"


def test_final_rejection_stays_a_duplicate_without_calling_indexfaces(pipeline, photo):
    wall = photo(faces=[])
    stage = pipeline.index_stage()
    [first] = stage.handle_notification(pipeline.upload("enroll/alice/wall.jpg", wall))
    assert first.reason == "NO_FACE"
    stage.rekognition = counting = _CountingIndex(pipeline.rekognition)

    [again] = stage.handle_notification(pipeline.upload("enroll/alice/wall again.jpg", wall))

    assert (again.status, again.reason) == ("REJECTED", "DUPLICATE_PHOTO")
    assert (
        "enroll/alice/wall.jpg" in pipeline.photo("alice", "enroll/alice/wall again.jpg")["detail"]
    )
    assert counting.calls == 0


def test_final_quality_rejection_is_indexed_again_under_a_new_quality_filter(pipeline, photo):
    blurry = photo("alice", sharpness=2.0)
    [first] = pipeline.index_stage().handle_notification(
        pipeline.upload("enroll/alice/blurry.jpg", blurry)
    )
    assert first.reason == "LOW_SHARPNESS"

    # The operator lowers the quality bar: the same bytes may get another answer now.
    [again] = pipeline.index_stage(quality_filter="NONE").handle_notification(
        pipeline.upload("enroll/alice/blurry again.jpg", blurry)
    )

    assert again.status == "INDEXED", again


# ---- configuration errors fail the record, never reject the photo --------------------------


def _misconfigured(stage, **values):
    """``stage`` with settings that slipped past Settings' own validation (as a bug would)."""
    from dataclasses import replace

    settings = replace(stage.settings)
    for name, value in values.items():
        object.__setattr__(settings, name, value)
    stage.settings = settings
    return stage


@pytest.mark.parametrize(
    ("setting", "value", "parameter"),
    [
        ("collection_id", "face enrollment", "CollectionId"),
        ("quality_filter", "SUPER", "QualityFilter"),
        ("index_max_faces", 0, "MaxFaces"),
    ],
)
def test_a_request_the_service_would_refuse_fails_the_record(
    pipeline, photo, setting, value, parameter
):
    body = pipeline.upload("enroll/alice/a.jpg", photo("alice"))
    stage = _misconfigured(pipeline.index_stage(), **{setting: value})
    stage.rekognition = counting = _CountingIndex(pipeline.rekognition)

    # Not sent: the service would answer InvalidParameterException, like for a tiny image.
    with pytest.raises(IndexRetryableError, match="ConfigurationError"):
        stage.handle_notification(body, receive_count=1)
    assert counting.calls == 0
    with pytest.raises(AssertionError):
        pipeline.photo("alice", "enroll/alice/a.jpg")  # nothing recorded, nothing rejected

    # On the last delivery the photo is FAILED (its message goes to the DLQ, which alarms)
    with pytest.raises(IndexRetryableError):
        stage.handle_notification(body, receive_count=pipeline.settings.max_receive_count)
    item = pipeline.photo("alice", "enroll/alice/a.jpg")
    assert (item["status"], item["reason"]) == ("FAILED", "CONFIGURATION_ERROR")
    assert f"IndexFaces.{parameter}" in item["detail"]  # says what to fix

    # and the redrive after the fix indexes it.
    [outcome] = pipeline.index_stage().handle_notification(body)
    assert outcome.status == "INDEXED"


def test_the_emulator_answers_a_bad_quality_filter_like_a_tiny_image(pipeline, photo):
    # Why the request is checked before sending: both are InvalidParameterException.
    pipeline.upload("enroll/alice/a.jpg", photo("alice"))
    with pytest.raises(ClientError) as refused:
        pipeline.rekognition.index_faces(
            CollectionId="face-enrollment",
            Image={"S3Object": {"Bucket": BUCKET, "Name": "enroll/alice/a.jpg"}},
            QualityFilter="SUPER",
        )
    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"


def test_a_missing_collection_fails_the_record(pipeline, photo):
    body = pipeline.upload("enroll/alice/a.jpg", photo("alice"))
    stage = pipeline.index_stage(collection_id="no-such-collection")

    with pytest.raises(IndexRetryableError, match="ResourceNotFoundException"):
        stage.handle_notification(body, receive_count=1)
    with pytest.raises(IndexRetryableError):
        stage.handle_notification(body, receive_count=pipeline.settings.max_receive_count)

    item = pipeline.photo("alice", "enroll/alice/a.jpg")
    assert (item["status"], item["reason"]) == ("FAILED", "CONFIGURATION_ERROR")


def test_access_denied_fails_the_record(pipeline, photo):
    stage = pipeline.index_stage()
    stage.rekognition = _Throttled(pipeline.rekognition, "AccessDeniedException")
    body = pipeline.upload("enroll/alice/a.jpg", photo("alice"))

    with pytest.raises(IndexRetryableError, match="AccessDeniedException"):
        stage.handle_notification(body, receive_count=pipeline.settings.max_receive_count)

    item = pipeline.photo("alice", "enroll/alice/a.jpg")
    assert (item["status"], item["reason"]) == ("FAILED", "CONFIGURATION_ERROR")
