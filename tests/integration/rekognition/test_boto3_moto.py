"""boto3 inside mock_aws reaches the emulator through moto, with real botocore parsing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.rekognition.responses import RekognitionResponse

from enroll_local.rekognition import moto_plugin
from enroll_local.rekognition.errors import RekognitionError

REGION = "us-east-1"


@pytest.fixture
def rekognition(local_aws: Any) -> Any:
    return boto3.client("rekognition", region_name=REGION)


def test_describe_collection_timestamp_parses_as_recent_datetime(rekognition: Any) -> None:
    created = rekognition.create_collection(CollectionId="photos")

    described = rekognition.describe_collection(CollectionId="photos")

    assert created["StatusCode"] == 200
    assert created["CollectionArn"].endswith(":collection/photos")
    # The real CreateCollection answers "aws:rekognition:..." (no "arn:"), DescribeCollection
    # a full ARN; both name the same collection.
    assert described["CollectionARN"].endswith(created["CollectionArn"])
    assert described["FaceCount"] == 0
    # The manual clock of the fixture starts at 2023-11-14; milliseconds would not parse.
    assert isinstance(described["CreationTimestamp"], dt.datetime)
    assert described["CreationTimestamp"].year == 2023


def test_errors_arrive_as_modeled_botocore_exceptions(rekognition: Any) -> None:
    rekognition.create_collection(CollectionId="photos")

    with pytest.raises(rekognition.exceptions.ResourceNotFoundException) as missing:
        rekognition.describe_collection(CollectionId="nope")
    with pytest.raises(rekognition.exceptions.ResourceAlreadyExistsException):
        rekognition.create_collection(CollectionId="photos")

    error = missing.value.response
    assert error["Error"]["Code"] == "ResourceNotFoundException"
    assert error["Error"]["Message"]
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["ResponseMetadata"]["RequestId"]


def test_constraint_violations_botocore_lets_through_are_refused(rekognition: Any) -> None:
    # botocore checks min lengths only; max and pattern are the service's job.
    with pytest.raises(ClientError) as bad:
        rekognition.create_collection(CollectionId="has space")

    assert bad.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "collectionId" in bad.value.response["Error"]["Message"]


def test_index_bytes_then_search_by_image(rekognition: Any, synthetic_photo: Any) -> None:
    rekognition.create_collection(CollectionId="photos")

    indexed = rekognition.index_faces(
        CollectionId="photos", Image={"Bytes": synthetic_photo("alice", 0)}, ExternalImageId="a0"
    )
    found = rekognition.search_faces_by_image(
        CollectionId="photos", Image={"Bytes": synthetic_photo("alice", 1)}
    )

    face_id = indexed["FaceRecords"][0]["Face"]["FaceId"]
    assert [m["Face"]["FaceId"] for m in found["FaceMatches"]] == [face_id]
    assert found["FaceMatches"][0]["Face"]["ExternalImageId"] == "a0"


def test_s3_object_images_are_read_from_moto_s3(rekognition: Any, synthetic_photo: Any) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="uploads")
    s3.put_bucket_versioning(Bucket="uploads", VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket="uploads", Key="enroll/alice/1.jpg", Body=synthetic_photo("alice"))
    s3.put_object(Bucket="uploads", Key="enroll/alice/1.jpg", Body=b"overwritten, not an image")
    rekognition.create_collection(CollectionId="photos")

    by_version = rekognition.index_faces(
        CollectionId="photos",
        Image={
            "S3Object": {
                "Bucket": "uploads",
                "Name": "enroll/alice/1.jpg",
                "Version": first["VersionId"],
            }
        },
    )
    with pytest.raises(rekognition.exceptions.InvalidImageFormatException):
        rekognition.index_faces(
            CollectionId="photos",
            Image={"S3Object": {"Bucket": "uploads", "Name": "enroll/alice/1.jpg"}},
        )
    with pytest.raises(rekognition.exceptions.InvalidS3ObjectException):
        rekognition.index_faces(
            CollectionId="photos",
            Image={"S3Object": {"Bucket": "uploads", "Name": "enroll/alice/missing.jpg"}},
        )
    with pytest.raises(rekognition.exceptions.InvalidS3ObjectException):
        rekognition.index_faces(
            CollectionId="photos",
            Image={"S3Object": {"Bucket": "no-such-bucket", "Name": "x.jpg"}},
        )

    assert len(by_version["FaceRecords"]) == 1


def test_moto_keeps_serving_its_own_rekognition_operations(rekognition: Any) -> None:
    # CompareFaces is moto's (canned answer), not the emulator's.
    response = rekognition.compare_faces(
        SourceImage={"S3Object": {"Bucket": "bucket", "Name": "s.jpg"}},
        TargetImage={"S3Object": {"Bucket": "bucket", "Name": "t.jpg"}},
    )

    assert "FaceMatches" in response


def test_an_emulator_bug_is_an_internal_server_error_not_a_crash() -> None:
    class Broken:
        def dispatch(self, operation: str, params: dict[str, Any], **_: Any) -> dict[str, Any]:
            raise RuntimeError("bug")

    client = boto3.client("rekognition", region_name=REGION, config=_no_retries())
    with mock_aws():
        moto_plugin.install(Broken())  # type: ignore[arg-type]
        try:
            with pytest.raises(ClientError) as failure:
                client.list_collections()
        finally:
            moto_plugin.uninstall()

    assert failure.value.response["Error"]["Code"] == "InternalServerError"
    assert failure.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_error_status_comes_from_the_rekognition_error() -> None:
    class Throttled:
        def dispatch(self, operation: str, params: dict[str, Any], **_: Any) -> dict[str, Any]:
            raise RekognitionError("ThrottlingException", "Slow down.", status=500)

    client = boto3.client("rekognition", region_name=REGION, config=_no_retries())
    with mock_aws():
        moto_plugin.install(Throttled())  # type: ignore[arg-type]
        try:
            with pytest.raises(client.exceptions.ThrottlingException) as throttled:
                client.list_users(CollectionId="c")
        finally:
            moto_plugin.uninstall()

    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert throttled.value.response["Error"]["Message"] == "Slow down."


def test_uninstall_restores_moto_exactly(synthetic_photo: Any) -> None:
    original = RekognitionResponse._dispatch
    client = boto3.client("rekognition", region_name=REGION, config=_no_retries())
    with mock_aws():
        with moto_plugin.local_rekognition("synthetic"):
            client.create_collection(CollectionId="served")
            assert moto_plugin.installed_emulator() is not None
        assert RekognitionResponse._dispatch is original
        assert moto_plugin.installed_emulator() is None
        # moto alone has no CreateCollection: the call no longer succeeds.
        with pytest.raises(Exception):  # noqa: B017 - whatever moto raises, it is not a success
            client.create_collection(CollectionId="served")


def test_leaving_local_rekognition_saves_the_debounced_state(tmp_path: Any) -> None:
    client = boto3.client("rekognition", region_name=REGION)
    debounce = {"persist_interval_seconds": 3600.0}  # no timer save during the test
    with (
        mock_aws(),
        moto_plugin.local_rekognition("synthetic", data_dir=tmp_path, **debounce),
    ):
        client.create_collection(CollectionId="kept")  # the first change is saved at once
        client.create_user(CollectionId="kept", UserId="alice")  # this one is debounced

    restarted = moto_plugin.build_emulator("synthetic", data_dir=tmp_path)
    users = restarted.dispatch("ListUsers", {"CollectionId": "kept"})["Users"]
    assert users == [{"UserId": "alice", "UserStatus": "CREATED"}]


def test_local_rekognition_rejects_unknown_settings() -> None:
    with (
        pytest.raises(TypeError, match="update_dealy_seconds"),
        moto_plugin.local_rekognition("synthetic", update_dealy_seconds=1),
    ):
        pass


def _no_retries() -> Any:
    from botocore.config import Config

    return Config(retries={"total_max_attempts": 1})
