"""AssociateFaces at the 100-faces-per-user cap, as its documentation describes.

"If a given face ... or there are already 100 faces associated with the UserID, it will be
returned as part of an array of UnsuccessfulFaceAssociations": a call that crosses the cap
associates up to 100 and returns the rest; ServiceQuotaExceededException comes only for a user
who already holds 100.
"""

from __future__ import annotations

import pytest

from enroll_local.rekognition.errors import RekognitionError
from enroll_local.rekognition.service import MAX_FACES_PER_USER

from .conftest import COLLECTION, index

C = {"CollectionId": COLLECTION}


def _associate(em, user_id, face_ids, **extra):
    return em.dispatch("AssociateFaces", {**C, "UserId": user_id, "FaceIds": face_ids, **extra})


def _user_faces(em, user_id):
    listed = em.dispatch("ListFaces", {**C, "UserId": user_id, "MaxResults": 500})["Faces"]
    return {f["FaceId"] for f in listed}


def _user_with(em, user_id, count):
    em.dispatch("CreateUser", {**C, "UserId": user_id})
    faces = [index(em, user_id, v) for v in range(count)]
    for start in range(0, count, 100):
        _associate(em, user_id, faces[start : start + 100])
    return faces


def test_a_call_crossing_the_cap_associates_up_to_100_in_request_order(emulator):
    # Given a user holding 98 faces
    _user_with(emulator, "alice", MAX_FACES_PER_USER - 2)
    new = [index(emulator, "alice", 1000 + v) for v in range(5)]
    # When one call asks for 5 more
    out = _associate(emulator, "alice", new)
    # Then the first 2 (request order) are associated, the 3 others come back unsuccessful
    # with no documented reason (none fits), no UserId and no Confidence
    assert [f["FaceId"] for f in out["AssociatedFaces"]] == new[:2]
    assert out["UnsuccessfulFaceAssociations"] == [
        {"FaceId": face_id, "Reasons": []} for face_id in new[2:]
    ]
    assert out["UserStatus"] == "UPDATING"
    assert len(_user_faces(emulator, "alice")) == MAX_FACES_PER_USER
    # and the refused faces stay in the collection, held by nobody
    refused = emulator.dispatch("ListFaces", {**C, "FaceIds": new[2:]})["Faces"]
    assert sorted(f["FaceId"] for f in refused) == sorted(new[2:])
    assert all("UserId" not in f for f in refused)


def test_the_cap_refusal_reason_is_configurable(make_emulator):
    em = make_emulator(cap_refusal_reasons=("LOW_MATCH_CONFIDENCE",))
    em.dispatch("CreateCollection", C)
    _user_with(em, "alice", MAX_FACES_PER_USER - 1)
    new = [index(em, "alice", 1000 + v) for v in range(2)]
    out = _associate(em, "alice", new)
    assert out["UnsuccessfulFaceAssociations"] == [
        {"FaceId": new[1], "Reasons": ["LOW_MATCH_CONFIDENCE"]}
    ]


def test_cap_refusals_come_after_the_other_outcomes(emulator):
    # Given 99 faces: a missing face and a face owned by someone else take no slot
    _user_with(emulator, "alice", MAX_FACES_PER_USER - 1)
    emulator.dispatch("CreateUser", {**C, "UserId": "bob"})
    bob = index(emulator, "bob", 1)
    _associate(emulator, "bob", [bob])
    missing = "00000000-0000-4000-8000-000000000000"
    new = [index(emulator, "alice", 1000 + v) for v in range(2)]
    out = _associate(emulator, "alice", [missing, bob, *new])
    assert [f["FaceId"] for f in out["AssociatedFaces"]] == new[:1]
    reasons = {f["FaceId"]: f["Reasons"] for f in out["UnsuccessfulFaceAssociations"]}
    assert reasons == {
        missing: ["FACE_NOT_FOUND"],
        bob: ["ASSOCIATED_TO_A_DIFFERENT_USER"],
        new[1]: [],
    }


def test_a_user_already_at_100_is_service_quota_exceeded_and_nothing_changes(emulator):
    faces = _user_with(emulator, "alice", MAX_FACES_PER_USER)
    extra = index(emulator, "alice", 1000)
    with pytest.raises(RekognitionError) as err:
        _associate(emulator, "alice", [extra])
    assert err.value.code == "ServiceQuotaExceededException"
    assert _user_faces(emulator, "alice") == set(faces)
    (listed,) = emulator.dispatch("ListFaces", {**C, "FaceIds": [extra]})["Faces"]
    assert "UserId" not in listed


def test_a_user_at_100_still_ignores_its_own_faces(emulator):
    # Re-associating faces the user already holds is "ignored", not a quota error.
    faces = _user_with(emulator, "alice", MAX_FACES_PER_USER)
    out = _associate(emulator, "alice", faces[:3])
    assert out["AssociatedFaces"] == []
    assert out["UnsuccessfulFaceAssociations"] == []


def test_a_replayed_token_returns_the_same_partial_answer(emulator, clock):
    _user_with(emulator, "alice", MAX_FACES_PER_USER - 2)
    new = [index(emulator, "alice", 1000 + v) for v in range(5)]
    first = _associate(emulator, "alice", new, ClientRequestToken="cap-1")
    clock.advance(5)
    # The user is full now, yet the same token and parameters replay the first answer.
    assert _associate(emulator, "alice", new, ClientRequestToken="cap-1") == first
    # Without the token the call runs again: the user holds 100, so it is a quota error.
    with pytest.raises(RekognitionError) as err:
        _associate(emulator, "alice", new)
    assert err.value.code == "ServiceQuotaExceededException"
