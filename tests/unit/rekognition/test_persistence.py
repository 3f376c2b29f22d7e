"""State in data_dir survives a restart of the emulator."""

from __future__ import annotations

from .conftest import COLLECTION, index

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
