"""The reconciler against moto + the synthetic Rekognition emulator, on an injected clock.

Given a fault's leftovers (a stuck photo, an orphan face, a failed activation, a DLQ message),
when the reconciler runs, the invariant holds again; and a second run right after repairs
nothing.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from enrollment import keys
from enrollment.keys import activation_execution_name
from enrollment.ledger import Ledger
from enrollment.reconciler import Capped, Reconciler, Repair, metric_name

from .conftest import BUCKET, COLLECTION, TABLE, notification

STUCK_AFTER_S = 3600
GRACE_S = 600


class Clock:
    """The test's time: starts now, moved on by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def iso(self) -> str:
        return self.now.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def dlqs(pipeline) -> dict[str, str]:
    return {
        name: pipeline.sqs.create_queue(QueueName=f"face-enrollment-{name}-dlq")["QueueUrl"]
        for name in ("upload", "association")
    }


@pytest.fixture
def reconciler(pipeline, clock, dlqs):
    def make(**overrides: Any) -> Reconciler:
        settings = replace(
            pipeline.settings,
            upload_dlq_url=dlqs["upload"],
            association_dlq_url=dlqs["association"],
            reconcile_stuck_after_s=STUCK_AFTER_S,
            reconcile_orphan_grace_s=GRACE_S,
            **overrides,
        )
        return Reconciler(
            settings=settings,
            rekognition=pipeline.rekognition,
            # The reconciler's ledger writes carry the test's time, as they would in production.
            ledger=Ledger(pipeline.ddb, TABLE, now=clock.iso),
            dynamodb=pipeline.ddb,
            sqs=pipeline.sqs,
            sfn=pipeline.sfn,
            clock=clock,
        )

    return make


def _index(pipeline, photo, uploads):
    stage = pipeline.index_stage()
    for key, content in uploads.items():
        stage.handle_notification(pipeline.upload(key, content))
    return dict(pipeline.association_messages())


def _associate(pipeline, photo, uploads):
    messages = _index(pipeline, photo, uploads)
    pipeline.associate_stage().handle_batch(messages)
    return messages


def _repaired(report) -> dict[str, int]:
    return {kind: n for kind, n in report.repaired.items() if n}


def _set_user(pipeline, user_id: str, status: str, reason: str | None = None) -> None:
    values = {":s": {"S": status}}
    expression = "SET #status = :s"
    if reason:
        values[":r"] = {"S": reason}
        expression += ", reason = :r"
    pipeline.ddb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": keys.user_pk(user_id)}, "sk": {"S": keys.USER_SK}},
        UpdateExpression=expression,
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues=values,
    )


# ---- stuck photos ---------------------------------------------------------------------------


