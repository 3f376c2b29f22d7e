"""Acceptance: search and verify through the API handler with the real (dlib) face engine.

Enrolls real people as the pipeline does (IndexFaces per photo, CreateUser, AssociateFaces, a
ledger user item): Dani from ``seed_media/aws_dani`` (photos 1-3; photo 4 is kept back as a
probe), the ``seed_media/aws_test1`` person, and two people of ``faces/``. Then, through the
Lambda handler with real-shaped events: a photo that was never enrolled finds its person first,
and verify says yes for the right person and no for another. Few photos on purpose: each dlib
call takes 0.3-4 s on 2 cores.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from enrollment.ledger import Ledger, table_definition
from tests.unit.api.conftest import Api

pytestmark = [pytest.mark.realengine, pytest.mark.slow]

REGION = "us-east-1"
BUCKET = "face-enrollment-photos"
TABLE = "face-enrollment-ledger"
COLLECTION = "face-enrollment"
# Who is enrolled from which photos (relative to ../shared/data), and the photos kept back.
ENROLLED = {
    "dani": ["seed_media/aws_dani/1.jpg", "seed_media/aws_dani/2.jpg", "seed_media/aws_dani/3.jpg"],
    "test1": ["seed_media/aws_test1/1.jpg"],
    "penny": ["faces/bbt_penny/1.png", "faces/bbt_penny/2.png"],
    "colin": ["faces/lfw_Colin_Powell/1.jpg", "faces/lfw_Colin_Powell/2.jpg"],
}
PROBES = {"dani": "seed_media/aws_dani/4.jpg", "penny": "faces/bbt_penny/3.png"}


@pytest.fixture
def data(shared_data: Path) -> Path:
    missing = [
        p
        for p in [*(q for photos in ENROLLED.values() for q in photos), *PROBES.values()]
        if not (shared_data / p).is_file()
    ]
    if missing:
        pytest.skip(f"needs these photos under {shared_data}: {', '.join(missing)}")
    return shared_data


@pytest.fixture
def api(data: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    pytest.importorskip("dlib")
    from enroll_local.rekognition.moto_plugin import local_rekognition
    from query_api import handler

    with mock_aws(), local_rekognition("dlib", update_delay_seconds=0.0):
        s3 = boto3.client("s3", region_name=REGION)
        ddb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        rekognition = boto3.client("rekognition", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        ddb.create_table(**table_definition(TABLE))
        queue_url = sqs.create_queue(QueueName="face-enrollment-erasure")["QueueUrl"]
        rekognition.create_collection(CollectionId=COLLECTION)
        ledger = Ledger(ddb, TABLE)
        for user_id, photos in ENROLLED.items():
            _enroll(rekognition, ledger, user_id, [data / p for p in photos])
        for name, value in {
            "BUCKET_NAME": BUCKET,
            "LEDGER_TABLE": TABLE,
            "COLLECTION_ID": COLLECTION,
            "ERASURE_QUEUE_URL": queue_url,
            "POWERTOOLS_SERVICE_NAME": "query-api",
        }.items():
            monkeypatch.setenv(name, value)
        handler._services.cache_clear()
        yield Api(pipeline=None, erasure_queue_url=queue_url)  # type: ignore[arg-type]
        handler._services.cache_clear()


def _enroll(rekognition: Any, ledger: Ledger, user_id: str, photos: list[Path]) -> None:
    """What the pipeline does for each photo, then for the user (without the queues)."""
    face_ids = []
    for path in photos:
        indexed = rekognition.index_faces(
            CollectionId=COLLECTION,
            Image={"Bytes": path.read_bytes()},
            ExternalImageId=f"{user_id}-{path.stem}",
            MaxFaces=1,
            QualityFilter="AUTO",
        )
        assert indexed["FaceRecords"], (path, indexed["UnindexedFaces"])
        face_ids.append(indexed["FaceRecords"][0]["Face"]["FaceId"])
    ledger.ensure_user(user_id)
    rekognition.create_user(CollectionId=COLLECTION, UserId=user_id)
    associated = rekognition.associate_faces(
        CollectionId=COLLECTION, UserId=user_id, FaceIds=face_ids, UserMatchThreshold=75
    )
    assert associated["AssociatedFaces"], associated["UnsuccessfulFaceAssociations"]


def _image(data: Path, relative: str) -> dict[str, str]:
    return {"image": base64.b64encode((data / relative).read_bytes()).decode("ascii")}


@pytest.mark.parametrize("person", sorted(PROBES))
def test_search_with_a_photo_never_enrolled_finds_its_person_first(api, data, person):
    answer = api.call("POST", "/search", body={**_image(data, PROBES[person]), "threshold": 0})

    assert answer.status == 200
    matches = answer.body["matches"]
    assert matches[0]["user_id"] == person, matches
    assert matches[0]["similarity"] > matches[1]["similarity"]
    assert answer.body["faces_in_image"] >= 1
    assert 0 < answer.body["searched_face"]["bounding_box"]["width"] <= 1


def test_verify_says_yes_for_the_person_and_no_for_another(api, data):
    probe = _image(data, PROBES["dani"])

    yes = api.call("POST", "/users/dani/verify", body=probe)
    no_penny = api.call("POST", "/users/penny/verify", body=probe)
    no_test1 = api.call("POST", "/users/test1/verify", body=_image(data, PROBES["penny"]))

    assert yes.status == 200
    assert yes.body["match"] is True, yes.body
    assert yes.body["similarity"] >= yes.body["threshold"] == 80.0
    for no in (no_penny, no_test1):
        assert no.status == 200
        assert no.body["match"] is False, no.body
        assert no.body["similarity"] is None or no.body["similarity"] < yes.body["similarity"]
