"""Message parsing: S3 notifications and association messages."""

from __future__ import annotations

import json

import pytest

from enrollment.messages import AssociationMessage, MessageError, parse_s3_notification
from tests.conftest import load_event


def test_sample_notification_is_parsed_and_decoded():
    body = load_event("s3_object_created_sqs")["Records"][0]["body"]
    [obj] = parse_s3_notification(body)
    assert obj.bucket == "face-enrollment-photos"
    assert obj.key == "enroll/alice/summer holiday été 1+1.jpg"
    assert obj.version_id and obj.etag and obj.event_name == "ObjectCreated:Put"


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
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"face_id": None}, "lacks face_id"),
        ({"user_id": ""}, "non-empty strings"),
        ({"quality": "high"}, "quality must be a number"),
        ({"quality": True}, "quality must be a number"),
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