def test_stuck_associated_photo_of_an_active_user_becomes_active(
    pipeline, photo, reconciler, clock
):
    messages = _associate(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    (message,) = messages.values()
    # The activation never ran (the unit stack's state machine is a Pass): ASSOCIATED, UPDATING.
    assert pipeline.photo("alice", message.key)["status"] == "ASSOCIATED"
    clock.advance(STUCK_AFTER_S + 1)

    report = reconciler().run()

    assert _repaired(report) == {Repair.STUCK_PHOTOS_ACTIVATED: 1, Repair.USERS_ACTIVATED: 1}
    assert pipeline.photo("alice", message.key)["status"] == "ACTIVE"
    assert pipeline.ledger.get_user("alice")["status"] == "ACTIVE"
    assert reconciler().run().total == 0


def test_a_photo_younger_than_the_stuck_age_is_left_to_the_pipeline(
    pipeline, photo, reconciler, clock
):
    messages = _associate(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    clock.advance(STUCK_AFTER_S - 60)

    assert reconciler().run().total == 0
    (message,) = messages.values()
    assert pipeline.photo("alice", message.key)["status"] == "ASSOCIATED"


def test_stuck_associated_photo_of_an_updating_user_gets_a_new_activation(
    pipeline, photo, reconciler, clock, monkeypatch
):
    messages = _associate(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    (message,) = messages.values()
    monkeypatch.setattr(Reconciler, "_user_status", lambda self, user_id, face_id: "UPDATING")
    clock.advance(STUCK_AFTER_S + 1)

    report = reconciler().run()

    assert _repaired(report) == {Repair.STUCK_ACTIVATIONS_STARTED: 1}
    # A new execution beside the batch's own (which exists, done, under the batch's name).
    names = {e["name"] for e in pipeline.executions()}
    assert activation_execution_name("alice", [message.face_id]) in names
    (started,) = [e for e in pipeline.executions() if e["name"].startswith("rec-")]
    payload = json.loads(
        pipeline.sfn.describe_execution(executionArn=started["executionArn"])["input"]
    )
    assert (payload["userId"], payload["faceIds"]) == ("alice", [message.face_id])
    assert payload["photoIds"] == [message.photo_id]
    # The run touched the photo: the activation owns it now, the next run leaves it be.
    assert reconciler().run().total == 0
    assert pipeline.photo("alice", message.key)["status"] == "ASSOCIATED"


def test_stuck_indexed_photo_with_a_free_face_is_sent_to_association_again(
    pipeline, photo, reconciler, clock
):
    # The association message was lost (drained, never processed).
    (message,) = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)}).values()
    clock.advance(STUCK_AFTER_S + 1)

    report = reconciler().run()

    assert _repaired(report) == {Repair.STUCK_ASSOCIATIONS_RESENT: 1}
    assert reconciler().run().total == 0  # the resend touched the photo
    resent = pipeline.association_messages()
    assert [m.photo_id for _, m in resent] == [message.photo_id]
    pipeline.associate_stage().handle_batch(dict(resent))
    assert pipeline.photo("alice", message.key)["status"] == "ASSOCIATED"
    assert pipeline.user_face_ids("alice") == {message.face_id}


def test_stuck_indexed_photo_whose_face_is_gone_fails_with_a_reason(
    pipeline, photo, reconciler, clock
):
    (message,) = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)}).values()
    pipeline.rekognition.delete_faces(CollectionId=COLLECTION, FaceIds=[message.face_id])
    clock.advance(STUCK_AFTER_S + 1)

    report = reconciler().run()

    assert _repaired(report) == {Repair.STUCK_PHOTOS_FAILED: 1}
    item = pipeline.photo("alice", message.key)
    assert (item["status"], item["reason"]) == ("FAILED", "FACE_NOT_FOUND")
    assert "reconciler" in item["detail"]
    assert reconciler().run().total == 0


def test_work_per_run_is_bounded_and_the_rest_waits_for_the_next_run(
    pipeline, photo, reconciler, clock
):
    _index(
        pipeline,
        photo,
        {"enroll/alice/1.jpg": photo("alice", 1), "enroll/bob/1.jpg": photo("bob", 1)},
    )
    clock.advance(STUCK_AFTER_S + 1)

    first = reconciler(reconcile_max_repairs=1).run()
    second = reconciler(reconcile_max_repairs=1).run()

    assert first.repaired[Repair.STUCK_ASSOCIATIONS_RESENT] == 1
    assert first.capped == [Capped.STUCK_PHOTOS]
    assert second.repaired[Repair.STUCK_ASSOCIATIONS_RESENT] == 1
    assert reconciler(reconcile_max_repairs=1).run().total == 0


# ---- orphan faces ---------------------------------------------------------------------------


def _orphan(pipeline, photo, key: str = "enroll/carol/1.jpg") -> str:
    """A face indexed for a photo the ledger never recorded (the write died)."""
    pipeline.s3.put_object(Bucket=BUCKET, Key=key, Body=photo("carol", 1))
    response = pipeline.rekognition.index_faces(
        CollectionId=COLLECTION,
        Image={"S3Object": {"Bucket": BUCKET, "Name": key}},
        ExternalImageId=keys.photo_id(BUCKET, key, None),
        MaxFaces=1,
    )
    return str(response["FaceRecords"][0]["Face"]["FaceId"])


