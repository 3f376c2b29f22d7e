"""State in data_dir survives a restart of the emulator."""

from __future__ import annotations

import pytest

from enroll_local.rekognition.errors import RekognitionError

from .conftest import COLLECTION, index, photo

C = {"CollectionId": COLLECTION}


def test_state_survives_a_restart(make_emulator, clock, tmp_path):
    em = make_emulator(data_dir=tmp_path)
    em.dispatch("CreateCollection", C)
    em.dispatch("CreateUser", {**C, "UserId": "alice"})
    faces = [index(em, "alice", v) for v in (1, 2)]
    em.dispatch(
        "AssociateFaces",
        {**C, "UserId": "alice", "FaceIds": faces, "ClientRequestToken": "tok"},
    )
    loose = index(em, "bob")
    em.flush()

    again = make_emulator(data_dir=tmp_path)
    assert again.dispatch("DescribeCollection", C)["FaceCount"] == 3
    # The pending update is still pending, then completes on the same clock.
    assert again.dispatch("ListUsers", C)["Users"] == [
        {"UserId": "alice", "UserStatus": "UPDATING"}
    ]
    clock.advance(1)
    (match,) = again.dispatch("SearchUsers", {**C, "FaceId": faces[0]})["UserMatches"]
    assert match["User"] == {"UserId": "alice", "UserStatus": "ACTIVE"}
    # Token replay and face ordering survive too.
    replay = again.dispatch(
        "AssociateFaces",
        {**C, "UserId": "alice", "FaceIds": faces, "ClientRequestToken": "tok"},
    )
    assert replay["UserStatus"] == "UPDATING"
    assert [f["FaceId"] for f in again.dispatch("ListFaces", C)["Faces"]] == [*faces, loose]
    # New faces continue the sequence instead of colliding with restored ones.
    newer = index(again, "carol")
    assert [f["FaceId"] for f in again.dispatch("ListFaces", C)["Faces"]][-1] == newer


def test_first_change_is_saved_without_flush(make_emulator, tmp_path):
    em = make_emulator(data_dir=tmp_path)
    em.dispatch("CreateCollection", C)
    assert (tmp_path / "rekognition-state.npz").exists()
    assert make_emulator(data_dir=tmp_path).dispatch("ListCollections", {})["CollectionIds"] == [
        COLLECTION
    ]


def test_every_operation_works_on_restored_state(make_emulator, clock, tmp_path):
    # Given state written by one emulator: users (one ACTIVE), faces, tokens, open page tokens
    em = make_emulator(data_dir=tmp_path)
    em.dispatch("CreateCollection", C)
    alice_photos = [photo({"identity": "alice", "variant": v}) for v in range(3)]
    alice = [
        em.dispatch("IndexFaces", {**C, "Image": {"Bytes": data}, "ExternalImageId": f"alice-{v}"})[
            "FaceRecords"
        ][0]["Face"]["FaceId"]
        for v, data in enumerate(alice_photos)
    ]
    bob = index(em, "bob")
    for user in ("alice", "bob", "carol"):
        em.dispatch("CreateUser", {**C, "UserId": user, "ClientRequestToken": f"create-{user}"})
    em.dispatch("AssociateFaces", {**C, "UserId": "alice", "FaceIds": alice[:2]})
    clock.advance(1)
    users_page = em.dispatch("ListUsers", {**C, "MaxResults": 1})
    faces_page = em.dispatch("ListFaces", {**C, "MaxResults": 2})
    em.flush()

    # When a new emulator loads it
    again = make_emulator(data_dir=tmp_path)

    # Then page tokens issued before the restart continue where they stopped
    rest = again.dispatch("ListUsers", {**C, "NextToken": users_page["NextToken"]})["Users"]
    assert {u["UserId"] for u in users_page["Users"] + rest} == {"alice", "bob", "carol"}
    more = again.dispatch("ListFaces", {**C, "NextToken": faces_page["NextToken"]})["Faces"]
    assert [f["FaceId"] for f in faces_page["Faces"] + more] == [*alice, bob]
    # Tokens replay, and a reused token with other parameters is still a mismatch
    assert (
        again.dispatch("CreateUser", {**C, "UserId": "bob", "ClientRequestToken": "create-bob"})
        == {}
    )
    with pytest.raises(RekognitionError) as err:
        again.dispatch("CreateUser", {**C, "UserId": "dave", "ClientRequestToken": "create-bob"})
    assert err.value.code == "IdempotentParameterMismatchException"
    # Re-indexing a photo stores nothing new; searches see the restored vectors
    image = {"Bytes": alice_photos[0]}
    redo = again.dispatch("IndexFaces", {**C, "Image": image, "ExternalImageId": "alice-0"})
    assert redo["FaceRecords"][0]["Face"]["FaceId"] == alice[0]
    assert redo["FaceRecords"][0]["Face"]["UserId"] == "alice"
    matches = again.dispatch("SearchFaces", {**C, "FaceId": alice[0]})["FaceMatches"]
    assert {m["Face"]["FaceId"] for m in matches} == {alice[1], alice[2]}
    assert again.dispatch("SearchFacesByImage", {**C, "Image": image})["FaceMatches"]
    (by_image,) = again.dispatch("SearchUsersByImage", {**C, "Image": image})["UserMatches"]
    assert by_image["User"] == {"UserId": "alice", "UserStatus": "ACTIVE"}
    (by_user,) = again.dispatch("SearchUsers", {**C, "FaceId": alice[2]})["UserMatches"]
    assert by_user["User"]["UserId"] == "alice"
    # Associations, refusals and deletions follow the restored associations
    out = again.dispatch("AssociateFaces", {**C, "UserId": "bob", "FaceIds": [bob, alice[0]]})
    assert out["AssociatedFaces"] == [{"FaceId": bob}]
    assert out["UnsuccessfulFaceAssociations"][0]["UserId"] == "alice"
    deleted = again.dispatch("DeleteFaces", {**C, "FaceIds": [alice[0], alice[2]]})
    assert deleted["DeletedFaces"] == [alice[2]]
    gone = again.dispatch("DisassociateFaces", {**C, "UserId": "alice", "FaceIds": [alice[1]]})
    assert gone["DisassociatedFaces"] == [{"FaceId": alice[1]}]
    again.dispatch("DeleteUser", {**C, "UserId": "alice"})
    again.dispatch("CreateUser", {**C, "UserId": "erin"})
    listed = {u["UserId"] for u in again.dispatch("ListUsers", C)["Users"]}
    assert listed == {"bob", "carol", "erin"}
    assert again.dispatch("DescribeCollection", C)["FaceCount"] == 3
    again.dispatch("DeleteCollection", C)
    again.flush()
    assert make_emulator(data_dir=tmp_path).dispatch("ListCollections", {})["CollectionIds"] == []
