"""The Rekognition calls the pipeline makes, and what their errors mean for a message.

Errors fall in three kinds: *terminal* ones say something about the photo (bad format, gone) and
retrying cannot change the answer; *transient* ones (throttling, server errors, a user being
updated) must fail the SQS record so that the queue redelivers it; *configuration* errors say
the deployment is wrong (a request breaking a documented constraint, a missing collection or
permission): they fail the record too, so that it ends in the DLQ (which alarms) with the photo
FAILED CONFIGURATION_ERROR, never REJECTED.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError
from botocore.model import ListShape, ServiceModel, Shape, StringShape, StructureShape

from .photo_policy import Reason

# IndexFaces errors that describe the photo itself -> REJECTED with this reason, never retried.
# InvalidParameterException ("Input parameter violated a constraint") is raised for a bad request
# as well as for an image the service cannot use (e.g. under 80x80 pixels). The rule that tells
# them apart: ``index_faces`` checks every parameter against the constraints botocore's model
# documents (botocore itself checks only required members, types and minimums) and refuses to
# send a request that breaks one (ConfigurationError). So an InvalidParameterException for a
# request that passed can only be about the one input we cannot check: the image's content.
# Undocumented: the error for a QualityFilter on a collection of face model version < 3 (which
# "must be associated with version 3 of the face model or higher"); the stack's collection is
# created on the current model, so it cannot arise for it.
TERMINAL_INDEX_ERRORS = {
    "InvalidImageFormatException": Reason.INVALID_IMAGE_FORMAT,
    "ImageTooLargeException": Reason.IMAGE_TOO_LARGE,
    "InvalidParameterException": Reason.INVALID_IMAGE,
    "InvalidS3ObjectException": Reason.OBJECT_NOT_FOUND,
}
# Errors that say the deployment is wrong whatever the call: a missing permission, and a
# request-constraint failure under the code many AWS JSON services use for it (Rekognition's
# model lists only InvalidParameterException; reference §1).
CONFIGURATION_ERRORS = frozenset({"AccessDeniedException", "ValidationException"})
# IndexFaces names no resource but the collection: ResourceNotFoundException means it is missing.
INDEX_CONFIGURATION_ERRORS = CONFIGURATION_ERRORS | {"ResourceNotFoundException"}
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


class ConfigurationError(Exception):
    """The deployment is wrong, not the photo: no photo can succeed until an operator acts.

    Raised instead of sending a request that breaks a documented constraint, and for errors
    such as a missing collection. It fails the SQS record like a transient error, so the
    message reaches the DLQ (which alarms) and the photo is FAILED CONFIGURATION_ERROR.
    """


def failure_reason(error: BaseException) -> str:
    """The FAILED reason to record when retries of ``error`` are exhausted."""
    code = error_code(error)
    if isinstance(error, ConfigurationError) or code in CONFIGURATION_ERRORS:
        return Reason.CONFIGURATION_ERROR
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
    """IndexFaces on the S3 object itself (Rekognition reads it; the Lambda never downloads).

    Raises ConfigurationError, without calling the service, when the request breaks one of
    IndexFaces' documented constraints (see TERMINAL_INDEX_ERRORS for why).
    """
    s3_object: dict[str, str] = {"Bucket": photo.bucket, "Name": photo.key}
    if photo.version_id:
        s3_object["Version"] = photo.version_id
    request: dict[str, Any] = {
        "CollectionId": collection_id,
        "Image": {"S3Object": s3_object},
        "ExternalImageId": external_image_id,
        "MaxFaces": max_faces,
        "QualityFilter": quality_filter,
        "DetectionAttributes": ["DEFAULT"],
    }
    violations = request_violations(client, "IndexFaces", request)
    if violations:
        # Every part of the request is ours: the settings, the photo id, and the bucket, key
        # and version of an object S3 accepted (S3's own limits are within IndexFaces').
        raise ConfigurationError(
            "IndexFaces request refused before sending: " + "; ".join(violations)
        )
    response: dict[str, Any] = client.index_faces(**request)
    return response


def request_violations(client: Any, operation: str, params: Mapping[str, Any]) -> list[str]:
    """The constraints of botocore's model of ``operation`` that ``params`` break ([] if none).

    Checks what botocore leaves to the service: ``max`` lengths and values, ``pattern`` (the
    whole value must match), ``enum``, besides required members and minimums. The model is the
    client's own (the one botocore sends with) when it has one.
    """
    model = getattr(getattr(client, "meta", None), "service_model", None)
    if not isinstance(model, ServiceModel):
        model = _default_service_model()
    shape = model.operation_model(operation).input_shape
    problems: list[str] = []
    if shape is not None:
        _check_shape(shape, params, operation, problems)
    return problems


@cache
def _default_service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("rekognition")


def _check_shape(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    if isinstance(shape, StructureShape):
        for name in shape.required_members:
            if value.get(name) is None:
                problems.append(f"{path}.{name} is required")
        for name, item in value.items():
            if name in shape.members and item is not None:
                _check_shape(shape.members[name], item, f"{path}.{name}", problems)
    elif isinstance(shape, ListShape):
        _check_range(path, "length", len(value), meta, problems)
        for i, item in enumerate(value):
            _check_shape(shape.member, item, f"{path}[{i}]", problems)
    elif isinstance(shape, StringShape):
        _check_range(path, "length", len(value), meta, problems)
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}={value!r} is not one of {', '.join(shape.enum)}")
        pattern = meta.get("pattern")
        if pattern and not _full_match(pattern, value):
            problems.append(f"{path}={value!r} does not match {pattern}")
    elif shape.type_name == "blob":
        _check_range(path, "length", len(value), meta, problems)
    elif shape.type_name in ("integer", "long", "float", "double"):
        _check_range(path, "value", value, meta, problems)


def _check_range(
    path: str, what: str, amount: float, meta: dict[str, Any], problems: list[str]
) -> None:
    if "min" in meta and amount < meta["min"]:
        problems.append(f"{path} {what} {amount} is below the minimum {meta['min']}")
    if "max" in meta and amount > meta["max"]:
        problems.append(f"{path} {what} {amount} is above the maximum {meta['max']}")


def _full_match(pattern: str, value: str) -> bool:
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return True  # a pattern Python cannot read is left to the service


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