def test_orphan_face_is_deleted_only_after_the_grace_period(pipeline, photo, reconciler, clock):
    _associate(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    owned = pipeline.collection_face_ids()
    orphan = _orphan(pipeline, photo)

    first = reconciler().run()
    clock.advance(GRACE_S - 1)
    within = reconciler().run()
    clock.advance(2)
    past = reconciler().run()

    assert (first.total, first.orphan_faces_waiting) == (0, 1)
    assert (within.total, within.orphan_faces_waiting) == (0, 1)
    assert _repaired(past) == {Repair.ORPHAN_FACES_DELETED: 1}
    assert pipeline.collection_face_ids() == owned
    assert orphan not in pipeline.collection_face_ids()
    again = reconciler().run()
    assert (again.total, again.orphan_faces_waiting) == (0, 0)
    markers = pipeline.ddb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "RECONCILER"}},
    )["Items"]
    assert markers == []


def test_a_face_that_gets_owned_within_the_grace_period_is_kept(pipeline, photo, reconciler, clock):
    orphan = _orphan(pipeline, photo)
    reconciler().run()
    # Its photo's ledger write lands after all (a slow delivery): the face is owned.
    pipeline.ddb.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": keys.user_pk("carol")},
            "sk": {"S": keys.photo_sk("p-x")},
            "photo_id": {"S": "p-x"},
            "user_id": {"S": "carol"},
            "status": {"S": "INDEXED"},
            "face_id": {"S": orphan},
            "updated_at": {"S": clock.iso()},
        },
    )
    clock.advance(GRACE_S + 1)

    report = reconciler().run()

    assert report.repaired[Repair.ORPHAN_FACES_DELETED] == 0
    assert orphan in pipeline.collection_face_ids()


