"""The Rekognition calls the pipeline makes, and what their errors mean for a message.

Errors fall in two kinds: *terminal* ones say something about the photo (bad format, gone) and
retrying cannot change the answer; *transient* ones (throttling, server errors, a user being
updated) must fail the SQS record so that the queue redelivers it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .photo_policy import Reason

# IndexFaces errors that describe the photo itself -> REJECTED with this reason, never retried.
TERMINAL_INDEX_ERRORS = {
    "InvalidImageFormatException": Reason.INVALID_IMAGE_FORMAT,
    "ImageTooLargeException": Reason.IMAGE_TOO_LARGE,
    "InvalidParameterException": Reason.INVALID_IMAGE,
    "InvalidS3ObjectException": Reason.OBJECT_NOT_FOUND,
}
THROTTLING_ERRORS = frozenset(
    {"ThrottlingException", "ProvisionedThroughputExceededException", "TooManyRequestsException"}
)
SERVER_ERRORS = frozenset({"InternalServerError", "ServiceUnavailable", "InternalServerException"})

# Rekognition list limits (reference §2.1).
LIST_FACES_MAX_IDS = 4096
DELETE_FACES_MAX_IDS = 4096
LIST_FACES_PAGE_SIZE = 1000


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore error ("" for other exceptions)."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def failure_reason(error: BaseException) -> str:
    """The FAILED reason to record when retries of ``error`` are exhausted."""
    code = error_code(error)
    if code in THROTTLING_ERRORS:
        return Reason.THROTTLED
    if code in SERVER_ERRORS or isinstance(error, BotoCoreError):
        return Reason.SERVICE_ERROR
    return Reason.UNEXPECTED_ERROR


def describe_error(error: BaseException) -> str:
    """``"<Code>: <message>"`` for ledger details and logs."""
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        return f"{err.get('Code', 'ClientError')}: {err.get('Message', '')}".strip()
    return f"{type(error).__name__}: {error}"


@dataclass(frozen=True)
class S3Photo:
    bucket: str
    key: str
    version_id: str | None


def index_faces(
    client: Any,
    collection_id: str,
    photo: S3Photo,
    external_image_id: str,
    *,
    max_faces: int,
    quality_filter: str,
) -> dict[str, Any]:
    """IndexFaces on the S3 object itself (Rekognition reads it; the Lambda never downloads)."""
    s3_object: dict[str, str] = {"Bucket": photo.bucket, "Name": photo.key}
    if photo.version_id:
        s3_object["Version"] = photo.version_id
    response: dict[str, Any] = client.index_faces(
        CollectionId=collection_id,
        Image={"S3Object": s3_object},
        ExternalImageId=external_image_id,
        MaxFaces=max_faces,
        QualityFilter=quality_filter,
        DetectionAttributes=["DEFAULT"],
    )
    return response


def delete_faces(client: Any, collection_id: str, face_ids: list[str]) -> list[dict[str, Any]]:
    """Delete faces from the collection; return the UnsuccessfulFaceDeletions.

    FACE_NOT_FOUND is success for us (a replay deleting again); the caller decides about
    ASSOCIATED_TO_AN_EXISTING_USER.
    """
    failures: list[dict[str, Any]] = []
    unique = sorted(set(face_ids))
    for start in range(0, len(unique), DELETE_FACES_MAX_IDS):
        response = client.delete_faces(
            CollectionId=collection_id, FaceIds=unique[start : start + DELETE_FACES_MAX_IDS]
        )
        failures.extend(
            f
            for f in response.get("UnsuccessfulFaceDeletions") or []
            if "FACE_NOT_FOUND" not in (f.get("Reasons") or [])
        )
    return failures


def create_user(client: Any, collection_id: str, user_id: str, token: str) -> bool:
    """CreateUser; True if created now, False if it already existed (ConflictException)."""
    try:
        client.create_user(CollectionId=collection_id, UserId=user_id, ClientRequestToken=token)
    except ClientError as error:
        if error_code(error) == "ConflictException":
            return False
        raise
    return True


def associate_faces(
    client: Any,
    collection_id: str,
    user_id: str,
    face_ids: list[str],
    *,
    threshold: float,
    token: str,
) -> dict[str, Any]:
    """One AssociateFaces call (<= 100 face ids); raises on transient errors."""
    response: dict[str, Any] = client.associate_faces(
        CollectionId=collection_id,
        UserId=user_id,
        FaceIds=face_ids,
        UserMatchThreshold=threshold,
        ClientRequestToken=token,
    )
    return response


def disassociate_faces(
    client: Any, collection_id: str, user_id: str, face_ids: list[str], *, token: str
) -> dict[str, Any]:
    """One DisassociateFaces call (<= 100 face ids)."""
    response: dict[str, Any] = client.disassociate_faces(
        CollectionId=collection_id, UserId=user_id, FaceIds=face_ids, ClientRequestToken=token
    )
    return response


def list_user_faces(client: Any, collection_id: str, user_id: str) -> list[dict[str, Any]]:
    """Faces currently associated to ``user_id`` (ListFaces UserId filter: O(user's faces))."""
    return list(_list_faces(client, CollectionId=collection_id, UserId=user_id))


def faces_by_id(client: Any, collection_id: str, face_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored faces among ``face_ids`` (missing ids are absent from the result)."""
    found: dict[str, dict[str, Any]] = {}
    unique = sorted(set(face_ids))
    for start in range(0, len(unique), LIST_FACES_MAX_IDS):
        chunk = unique[start : start + LIST_FACES_MAX_IDS]
        for face in _list_faces(client, CollectionId=collection_id, FaceIds=chunk):
            found[face["FaceId"]] = face
    return found


def _list_faces(client: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        page = client.list_faces(
            MaxResults=LIST_FACES_PAGE_SIZE, **kwargs, **({"NextToken": token} if token else {})
        )
        yield from page.get("Faces") or []
        token = page.get("NextToken")
        if not token:
            return
