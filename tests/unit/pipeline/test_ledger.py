"""Ledger conditional transitions on moto's DynamoDB."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from enrollment.ledger import Ledger, PhotoRef, PhotoStatus, table_definition

TABLE = "ledger"


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(**table_definition(TABLE))
        yield Ledger(ddb, TABLE, now=lambda: "2026-01-01T00:00:00.000Z")


PHOTO = PhotoRef("p-1", "alice", "bucket", "enroll/alice/a.jpg", "v1", "etag1")


def test_record_photo_writes_once_then_refuses_to_overwrite(ledger):
    assert ledger.record_photo(PHOTO, PhotoStatus.INDEXED, face_id="f1", quality=87.123456)
    item = ledger.get_photo("alice", "p-1")
    assert item["status"] == "INDEXED" and item["face_id"] == "f1"
    assert item["quality"] == 87.123  # rounded Decimal, read back as float
    assert item["updated_at"] == "2026-01-01T00:00:00.000Z"
    assert "reason" not in item  # None attributes are not stored

    assert not ledger.record_photo(PHOTO, PhotoStatus.REJECTED, reason="NO_FACE")
    assert ledger.get_photo("alice", "p-1")["status"] == "INDEXED"


def test_failed_is_replaceable_by_a_later_attempt(ledger):
    ledger.record_photo(PHOTO, PhotoStatus.FAILED, reason="THROTTLED")
    assert ledger.record_photo(PHOTO, PhotoStatus.INDEXED, face_id="f1")
    assert ledger.get_photo("alice", "p-1")["status"] == "INDEXED"


def test_transitions_are_conditional_on_the_current_state(ledger):
    ledger.record_photo(PHOTO, PhotoStatus.INDEXED, face_id="f1")
    assert ledger.transition_photo(
        "alice", "p-1", PhotoStatus.ASSOCIATED, from_statuses={PhotoStatus.INDEXED}
    )
    # A replay cannot move it again, nor backwards.
    assert not ledger.transition_photo(
        "alice", "p-1", PhotoStatus.ASSOCIATED, from_statuses={PhotoStatus.INDEXED}
    )
    assert ledger.transition_photo(
        "alice",
        "p-1",
        PhotoStatus.REJECTED,
        from_statuses={PhotoStatus.ASSOCIATED, PhotoStatus.ACTIVE},
        reason="REPLACED_BY_BETTER_PHOTO",
        detail="better one",
    )
    item = ledger.get_photo("alice", "p-1")
    assert (item["status"], item["reason"], item["detail"]) == (
        "REJECTED",
        "REPLACED_BY_BETTER_PHOTO",
        "better one",
    )
    # Missing photos are never created by a transition.
    assert not ledger.transition_photo(
        "alice", "p-missing", PhotoStatus.ASSOCIATED, from_statuses={PhotoStatus.INDEXED}
    )
    assert ledger.get_photo("alice", "p-missing") is None


def test_content_claim_has_one_winner_and_is_idempotent(ledger):
    assert ledger.claim_content("alice", "etag1", "p-1", "enroll/alice/a.jpg") is None
    assert ledger.claim_content("alice", "etag1", "p-1", "enroll/alice/a.jpg") is None
    assert ledger.claim_content("alice", "etag1", "p-2", "enroll/alice/b.jpg") == (
        "enroll/alice/a.jpg"
    )
    assert ledger.claim_content("bob", "etag1", "p-3", "enroll/bob/a.jpg") is None


def test_content_of_a_deleted_or_failed_photo_can_be_claimed_again(ledger):
    first = PhotoRef("p-1", "alice", "b", "enroll/alice/a.jpg", etag="etag1")
    ledger.record_photo(first, PhotoStatus.ACTIVE, face_id="f1")
    assert ledger.claim_content("alice", "etag1", "p-1", first.key) is None
    assert ledger.claim_content("alice", "etag1", "p-2", "enroll/alice/b.jpg") == first.key

    ledger.transition_photo("alice", "p-1", PhotoStatus.DELETED, from_statuses={PhotoStatus.ACTIVE})
    assert ledger.claim_content("alice", "etag1", "p-2", "enroll/alice/b.jpg") is None
    assert ledger.claim_content("alice", "etag1", "p-1", first.key) == "enroll/alice/b.jpg"
    # p-2 has no photo item yet (still being indexed): it keeps the claim.
    assert ledger.claim_content("alice", "etag1", "p-3", "enroll/alice/c.jpg") == (
        "enroll/alice/b.jpg"
    )


def test_user_lifecycle(ledger):
    created = ledger.ensure_user("alice")
    assert (created["status"], created["face_count"]) == ("CREATED", 0)
    assert ledger.ensure_user("alice")["created_at"] == created["created_at"]
    ledger.mark_user_updating("alice", 3)
    user = ledger.get_user("alice")
    assert (user["status"], user["face_count"]) == ("UPDATING", 3)
    assert ledger.ensure_user("alice")["status"] == "UPDATING"  # live user left alone


def test_deleted_user_starts_afresh(ledger):
    from botocore.exceptions import ClientError

    ledger.ensure_user("alice")
    ledger._ddb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "USER#alice"}, "sk": {"S": "USER"}},
        UpdateExpression="SET #s = :d",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":d": {"S": "DELETED"}},
    )
    with pytest.raises(ClientError):
        ledger.mark_user_updating("alice", 1)  # never resurrect a deleted user implicitly
    assert ledger.ensure_user("alice")["status"] == "CREATED"


def test_user_photos_lists_only_photo_items(ledger):
    ledger.ensure_user("alice")
    ledger.claim_content("alice", "etag1", "p-1", "k")
    for i in range(3):
        ledger.record_photo(
            PhotoRef(f"p-{i}", "alice", "b", f"k{i}"), PhotoStatus.INDEXED, face_id=f"f{i}"
        )
    assert sorted(p["photo_id"] for p in ledger.user_photos("alice")) == ["p-0", "p-1", "p-2"]


# ---- content claims after a rejection ----------------------------------------------------

POLICY = "QualityFilter=AUTO;MaxFaces=1;MultiFacePolicy=reject"


def _rejected_owner(ledger, reason, *, policy=POLICY):
    first = PhotoRef("p-1", "alice", "b", "enroll/alice/a.jpg", etag="etag1")
    assert ledger.claim_content("alice", "etag1", "p-1", first.key, index_policy=policy) is None
    ledger.record_photo(first, PhotoStatus.REJECTED, reason=reason)
    return first


@pytest.mark.parametrize(
    "reason", ["USER_FACE_LIMIT", "LOW_MATCH_CONFIDENCE", "REPLACED_BY_BETTER_PHOTO"]
)
def test_a_rejection_whose_cause_can_go_away_releases_the_content(ledger, reason):
    _rejected_owner(ledger, reason)

    assert (
        ledger.claim_content("alice", "etag1", "p-2", "enroll/alice/b.jpg", index_policy=POLICY)
        is None
    )

    # p-2 holds it now (no photo item yet: being indexed), even against the first photo.
    assert ledger.claim_content(
        "alice", "etag1", "p-1", "enroll/alice/a.jpg", index_policy=POLICY
    ) == ("enroll/alice/b.jpg")


@pytest.mark.parametrize("reason", ["NO_FACE", "MULTIPLE_FACES", "INVALID_IMAGE", "LOW_SHARPNESS"])
def test_a_final_rejection_keeps_the_content_under_the_same_policy(ledger, reason):
    first = _rejected_owner(ledger, reason)

    assert ledger.claim_content(
        "alice", "etag1", "p-2", "enroll/alice/b.jpg", index_policy=POLICY
    ) == (first.key)
    # Without a policy to compare with, a final reason holds too.
    assert ledger.claim_content("alice", "etag1", "p-2", "enroll/alice/b.jpg") == first.key


def test_a_final_rejection_under_another_policy_releases_the_content(ledger):
    _rejected_owner(ledger, "LOW_SHARPNESS")
    lowered = "QualityFilter=NONE;MaxFaces=1;MultiFacePolicy=reject"

    assert (
        ledger.claim_content("alice", "etag1", "p-2", "enroll/alice/b.jpg", index_policy=lowered)
        is None
    )
    claim = ledger._get("USER#alice", "CONTENT#etag1")
    assert (claim["photo_id"], claim["index_policy"]) == ("p-2", lowered)


def test_a_claim_recorded_without_a_policy_is_released_by_a_final_rejection(ledger):
    # Claims written before policies were recorded: indexing again costs one call, not a photo.
    _rejected_owner(ledger, "NO_FACE", policy=None)
    assert (
        ledger.claim_content("alice", "etag1", "p-2", "enroll/alice/b.jpg", index_policy=POLICY)
        is None
    )


def _racing(ledger, racer):
    """Make ``racer()`` run right after the next read of the claim's owner photo."""
    real = ledger.get_photo
    raced: list = []

    def get_photo(user_id, photo_id):
        item = real(user_id, photo_id)
        if ledger.get_photo is get_photo:
            ledger.get_photo = real  # the racer reads the ledger as it is
            raced.append(racer())
        return item

    ledger.get_photo = get_photo
    return raced


