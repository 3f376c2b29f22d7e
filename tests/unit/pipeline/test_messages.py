"""Message parsing: S3 notifications and association messages."""

from __future__ import annotations

import json

import pytest

from enrollment.messages import (
    AssociationMessage,
    MessageError,
    parse_s3_notification,
    s3_notification,
)
from tests.conftest import load_event


def test_sample_notification_is_parsed_and_decoded():
    body = load_event("s3_object_created_sqs")["Records"][0]["body"]
    [obj] = parse_s3_notification(body)
    assert obj.bucket == "face-enrollment-photos"
    assert obj.key == "enroll/alice/summer holiday été 1+1.jpg"
    assert obj.version_id and obj.etag and obj.event_name == "ObjectCreated:Put"
    assert obj.event_time == json.loads(body)["Records"][0]["eventTime"]


@pytest.mark.parametrize(
    "key",
    [
        "enroll/alice/my photo.jpg",
        "enroll/alice/1+1=2.jpg",
        "enroll/alice/ a  b + c .jpg",
        "enroll/alice/summer holiday été 1+1.jpg",
        "enroll/alice/写真 ☃ 😀.png",
        "enroll/alice/100% & ?#~'\"<>.jpg",
        "enroll/alice/plain.jpg",
    ],
)
def test_built_notification_round_trips_awkward_keys(key):
    body = s3_notification(
        "face-enrollment-photos",
        key,
        version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        etag="d41d8cd98f00b204e9800998ecf8427e",
        size=48213,
        event_time="2026-11-25T10:50:00.000Z",
    )

    [obj] = parse_s3_notification(body)

    assert (obj.bucket, obj.key) == ("face-enrollment-photos", key)
    assert obj.version_id == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    assert obj.etag == "d41d8cd98f00b204e9800998ecf8427e"
    assert (obj.size, obj.event_time) == (48213, "2026-11-25T10:50:00.000Z")
    assert obj.event_name.startswith("ObjectCreated:")
    # Encoded as S3 encodes keys: no raw space or plus, '/' kept.
    raw = json.loads(body)["Records"][0]["s3"]["object"]["key"]
    assert " " not in raw and raw.count("/") == key.count("/")
    assert "+" not in key or "%2B" in raw


def test_built_notification_encodes_like_s3_and_leaves_out_what_is_unknown():
    sample = json.loads(load_event("s3_object_created_sqs")["Records"][0]["body"])
    sample_object = sample["Records"][0]["s3"]["object"]
    body = s3_notification("face-enrollment-photos", "enroll/alice/summer holiday été 1+1.jpg")

    built = json.loads(body)["Records"][0]
    # Byte for byte the key S3 itself sent for this object.
    assert built["s3"]["object"]["key"] == sample_object["key"]
    assert "eventTime" not in built and set(built["s3"]["object"]) == {"key"}
    [obj] = parse_s3_notification(body)
    assert (obj.version_id, obj.etag, obj.size, obj.event_time) == (None, None, None, None)


def test_test_event_and_other_event_types_yield_nothing():
    body = load_event("s3_test_event_sqs")["Records"][0]["body"]
    assert parse_s3_notification(body) == []
    removed = {"Records": [{"eventName": "ObjectRemoved:Delete", "s3": {}}]}
    assert parse_s3_notification(json.dumps(removed)) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "JSON object"),
        ("{}", "no Records"),
        (json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}), "lacks"),
    ],
)
def test_malformed_notifications_say_what_is_wrong(body, message):
    with pytest.raises(MessageError, match=message):
        parse_s3_notification(body)


def test_association_message_round_trip():
    body = load_event("association_sqs")["Records"][0]["body"]
    message = AssociationMessage.from_json(body)
    assert message.user_id == "alice" and message.quality == 87.5
    assert AssociationMessage.from_json(message.to_json()) == message
    assert set(json.loads(message.to_json())) == {
        "user_id",
        "face_id",
        "photo_id",
        "bucket",
        "key",
        "quality",
        "indexed_at",
        "uploaded_at",
        "conflict_retries",
    }
    # The sample predates uploaded_at and conflict_retries: such messages still parse.
    assert message.uploaded_at is None
    assert message.conflict_retries == 0
    with_upload = AssociationMessage.from_json(
        json.dumps({**json.loads(body), "uploaded_at": "2026-01-02T03:04:05.000Z"})
    )
    assert with_upload.uploaded_at == "2026-01-02T03:04:05.000Z"
    retried = AssociationMessage.from_json(json.dumps({**json.loads(body), "conflict_retries": 3}))
    assert retried.conflict_retries == 3
    assert AssociationMessage.from_json(retried.to_json()) == retried


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"face_id": None}, "lacks face_id"),
        ({"user_id": ""}, "non-empty strings"),
        ({"quality": "high"}, "quality must be a number"),
        ({"quality": True}, "quality must be a number"),
        ({"conflict_retries": -1}, "conflict_retries must be a whole number"),
        ({"conflict_retries": 1.5}, "conflict_retries must be a whole number"),
        ({"conflict_retries": True}, "conflict_retries must be a whole number"),
    ],
)
def test_bad_association_messages_are_refused(change, message):
    data = json.loads(load_event("association_sqs")["Records"][0]["body"])
    for field, value in change.items():
        if value is None:
            del data[field]
        else:
            data[field] = value
    with pytest.raises(MessageError, match=message):
        AssociationMessage.from_json(json.dumps(data))


def test_upload_lag_counts_from_the_oldest_upload_and_ignores_bad_times():
    from datetime import UTC, datetime

    from enrollment.activation import upload_lag_seconds

    now = datetime(2026, 1, 2, 3, 4, 30, tzinfo=UTC)
    times = ["2026-01-02T03:04:05.000Z", "2026-01-02T03:04:20.500Z", "not a time"]
    assert upload_lag_seconds(times, now=now) == 25
    assert upload_lag_seconds(["garbage"], now=now) == 0
    assert upload_lag_seconds(["2026-01-02T03:05:00Z"], now=now) == 0  # clock skew: never < 0
