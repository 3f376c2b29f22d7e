"""SearchFaces, SearchFacesByImage, SearchUsers, SearchUsersByImage (reference §4.6, §5.3)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from enroll_local.rekognition.errors import RekognitionError

from .conftest import COLLECTION, index, photo

C = {"CollectionId": COLLECTION}


def _blank() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (200, 200), (120, 120, 120)).save(buf, "JPEG")
    return buf.getvalue()


def _enroll(em, clock, user_id, variants=(1, 2, 3), identity=None):
    em.dispatch("CreateUser", {**C, "UserId": user_id})
    faces = [index(em, identity or user_id, v) for v in variants]
    em.dispatch("AssociateFaces", {**C, "UserId": user_id, "FaceIds": faces})
    clock.advance(1)
    return faces


def test_search_faces_finds_the_same_identity_and_excludes_itself(emulator):
    a1, a2, a3 = (index(emulator, "alice", v) for v in (1, 2, 3))
    index(emulator, "bob")
    out = emulator.dispatch("SearchFaces", {**C, "FaceId": a1})
    assert out["SearchedFaceId"] == a1
    assert {m["Face"]["FaceId"] for m in out["FaceMatches"]} == {a2, a3}
    sims = [m["Similarity"] for m in out["FaceMatches"]]
    assert sims == sorted(sims, reverse=True) and min(sims) > 90


def test_search_faces_max_faces_and_threshold(emulator):
    a1 = index(emulator, "alice", 1)
    for v in range(2, 6):
        index(emulator, "alice", v)
    index(emulator, "bob")
    assert (
        len(emulator.dispatch("SearchFaces", {**C, "FaceId": a1, "MaxFaces": 2})["FaceMatches"])
        == 2
    )
    everyone = emulator.dispatch("SearchFaces", {**C, "FaceId": a1, "FaceMatchThreshold": 0})
    assert len(everyone["FaceMatches"]) == 5  # bob too, with a low similarity
    assert everyone["FaceMatches"][-1]["Similarity"] < 40


def test_search_faces_unknown_face_is_invalid_parameter(emulator):
    with pytest.raises(RekognitionError) as err:
        emulator.dispatch("SearchFaces", {**C, "FaceId": "00000000-0000-4000-8000-000000000000"})
    assert err.value.code == "InvalidParameterException"


def test_search_faces_by_image_uses_the_largest_face(emulator):
    alice = index(emulator, "alice", 1)
    index(emulator, "bob", 1)
    data = photo(
        {"identity": "bob", "variant": 9, "box": [0.0, 0.0, 0.2, 0.2]},
        {"identity": "alice", "variant": 9, "box": [0.3, 0.3, 0.6, 0.6]},
    )
    out = emulator.dispatch("SearchFacesByImage", {**C, "Image": {"Bytes": data}})
    assert [m["Face"]["FaceId"] for m in out["FaceMatches"]] == [alice]
    assert out["SearchedFaceBoundingBox"]["Width"] == 0.6
    assert out["SearchedFaceConfidence"] == 99.5


def test_search_faces_by_image_without_face_is_invalid_parameter(emulator):
    with pytest.raises(RekognitionError) as err:
        emulator.dispatch("SearchFacesByImage", {**C, "Image": {"Bytes": _blank()}})
    assert err.value.code == "InvalidParameterException"


def test_search_users_by_face_id_returns_user_with_status(emulator, clock):
    faces = _enroll(emulator, clock, "alice")
    out = emulator.dispatch("SearchUsers", {**C, "FaceId": faces[0]})
    assert out["SearchedFace"] == {"FaceId": faces[0]}
    (match,) = out["UserMatches"]
    assert match["User"] == {"UserId": "alice", "UserStatus": "ACTIVE"}
    assert match["Similarity"] > 90
    assert out["FaceModelVersion"] == "7.0"


def test_user_without_vector_is_not_searchable_until_active(emulator, clock):
    emulator.dispatch("CreateUser", {**C, "UserId": "alice"})
    face = index(emulator, "alice")
    emulator.dispatch("AssociateFaces", {**C, "UserId": "alice", "FaceIds": [face]})
    assert emulator.dispatch("SearchUsers", {**C, "FaceId": face})["UserMatches"] == []
    clock.advance(1)
    assert len(emulator.dispatch("SearchUsers", {**C, "FaceId": face})["UserMatches"]) == 1


def test_updating_user_is_searched_with_its_previous_vector(emulator, clock):
    _enroll(emulator, clock, "alice")
    # Replace alice's faces with bob's; until the rebuild, searches still see alice's vector.
    old = [f["FaceId"] for f in emulator.dispatch("ListFaces", {**C, "UserId": "alice"})["Faces"]]
    bob = index(emulator, "bob")
    emulator.dispatch("DisassociateFaces", {**C, "UserId": "alice", "FaceIds": old})
    emulator.dispatch("AssociateFaces", {**C, "UserId": "alice", "FaceIds": [bob]})
    probe = index(emulator, "alice", 7)
    (match,) = emulator.dispatch("SearchUsers", {**C, "FaceId": probe})["UserMatches"]
    assert match["User"]["UserStatus"] == "UPDATING"
    clock.advance(1)
    assert emulator.dispatch("SearchUsers", {**C, "FaceId": probe})["UserMatches"] == []
    (match,) = emulator.dispatch("SearchUsers", {**C, "FaceId": bob})["UserMatches"]
    assert match["User"] == {"UserId": "alice", "UserStatus": "ACTIVE"}


def test_search_users_by_user_id_excludes_the_user_itself(emulator, clock):
    _enroll(emulator, clock, "alice", variants=(1, 2))
    # The same person enrolled twice under another UserId: the one match expected.
    _enroll(emulator, clock, "alice-again", variants=(3, 4), identity="alice")
    _enroll(emulator, clock, "bob")
    out = emulator.dispatch("SearchUsers", {**C, "UserId": "alice"})
    assert out["SearchedUser"] == {"UserId": "alice"}
    assert [m["User"]["UserId"] for m in out["UserMatches"]] == ["alice-again"]


@pytest.mark.parametrize(
    "params", [{}, {"FaceId": "00000000-0000-4000-8000-000000000000", "UserId": "u"}]
)
def test_search_users_needs_exactly_one_of_face_or_user(emulator, params):
    with pytest.raises(RekognitionError) as err:
        emulator.dispatch("SearchUsers", {**C, **params})
    assert err.value.code == "InvalidParameterException"


def test_search_users_unknown_user_is_not_found(emulator):
    with pytest.raises(RekognitionError) as err:
        emulator.dispatch("SearchUsers", {**C, "UserId": "ghost"})
    assert err.value.code == "ResourceNotFoundException"


def test_search_users_by_image_without_face_is_empty_not_an_error(emulator):
    out = emulator.dispatch("SearchUsersByImage", {**C, "Image": {"Bytes": _blank()}})
    assert out["UserMatches"] == [] and "SearchedFace" not in out


def test_search_users_by_image_matches_and_lists_unsearched_faces(emulator, clock):
    _enroll(emulator, clock, "alice")
    data = photo(
        {"identity": "alice", "variant": 8, "box": [0.3, 0.3, 0.6, 0.6]},
        {"identity": "bob", "box": [0.0, 0.0, 0.2, 0.2]},
    )
    out = emulator.dispatch("SearchUsersByImage", {**C, "Image": {"Bytes": data}})
    assert [m["User"]["UserId"] for m in out["UserMatches"]] == ["alice"]
    assert out["SearchedFace"]["FaceDetail"]["BoundingBox"]["Width"] == 0.6
    assert [u["Reasons"] for u in out["UnsearchedFaces"]] == [["FACE_NOT_LARGEST"]]


def test_search_users_by_image_quality_filter(emulator, clock):
    _enroll(emulator, clock, "alice")
    data = photo({"identity": "alice", "variant": 8, "sharpness": 3})
    loose = emulator.dispatch("SearchUsersByImage", {**C, "Image": {"Bytes": data}})
    assert len(loose["UserMatches"]) == 1  # default QualityFilter is NONE
    strict = emulator.dispatch(
        "SearchUsersByImage", {**C, "Image": {"Bytes": data}, "QualityFilter": "HIGH"}
    )
    assert strict["UserMatches"] == [] and "SearchedFace" not in strict
    assert strict["UnsearchedFaces"][0]["Reasons"] == ["LOW_SHARPNESS"]


def test_user_vector_is_the_plain_mean_of_its_faces(emulator, clock):
    import numpy as np

    from enroll_local.rekognition.engines.synthetic import synthetic_descriptor

    _enroll(emulator, clock, "alice", variants=(1, 2))
    emulator.dispatch("ListUsers", C)  # a read completes the due update
    col = next(iter(emulator._collections.values()))
    first, second = synthetic_descriptor("alice", 1), synthetic_descriptor("alice", 2)
    # Not renormalised: a search score is the mean cosine to the user's faces (vectors.py).
    expected = (first + second) / 2
    assert np.linalg.norm(expected) < 0.99
    np.testing.assert_allclose(col.user_vectors.get("alice"), expected, atol=1e-6)
    # AssociateFaces still compares a new face with the renormalised mean.
    reference = col.mean_vector(col.users["alice"].face_ids)
    np.testing.assert_allclose(reference, expected / np.linalg.norm(expected), atol=1e-6)
