"""Collections: create, describe, list with paging, delete (reference §5.4)."""

from __future__ import annotations

import pytest

from enroll_local.rekognition.errors import RekognitionError

from .conftest import COLLECTION, index


def test_create_collection_answers_arn_without_prefix_and_model_version(make_emulator):
    em = make_emulator()
    out = em.dispatch("CreateCollection", {"CollectionId": "people"}, region="eu-west-1")
    assert out == {
        "StatusCode": 200,
        "CollectionArn": "aws:rekognition:eu-west-1:123456789012:collection/people",
        "FaceModelVersion": "7.0",
    }


def test_create_existing_collection_is_resource_already_exists(emulator):
    with pytest.raises(RekognitionError) as err:
        emulator.dispatch("CreateCollection", {"CollectionId": COLLECTION})
    assert err.value.code == "ResourceAlreadyExistsException"


def test_collections_are_scoped_by_account_and_region(emulator):
    emulator.dispatch("CreateCollection", {"CollectionId": COLLECTION}, region="eu-west-1")
    assert emulator.dispatch("ListCollections", {}, account_id="999999999999") == {
        "CollectionIds": [],
        "FaceModelVersions": [],
    }


def test_describe_collection_counts_faces_and_users_with_epoch_seconds(emulator, clock):
    index(emulator, "alice")
    emulator.dispatch("CreateUser", {"CollectionId": COLLECTION, "UserId": "alice"})
    out = emulator.dispatch("DescribeCollection", {"CollectionId": COLLECTION})
    assert out["FaceCount"] == 1
    assert out["UserCount"] == 1
    assert out["CollectionARN"] == "arn:aws:rekognition:us-east-1:123456789012:collection/faces"
    assert out["CreationTimestamp"] == clock.now  # seconds, not milliseconds
    assert out["FaceModelVersion"] == "7.0"


def test_missing_collection_is_resource_not_found(emulator):
    for op, params in [
        ("DescribeCollection", {"CollectionId": "nope"}),
        ("DeleteCollection", {"CollectionId": "nope"}),
        ("ListFaces", {"CollectionId": "nope"}),
        ("CreateUser", {"CollectionId": "nope", "UserId": "u"}),
    ]:
        with pytest.raises(RekognitionError) as err:
            emulator.dispatch(op, params)
        assert err.value.code == "ResourceNotFoundException", op


def test_delete_collection_removes_it_and_its_faces(emulator):
    index(emulator, "alice")
    assert emulator.dispatch("DeleteCollection", {"CollectionId": COLLECTION}) == {
        "StatusCode": 200
    }
    emulator.dispatch("CreateCollection", {"CollectionId": COLLECTION})
    assert emulator.dispatch("DescribeCollection", {"CollectionId": COLLECTION})["FaceCount"] == 0


def test_list_collections_pages_with_next_token(make_emulator):
    em = make_emulator()
    names = [f"c{i:02d}" for i in range(5)]
    for name in names:
        em.dispatch("CreateCollection", {"CollectionId": name})
    seen, token = [], None
    while True:
        params = {"MaxResults": 2} | ({"NextToken": token} if token else {})
        page = em.dispatch("ListCollections", params)
        assert len(page["CollectionIds"]) == len(page["FaceModelVersions"]) <= 2
        seen += page["CollectionIds"]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == names


@pytest.mark.parametrize("token", ["garbage", "eyJ4IjoxfQ.000000000000", "WzFd.x"])
def test_invalid_pagination_token(emulator, token):
    with pytest.raises(RekognitionError) as err:
        emulator.dispatch("ListCollections", {"NextToken": token})
    assert err.value.code == "InvalidPaginationTokenException"


def test_token_of_another_operation_is_refused(emulator):
    for i in range(3):
        index(emulator, f"p{i}")
    token = emulator.dispatch("ListFaces", {"CollectionId": COLLECTION, "MaxResults": 1})[
        "NextToken"
    ]
    with pytest.raises(RekognitionError) as err:
        emulator.dispatch("ListUsers", {"CollectionId": COLLECTION, "NextToken": token})
    assert err.value.code == "InvalidPaginationTokenException"
