"""The one place where an exception becomes an HTTP answer: ``{"error": {"code", "message"}}``.

Domain errors say what the caller asked wrong (their ``code``); AWS errors say whether asking
again later helps (429 throttled, 503 unavailable). Anything else is a bug on our side: 500 with
a generic message, the details only in the log. No response ever carries a stack trace.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from botocore.exceptions import BotoCoreError, ClientError

from enrollment import probe, queries
from enrollment import rekognition as rk

# Seconds a throttled caller should wait: Rekognition's and DynamoDB's rate quotas refill
# every second.
THROTTLE_RETRY_AFTER_SECONDS = 1

# Domain error -> HTTP status (looked up along the class hierarchy, most specific first).
STATUS_BY_ERROR: dict[type[Exception], HTTPStatus] = {
    queries.UserNotFound: HTTPStatus.NOT_FOUND,
    queries.UserBeingErased: HTTPStatus.CONFLICT,
    queries.InvalidPageToken: HTTPStatus.BAD_REQUEST,
    probe.ImageTooLarge: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    probe.UnsupportedImageType: HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    probe.ProbeObjectNotFound: HTTPStatus.NOT_FOUND,
    probe.InvalidS3Key: HTTPStatus.UNPROCESSABLE_ENTITY,
    probe.InvalidImage: HTTPStatus.UNPROCESSABLE_ENTITY,
    probe.NoFace: HTTPStatus.UNPROCESSABLE_ENTITY,
    queries.QueryError: HTTPStatus.BAD_REQUEST,
}

# AWS error codes meaning "too many requests" (Rekognition's, DynamoDB's account limit, S3's).
_THROTTLING_CODES = frozenset({*rk.THROTTLING_ERRORS, "RequestLimitExceeded", "SlowDown"})
# AWS error codes meaning "the service cannot answer now" (beyond rekognition.SERVER_ERRORS).
_UNAVAILABLE_CODES = frozenset(
    {
        *rk.SERVER_ERRORS,
        "InternalFailure",
        "ServiceUnavailableException",
        # The collection (or table) is gone: a deployment problem, not the caller's.
        "ResourceNotFoundException",
    }
)


def error_response(
    status: HTTPStatus, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """The API's error shape with ``status``."""
    return Response(
        status_code=int(status),
        content_type=content_types.APPLICATION_JSON,
        body={"error": {"code": code, "message": message}},
        headers=headers or {},
    )


def domain_error(error: queries.QueryError) -> Response:
    """A domain error: its own code and message with the status of its kind."""
    for kind in type(error).__mro__:
        if kind in STATUS_BY_ERROR:
            return error_response(STATUS_BY_ERROR[kind], error.code, error.message)
    return error_response(HTTPStatus.BAD_REQUEST, error.code, error.message)


def aws_error(error: ClientError | BotoCoreError) -> Response | None:
    """429 for throttling, 503 for a service that cannot answer now; None for anything else."""
    code = rk.error_code(error)
    if code in _THROTTLING_CODES:
        return error_response(
            HTTPStatus.TOO_MANY_REQUESTS,
            "THROTTLED",
            "the face service is over its request rate; retry after the Retry-After seconds",
            headers={"Retry-After": str(THROTTLE_RETRY_AFTER_SECONDS)},
        )
    http_status = 0
    if isinstance(error, ClientError):
        http_status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if isinstance(error, BotoCoreError) or code in _UNAVAILABLE_CODES or http_status >= 500:
        return error_response(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "a service the API depends on did not answer; retry later",
        )
    return None


def internal_error() -> Response:
    """500 without details (they are logged)."""
    return error_response(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        "the request could not be completed because of an error on our side",
    )


def validation_error(errors: Sequence[Any]) -> Response:
    """A request that does not match the document: 400 for a bad UserId, else 422.

    The message names each offending field and what it must be (pydantic's message, which
    holds no input value and no code location).
    """
    problems = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if loc[:2] == ["path", "userId"]:
            return invalid_user_id()
        problems.append(_problem(loc, error))
    message = "; ".join(dict.fromkeys(problems)) or "the request is not valid"
    return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, "INVALID_REQUEST", message)


def invalid_user_id() -> Response:
    """400 for a UserId Rekognition would refuse."""
    return error_response(
        HTTPStatus.BAD_REQUEST,
        "INVALID_USER_ID",
        "userId must be 1..128 characters of letters, digits and _ . - :",
    )


def _problem(loc: list[str], error: dict[str, Any]) -> str:
    """One problem as "<where>: <what is wrong>", e.g. "body.threshold: Input should be ..."."""
    kind = error.get("type")
    where, rest = (loc[0], loc[1:]) if loc else ("request", [])
    # Body errors of a model carry the model's name as loc[1]; the field comes after it.
    if where == "body" and rest and rest[0][:1].isupper():
        rest = rest[1:]
    if kind == "json_invalid":
        return "body: is not valid JSON"
    field = ".".join([where, *rest])
    if kind == "missing":
        return f"{field}: is required" + (" (a JSON object)" if field == "body" else "")
    if kind == "model_attributes_type" or (field == "body" and kind == "dict_type"):
        return f"{field}: must be a JSON object"
    if kind == "extra_forbidden":
        return f"{field}: is not a known field"
    message = str(error.get("msg") or kind or "is not valid")
    return f"{field}: {message.removeprefix('Value error, ')}"


_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def unsupported_media_type() -> Response:
    """415 for a body that is not JSON."""
    return error_response(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
        "send the request body as JSON (Content-Type: application/json)",
    )


def unreadable_body(event: dict[str, Any]) -> Response | None:
    """The answer to a body the resolver cannot even read, before it tries; else None.

    The API takes JSON bodies only. Powertools would try other media types itself and fail on
    some with a bare ValueError (multipart without a boundary) or decode a base64 body that is
    not UTF-8 with an exception of its own: both would surface as a 500 for the caller's mistake.
    """
    body = event.get("body")
    if not body or event.get("httpMethod") not in _METHODS_WITH_BODY:
        return None  # no route reads the body of a GET or a DELETE: it is ignored
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    content_type = str(headers.get("content-type") or "").strip().lower()
    if content_type and not content_type.startswith("application/json"):
        return unsupported_media_type()
    if event.get("isBase64Encoded"):
        try:
            base64.b64decode(str(body).encode("ascii"), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return error_response(
                HTTPStatus.BAD_REQUEST, "INVALID_REQUEST", "the body is not UTF-8 JSON"
            )
    return None
