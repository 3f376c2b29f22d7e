"""User vectors: lifecycle, associations, idempotency, limits (reference §4)."""

from __future__ import annotations

import pytest

from enroll_local.rekognition.errors import RekognitionError
from enroll_local.rekognition.service import MAX_FACES_PER_USER

from .conftest import COLLECTION, index, photo

C = {"CollectionId": COLLECTION}


def _status(em, user_id):
    users = em.dispatch("ListUsers", C)["Users"]
    return {u["UserId"]: u["UserStatus"] for u in users}.get(user_id)


def _associate(em, user_id, face_ids, **extra):
    return em.dispatch("AssociateFaces", {**C, "UserId": user_id, "FaceIds": face_ids, **extra})


def test_user_goes_created_updating_active_on_the_clock(emulator, clock):
    emulator.dispatch("CreateUser", {**C, "UserId": "alice"})
    assert _status(emulator, "alice") == "CREATED"
    out = _associate(emulator, "alice", [index(emulator, "alice")])
    assert out["UserStatus"] == "UPDATING"
    clock.advance(0.49)
    assert _status(emulator, "alice") == "UPDATING"
    clock.advance(0.02)
    assert _status(emulator, "alice") == "ACTIVE"


def test_update_delay_is_configurable(make_emulator, clock):
    em = make_emulator(update_delay_seconds=10)
    em.dispatch("CreateCollection", C)
    em.dispatch("CreateUser", {**C, "UserId": "alice"})
    _associate(em, "alice", [index(em, "alice")])
    clock.advance(9)
    assert _status(em, "alice") == "UPDATING"
    clock.advance(1)
    assert _status(em, "alice") == "ACTIVE"


def test_create_existing_user_is_conflict(emulator):
    emulator.dispatch("CreateUser", {**C, "UserId": "alice"})
    with pytest.raises(RekognitionError) as err:
        emulator.dispatch("CreateUser", {**C, "UserId": "alice"})
    assert err.value.code == "ConflictException"


def test_same_token_same_params_replays_the_response(emulator):
    params = {**C, "UserId": "alice", "ClientRequestToken": "tok-1"}
    assert emulator.dispatch("CreateUser", params) == {}
    assert emulator.dispatch("CreateUser", params) == {}  # not ConflictException


def test_same_token_other_params_is_idempotent_parameter_mismatch(emulator):
    emulator.dispatch("CreateUser", {**C, "UserId": "alice", "ClientRequestToken": "tok-1"})
    with pytest.raises(RekognitionError) as err:
        emulator.dispatch("CreateUser", {**C, "UserId": "bob", "ClientRequestToken": "tok-1"})
    assert err.value.code == "IdempotentParameterMismatchException"


def test_associate_replay_returns_the_original_response(emulator, clock):
    emulator.dispatch("CreateUser", {**C, "UserId": "alice"})
    face = index(emulator, "alice")
    first = _associate(emulator, "alice", [face], ClientRequestToken="assoc-1")
    clock.advance(5)
    assert _associate(emulator, "alice", [face], ClientRequestToken="assoc-1") == first
    # Without the token the call runs again: the face is already this user's, so omitted.
    again = _associate(emulator, "alice", [face])
    assert again == {
        "AssociatedFaces": [],
        "UnsuccessfulFaceAssociations": [],
        "UserStatus": "ACTIVE",
    }


def test_delete_user_replay_with_token_succeeds_and_without_is_not_found(emulator):
    emulator.dispatch("CreateUser", {**C, "UserId": "alice"})
    params = {**C, "UserId": "alice", "ClientRequestToken": "del-1"}
    assert emulator.dispatch("DeleteUser", params) == {}
    assert emulator.dispatch("DeleteUser", params) == {}
    with pytest.raises(RekognitionError) as err:
        emulator.dispatch("DeleteUser", {**C, "UserId": "alice"})
    assert err.value.code == "ResourceNotFoundException"


def test_delete_user_disassociates_its_faces_first(emulator):
    emulator.dispatch("CreateUser", {**C, "UserId": "alice"})
    face = index(emulator, "alice")
    _associate(emulator, "alice", [face])
    emulator.dispatch("DeleteUser", {**C, "UserId": "alice"})
    (listed,) = emulator.dispatch("ListFaces", {**C, "FaceIds": [face]})["Faces"]
    assert "UserId" not in listed
    assert emulator.dispatch("DeleteFaces", {**C, "FaceIds": [face]})["DeletedFaces"] == [face]


