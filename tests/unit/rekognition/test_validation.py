"""Server-side validation: what botocore lets through must be refused here (reference §1, §2)."""

from __future__ import annotations

import pytest

from enroll_local.rekognition.errors import RekognitionError

from .conftest import COLLECTION


def _code(em, op, params):
    with pytest.raises(RekognitionError) as err:
        em.dispatch(op, params)
    return err.value


def test_unknown_operation_is_refused_like_an_aws_json_endpoint(emulator):
    err = _code(emulator, "DetectLabels", {})
    assert err.code == "UnknownOperationException"
    assert err.status == 400


def test_collection_id_longer_than_255_is_refused(emulator):
    err = _code(emulator, "CreateCollection", {"CollectionId": "a" * 256})
    assert err.code == "InvalidParameterException"
    assert "collectionId" in err.message and "less than or equal to 255" in err.message


def test_collection_id_pattern_forbids_colon(emulator):
    err = _code(emulator, "CreateCollection", {"CollectionId": "bad:name"})
    assert "regular expression pattern" in err.message


def test_user_id_pattern_allows_colon_but_not_slash(emulator):
    emulator.dispatch("CreateUser", {"CollectionId": COLLECTION, "UserId": "tenant:42"})
    err = _code(emulator, "CreateUser", {"CollectionId": COLLECTION, "UserId": "a/b"})
    assert err.code == "InvalidParameterException"


def test_face_id_must_be_a_lowercase_uuid(emulator):
    err = _code(
        emulator,
        "SearchFaces",
        {"CollectionId": COLLECTION, "FaceId": "ABCDEF00-0000-0000-0000-000000000000"},
    )
    assert "faceId" in err.message


def test_enum_is_enforced(emulator):
    err = _code(
        emulator,
        "IndexFaces",
        {"CollectionId": COLLECTION, "Image": {"Bytes": b"x"}, "QualityFilter": "BEST"},
    )
    assert "enum value set" in err.message


def test_numeric_range_is_enforced(emulator):
    err = _code(
        emulator,
        "AssociateFaces",
        {
            "CollectionId": COLLECTION,
            "UserId": "u",
            "FaceIds": ["00000000-0000-0000-0000-000000000000"],
            "UserMatchThreshold": 500,
        },
    )
    assert "less than or equal to 100" in err.message


def test_nan_threshold_is_refused_not_a_silent_empty_search(emulator):
    # botocore serialises float("nan") as NaN and Python's json reads it back.
    face = "00000000-0000-0000-0000-000000000000"
    err = _code(
        emulator,
        "SearchFaces",
        {"CollectionId": COLLECTION, "FaceId": face, "FaceMatchThreshold": float("nan")},
    )
    assert err.code == "InvalidParameterException"
    assert "faceMatchThreshold" in err.message


def test_more_than_100_face_ids_per_associate_call_are_refused(emulator):
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(101)]
    err = _code(
        emulator, "AssociateFaces", {"CollectionId": COLLECTION, "UserId": "u", "FaceIds": ids}
    )
    assert "faceIds" in err.message


def test_empty_face_id_list_is_refused(emulator):
    err = _code(
        emulator, "DisassociateFaces", {"CollectionId": COLLECTION, "UserId": "u", "FaceIds": []}
    )
    assert "greater than or equal to 1" in err.message


def test_missing_required_member_is_refused(emulator):
    err = _code(emulator, "CreateUser", {"CollectionId": COLLECTION})
    assert "userId" in err.message and "must not be null" in err.message


def test_wrong_type_is_refused(emulator):
    err = _code(emulator, "ListFaces", {"CollectionId": COLLECTION, "MaxResults": "10"})
    assert "integer" in err.message


def test_client_request_token_pattern_is_enforced(emulator):
    err = _code(
        emulator,
        "CreateUser",
        {"CollectionId": COLLECTION, "UserId": "u", "ClientRequestToken": "has space"},
    )
    assert "clientRequestToken" in err.message


def test_validation_error_code_is_configurable(make_emulator):
    em = make_emulator(validation_error_code="ValidationException")
    err = _code(em, "CreateCollection", {"CollectionId": "no spaces allowed"})
    assert err.code == "ValidationException"


def test_tag_keys_with_unicode_letters_are_accepted(make_emulator):
    em = make_emulator()
    em.dispatch("CreateCollection", {"CollectionId": "tagged", "Tags": {"équipe": "bleu"}})
    err = _code(em, "CreateCollection", {"CollectionId": "t2", "Tags": {"aws:reserved": "x"}})
    assert err.code == "InvalidParameterException"
