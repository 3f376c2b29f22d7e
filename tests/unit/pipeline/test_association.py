"""Associate stage against moto + the synthetic Rekognition emulator."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from enrollment.keys import activation_execution_name


def _index(pipeline, photo, uploads, **settings):
    """Upload and index ``{key: photo bytes}``; return the association messages by id."""
    stage = pipeline.index_stage(**settings)
    for key, content in uploads.items():
        stage.handle_notification(pipeline.upload(key, content))
    return dict(pipeline.association_messages())


def test_batch_associates_each_user_and_starts_one_activation(pipeline, photo):
    messages = _index(
        pipeline,
        photo,
        {
            "enroll/alice/1.jpg": photo("alice", 1),
            "enroll/alice/2.jpg": photo("alice", 2),
            "enroll/bob/1.jpg": photo("bob", 1),
        },
    )

    outcomes, failures = pipeline.associate_stage().handle_batch(messages)

    assert failures == {}
    by_user = {o.user_id: o for o in outcomes}
    alice_faces = {m.face_id for m in messages.values() if m.user_id == "alice"}
    assert set(by_user["alice"].associated) == alice_faces
    assert pipeline.user_face_ids("alice") == alice_faces
    assert by_user["alice"].face_count == 2
    for message in messages.values():
        assert pipeline.photo(message.user_id, message.key)["status"] == "ASSOCIATED"
    user = pipeline.ledger.get_user("alice")
    assert (user["status"], user["face_count"]) == ("UPDATING", 2)

    executions = {e["name"]: e for e in pipeline.executions()}
    name = activation_execution_name("alice", sorted(alice_faces))
    assert name in executions and len(executions) == 2
    described = pipeline.sfn.describe_execution(executionArn=executions[name]["executionArn"])
    payload = json.loads(described["input"])
    assert payload["userId"] == "alice"
    assert payload["faceIds"] == sorted(alice_faces)
    assert payload["probeFaceId"] in alice_faces
    assert payload["waitSchedule"] == list(pipeline.settings.activation_wait_schedule)
    assert (payload["attempt"], payload["waited"]) == (0, 0)
    # Seconds since the batch's oldest upload (or indexing, for messages without upload time)
    assert 0 <= payload["uploadLagSeconds"] < 60


def test_replayed_batch_makes_no_new_association(pipeline, photo):
    messages = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    stage = pipeline.associate_stage()
    stage.handle_batch(messages)
    ledger_before = pipeline.ledger.user_photos("alice")
    calls = []
    real = pipeline.rekognition.associate_faces

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    stage.rekognition = _Wrap(pipeline.rekognition, associate_faces=spy)

    _, failures = stage.handle_batch(messages)

    assert failures == {}
    assert calls == []  # already associated: nothing asked of AssociateFaces
    assert pipeline.ledger.user_photos("alice") == ledger_before
    assert len(pipeline.executions()) == 1  # same execution name: no second activation


def test_replay_while_activation_settles_does_not_reopen_the_user(pipeline, photo):
    messages = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    stage = pipeline.associate_stage()
    stage.handle_batch(messages)
    # The execution has marked the user ACTIVE but not yet its photos when the replay arrives.
    pipeline.ddb.update_item(
        TableName=pipeline.settings.ledger_table,
        Key={"pk": {"S": "USER#alice"}, "sk": {"S": "USER"}},
        UpdateExpression="SET #s = :a",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":a": {"S": "ACTIVE"}},
    )

    outcomes, failures = stage.handle_batch(messages)

    # The photo records the running execution that settles it: the replay leaves it to it.
    (message,) = messages.values()
    assert failures == {} and outcomes[0].skipped == [message.photo_id]
    assert pipeline.ledger.get_user("alice")["status"] == "ACTIVE"
    assert len(pipeline.executions()) == 1


def test_a_split_burst_goes_out_in_one_call_with_its_waiting_siblings(pipeline, photo):
    messages = _index(
        pipeline,
        photo,
        {f"enroll/alice/{n}.jpg": photo("alice", n) for n in range(1, 5)}
        | {"enroll/bob/1.jpg": photo("bob", 1)},
    )
    alice = sorted((m for m in messages.items() if m[1].user_id == "alice"), key=lambda m: m[1].key)
    first_batch = dict(alice[:1])  # the other three went to a batch gathered alongside
    second_batch = dict(alice[1:])
    stage = pipeline.associate_stage()
    calls = []
    real = pipeline.rekognition.associate_faces

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    stage.rekognition = _Wrap(pipeline.rekognition, associate_faces=spy)

    outcomes, failures = stage.handle_batch(first_batch)

    alice_faces = {m.face_id for _, m in alice}
    assert failures == {} and len(calls) == 1
    assert set(calls[0]["FaceIds"]) == alice_faces  # the whole burst in one call
    assert set(outcomes[0].associated) == alice_faces
    execution = activation_execution_name("alice", sorted(alice_faces))
    for _, message in alice:
        photo_item = pipeline.photo("alice", message.key)
        assert (photo_item["status"], photo_item["activation"]) == ("ASSOCIATED", execution)
    assert pipeline.photo("bob", "enroll/bob/1.jpg")["status"] == "INDEXED"  # not alice's

    outcomes, failures = stage.handle_batch(second_batch)

    assert failures == {} and len(calls) == 1  # nothing left to ask AssociateFaces
    assert sorted(outcomes[0].skipped) == sorted(m.photo_id for _, m in alice[1:])
    assert [e["name"] for e in pipeline.executions()] == [execution]


def test_replay_after_a_crash_between_associate_and_ledger_completes_the_work(pipeline, photo):
    messages = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    [message] = messages.values()
    # The first run associated the face in Rekognition, then died before the ledger write.
    pipeline.rekognition.create_user(CollectionId="face-enrollment", UserId="alice")
    pipeline.rekognition.associate_faces(
        CollectionId="face-enrollment", UserId="alice", FaceIds=[message.face_id]
    )

    outcomes, failures = pipeline.associate_stage().handle_batch(messages)

    assert failures == {}
    assert outcomes[0].associated == [message.face_id]
    assert pipeline.photo("alice", message.key)["status"] == "ASSOCIATED"
    assert len(pipeline.executions()) == 1


def test_face_limit_reject_policy_rejects_and_deletes_the_excess(pipeline, photo):
    uploads = {f"enroll/alice/{i}.jpg": photo("alice", i) for i in range(3)}
    messages = _index(pipeline, photo, uploads)

    outcomes, _ = pipeline.associate_stage(max_faces_per_user=2).handle_batch(messages)

    [outcome] = outcomes
    assert len(outcome.associated) == 2
    [(rejected_face, reason)] = outcome.rejected.items()
    assert reason == "USER_FACE_LIMIT"
    assert rejected_face not in pipeline.collection_face_ids()
    statuses = sorted(pipeline.photo("alice", k)["status"] for k in uploads)
    assert statuses == ["ASSOCIATED", "ASSOCIATED", "REJECTED"]
    assert pipeline.ledger.get_user("alice")["face_count"] == 2


def test_face_limit_keep_best_replaces_the_worst_face(pipeline, photo):
    first = _index(
        pipeline,
        photo,
        {
            "enroll/alice/ok.jpg": photo("alice", 1, sharpness=50.0),
            "enroll/alice/good.jpg": photo("alice", 2, sharpness=70.0),
        },
    )
    stage = pipeline.associate_stage(max_faces_per_user=2, face_cap_policy="keep-best")
    stage.handle_batch(first)
    better = _index(pipeline, photo, {"enroll/alice/best.jpg": photo("alice", 3, sharpness=95.0)})

    _, failures = stage.handle_batch(better)

    assert failures == {}
    ok_photo = pipeline.photo("alice", "enroll/alice/ok.jpg")
    assert (ok_photo["status"], ok_photo["reason"]) == ("REJECTED", "REPLACED_BY_BETTER_PHOTO")
    assert ok_photo["face_id"] not in pipeline.collection_face_ids()
    assert pipeline.photo("alice", "enroll/alice/best.jpg")["status"] == "ASSOCIATED"
    assert len(pipeline.user_face_ids("alice")) == 2
    assert pipeline.ledger.get_user("alice")["face_count"] == 2

    worse = _index(pipeline, photo, {"enroll/alice/meh.jpg": photo("alice", 4, sharpness=30.0)})
    stage.handle_batch(worse)
    meh = pipeline.photo("alice", "enroll/alice/meh.jpg")
    assert (meh["status"], meh["reason"]) == ("REJECTED", "USER_FACE_LIMIT")


def test_someone_else_face_is_rejected_and_deleted_as_low_match(pipeline, photo):
    stage = pipeline.associate_stage()
    stage.handle_batch(_index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)}))
    # Bob's face uploaded under alice's prefix: AssociateFaces refuses it (user has a face).
    intruder = _index(pipeline, photo, {"enroll/alice/bob.jpg": photo("bob", 1)})

    outcomes, failures = stage.handle_batch(intruder)

    assert failures == {}
    [(face_id, reason)] = outcomes[0].rejected.items()
    assert reason == "LOW_MATCH_CONFIDENCE"
    item = pipeline.photo("alice", "enroll/alice/bob.jpg")
    assert item["reason"] == "LOW_MATCH_CONFIDENCE" and "needs review" in item["detail"]
    assert face_id not in pipeline.collection_face_ids()
    assert len(pipeline.executions()) == 1  # nothing new associated: no activation


def test_face_associated_to_another_user_is_rejected_but_kept(pipeline, photo):
    messages = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    [message] = messages.values()
    pipeline.rekognition.create_user(CollectionId="face-enrollment", UserId="mallory")
    pipeline.rekognition.associate_faces(
        CollectionId="face-enrollment", UserId="mallory", FaceIds=[message.face_id]
    )

    outcomes, _ = pipeline.associate_stage().handle_batch(messages)

    assert outcomes[0].rejected == {message.face_id: "ASSOCIATED_TO_A_DIFFERENT_USER"}
    assert "mallory" in pipeline.photo("alice", message.key)["detail"]
    assert message.face_id in pipeline.collection_face_ids()


def test_face_gone_from_the_collection_is_face_not_found(pipeline, photo):
    messages = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    [message] = messages.values()
    pipeline.rekognition.delete_faces(CollectionId="face-enrollment", FaceIds=[message.face_id])

    outcomes, _ = pipeline.associate_stage().handle_batch(messages)

    assert outcomes[0].rejected == {message.face_id: "FACE_NOT_FOUND"}


def test_photo_deleted_while_waiting_leaves_no_orphan_face(pipeline, photo):
    messages = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    [message] = messages.values()
    pipeline.ddb.delete_item(
        TableName=pipeline.settings.ledger_table,
        Key={"pk": {"S": "USER#alice"}, "sk": {"S": f"PHOTO#{message.photo_id}"}},
    )

    outcomes, failures = pipeline.associate_stage().handle_batch(messages)

    assert failures == {} and outcomes[0].associated == []
    assert pipeline.collection_face_ids() == set()
    assert pipeline.ledger.get_user("alice") is None  # no user resurrected


def test_chunks_respect_associate_max_face_ids(pipeline, photo):
    uploads = {f"enroll/alice/{i}.jpg": photo("alice", i) for i in range(5)}
    messages = _index(pipeline, photo, uploads)
    calls = []
    real = pipeline.rekognition.associate_faces

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    stage = pipeline.associate_stage(associate_max_face_ids=2)
    stage.rekognition = _Wrap(pipeline.rekognition, associate_faces=spy)
    outcomes, _ = stage.handle_batch(messages)

    assert [len(c["FaceIds"]) for c in calls] == [2, 2, 1]
    assert len({c["ClientRequestToken"] for c in calls}) == 3
    assert len(outcomes[0].associated) == 5


def test_transient_error_fails_only_that_users_records(pipeline, photo):
    messages = _index(
        pipeline,
        photo,
        {"enroll/alice/1.jpg": photo("alice", 1), "enroll/bob/1.jpg": photo("bob", 1)},
    )
    real = pipeline.rekognition.associate_faces

    def conflict_for_bob(**kwargs):
        if kwargs["UserId"] == "bob":
            raise ClientError(
                {"Error": {"Code": "ConflictException", "Message": "user is updating"}},
                "AssociateFaces",
            )
        return real(**kwargs)

    stage = pipeline.associate_stage()
    stage.rekognition = _Wrap(pipeline.rekognition, associate_faces=conflict_for_bob)
    outcomes, failures = stage.handle_batch(messages)

    bob_ids = {mid for mid, m in messages.items() if m.user_id == "bob"}
    assert set(failures) == bob_ids
    assert [o.user_id for o in outcomes] == ["alice"]
    bob_key = next(m.key for m in messages.values() if m.user_id == "bob")
    assert pipeline.photo("bob", bob_key)["status"] == "INDEXED"  # untouched, will be retried

    # On the last allowed delivery the photo is recorded FAILED before the message moves on.
    last = {mid: pipeline.settings.max_receive_count for mid in messages}
    stage.handle_batch({mid: messages[mid] for mid in bob_ids}, last)
    item = pipeline.photo("bob", bob_key)
    assert (item["status"], item["reason"]) == ("FAILED", "UNEXPECTED_ERROR")


class _Wrap:
    def __init__(self, real, **overrides):
        self._real, self._overrides = real, overrides

    def __getattr__(self, name):
        return self._overrides.get(name) or getattr(self._real, name)


def _client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)


def test_last_delivery_failure_leaves_no_orphan_face(pipeline, photo):
    messages = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    [message] = messages.values()

    def throttled(**kwargs):
        raise _client_error("ThrottlingException", "AssociateFaces")

    stage = pipeline.associate_stage()
    stage.rekognition = _Wrap(pipeline.rekognition, associate_faces=throttled)
    last = {mid: pipeline.settings.max_receive_count for mid in messages}
    _, failures = stage.handle_batch(messages, last)

    assert set(failures) == set(messages)
    item = pipeline.photo("alice", message.key)
    assert (item["status"], item["reason"]) == ("FAILED", "THROTTLED")
    # The face was never associated: left in the collection it would belong to nobody.
    assert message.face_id not in pipeline.collection_face_ids()


def test_last_delivery_failure_after_association_still_ends_the_photo(pipeline, photo):
    messages = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    [message] = messages.values()

    def sfn_throttled(**kwargs):
        raise _client_error("ThrottlingException", "StartExecution")

    stage = pipeline.associate_stage()
    stage.sfn = _Wrap(pipeline.sfn, start_execution=sfn_throttled)
    last = {mid: pipeline.settings.max_receive_count for mid in messages}
    _, failures = stage.handle_batch(messages, last)

    assert set(failures) == set(messages)
    assert pipeline.executions() == []
    # No activation will ever settle this photo: it must not stay ASSOCIATED forever.
    item = pipeline.photo("alice", message.key)
    assert (item["status"], item["reason"]) == ("FAILED", "THROTTLED")
    assert "activation" in item["detail"]


# --- FAILED photos: a redriven association message reaches a real outcome --------------------


def _fail_on_last_delivery(pipeline, messages, **wraps):
    """One batch on its last allowed delivery with the wrapped calls failing (-> FAILED)."""
    stage = pipeline.associate_stage()
    for client_name, overrides in wraps.items():
        setattr(stage, client_name, _Wrap(getattr(pipeline, client_name), **overrides))
    last = {mid: pipeline.settings.max_receive_count for mid in messages}
    _, failures = stage.handle_batch(messages, last)
    assert set(failures) == set(messages)


def _throttled(operation):
    def fail(**kwargs):
        raise _client_error("ThrottlingException", operation)

    return fail


def test_a_redriven_message_sends_a_failed_photo_back_through_the_index_stage(pipeline, photo):
    from enrollment.messages import parse_s3_notification
    from enrollment.observability import metrics

    key = "enroll/alice/my photo 1+1 été.jpg"
    stage = pipeline.index_stage()
    body = json.loads(pipeline.upload(key, photo("alice", 1)))
    body["Records"][0]["eventTime"] = "2026-01-02T03:04:05.678Z"
    stage.handle_notification(json.dumps(body))
    messages = dict(pipeline.association_messages())
    [message] = messages.values()
    _fail_on_last_delivery(
        pipeline, messages, rekognition={"associate_faces": _throttled("AssociateFaces")}
    )
    failed = pipeline.photo("alice", key)
    assert (failed["status"], failed["reason"]) == ("FAILED", "THROTTLED")
    assert message.face_id not in pipeline.collection_face_ids()

    # The cause is fixed and the DLQ redriven: the message comes back to the associate stage.
    outcomes, failures = pipeline.associate_stage().handle_batch(messages)

    assert failures == {}
    assert outcomes[0].requeued == [message.photo_id]
    assert "PhotosRequeued" in metrics.metric_set
    [notification] = pipeline.upload_messages()
    [obj] = parse_s3_notification(notification)
    assert (obj.bucket, obj.key, obj.version_id) == (
        failed["bucket"],
        key,
        failed["version_id"],
    )
    assert (obj.etag, obj.event_time) == (failed["etag"], "2026-01-02T03:04:05.678Z")
    assert pipeline.executions() == []  # nothing associated yet: the index stage goes first

    # The index stage takes the FAILED photo back: INDEXED, a fresh association message.
    [indexed] = stage.handle_notification(notification)
    assert (indexed.status, indexed.replayed) == ("INDEXED", False)
    item = pipeline.photo("alice", key)
    assert (item["status"], item.get("reason"), item["face_id"]) == (
        "INDEXED",
        None,
        indexed.face_id,
    )
    assert item["uploaded_at"] == "2026-01-02T03:04:05.678Z"
    fresh = dict(pipeline.association_messages())
    assert [m.photo_id for m in fresh.values()] == [message.photo_id]

    # ... and the photo goes the normal way.
    outcomes, failures = pipeline.associate_stage().handle_batch(fresh)
    assert failures == {}
    assert outcomes[0].associated == [indexed.face_id]
    assert pipeline.photo("alice", key)["status"] == "ASSOCIATED"
    assert pipeline.user_face_ids("alice") == {indexed.face_id}
    assert len(pipeline.executions()) == 1


def test_two_copies_of_a_redriven_message_are_harmless(pipeline, photo):
    messages = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    [message] = messages.values()
    _fail_on_last_delivery(
        pipeline, messages, rekognition={"associate_faces": _throttled("AssociateFaces")}
    )

    # Both copies arrive while the photo is still FAILED: two notifications.
    for _ in range(2):
        _, failures = pipeline.associate_stage().handle_batch(messages)
        assert failures == {}
    notifications = pipeline.upload_messages()
    assert len(notifications) == 2

    index = pipeline.index_stage()
    [first] = index.handle_notification(notifications[0])
    [second] = index.handle_notification(notifications[1])
    assert (first.status, first.replayed) == ("INDEXED", False)
    assert (second.status, second.replayed, second.face_id) == ("INDEXED", True, first.face_id)
    # A third copy arrives after the photo was indexed again: a duplicate of the fresh message.
    outcomes, failures = pipeline.associate_stage().handle_batch(
        {**dict(pipeline.association_messages()), "late-copy": message}
    )

    assert failures == {}
    assert pipeline.upload_messages() == []
    assert pipeline.photo("alice", message.key)["status"] == "ASSOCIATED"
    assert pipeline.user_face_ids("alice") == {first.face_id}
    assert pipeline.collection_face_ids() == {first.face_id}  # no orphan, no duplicate
    assert len(pipeline.executions()) == 1
    assert outcomes[0].requeued == []


def test_a_stale_message_neither_touches_nor_fails_the_photo_indexed_again(pipeline, photo):
    from dataclasses import replace

    messages = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    [(message_id, message)] = messages.items()
    # Indexed again since (a FAILED photo sent back), with a new face (Rekognition gives one
    # when the old face was deleted): the old message names a face the photo no longer has.
    stale = replace(message, face_id="00000000-0000-4000-8000-000000000000")
    stage = pipeline.associate_stage()

    outcomes, failures = stage.handle_batch({"stale": stale})

    assert failures == {}
    assert outcomes[0].skipped == [message.photo_id]
    assert pipeline.photo("alice", message.key)["status"] == "INDEXED"
    assert pipeline.upload_messages() == []
    # Failing on its last delivery (its user's batch failed), it must not fail the photo.
    stage._record_failures([stale], _client_error("ThrottlingException", "AssociateFaces"))
    assert pipeline.photo("alice", message.key)["status"] == "INDEXED"
    assert message.face_id in pipeline.collection_face_ids()
    outcomes, failures = stage.handle_batch({message_id: message})
    assert failures == {}
    assert pipeline.photo("alice", message.key)["status"] == "ASSOCIATED"


def test_a_failed_photo_whose_face_the_user_holds_is_resumed_not_indexed_again(pipeline, photo):
    messages = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    [message] = messages.values()
    # Associated, then every delivery failed to start the activation: FAILED, face kept.
    _fail_on_last_delivery(
        pipeline, messages, sfn={"start_execution": _throttled("StartExecution")}
    )
    item = pipeline.photo("alice", message.key)
    assert (item["status"], item["reason"]) == ("FAILED", "THROTTLED")
    assert pipeline.user_face_ids("alice") == {message.face_id}

    outcomes, failures = pipeline.associate_stage().handle_batch(messages)

    assert failures == {}
    assert pipeline.upload_messages() == []  # not indexed again
    assert outcomes[0].resumed == [message.photo_id]
    item = pipeline.photo("alice", message.key)
    assert (item["status"], item.get("reason"), item.get("detail")) == ("ASSOCIATED", None, None)
    # Its activation, which never started, does now.
    [execution] = pipeline.executions()
    assert execution["name"] == activation_execution_name("alice", [message.face_id])
    assert pipeline.ledger.get_user("alice")["status"] == "UPDATING"


def test_a_failed_activation_is_left_to_the_reconciler(pipeline, photo):
    messages = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    [message] = messages.values()
    pipeline.associate_stage().handle_batch(messages)
    # The activation timed out (the state machine's own FAILED write).
    assert pipeline.ledger.transition_photo(
        "alice",
        message.photo_id,
        "FAILED",
        from_statuses={"ASSOCIATED"},
        reason="ACTIVATION_TIMEOUT",
        detail="user alice not ACTIVE after 11 status checks over 303 s",
    )

    outcomes, failures = pipeline.associate_stage().handle_batch(messages)

    assert failures == {}
    assert outcomes[0].skipped == [message.photo_id]
    assert (outcomes[0].requeued, outcomes[0].resumed) == ([], [])
    assert pipeline.upload_messages() == []
    item = pipeline.photo("alice", message.key)
    assert (item["status"], item["reason"]) == ("FAILED", "ACTIVATION_TIMEOUT")
    assert pipeline.user_face_ids("alice") == {message.face_id}
    assert len(pipeline.executions()) == 1


def test_a_failed_photo_whose_face_is_left_unowned_is_cleaned_then_indexed_again(pipeline, photo):
    messages = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    [message] = messages.values()
    # FAILED while its face stayed in the collection (the DeleteFaces of the last delivery
    # failed too): the message for it must not leave that face behind.
    _fail_on_last_delivery(
        pipeline,
        messages,
        rekognition={
            "associate_faces": _throttled("AssociateFaces"),
            "delete_faces": _throttled("DeleteFaces"),
        },
    )
    assert pipeline.photo("alice", message.key)["status"] == "FAILED"
    assert message.face_id in pipeline.collection_face_ids()
    deleted = []
    real_delete = pipeline.rekognition.delete_faces

    def delete_then_check(**kwargs):
        deleted.extend(kwargs["FaceIds"])
        assert pipeline.upload_messages() == []  # deleted before the photo is sent back
        return real_delete(**kwargs)

    stage = pipeline.associate_stage()
    stage.rekognition = _Wrap(pipeline.rekognition, delete_faces=delete_then_check)
    outcomes, failures = stage.handle_batch(messages)

    assert failures == {}
    assert deleted == [message.face_id]
    assert outcomes[0].requeued == [message.photo_id]
    assert pipeline.collection_face_ids() == set()
    [notification] = pipeline.upload_messages()
    [indexed] = pipeline.index_stage().handle_notification(notification)
    assert indexed.status == "INDEXED"
    assert pipeline.collection_face_ids() == {indexed.face_id}


def test_keep_best_never_evicts_a_face_whose_association_is_being_completed(pipeline, photo):
    stage = pipeline.associate_stage(max_faces_per_user=2, face_cap_policy="keep-best")
    stage.handle_batch(
        _index(pipeline, photo, {"enroll/alice/ok.jpg": photo("alice", 1, sharpness=60.0)})
    )
    # A first run associated this weak face in Rekognition, then died before the ledger write.
    weak = _index(pipeline, photo, {"enroll/alice/weak.jpg": photo("alice", 2, sharpness=30.0)})
    [weak_message] = weak.values()
    pipeline.rekognition.associate_faces(
        CollectionId="face-enrollment", UserId="alice", FaceIds=[weak_message.face_id]
    )
    best = _index(pipeline, photo, {"enroll/alice/best.jpg": photo("alice", 3, sharpness=95.0)})

    _, failures = stage.handle_batch({**weak, **best})  # the replay meets a better face

    assert failures == {}
    weak_photo = pipeline.photo("alice", "enroll/alice/weak.jpg")
    # Whatever its photo's outcome, the ledger and the collection must agree.
    if weak_photo["status"] == "ASSOCIATED":
        assert weak_message.face_id in pipeline.user_face_ids("alice")
    else:
        assert weak_photo["status"] == "REJECTED"
        assert weak_message.face_id not in pipeline.collection_face_ids()
    assert len(pipeline.user_face_ids("alice")) <= 2
    for key in ("enroll/alice/ok.jpg", "enroll/alice/best.jpg"):
        item = pipeline.photo("alice", key)
        if item["status"] == "ASSOCIATED":
            assert item["face_id"] in pipeline.user_face_ids("alice")


def test_associate_token_is_never_reused_with_other_parameters(pipeline, photo):
    from enrollment import keys

    pipeline.associate_stage().handle_batch(
        _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    )
    intruder = _index(pipeline, photo, {"enroll/alice/bob.jpg": photo("bob", 1)})
    [message] = intruder.values()
    # An earlier delivery, run with another UserMatchThreshold setting (a deployment happened
    # in between), got its answer and died before the ledger write.
    earlier = pipeline.rekognition.associate_faces(
        CollectionId="face-enrollment",
        UserId="alice",
        FaceIds=[message.face_id],
        UserMatchThreshold=75,
        ClientRequestToken=keys.associate_token(
            "alice", [message.face_id], collection_id="face-enrollment", threshold=75
        ),
    )
    assert earlier["UnsuccessfulFaceAssociations"]

    outcomes, failures = pipeline.associate_stage(user_match_threshold=80.0).handle_batch(intruder)

    assert failures == {}  # not IdempotentParameterMismatchException, retried until FAILED
    assert outcomes[0].rejected == {message.face_id: "LOW_MATCH_CONFIDENCE"}


# ---- the 100-faces cap under racing batches ------------------------------------------------

COLLECTION = "face-enrollment"


def _seed_user(pipeline, photo, user_id, count):
    """A user already holding ``count`` faces (associated outside the pipeline, no ledger)."""
    pipeline.rekognition.create_user(CollectionId=COLLECTION, UserId=user_id)
    faces = []
    for i in range(count):
        indexed = pipeline.rekognition.index_faces(
            CollectionId=COLLECTION,
            Image={"Bytes": photo(user_id, 10_000 + i)},
            ExternalImageId=f"seed-{i}",
        )
        faces.append(indexed["FaceRecords"][0]["Face"]["FaceId"])
    for start in range(0, count, 100):
        pipeline.rekognition.associate_faces(
            CollectionId=COLLECTION, UserId=user_id, FaceIds=faces[start : start + 100]
        )
    return faces


def _faces_without_user(pipeline):
    faces = pipeline.rekognition.list_faces(CollectionId=COLLECTION, MaxResults=4096)["Faces"]
    return {f["FaceId"] for f in faces if not f.get("UserId")}


def _race(pipeline, stage, first, second_stage, second):
    """Run ``first`` with ``stage``; ``second`` runs whole inside first's first AssociateFaces,
    after first has planned: both batches plan from the same face count.

    Both batches' photos are indexed before either runs, so each stage would also take the
    other's photos as waiting siblings; the race of two disjoint plans needs that off (a photo
    indexed after a plan races it the same way with siblings on)."""
    stage.gather_siblings = second_stage.gather_siblings = False
    real = pipeline.rekognition.associate_faces
    raced = []

    def associate_after_the_other_batch(**kwargs):
        if not raced:
            raced.append(second_stage.handle_batch(second))
        return real(**kwargs)

    stage.rekognition = _Wrap(pipeline.rekognition, associate_faces=associate_after_the_other_batch)
    outcome = stage.handle_batch(first)
    assert raced, "the second batch never ran"
    return outcome, raced[0]


def _statuses(pipeline, user_id, messages):
    out = {}
    for message in messages.values():
        item = pipeline.photo(user_id, message.key)
        out[message.face_id] = (item["status"], item.get("reason"))
    return out


def test_two_batches_crossing_the_cap_together_leave_100_faces_and_no_orphan(pipeline, photo):
    # Given a user with 98 faces and two batches of 5 that both plan from 98
    _seed_user(pipeline, photo, "alice", 98)
    first = _index(pipeline, photo, {f"enroll/alice/a{i}.jpg": photo("alice", i) for i in range(5)})
    second = _index(
        pipeline, photo, {f"enroll/alice/b{i}.jpg": photo("alice", 50 + i) for i in range(5)}
    )

    # When the second batch associates while the first is between its plan and AssociateFaces
    (_, failures), (_, second_failures) = _race(
        pipeline, pipeline.associate_stage(), first, pipeline.associate_stage(), second
    )

    # Then the user holds exactly 100 faces, every other photo is REJECTED USER_FACE_LIMIT
    # (the first batch's by ServiceQuotaExceededException), and no face is left without a user
    assert failures == {} and second_failures == {}
    assert len(pipeline.user_face_ids("alice")) == 100
    outcomes = {**_statuses(pipeline, "alice", first), **_statuses(pipeline, "alice", second)}
    assert (
        sorted(outcomes.values())
        == [("ASSOCIATED", None)] * 2 + [("REJECTED", "USER_FACE_LIMIT")] * 8
    )
    for face_id, (status, _) in outcomes.items():
        assert (face_id in pipeline.user_face_ids("alice")) == (status == "ASSOCIATED")
    assert _faces_without_user(pipeline) == set()
    assert pipeline.ledger.get_user("alice")["face_count"] == 100


@pytest.mark.parametrize(
    "reasons",
    [(), ("FACE_NOT_FOUND",), ("LOW_MATCH_CONFIDENCE",), ("ASSOCIATED_TO_A_DIFFERENT_USER",)],
)
def test_a_face_refused_at_the_cap_is_rejected_and_deleted_whatever_its_reason(
    pipeline, photo, reasons
):
    # AWS documents no reason for a face refused at the cap: the pipeline must not trust any.
    pipeline.emulator.config.cap_refusal_reasons = reasons
    _seed_user(pipeline, photo, "alice", 97)
    first = _index(pipeline, photo, {f"enroll/alice/a{i}.jpg": photo("alice", i) for i in range(2)})
    second = _index(
        pipeline, photo, {f"enroll/alice/b{i}.jpg": photo("alice", 50 + i) for i in range(2)}
    )

    # The second batch takes 99; the first's call then associates one face and is refused one.
    (outcomes, failures), _ = _race(
        pipeline, pipeline.associate_stage(), first, pipeline.associate_stage(), second
    )

    assert failures == {}
    [outcome] = outcomes
    assert len(outcome.associated) == 1
    assert list(outcome.rejected.values()) == ["USER_FACE_LIMIT"]
    assert outcome.face_count == 100
    [refused] = outcome.rejected
    assert refused not in pipeline.collection_face_ids()
    assert len(pipeline.user_face_ids("alice")) == 100
    assert _faces_without_user(pipeline) == set()
    assert pipeline.ledger.get_user("alice")["face_count"] == 100


def test_keep_best_replans_a_refused_face_against_the_settled_ones(pipeline, photo, monkeypatch):
    # A cap of 4 (emulator and setting alike) keeps the test small.
    from enroll_local.rekognition import service

    monkeypatch.setattr(service, "MAX_FACES_PER_USER", 4)
    settings = {"max_faces_per_user": 4, "face_cap_policy": "keep-best"}
    settled = _index(
        pipeline,
        photo,
        {f"enroll/alice/s{q}.jpg": photo("alice", q, sharpness=float(q)) for q in (50, 60, 70)},
    )
    pipeline.associate_stage(**settings).handle_batch(settled)
    first = _index(pipeline, photo, {"enroll/alice/best.jpg": photo("alice", 1, sharpness=90.0)})
    second = _index(pipeline, photo, {"enroll/alice/ok.jpg": photo("alice", 2, sharpness=55.0)})

    # Both plan one free slot; the second takes it, the first is then refused (quota exceeded).
    (_, failures), _ = _race(
        pipeline,
        pipeline.associate_stage(**settings),
        first,
        pipeline.associate_stage(**settings),
        second,
    )

    # The refused face is better than the worst settled one: planned again, it replaces it.
    assert failures == {}
    assert pipeline.photo("alice", "enroll/alice/best.jpg")["status"] == "ASSOCIATED"
    assert pipeline.photo("alice", "enroll/alice/ok.jpg")["status"] == "ASSOCIATED"
    worst = pipeline.photo("alice", "enroll/alice/s50.jpg")
    assert (worst["status"], worst["reason"]) == ("REJECTED", "REPLACED_BY_BETTER_PHOTO")
    assert len(pipeline.user_face_ids("alice")) == 4
    assert _faces_without_user(pipeline) == set()


def test_a_refused_face_the_collection_shows_as_this_users_counts_as_associated(pipeline, photo):
    # A replayed answer may call a face unsuccessful that is this user's by now.
    messages = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    [message] = messages.values()
    real = pipeline.rekognition.associate_faces

    def stale_answer(**kwargs):
        real(**kwargs)
        return {
            "AssociatedFaces": [],
            "UnsuccessfulFaceAssociations": [{"FaceId": message.face_id, "Reasons": []}],
            "UserStatus": "UPDATING",
        }

    stage = pipeline.associate_stage()
    stage.rekognition = _Wrap(pipeline.rekognition, associate_faces=stale_answer)
    outcomes, failures = stage.handle_batch(messages)

    assert failures == {} and outcomes[0].associated == [message.face_id]
    assert pipeline.photo("alice", message.key)["status"] == "ASSOCIATED"


def test_quota_exceeded_for_a_user_with_room_is_retried_not_rejected(pipeline, photo):
    messages = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    [message] = messages.values()

    def quota(**kwargs):
        raise _client_error("ServiceQuotaExceededException", "AssociateFaces")

    stage = pipeline.associate_stage()
    stage.rekognition = _Wrap(pipeline.rekognition, associate_faces=quota)
    _, failures = stage.handle_batch(messages)

    assert set(failures) == set(messages)
    assert pipeline.photo("alice", message.key)["status"] == "INDEXED"


# ---- CreateUser only when needed ---------------------------------------------------------


def _count_operations(pipeline):
    calls = []
    original = pipeline.emulator.dispatch

    def dispatch(operation, params, **kwargs):
        calls.append(operation)
        return original(operation, params, **kwargs)

    pipeline.emulator.dispatch = dispatch
    return calls


def test_a_second_batch_for_an_existing_user_makes_no_create_user_call(pipeline, photo):
    stage = pipeline.associate_stage()
    calls = _count_operations(pipeline)
    stage.handle_batch(_index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)}))
    assert calls.count("CreateUser") == 1
    assert pipeline.ledger.get_user("alice").get("rekognition_user_created_at")

    calls.clear()
    _, failures = stage.handle_batch(
        _index(pipeline, photo, {"enroll/alice/2.jpg": photo("alice", 2)})
    )

    assert failures == {}
    assert calls.count("CreateUser") == 0
    assert calls.count("AssociateFaces") == 1
    assert len(pipeline.user_face_ids("alice")) == 2


def test_a_user_existing_before_the_ledger_knew_it_is_marked_after_conflict(pipeline, photo):
    pipeline.rekognition.create_user(CollectionId=COLLECTION, UserId="alice")
    stage = pipeline.associate_stage()
    _, failures = stage.handle_batch(
        _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    )
    assert failures == {}
    assert pipeline.ledger.get_user("alice").get("rekognition_user_created_at")


def test_a_user_deleted_behind_our_back_is_created_again_on_the_retry(pipeline, photo):
    stage = pipeline.associate_stage()
    stage.handle_batch(_index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)}))
    pipeline.rekognition.delete_user(CollectionId=COLLECTION, UserId="alice")
    messages = _index(pipeline, photo, {"enroll/alice/2.jpg": photo("alice", 2)})

    # The mark says the user exists: AssociateFaces answers ResourceNotFoundException
    _, failures = stage.handle_batch(messages)
    assert set(failures) == set(messages)
    assert not pipeline.ledger.get_user("alice").get("rekognition_user_created_at")

    # and the retry creates it (with a new token: the old one would replay "created").
    calls = _count_operations(pipeline)
    _, failures = stage.handle_batch(messages)
    assert failures == {}
    assert calls.count("CreateUser") == 1
    [message] = messages.values()
    assert pipeline.user_face_ids("alice") == {message.face_id}


def test_a_user_enrolled_again_after_deletion_gets_create_user_again(pipeline, photo):
    stage = pipeline.associate_stage()
    stage.handle_batch(_index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)}))
    # An erasure finished: the Rekognition user is gone, the user item a DELETED tombstone.
    pipeline.rekognition.delete_user(CollectionId=COLLECTION, UserId="alice")
    pipeline.ddb.update_item(
        TableName=pipeline.settings.ledger_table,
        Key={"pk": {"S": "USER#alice"}, "sk": {"S": "USER"}},
        UpdateExpression="SET #s = :d",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":d": {"S": "DELETED"}},
    )
    calls = _count_operations(pipeline)

    _, failures = stage.handle_batch(
        _index(pipeline, photo, {"enroll/alice/2.jpg": photo("alice", 2)})
    )

    assert failures == {}
    assert calls.count("CreateUser") == 1
    assert len(pipeline.user_face_ids("alice")) == 1


def test_a_batch_that_loses_its_start_to_an_ended_execution_starts_one_of_its_own(pipeline, photo):
    # A racing batch with the same faces (it took them as waiting siblings) started the same
    # execution between this batch's existence check and its start, and the execution ended
    # already: the UPDATING this batch just wrote must not outlive it.
    messages = _index(pipeline, photo, {"enroll/alice/1.jpg": photo("alice", 1)})
    (message,) = messages.values()
    stage = pipeline.associate_stage()
    real = pipeline.sfn
    raced = []

    def describe_execution(**kwargs):
        if not raced:
            raise _client_error("ExecutionDoesNotExist", "DescribeExecution")
        return {"status": "SUCCEEDED"}

    def start_execution(**kwargs):
        if not raced:
            raced.append(kwargs["name"])
            raise _client_error("ExecutionAlreadyExists", "StartExecution")
        return real.start_execution(**kwargs)

    stage.sfn = _Wrap(real, describe_execution=describe_execution, start_execution=start_execution)

    (outcome,), failures = stage.handle_batch(messages)

    shared = activation_execution_name("alice", [message.face_id])
    assert failures == {} and raced == [shared]
    assert outcome.execution.startswith(shared + "-") and len(outcome.execution) <= 80
    assert [e["name"] for e in pipeline.executions()] == [outcome.execution]
    assert pipeline.ledger.get_user("alice")["status"] == "UPDATING"  # this execution settles it