def test_associate_to_missing_user_is_not_found(emulator):
    with pytest.raises(RekognitionError) as err:
        _associate(emulator, "ghost", [index(emulator, "a")])
    assert err.value.code == "ResourceNotFoundException"


def test_associate_outcomes(emulator, clock):
    for user in ("alice", "bob"):
        emulator.dispatch("CreateUser", {**C, "UserId": user})
    alice1, alice2 = index(emulator, "alice", 1), index(emulator, "alice", 2)
    bob1, carol = index(emulator, "bob", 1), index(emulator, "carol", 1)
    missing = "00000000-0000-4000-8000-000000000000"
    _associate(emulator, "alice", [alice1])
    _associate(emulator, "bob", [bob1])
    out = _associate(emulator, "alice", [alice1, alice2, bob1, carol, missing])
    assert out["AssociatedFaces"] == [{"FaceId": alice2}]
    failures = {f["FaceId"]: f for f in out["UnsuccessfulFaceAssociations"]}
    assert alice1 not in failures  # already this user's: silently omitted
    assert failures[bob1] == {
        "FaceId": bob1,
        "UserId": "bob",
        "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"],
    }
    assert failures[missing] == {"FaceId": missing, "Reasons": ["FACE_NOT_FOUND"]}
    assert failures[carol]["Reasons"] == ["LOW_MATCH_CONFIDENCE"]
    assert 0 <= failures[carol]["Confidence"] < 75


def test_first_association_is_not_threshold_checked(emulator):
    emulator.dispatch("CreateUser", {**C, "UserId": "mixed"})
    faces = [index(emulator, "alice"), index(emulator, "bob")]
    out = _associate(emulator, "mixed", faces)
    assert [f["FaceId"] for f in out["AssociatedFaces"]] == faces


def test_user_match_threshold_zero_accepts_anyone(emulator):
    emulator.dispatch("CreateUser", {**C, "UserId": "alice"})
    _associate(emulator, "alice", [index(emulator, "alice")])
    out = _associate(emulator, "alice", [index(emulator, "bob")], UserMatchThreshold=0)
    assert len(out["AssociatedFaces"]) == 1


def test_full_user_is_service_quota_exceeded_and_nothing_changes(emulator):
    emulator.dispatch("CreateUser", {**C, "UserId": "alice"})
    faces = [index(emulator, "alice", v) for v in range(MAX_FACES_PER_USER + 1)]
    _associate(emulator, "alice", faces[:MAX_FACES_PER_USER])
    with pytest.raises(RekognitionError) as err:
        _associate(emulator, "alice", faces[MAX_FACES_PER_USER:])
    assert err.value.code == "ServiceQuotaExceededException"
    listed = emulator.dispatch("ListFaces", {**C, "UserId": "alice", "MaxResults": 500})
    assert len(listed["Faces"]) == MAX_FACES_PER_USER


def test_disassociate_outcomes(emulator):
    for user in ("alice", "bob"):
        emulator.dispatch("CreateUser", {**C, "UserId": user})
    alice1, bob1, loose = index(emulator, "alice"), index(emulator, "bob"), index(emulator, "x")
    missing = "00000000-0000-4000-8000-000000000000"
    _associate(emulator, "alice", [alice1])
    _associate(emulator, "bob", [bob1])
    out = emulator.dispatch(
        "DisassociateFaces", {**C, "UserId": "alice", "FaceIds": [alice1, bob1, loose, missing]}
    )
    assert out["DisassociatedFaces"] == [{"FaceId": alice1}]
    assert out["UnsuccessfulFaceDisassociations"] == [
        {"FaceId": bob1, "UserId": "bob", "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"]},
        {"FaceId": missing, "Reasons": ["FACE_NOT_FOUND"]},
    ]
    assert out["UserStatus"] == "UPDATING"


def test_user_without_faces_after_disassociation_is_created_again(emulator, clock):
    emulator.dispatch("CreateUser", {**C, "UserId": "alice"})
    face = index(emulator, "alice")
    _associate(emulator, "alice", [face])
    clock.advance(1)
    emulator.dispatch("DisassociateFaces", {**C, "UserId": "alice", "FaceIds": [face]})
    clock.advance(1)
    assert _status(emulator, "alice") == "CREATED"