def test_faces_held_by_a_user_are_never_orphans(pipeline, photo, reconciler, clock):
    messages = _associate(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    (message,) = messages.values()
    # The ledger lost the photo item, but the user holds the face.
    pipeline.ddb.delete_item(
        TableName=TABLE,
        Key={"pk": {"S": keys.user_pk("alice")}, "sk": {"S": keys.photo_sk(message.photo_id)}},
    )
    clock.advance(GRACE_S + 1)
    reconciler().run()
    clock.advance(GRACE_S + 1)

    assert reconciler().run().repaired[Repair.ORPHAN_FACES_DELETED] == 0
    assert message.face_id in pipeline.user_face_ids("alice")


# ---- failed activations ---------------------------------------------------------------------


def test_user_of_a_failed_activation_that_turned_active_is_activated_with_its_photos(
    pipeline, photo, reconciler, clock
):
    messages = _associate(
        pipeline,
        photo,
        {"enroll/alice/1.jpg": photo("alice", 1), "enroll/alice/2.jpg": photo("alice", 2)},
    )
    # What the state machine leaves after a timeout: user and photos FAILED.
    _set_user(pipeline, "alice", "FAILED", "ACTIVATION_TIMEOUT")
    for message in messages.values():
        pipeline.ledger.transition_photo(
            "alice",
            message.photo_id,
            "FAILED",
            from_statuses={"ASSOCIATED"},
            reason="ACTIVATION_TIMEOUT",
            detail="user not ACTIVE after the wait schedule",
        )

    report = reconciler().run()

    assert _repaired(report) == {Repair.USERS_ACTIVATED: 1, Repair.FAILED_PHOTOS_ACTIVATED: 2}
    assert pipeline.ledger.get_user("alice")["status"] == "ACTIVE"
    for message in messages.values():
        item = pipeline.photo("alice", message.key)
        assert item["status"] == "ACTIVE" and "reason" not in item
    assert reconciler().run().total == 0


def test_failed_photo_whose_face_left_the_user_stays_failed(pipeline, photo, reconciler, clock):
    messages = _associate(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    (message,) = messages.values()
    pipeline.ledger.transition_photo(
        "alice",
        message.photo_id,
        "FAILED",
        from_statuses={"ASSOCIATED"},
        reason="ACTIVATION_ERROR",
    )
    pipeline.rekognition.disassociate_faces(
        CollectionId=COLLECTION, UserId="alice", FaceIds=[message.face_id]
    )

    report = reconciler().run()

    assert report.repaired[Repair.FAILED_PHOTOS_ACTIVATED] == 0
    assert pipeline.photo("alice", message.key)["status"] == "FAILED"


# ---- DLQs -----------------------------------------------------------------------------------


def _dlq_depth(pipeline, url: str) -> int:
    attributes = pipeline.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def test_dlq_messages_get_a_ledger_outcome_and_stay_for_a_redrive(
    pipeline, photo, reconciler, clock, dlqs
):
    # An upload whose every delivery died before the ledger heard of it.
    key = "enroll/dave/1.jpg"
    put = pipeline.s3.put_object(Bucket=BUCKET, Key=key, Body=photo("dave", 1))
    pipeline.sqs.send_message(
        QueueUrl=dlqs["upload"],
        MessageBody=notification(key, put["ETag"].strip('"'), put.get("VersionId")),
    )
    # An association whose last delivery could not record FAILED.
    (message,) = _index(pipeline, photo, {"enroll/erin/1.jpg": photo("erin", 1)}).values()
    pipeline.sqs.send_message(QueueUrl=dlqs["association"], MessageBody=message.to_json())
    pipeline.sqs.send_message(QueueUrl=dlqs["association"], MessageBody="not json")

    report = reconciler().run()

    assert _repaired(report) == {Repair.DLQ_PHOTOS_FAILED: 2}
    assert (report.dlq_messages_read, report.dlq_messages_unreadable) == (3, 1)
    dave = pipeline.photo("dave", key)
    erin = pipeline.photo("erin", message.key)
    assert (dave["status"], erin["status"]) == ("FAILED", "FAILED")
    assert "dead-letter queue" in dave["detail"]
    # Left for a human (and visible again: a redrive or the next run can read them).
    assert _dlq_depth(pipeline, dlqs["upload"]) == 1
    assert _dlq_depth(pipeline, dlqs["association"]) == 2
    visible = pipeline.sqs.receive_message(
        QueueUrl=dlqs["upload"], MaxNumberOfMessages=10, VisibilityTimeout=0
    )
    assert len(visible.get("Messages", [])) == 1
    # Never counted twice.
    again = reconciler().run()
    assert again.total == 0 and again.dlq_messages_read == 3


def test_a_dlq_message_of_a_photo_with_an_outcome_changes_nothing(
    pipeline, photo, reconciler, dlqs
):
    messages = _associate(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    (message,) = messages.values()
    pipeline.ledger.transition_photo(
        "alice", message.photo_id, "ACTIVE", from_statuses={"ASSOCIATED"}
    )
    pipeline.sqs.send_message(QueueUrl=dlqs["association"], MessageBody=message.to_json())

    assert reconciler().run().repaired[Repair.DLQ_PHOTOS_FAILED] == 0
    assert pipeline.photo("alice", message.key)["status"] == "ACTIVE"


# ---- report, metrics, handler ---------------------------------------------------------------


def test_metric_names_follow_the_repair_kinds():
    assert metric_name(Repair.ORPHAN_FACES_DELETED) == "ReconciledOrphanFacesDeleted"
    assert metric_name(Repair.DLQ_PHOTOS_FAILED) == "ReconciledDlqPhotosFailed"


def test_run_counts_its_repairs_as_metrics(pipeline, photo, reconciler, clock):
    from enrollment.observability import metrics

    _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    clock.advance(STUCK_AFTER_S + 1)

    reconciler().run()

    names = set(metrics.metric_set)
    assert "ReconciledStuckAssociationsResent" in names


def test_handler_runs_the_reconciler_from_the_environment(pipeline, monkeypatch, dlqs):
    from reconcile import handler as module

    env = pipeline.environment()
    env.update({"UPLOAD_DLQ_URL": dlqs["upload"], "ASSOCIATION_DLQ_URL": dlqs["association"]})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    context = type(
        "Context",
        (),
        {
            "function_name": "reconcile",
            "memory_limit_in_mb": 256,
            "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:reconcile",
            "aws_request_id": "req-1",
        },
    )()

    answer = module.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, context)

    assert answer["total"] == 0
    assert set(answer["repaired"]) == set(Repair.ALL)
    json.dumps(answer)  # the Lambda answer must be JSON


# ---- settings -------------------------------------------------------------------------------


def test_reconciler_settings_are_read_and_checked():
    from enrollment.settings import Settings, SettingsError

    settings = Settings.from_env(
        {
            "RECONCILE_STUCK_AFTER_S": "5400",
            "RECONCILE_ORPHAN_GRACE_S": "0",
            "RECONCILE_MAX_REPAIRS": "7",
            "UPLOAD_DLQ_URL": "http://q/upload-dlq",
            "ASSOCIATION_DLQ_URL": "http://q/association-dlq",
        }
    )
    assert (settings.reconcile_stuck_after_s, settings.reconcile_orphan_grace_s) == (5400, 0)
    assert settings.reconcile_max_repairs == 7
    assert settings.upload_dlq_url == "http://q/upload-dlq"
    with pytest.raises(SettingsError, match=r"RECONCILE_ORPHAN_GRACE_S must be 0\.\."):
        Settings.from_env({"RECONCILE_ORPHAN_GRACE_S": "-1"})
    with pytest.raises(SettingsError, match=r"RECONCILE_MAX_REPAIRS must be 1\.\."):
        Settings.from_env({"RECONCILE_MAX_REPAIRS": "0"})


def test_the_stacks_stuck_age_follows_the_retry_path():
    from infra.config import PipelineConfig

    config = PipelineConfig()
    env = config.lambda_environment(
        service_name=config.reconcile_service_name,
        upload_dlq_url="http://q/u",
        association_dlq_url="http://q/a",
    )
    assert (env["UPLOAD_DLQ_URL"], env["ASSOCIATION_DLQ_URL"]) == ("http://q/u", "http://q/a")
    assert env["RECONCILE_STUCK_AFTER_S"] == str(config.reconcile_stuck_after_s)
    # 5 deliveries x 900 s + a 900 s activation (a photo that young may still finish) + margin.
    assert config.reconcile_stuck_after_s == 5 * 900 + 900 + config.reconcile_stuck_margin_s
    slower = PipelineConfig(associate_function_timeout_s=300, associate_visibility_timeout_s=1805)
    assert slower.reconcile_stuck_after_s == 5 * 1805 + 900 + slower.reconcile_stuck_margin_s
    with pytest.raises(ValueError, match="reconcile_stuck_margin_s"):
        PipelineConfig(reconcile_stuck_margin_s=-1)


# ---- enroll reconcile -----------------------------------------------------------------------


def test_enroll_reconcile_without_a_local_stack_is_a_usage_error(tmp_path, capsys):
    from enroll_cli.main import EXIT_USAGE, main

    status = main(["reconcile", "--endpoints", str(tmp_path / "endpoints.json")])

    assert status == EXIT_USAGE
    assert "enroll local --data-dir" in capsys.readouterr().err


def test_the_report_prints_as_a_table():
    from enroll_cli.main import render_reconcile_report
    from enrollment.reconciler import ReconcileReport

    report = ReconcileReport(orphan_faces_waiting=2, capped=[Capped.ORPHAN_FACES])
    report.add(Repair.ORPHAN_FACES_DELETED, 3)

    table = render_reconcile_report(report.as_dict()).splitlines()

    assert any(line.split() == ["orphan_faces_deleted", "3"] for line in table)
    assert any(line.split()[-1] == "2" and "waiting" in line for line in table)
    assert any(line.split()[:2] == ["total", "repaired"] and line.endswith("3") for line in table)
    assert table[-1] == "capped (more left for the next run): orphan_faces"
