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


def test_associate_function_needs_the_upload_queue(pipeline, handlers, monkeypatch):
    _, associate = handlers
    # A redriven message for a FAILED photo sends it back to the index stage through it.
    assert associate.stage().settings.upload_queue_url == pipeline.settings.upload_queue_url
    monkeypatch.delenv("UPLOAD_QUEUE_URL")
    with pytest.raises(ValueError, match="UPLOAD_QUEUE_URL"):
        associate.stage()


# --- ConflictException: back off in seconds, spend no delivery (enrollment/backoff.py) ----------


class _SendSpy:
    """The handler's SQS client, keeping every SendMessageBatch entry it sends."""

    def __init__(self, real):
        self._real, self.entries = real, []

    def send_message_batch(self, **kwargs):
        self.entries.extend(kwargs["Entries"])
        return self._real.send_message_batch(**kwargs)

    def __getattr__(self, name):
        return getattr(self._real, name)


def _index_one(pipeline, index, key: str, body: bytes) -> str:
    """Index one upload through the index handler; the association message body it queued."""
    event = sqs_event([pipeline.upload(key, body)], ids=[f"up-{key}"])
    assert index.handler(event, FakeContext()) == {"batchItemFailures": []}
    [(_, message)] = pipeline.association_messages()
    return message.to_json()


def _queue_depths(pipeline) -> tuple[int, int]:
    """(visible, delayed) messages of the association queue."""
    attributes = pipeline.sqs.get_queue_attributes(
        QueueUrl=pipeline.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesDelayed"]),
    )


@pytest.fixture
def updating_alice(pipeline, photo, handlers):
    """alice holds one associated face and stays UPDATING; the emulator answers every
    Associate/Disassociate of an UPDATING user with ConflictException (its opt-in fault)."""
    index, associate = handlers
    pipeline.emulator.config.update_delay_seconds = 600.0
    first = _index_one(pipeline, index, "enroll/alice/1.jpg", photo("alice", 1))
    assert associate.handler(sqs_event([first], ids=["a-1"]), FakeContext()) == {
        "batchItemFailures": []
    }
    assert pipeline.rekognition.list_users(CollectionId=pipeline.settings.collection_id)[
        "Users"
    ] == [{"UserId": "alice", "UserStatus": "UPDATING"}]
    pipeline.emulator.config.faults.conflict_while_updating = 1.0
    return index, associate


def test_a_conflict_comes_back_in_seconds_without_spending_a_delivery(
    pipeline, photo, updating_alice, monkeypatch
):
    index, associate = updating_alice
    from dataclasses import replace

    from enrollment.messages import AssociationMessage

    backoff = associate.conflicts()
    spy = _SendSpy(backoff.sqs)
    monkeypatch.setattr(backoff, "sqs", spy)
    # A first delay of 5-10 s: the delayed copy is still held back when the queue is read.
    monkeypatch.setattr(backoff, "base_delay_seconds", 10)
    second = _index_one(pipeline, index, "enroll/alice/2.jpg", photo("alice", 2))

    # When the second photo's message meets the UPDATING user on its LAST allowed delivery
    last = sqs_event([second], ids=["a-2"], receive_count=pipeline.settings.max_receive_count)
    response = associate.handler(last, FakeContext())

    # Then the record is reported processed (SQS deletes it: no delivery spent, no DLQ) ...
    assert response == {"batchItemFailures": []}
    # ... its photo waits, neither FAILED nor associated ...
    assert pipeline.photo("alice", "enroll/alice/2.jpg")["status"] == "INDEXED"
    # ... and a copy counting one conflict is back in the queue, held for seconds, not the
    # visibility timeout: moto honours DelaySeconds as SQS does.
    [entry] = spy.entries
    assert 5 <= entry["DelaySeconds"] <= 10
    copy = AssociationMessage.from_json(entry["MessageBody"])
    original = AssociationMessage.from_json(second)
    assert original.conflict_retries == 0
    assert copy == replace(original, conflict_retries=1)
    assert _queue_depths(pipeline) == (0, 1)

    # When the user is no longer updating and the copy arrives (a new message: 1st delivery)
    pipeline.emulator.config.faults.conflict_while_updating = 0.0
    response = associate.handler(sqs_event([entry["MessageBody"]], ids=["a-2-copy"]), FakeContext())

    # Then the photo is associated like any other
    assert response == {"batchItemFailures": []}
    assert pipeline.photo("alice", "enroll/alice/2.jpg")["status"] == "ASSOCIATED"
    assert len(pipeline.user_face_ids("alice")) == 2


