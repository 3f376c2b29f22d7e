"""Both Lambda handlers end to end: SQS events in, batchItemFailures out, ledger and queues."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from botocore.exceptions import ClientError

from tests.conftest import load_event

from .conftest import BUCKET, sqs_event


@dataclass
class FakeContext:
    function_name: str = "index-photo"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:index-photo"
    aws_request_id: str = "req-1"


@pytest.fixture
def handlers(pipeline, monkeypatch) -> Iterator[tuple]:
    """The two handler modules with the pipeline's environment (fresh stages per test)."""
    from associate_faces import handler as associate
    from index_photo import handler as index

    for name, value in pipeline.environment().items():
        monkeypatch.setenv(name, value)
    yield index, associate


def test_index_then_associate_through_the_handlers(pipeline, photo, handlers):
    index, associate = handlers
    body = pipeline.upload("enroll/alice/my photo.jpg", photo("alice"))

    response = index.handler(sqs_event([body]), FakeContext())

    assert response == {"batchItemFailures": []}
    messages = pipeline.sqs.receive_message(QueueUrl=pipeline.queue_url, MaxNumberOfMessages=10)
    bodies = [m["Body"] for m in messages["Messages"]]
    response = associate.handler(sqs_event(bodies, ids=["a-1"]), FakeContext())

    assert response == {"batchItemFailures": []}
    assert pipeline.photo("alice", "enroll/alice/my photo.jpg")["status"] == "ASSOCIATED"
    assert len(pipeline.executions()) == 1


def test_sample_events_are_handled(pipeline, handlers):
    index, associate = handlers

    # s3:TestEvent: nothing to do, nothing failed.
    assert index.handler(load_event("s3_test_event_sqs"), FakeContext()) == {
        "batchItemFailures": []
    }
    # The sample ObjectCreated names an object that is not in the bucket: a terminal outcome.
    assert index.handler(load_event("s3_object_created_sqs"), FakeContext()) == {
        "batchItemFailures": []
    }
    sample = json.loads(load_event("s3_object_created_sqs")["Records"][0]["body"])
    obj = sample["Records"][0]["s3"]["object"]
    from enrollment.keys import photo_id

    item = pipeline.ledger.get_photo(
        "alice", photo_id(BUCKET, "enroll/alice/summer holiday été 1+1.jpg", obj["versionId"])
    )
    assert (item["status"], item["reason"]) == ("REJECTED", "OBJECT_NOT_FOUND")
    # The sample association message refers to a photo the ledger never saw: dropped safely.
    assert associate.handler(load_event("association_sqs"), FakeContext()) == {
        "batchItemFailures": []
    }
    assert pipeline.ledger.get_user("alice") is None


def test_throttling_is_a_batch_item_failure_and_others_succeed(pipeline, photo, handlers):
    index, _ = handlers
    ok = pipeline.upload("enroll/alice/ok.jpg", photo("alice", 1))
    throttled = pipeline.upload("enroll/bob/slow.jpg", photo("bob", 1))
    stage = index.stage()
    real = stage.rekognition

    class Throttling:
        def index_faces(self, **kwargs):
            if "bob" in kwargs["Image"]["S3Object"]["Name"]:
                raise ClientError(
                    {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}},
                    "IndexFaces",
                )
            return real.index_faces(**kwargs)

        def __getattr__(self, name):
            return getattr(real, name)

    stage.rekognition = Throttling()
    try:
        response = index.handler(sqs_event([ok, throttled], ids=["m-ok", "m-slow"]), FakeContext())
        assert response == {"batchItemFailures": [{"itemIdentifier": "m-slow"}]}
        assert pipeline.photo("alice", "enroll/alice/ok.jpg")["status"] == "INDEXED"

        # Last delivery: still a failure for SQS, but the ledger now says FAILED(THROTTLED).
        last = sqs_event([throttled], ids=["m-slow"], receive_count=5)
        assert index.handler(last, FakeContext()) == {
            "batchItemFailures": [{"itemIdentifier": "m-slow"}]
        }
        item = pipeline.photo("bob", "enroll/bob/slow.jpg")
        assert (item["status"], item["reason"]) == ("FAILED", "THROTTLED")
    finally:
        stage.rekognition = real


def test_malformed_messages_fail_alone(pipeline, photo, handlers):
    index, associate = handlers
    good = pipeline.upload("enroll/alice/ok.jpg", photo("alice", 1))

    response = index.handler(sqs_event(["not json", good], ids=["bad", "good"]), FakeContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "bad"}]}

    messages = pipeline.sqs.receive_message(QueueUrl=pipeline.queue_url, MaxNumberOfMessages=10)
    bodies = [json.dumps({"user_id": "alice"}), messages["Messages"][0]["Body"]]
    response = associate.handler(sqs_event(bodies, ids=["bad", "good"]), FakeContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    assert pipeline.photo("alice", "enroll/alice/ok.jpg")["status"] == "ASSOCIATED"


def test_moto_s3_notifications_reach_the_index_handler(pipeline, photo, handlers):
    """Real notification plumbing: bucket -> SQS (TestEvent first), then the handler."""
    index, _ = handlers
    upload_queue = pipeline.sqs.create_queue(QueueName="face-enrollment-upload")["QueueUrl"]
    arn = pipeline.sqs.get_queue_attributes(QueueUrl=upload_queue, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    pipeline.s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "enroll/"}]}},
                }
            ]
        },
    )
    pipeline.s3.put_object(Bucket=BUCKET, Key="enroll/alice/café + tea.jpg", Body=photo("alice"))
    received = pipeline.sqs.receive_message(
        QueueUrl=upload_queue, MaxNumberOfMessages=10, AttributeNames=["All"]
    )["Messages"]
    event = sqs_event([m["Body"] for m in received], ids=[m["MessageId"] for m in received])

    assert index.handler(event, FakeContext()) == {"batchItemFailures": []}
    # The photo is keyed by (bucket, key, version) as the notification gives them. moto's own
    # notification has no versionId; a running local stack adds it, as AWS does (the runner
    # patches moto process-wide), so read it from the message rather than assume either.
    from enrollment.keys import photo_id
    from enrollment.messages import parse_s3_notification

    [uploaded] = [o for m in received for o in parse_s3_notification(m["Body"])]
    assert uploaded.key == "enroll/alice/café + tea.jpg"
    item = pipeline.ledger.get_photo("alice", photo_id(BUCKET, uploaded.key, uploaded.version_id))
    assert item is not None and item["status"] == "INDEXED"
    assert item.get("version_id") == uploaded.version_id


def test_settings_errors_are_clear(pipeline, handlers, monkeypatch):
    index, _ = handlers
    monkeypatch.setenv("MAX_FACES_PER_USER", "500")
    with pytest.raises(ValueError, match=r"MAX_FACES_PER_USER must be 1\.\.100"):
        index.stage()
    monkeypatch.setenv("MAX_FACES_PER_USER", "100")
    monkeypatch.delenv("ASSOCIATION_QUEUE_URL")
    with pytest.raises(ValueError, match="ASSOCIATION_QUEUE_URL"):
        index.stage()
    assert os.environ["LEDGER_TABLE"]
