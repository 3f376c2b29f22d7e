"""Acceptance: the calls of Rekognition's user-vector notebook, with the real (dlib) face engine.

The notebook (aws-samples, identity-verification) creates a collection and users "Daniel" and
"John", indexes four photos of Dani, builds Daniel's user vector one face then three, and searches
users by face and by image. Here the same boto3 calls run against the emulator through moto
in-process, with a manual clock to step UserStatus from UPDATING to ACTIVE.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from enroll_local.testing import ManualClock

pytestmark = [pytest.mark.realengine, pytest.mark.slow]

REGION = "us-east-1"
COLLECTION = "notebook-collection"
EXTRA_COLLECTIONS = ("notebook-extra-1", "notebook-extra-2")
UPDATE_DELAY_SECONDS = 0.5  # the emulator's UPDATING -> ACTIVE delay, stepped by the clock
DANI_PHOTOS = ("1.jpg", "2.jpg", "3.jpg", "4.jpg")


@pytest.fixture
def seed_media(shared_data: Path) -> Path:
    folder = shared_data / "seed_media"
    if not (folder / "aws_dani" / "1.jpg").is_file():
        pytest.skip(f"needs {folder}/aws_dani/1-4.jpg and aws_dani_png/1.png")
    return folder


@pytest.fixture
def rekognition(clock: ManualClock) -> Iterator[Any]:
    pytest.importorskip("dlib")
    from enroll_local.rekognition.moto_plugin import local_rekognition

    with (
        mock_aws(),
        local_rekognition("dlib", clock=clock, update_delay_seconds=UPDATE_DELAY_SECONDS),
    ):
        yield boto3.client("rekognition", region_name=REGION)


def test_user_vector_notebook(rekognition: Any, clock: ManualClock, seed_media: Path) -> None:
    client = rekognition

    # Collections, listed with paging (one per page).
    for name in (COLLECTION, *EXTRA_COLLECTIONS):
        assert client.create_collection(CollectionId=name)["StatusCode"] == 200
    pages = list(
        client.get_paginator("list_collections").paginate(PaginationConfig={"PageSize": 1})
    )
    listed = [cid for page in pages for cid in page["CollectionIds"]]
    assert len(pages) >= 3
    assert sorted(listed) == sorted([COLLECTION, *EXTRA_COLLECTIONS])

    # Users, fresh: CREATED.
    for user in ("Daniel", "John"):
        client.create_user(CollectionId=COLLECTION, UserId=user)
    assert _statuses(client) == {"Daniel": "CREATED", "John": "CREATED"}

    # Index Dani's four photos as the notebook does.
    face_ids = []
    for name in DANI_PHOTOS:
        indexed = client.index_faces(
            CollectionId=COLLECTION,
            Image={"Bytes": (seed_media / "aws_dani" / name).read_bytes()},
            ExternalImageId=f"dani-{Path(name).stem}",
            MaxFaces=1,
            QualityFilter="AUTO",
            DetectionAttributes=["ALL"],
        )
        assert len(indexed["FaceRecords"]) == 1, (name, indexed["UnindexedFaces"])
        detail = indexed["FaceRecords"][0]["FaceDetail"]
        assert {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"} <= set(detail)
        face_ids.append(indexed["FaceRecords"][0]["Face"]["FaceId"])
    faces = client.list_faces(CollectionId=COLLECTION)["Faces"]
    assert sorted(f["FaceId"] for f in faces) == sorted(face_ids)
    assert {f["ExternalImageId"] for f in faces} == {"dani-1", "dani-2", "dani-3", "dani-4"}

    # One face first, then the other three with the notebook's threshold.
    first = client.associate_faces(CollectionId=COLLECTION, UserId="Daniel", FaceIds=face_ids[:1])
    assert first["AssociatedFaces"] == [{"FaceId": face_ids[0]}]
    assert first["UserStatus"] == "UPDATING"
    clock.advance(UPDATE_DELAY_SECONDS * 2)
    assert _statuses(client)["Daniel"] == "ACTIVE"

    rest = client.associate_faces(
        CollectionId=COLLECTION, UserId="Daniel", FaceIds=face_ids[1:], UserMatchThreshold=75
    )
    assert sorted(f["FaceId"] for f in rest["AssociatedFaces"]) == sorted(face_ids[1:]), rest[
        "UnsuccessfulFaceAssociations"
    ]
    assert rest["UserStatus"] == "UPDATING"
    assert _statuses(client) == {"Daniel": "UPDATING", "John": "CREATED"}
    clock.advance(UPDATE_DELAY_SECONDS * 2)
    assert _statuses(client) == {"Daniel": "ACTIVE", "John": "CREATED"}
    associated = client.list_faces(CollectionId=COLLECTION, UserId="Daniel")["Faces"]
    assert len(associated) == len(DANI_PHOTOS)

    # Search users by one of Daniel's faces, then by a new image.
    by_face = client.search_users(CollectionId=COLLECTION, FaceId=face_ids[0])
    assert by_face["SearchedFace"] == {"FaceId": face_ids[0]}
    assert by_face["UserMatches"][0]["User"] == {"UserId": "Daniel", "UserStatus": "ACTIVE"}

    probe = (seed_media / "aws_dani_png" / "1.png").read_bytes()
    by_image = client.search_users_by_image(CollectionId=COLLECTION, Image={"Bytes": probe})
    assert "BoundingBox" in by_image["SearchedFace"]["FaceDetail"]
    assert by_image["UserMatches"], "the notebook's probe should match a user"
    assert by_image["UserMatches"][0]["User"]["UserId"] == "Daniel"

    # Disassociate, delete users, delete the collection.
    gone = client.disassociate_faces(CollectionId=COLLECTION, UserId="Daniel", FaceIds=face_ids[:1])
    assert gone["DisassociatedFaces"] == [{"FaceId": face_ids[0]}]
    for user in ("Daniel", "John"):
        client.delete_user(CollectionId=COLLECTION, UserId=user)
    assert client.list_users(CollectionId=COLLECTION)["Users"] == []
    assert client.delete_collection(CollectionId=COLLECTION)["StatusCode"] == 200
    assert COLLECTION not in client.list_collections()["CollectionIds"]


def _statuses(client: Any) -> dict[str, str]:
    users = client.get_paginator("list_users").paginate(CollectionId=COLLECTION)
    return {u["UserId"]: u["UserStatus"] for page in users for u in page["Users"]}