def test_conflicts_past_the_cap_fail_the_record_like_any_error(
    pipeline, photo, updating_alice, monkeypatch
):
    index, associate = updating_alice
    from dataclasses import replace

    from enrollment.messages import AssociationMessage

    backoff = associate.conflicts()
    spy = _SendSpy(backoff.sqs)
    monkeypatch.setattr(backoff, "sqs", spy)
    second = AssociationMessage.from_json(
        _index_one(pipeline, index, "enroll/alice/2.jpg", photo("alice", 2))
    )
    # A message that was already re-sent the maximum number of times for conflicts
    capped = replace(second, conflict_retries=backoff.max_retries).to_json()

    # When it meets a conflict again: an ordinary failure, retried after the visibility timeout
    response = associate.handler(sqs_event([capped], ids=["a-2"]), FakeContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "a-2"}]}
    assert spy.entries == [] and _queue_depths(pipeline) == (0, 0)
    assert pipeline.photo("alice", "enroll/alice/2.jpg")["status"] == "INDEXED"

    # When that happens on its last delivery, the photo is FAILED before the DLQ, as any error
    last = sqs_event([capped], ids=["a-2"], receive_count=pipeline.settings.max_receive_count)
    assert associate.handler(last, FakeContext()) == {
        "batchItemFailures": [{"itemIdentifier": "a-2"}]
    }
    item = pipeline.photo("alice", "enroll/alice/2.jpg")
    assert item["status"] == "FAILED" and "ConflictException" in item["detail"]
    assert spy.entries == []


def test_a_refused_resend_fails_the_record_as_before(pipeline, photo, updating_alice, monkeypatch):
    index, associate = updating_alice
    second = _index_one(pipeline, index, "enroll/alice/2.jpg", photo("alice", 2))
    backoff = associate.conflicts()

    class Refusing:
        def send_message_batch(self, **kwargs):
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "no"}}, "SendMessageBatch"
            )

    monkeypatch.setattr(backoff, "sqs", Refusing())

    # When the copy cannot be sent, the record fails: SQS keeps the original, nothing is lost
    response = associate.handler(sqs_event([second], ids=["a-2"]), FakeContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "a-2"}]}
    assert pipeline.photo("alice", "enroll/alice/2.jpg")["status"] == "INDEXED"


# --- observability -------------------------------------------------------------------------


def test_the_associate_function_names_itself_before_the_work(
    pipeline, photo, handlers, monkeypatch, capsys
):
    from enrollment.observability import logger, metrics

    index, associate = handlers
    body = _index_one(pipeline, index, "enroll/alice/1.jpg", photo("alice", 1))
    # Its face is gone before association: a rejection counted (by reason) during the work.
    pipeline.rekognition.delete_faces(
        CollectionId=pipeline.settings.collection_id, FaceIds=list(pipeline.collection_face_ids())
    )
    # Given one process where another function ran last, as in the local runner
    monkeypatch.setattr(metrics, "service", "index-photo")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "associate-faces")
    stage = associate.stage()
    seen: list[tuple[str, str]] = []

    class Watch:
        """The stage's Rekognition client, noting the names in force at each call."""

        def __getattr__(self, name):
            seen.append((metrics.service, logger.get_current_keys().get("service")))
            return getattr(real, name)

    real = stage.rekognition
    stage.rekognition = Watch()
    capsys.readouterr()
    try:
        # When the associate function handles the batch
        response = associate.handler(sqs_event([body], ids=["a-1"]), FakeContext())
    finally:
        stage.rekognition = real
        logger.remove_keys(["service"])

    # Then every call made during the work ran under its own name, in metrics and in logs ...
    assert response == {"batchItemFailures": []}
    assert seen and set(seen) == {("associate-faces", "associate-faces")}
    # ... and the per-reason metric emitted mid-work carries it too
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith('{"_aws"')]
    [rejected] = [line for line in lines if line.get("Reason") == "FACE_NOT_FOUND"]
    assert rejected["service"] == "associate-faces"
    assert pipeline.photo("alice", "enroll/alice/1.jpg")["reason"] == "FACE_NOT_FOUND"
