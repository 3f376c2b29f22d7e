"""The emulator behind moto's threaded server: concurrent callers and a clean stop.

moto's server answers each request on its own thread, so the emulator sees truly concurrent
calls, among them the duplicate deliveries an at-least-once pipeline produces. Stopping the
endpoint must leave ``data_dir`` complete, so a stack restarted in the same process (or a new
one) sees every call the old one answered.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3

from enroll_local.rekognition.moto_plugin import build_emulator
from enroll_local.rekognition.server import local_endpoint

REGION = "us-east-1"
COLLECTION = "threads"
IDENTITIES = 6
PHOTOS_PER_IDENTITY = 5
DELIVERIES_PER_PHOTO = 2  # every photo is indexed twice, concurrently, as a redelivery would
THREADS = 8
LONG_DEBOUNCE_SECONDS = 3600.0  # no timer save can happen during the test
# Any SigV4-looking header: moto reads the region and account from it, never checks it.
UNSIGNED_AUTH = (
    "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/rekognition/aws4_request, "
    "SignedHeaders=host, Signature=0"
)


def _client(url: str) -> Any:
    return boto3.client("rekognition", endpoint_url=url, region_name=REGION)


def test_concurrent_calls_keep_the_state_consistent(synthetic_photo: Callable[..., bytes]) -> None:
    # Given an endpoint and many photos of a few people
    emulator = build_emulator("synthetic", update_delay_seconds=0.0)
    photos = [
        (f"user-{i}", f"photo-{i}-{v}", synthetic_photo(f"user-{i}", v))
        for i in range(IDENTITIES)
        for v in range(PHOTOS_PER_IDENTITY)
    ]
    with local_endpoint(emulator) as url:
        _client(url).create_collection(CollectionId=COLLECTION)

        def enroll(job: tuple[str, str, bytes]) -> tuple[str, str, list[str]]:
            user_id, external_id, data = job
            client = _client(url)
            face_id = client.index_faces(
                CollectionId=COLLECTION, Image={"Bytes": data}, ExternalImageId=external_id
            )["FaceRecords"][0]["Face"]["FaceId"]
            # The same token from every thread of a user: one creates, the others replay.
            client.create_user(
                CollectionId=COLLECTION, UserId=user_id, ClientRequestToken=f"create-{user_id}"
            )
            out = client.associate_faces(
                CollectionId=COLLECTION, UserId=user_id, FaceIds=[face_id], UserMatchThreshold=0
            )
            refused = [f["Reasons"] for f in out["UnsuccessfulFaceAssociations"]]
            return user_id, face_id, refused

        # When every photo is delivered twice, all at once
        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(enroll, photos * DELIVERIES_PER_PHOTO))

        # Then duplicates stored nothing new, and every face belongs to its user exactly once
        client = _client(url)
        described = client.describe_collection(CollectionId=COLLECTION)
        assert described["FaceCount"] == len(photos)
        assert described["UserCount"] == IDENTITIES
        assert [r for _, _, r in results if r] == []
        for user_id in {user for user, _, _ in results}:
            expected = {face for user, face, _ in results if user == user_id}
            listed = client.list_faces(CollectionId=COLLECTION, UserId=user_id)["Faces"]
            assert sorted(f["FaceId"] for f in listed) == sorted(expected)
            (match,) = client.search_users(
                CollectionId=COLLECTION, FaceId=sorted(expected)[0], MaxUsers=1
            )["UserMatches"]
            assert match["User"] == {"UserId": user_id, "UserStatus": "ACTIVE"}


def test_stopping_the_endpoint_saves_what_is_still_debounced(
    tmp_path: Path, synthetic_photo: Callable[..., bytes]
) -> None:
    # Given an endpoint whose emulator saves at most once an hour after the first change
    emulator = build_emulator(
        "synthetic", data_dir=tmp_path, persist_interval_seconds=LONG_DEBOUNCE_SECONDS
    )
    with local_endpoint(emulator) as url:
        client = _client(url)
        client.create_collection(CollectionId=COLLECTION)  # the first change: saved at once
        client.create_user(CollectionId=COLLECTION, UserId="alice")  # debounced
        face_id = client.index_faces(
            CollectionId=COLLECTION, Image={"Bytes": synthetic_photo("alice")}
        )["FaceRecords"][0]["Face"]["FaceId"]

    # When a new emulator starts on the same data_dir (the endpoint has stopped)
    restarted = build_emulator("synthetic", data_dir=tmp_path)

    # Then it knows every change the stopped one answered
    users = restarted.dispatch("ListUsers", {"CollectionId": COLLECTION})["Users"]
    assert users == [{"UserId": "alice", "UserStatus": "CREATED"}]
    faces = restarted.dispatch("ListFaces", {"CollectionId": COLLECTION})["Faces"]
    assert [f["FaceId"] for f in faces] == [face_id]


def test_a_constraint_violation_is_answered_in_the_service_json_error_shape() -> None:
    # Given a request botocore would let through (it checks no pattern), sent raw
    emulator = build_emulator("synthetic")
    with local_endpoint(emulator) as url:
        request = urllib.request.Request(
            url,
            data=json.dumps({"CollectionId": "has space"}).encode(),
            headers={
                "X-Amz-Target": "RekognitionService.CreateCollection",
                "Content-Type": "application/x-amz-json-1.1",
                "Authorization": UNSIGNED_AUTH,
            },
        )
        # When it reaches the endpoint
        try:
            urllib.request.urlopen(request, timeout=10)
            raise AssertionError("an invalid CollectionId was accepted")
        except urllib.error.HTTPError as answer:
            status, headers, body = answer.code, answer.headers, json.loads(answer.read())

    # Then the answer is Rekognition's JSON 1.1 error: 400, __type/Code/Message/Logref, request id
    assert status == 400
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    assert headers["x-amzn-RequestId"]
    assert set(body) == {"__type", "Code", "Message", "Logref"}
    assert body["__type"] == body["Code"] == "InvalidParameterException"
    assert "collectionId" in body["Message"] and "regular expression" in body["Message"]