def test_two_uploads_taking_over_a_released_claim_agree_on_one_winner(ledger):
    _rejected_owner(ledger, "USER_FACE_LIMIT")
    raced = _racing(
        ledger,
        lambda: ledger.claim_content(
            "alice", "etag1", "p-3", "enroll/alice/c.jpg", index_policy=POLICY
        ),
    )

    # p-2 saw the released claim, then p-3 took it over before p-2 wrote.
    loser = ledger.claim_content("alice", "etag1", "p-2", "enroll/alice/b.jpg", index_policy=POLICY)

    assert raced == [None]  # p-3 won
    assert loser == "enroll/alice/c.jpg"  # p-2 is a duplicate of the winner
    assert ledger._get("USER#alice", "CONTENT#etag1")["photo_id"] == "p-3"


def test_two_first_uploads_of_the_same_content_agree_on_one_winner(ledger):
    real = ledger._get
    raced: list = []

    def get(pk, sk, **kwargs):
        item = real(pk, sk, **kwargs)
        if sk.startswith("CONTENT#") and ledger._get is get:
            ledger._get = real
            raced.append(ledger.claim_content("alice", "etag1", "p-3", "enroll/alice/c.jpg"))
        return item

    ledger._get = get

    # p-2 saw no claim, then p-3 claimed the content before p-2 wrote.
    loser = ledger.claim_content("alice", "etag1", "p-2", "enroll/alice/b.jpg")

    assert raced == [None]
    assert loser == "enroll/alice/c.jpg"