def test_delete_faces_refuses_associated_faces(emulator):
    emulator.dispatch("CreateUser", {**C, "UserId": "alice"})
    kept, loose = index(emulator, "alice"), index(emulator, "bob")
    missing = "00000000-0000-4000-8000-000000000000"
    _associate(emulator, "alice", [kept])
    out = emulator.dispatch("DeleteFaces", {**C, "FaceIds": [kept, loose, missing]})
    assert out["DeletedFaces"] == [loose]
    assert out["UnsuccessfulFaceDeletions"] == [
        {"FaceId": kept, "UserId": "alice", "Reasons": ["ASSOCIATED_TO_AN_EXISTING_USER"]},
        {"FaceId": missing, "Reasons": ["FACE_NOT_FOUND"]},
    ]


def test_list_users_pages_in_a_stable_order_not_sorted_by_user_id(emulator):
    names = [f"user{i:03d}" for i in range(30)]
    for name in names:
        emulator.dispatch("CreateUser", {**C, "UserId": name})
    pages, token = [], None
    while True:
        params = {**C, "MaxResults": 7} | ({"NextToken": token} if token else {})
        out = emulator.dispatch("ListUsers", params)
        pages.append([u["UserId"] for u in out["Users"]])
        token = out.get("NextToken")
        if not token:
            break
    listed = [u for page in pages for u in page]
    assert sorted(listed) == names
    assert listed != names  # ordered by an internal uuid, not by UserId
    assert [len(p) for p in pages] == [7, 7, 7, 7, 2]
    whole = [u["UserId"] for u in emulator.dispatch("ListUsers", C)["Users"]]
    assert whole == listed


def test_list_users_answers_at_most_500_a_page(emulator):
    for i in range(501):
        emulator.dispatch("CreateUser", {**C, "UserId": f"u{i}"})
    first = emulator.dispatch("ListUsers", C)
    assert len(first["Users"]) == 500
    rest = emulator.dispatch("ListUsers", {**C, "NextToken": first["NextToken"]})
    assert len(rest["Users"]) == 1 and "NextToken" not in rest
    listed = {u["UserId"] for u in first["Users"] + rest["Users"]}
    assert listed == {f"u{i}" for i in range(501)}
    with pytest.raises(RekognitionError) as err:
        emulator.dispatch("ListUsers", {**C, "MaxResults": 501})
    assert err.value.code == "InvalidParameterException"


def test_list_faces_filters_by_user_and_pages(emulator):
    emulator.dispatch("CreateUser", {**C, "UserId": "alice"})
    mine = [index(emulator, "alice", v) for v in range(5)]
    index(emulator, "bob")
    _associate(emulator, "alice", mine)
    seen, token = [], None
    while True:
        params = {**C, "UserId": "alice", "MaxResults": 2} | ({"NextToken": token} if token else {})
        out = emulator.dispatch("ListFaces", params)
        seen += [f["FaceId"] for f in out["Faces"]]
        token = out.get("NextToken")
        if not token:
            break
    assert seen == mine
    everything = emulator.dispatch("ListFaces", C)["Faces"]
    assert len(everything) == 6


def test_list_faces_order_survives_deletions_between_pages(emulator):
    faces = [index(emulator, f"p{i}") for i in range(6)]
    first = emulator.dispatch("ListFaces", {**C, "MaxResults": 3})
    emulator.dispatch("DeleteFaces", {**C, "FaceIds": faces[:2]})
    rest = emulator.dispatch("ListFaces", {**C, "MaxResults": 3, "NextToken": first["NextToken"]})
    assert [f["FaceId"] for f in rest["Faces"]] == faces[3:]


def test_index_faces_shows_user_id_of_an_associated_face(emulator):
    emulator.dispatch("CreateUser", {**C, "UserId": "alice"})
    data = photo({"identity": "alice"})
    params = {**C, "Image": {"Bytes": data}, "ExternalImageId": "p1"}
    face = emulator.dispatch("IndexFaces", params)["FaceRecords"][0]["Face"]["FaceId"]
    _associate(emulator, "alice", [face])
    again = emulator.dispatch("IndexFaces", params)["FaceRecords"][0]["Face"]
    assert again["FaceId"] == face and again["UserId"] == "alice"
