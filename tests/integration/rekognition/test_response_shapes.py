"""Acceptance: every one of the 17 operations answers in botocore's exact output shape.

One scenario walks the whole surface through boto3 (in-process moto + the synthetic emulator),
successful paths, paging, face records and unsuccessful associations included; the raw JSON of
every response is then checked against botocore's output shape: required members, no member
outside the shape, types, enums, patterns, lengths and ranges.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from enroll_local.rekognition.moto_plugin import EMULATED_OPERATIONS
from enroll_local.testing import (
    ManualClock,
    WireRecorder,
    assert_matches_output_shape,
    output_shape,
    shape_violations,
)

REGION = "us-east-1"
COLLECTION = "shapes"


def test_every_operation_matches_botocore_output_shape(
    local_aws: Any, clock: ManualClock, synthetic_photo: Callable[..., bytes]
) -> None:
    # Given a client whose raw responses are recorded
    client = boto3.client("rekognition", region_name=REGION)
    recorder = WireRecorder(client)

    # When the scenario runs every operation
    _run_scenario(client, clock, synthetic_photo)

    # Then every operation was answered, and every answer matches its shape
    assert recorder.operations() == set(EMULATED_OPERATIONS)
    failures = [call for call in recorder.calls if call.status != 200]
    assert failures == []
    problems: list[str] = []
    for call in recorder.calls:
        try:
            assert_matches_output_shape(call.operation, call.body)
        except AssertionError as err:
            problems.append(str(err))
    assert problems == [], "\n".join(problems)


def _run_scenario(client: Any, clock: ManualClock, photo: Callable[..., bytes]) -> None:
    # Collections, with paging over three of them.
    for name in (COLLECTION, "shapes-b", "shapes-c"):
        client.create_collection(CollectionId=name, Tags={"team": "enrollment"})
    first = client.list_collections(MaxResults=2)
    assert len(first["CollectionIds"]) == 2 and first["NextToken"]
    rest = client.list_collections(MaxResults=2, NextToken=first["NextToken"])
    assert sorted(first["CollectionIds"] + rest["CollectionIds"]) == sorted(
        [COLLECTION, "shapes-b", "shapes-c"]
    )
    assert len(rest["FaceModelVersions"]) == len(rest["CollectionIds"])

    # Faces: full attributes, a photo with two faces of which only one is indexed.
    alice = [
        client.index_faces(
            CollectionId=COLLECTION,
            Image={"Bytes": photo("alice", variant)},
            ExternalImageId=f"alice-{variant}",
            DetectionAttributes=["ALL"],
        )["FaceRecords"][0]["Face"]["FaceId"]
        for variant in range(3)
    ]
    group = photo(
        faces=[
            {"identity": "bob", "variant": 0, "box": [0.05, 0.1, 0.45, 0.6]},
            {"identity": "carol", "variant": 0, "box": [0.6, 0.2, 0.3, 0.4]},
        ],
        seed=7,
    )
    group_indexed = client.index_faces(
        CollectionId=COLLECTION, Image={"Bytes": group}, ExternalImageId="group", MaxFaces=1
    )
    assert len(group_indexed["FaceRecords"]) == 1
    assert group_indexed["UnindexedFaces"][0]["Reasons"] == ["EXCEEDS_MAX_FACES"]
    bob = group_indexed["FaceRecords"][0]["Face"]["FaceId"]

    described = client.describe_collection(CollectionId=COLLECTION)
    assert described["FaceCount"] == 4

    page = client.list_faces(CollectionId=COLLECTION, MaxResults=3)
    assert len(page["Faces"]) == 3 and page["NextToken"]
    page2 = client.list_faces(CollectionId=COLLECTION, MaxResults=3, NextToken=page["NextToken"])
    assert {f["FaceId"] for f in page["Faces"] + page2["Faces"]} == {*alice, bob}

    detected = client.detect_faces(Image={"Bytes": group}, Attributes=["ALL"])
    assert len(detected["FaceDetails"]) == 2

    similar = client.search_faces(CollectionId=COLLECTION, FaceId=alice[0])
    assert {m["Face"]["FaceId"] for m in similar["FaceMatches"]} == {alice[1], alice[2]}
    by_image = client.search_faces_by_image(
        CollectionId=COLLECTION, Image={"Bytes": photo("alice", 9)}
    )
    assert {m["Face"]["FaceId"] for m in by_image["FaceMatches"]} == set(alice)

    # Users, with paging.
    for user in ("alice", "bob", "nobody"):
        client.create_user(CollectionId=COLLECTION, UserId=user)
    users_page = client.list_users(CollectionId=COLLECTION, MaxResults=2)
    assert len(users_page["Users"]) == 2 and users_page["NextToken"]
    users_rest = client.list_users(
        CollectionId=COLLECTION, MaxResults=2, NextToken=users_page["NextToken"]
    )
    assert {u["UserId"] for u in users_page["Users"] + users_rest["Users"]} == {
        "alice",
        "bob",
        "nobody",
    }

    # Associations: successes, then every kind of unsuccessful association.
    client.associate_faces(CollectionId=COLLECTION, UserId="bob", FaceIds=[bob])
    started = client.associate_faces(CollectionId=COLLECTION, UserId="alice", FaceIds=[alice[0]])
    assert started["UserStatus"] == "UPDATING"
    clock.advance(60)
    mixed = client.associate_faces(
        CollectionId=COLLECTION,
        UserId="alice",
        FaceIds=[alice[1], alice[2], bob, str(uuid.uuid4())],
    )
    assert {f["FaceId"] for f in mixed["AssociatedFaces"]} == {alice[1], alice[2]}
    reasons = {f["FaceId"]: f["Reasons"] for f in mixed["UnsuccessfulFaceAssociations"]}
    assert reasons[bob] == ["ASSOCIATED_TO_A_DIFFERENT_USER"]
    assert ["FACE_NOT_FOUND"] in reasons.values()
    clock.advance(60)

    # A face of another identity is refused with its confidence once alice has a vector.
    stranger = client.index_faces(
        CollectionId=COLLECTION, Image={"Bytes": photo("dave", 0)}, ExternalImageId="dave"
    )["FaceRecords"][0]["Face"]["FaceId"]
    low = client.associate_faces(
        CollectionId=COLLECTION, UserId="alice", FaceIds=[stranger], UserMatchThreshold=75
    )
    assert low["UnsuccessfulFaceAssociations"][0]["Reasons"] == ["LOW_MATCH_CONFIDENCE"]
    assert "Confidence" in low["UnsuccessfulFaceAssociations"][0]
    clock.advance(60)

    by_face = client.search_users(CollectionId=COLLECTION, FaceId=alice[0])
    assert by_face["UserMatches"][0]["User"] == {"UserId": "alice", "UserStatus": "ACTIVE"}
    client.search_users(CollectionId=COLLECTION, UserId="alice")
    users_by_image = client.search_users_by_image(
        CollectionId=COLLECTION, Image={"Bytes": group}, MaxUsers=5
    )
    assert users_by_image["UserMatches"][0]["User"]["UserId"] == "bob"
    assert users_by_image["UnsearchedFaces"][0]["Reasons"] == ["FACE_NOT_LARGEST"]

    # Disassociation with one refusal, face deletion with one refusal.
    gone = client.disassociate_faces(
        CollectionId=COLLECTION, UserId="alice", FaceIds=[alice[2], bob]
    )
    assert [f["FaceId"] for f in gone["DisassociatedFaces"]] == [alice[2]]
    assert gone["UnsuccessfulFaceDisassociations"][0]["Reasons"] == [
        "ASSOCIATED_TO_A_DIFFERENT_USER"
    ]
    deleted = client.delete_faces(CollectionId=COLLECTION, FaceIds=[alice[2], stranger, alice[0]])
    assert sorted(deleted["DeletedFaces"]) == sorted([alice[2], stranger])
    assert deleted["UnsuccessfulFaceDeletions"][0]["Reasons"] == ["ASSOCIATED_TO_AN_EXISTING_USER"]

    client.delete_user(CollectionId=COLLECTION, UserId="bob")
    for name in ("shapes-b", "shapes-c", COLLECTION):
        client.delete_collection(CollectionId=name)


# --- the validator itself catches what it must -----------------------------------------------


def test_validator_reports_each_violation_with_its_path() -> None:
    bad = {
        "UserMatches": [{"Similarity": 101.0, "User": {"UserId": "a b", "UserStatus": "GONE"}}],
        "SearchedFace": {"FaceId": "not-a-uuid"},
        "Surprise": 1,
    }

    problems = shape_violations(bad, output_shape("SearchUsers"), path="SearchUsers")

    assert problems == [
        "SearchUsers.UserMatches[0].Similarity: value 101.0 is above the maximum 100",
        "SearchUsers.UserMatches[0].User.UserId: 'a b' does not match pattern "
        "'[a-zA-Z0-9_.\\\\-:]+'",
        "SearchUsers.UserMatches[0].User.UserStatus: 'GONE' is not one of "
        "['ACTIVE', 'CREATED', 'CREATING', 'UPDATING']",
        "SearchUsers.SearchedFace.FaceId: 'not-a-uuid' does not match pattern "
        "'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'",
        "SearchUsers: member 'Surprise' is not in shape SearchUsersResponse",
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"CreationTimestamp": 1_700_000_000_000}, "is not epoch seconds"),
        ({"FaceCount": True}, "expected long, got bool"),
        ({"FaceCount": 1.5}, "expected long, got float"),
        ({"FaceCount": -1}, "below the minimum 0"),
        ({"FaceModelVersion": 7}, "expected string, got int"),
        ({"CollectionARN": None}, "null (absent members must be omitted)"),
    ],
)
def test_validator_checks_types_and_ranges(body: dict[str, Any], expected: str) -> None:
    problems = shape_violations(body, output_shape("DescribeCollection"))

    assert len(problems) == 1 and expected in problems[0], problems


def test_validator_accepts_wire_and_parsed_timestamps() -> None:
    shape = output_shape("DescribeCollection")
    parsed = {"CreationTimestamp": dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "UserCount": 0}

    assert shape_violations({"CreationTimestamp": 1_700_000_000.25}, shape) == []
    assert shape_violations(parsed, shape, wire=False) == []
    assert shape_violations({"CreationTimestamp": 1.5}, shape, wire=False) != []


def test_validator_checks_list_lengths() -> None:
    too_many = {"DeletedFaces": [str(uuid.uuid4()) for _ in range(4097)]}
    empty = {"DeletedFaces": []}

    assert "above the maximum 4096" in shape_violations(too_many, output_shape("DeleteFaces"))[0]
    assert "below the minimum 1" in shape_violations(empty, output_shape("DeleteFaces"))[0]


def test_validator_reports_missing_required_members() -> None:
    # No Rekognition output has required members; the CreateUser input shape does.
    import botocore.session

    model = botocore.session.get_session().get_service_model("rekognition")
    shape = model.operation_model("CreateUser").input_shape

    assert shape_violations({"UserId": "u"}, shape) == ["$: missing required member 'CollectionId'"]
