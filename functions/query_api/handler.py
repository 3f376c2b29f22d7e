"""Query API function: API Gateway (REST, proxy integration) -> the enrollment domain -> JSON.

Thin by design: each route validates its input through its typed model, calls one domain
function and returns its model; every error becomes an HTTP answer in ``errors`` (one place).
The OpenAPI document (``openapi.json``) is generated from these routes: ``make openapi``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BeforeValidator, WithJsonSchema

from enrollment.clients import client
from enrollment.ledger import Ledger
from enrollment.observability import bind_service, count, logger, metrics, tracer
from enrollment.probe import FaceMatcher, Probe, image_probe, s3_probe
from enrollment.queries import QueryError, UserNotFound, UserQueries
from enrollment.settings import Settings, environment_fingerprint

from . import errors
from .models import (
    DEFAULT_PAGE_SIZE,
    MAX_NEXT_TOKEN_CHARS,
    MAX_PAGE_SIZE,
    USER_ID_REGEX,
    ErasureAccepted,
    ErrorResponse,
    Health,
    SearchRequest,
    SearchResponse,
    UserDetail,
    UserPage,
    UserPhotos,
    VerifyRequest,
    VerifyResponse,
)

app = APIGatewayRestResolver(enable_validation=True)


@dataclass(frozen=True)
class Services:
    """The domain objects the routes call, built once per container from the settings."""

    settings: Settings
    users: UserQueries
    matcher: FaceMatcher
    ledger: Ledger

    def erasure(self) -> Any:
        # Imported on use: the erasure module is the DELETE route's alone.
        from enrollment.erasure import Erasure

        return Erasure(
            settings=self.settings,
            rekognition=self.users.rekognition,
            s3=self.users.s3,
            ledger=self.ledger,
            sqs=client("sqs", interactive=True),
        )


def services() -> Services:
    """The services with settings read once and the default clients (per container)."""
    return _services(environment_fingerprint())


@cache
def _services(_: tuple[str, ...]) -> Services:
    settings = Settings.from_env()
    settings.require("bucket_name", "ledger_table", "erasure_queue_url")
    ledger = Ledger(client("dynamodb", interactive=True), settings.ledger_table)
    rekognition = client("rekognition", interactive=True)
    return Services(
        settings=settings,
        users=UserQueries(settings, rekognition, client("s3", interactive=True), ledger),
        matcher=FaceMatcher(settings, rekognition, ledger),
        ledger=ledger,
    )


# ---- documentation of the answers ----------------------------------------------------------

_ERROR_DESCRIPTIONS = {
    400: "Malformed input: INVALID_USER_ID, INVALID_NEXT_TOKEN, INVALID_REQUEST.",
    404: "USER_NOT_FOUND, OBJECT_NOT_FOUND (s3_key), or NOT_FOUND (no such route).",
    409: "USER_BEING_ERASED: the user's erasure is running.",
    413: "IMAGE_TOO_LARGE: over 5 MB once decoded (15 MB as an S3 object).",
    415: "UNSUPPORTED_IMAGE_TYPE (not JPEG/PNG) or UNSUPPORTED_MEDIA_TYPE (body not JSON).",
    422: "INVALID_REQUEST (a field is missing or wrong), INVALID_IMAGE, INVALID_S3_KEY, "
    "NO_FACE (no face in the probe image).",
    429: "THROTTLED: the face service's or the table's rate quota; retry after Retry-After.",
    500: "INTERNAL_ERROR: a fault on our side (details are logged, never returned).",
    503: "SERVICE_UNAVAILABLE: a service the API depends on did not answer; retry later.",
}
_COMMON_ERRORS = (429, 500, 503)


def _answers(status: int, description: str, *error_statuses: int) -> dict[str, Any]:
    """Route options: the success answer (its return model), every error status it can return.

    A response that fails its own model is our bug: 500 (logged) rather than Powertools' default
    422, which would blame the caller. Set per route, so that the 500 documented is ours.
    """
    return {
        "responses": _responses(status, description, *error_statuses),
        "custom_response_validation_http_code": HTTPStatus.INTERNAL_SERVER_ERROR,
    }


def _responses(status: int, description: str, *error_statuses: int) -> dict[int, OpenAPIResponse]:
    """The route's success answer (its return model) and every error status it can return."""
    out: dict[int, OpenAPIResponse] = {status: {"description": description}}
    for code in sorted({*error_statuses, 422, *_COMMON_ERRORS}):
        answer: OpenAPIResponse = {
            "description": _ERROR_DESCRIPTIONS[code],
            "content": {"application/json": {"model": ErrorResponse}},
        }
        if code == 429:
            answer["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer", "minimum": 0},
                }
            }
        out[code] = answer
    return out


USER_ID_DESCRIPTION = "The UserId: 1..128 characters of letters, digits and _ . - :"
# REST APIs hand the path over still percent-encoded: "al%3Aice" is the UserId "al:ice" (a
# client may encode ':'), so the value is decoded before its pattern is checked.
UserIdPath = Annotated[
    str,
    Path(pattern=USER_ID_REGEX, description=USER_ID_DESCRIPTION),
    BeforeValidator(lambda value: unquote(value) if isinstance(value, str) else value),
    # The validator hides the pattern from the generated schema: state it again.
    WithJsonSchema(
        {"type": "string", "pattern": USER_ID_REGEX, "description": USER_ID_DESCRIPTION}
    ),
]


# ---- routes ---------------------------------------------------------------------------------


@app.get(
    "/health",
    summary="Liveness",
    description="Answers without touching AWS; needs no authorization.",
    **_answers(200, "The function answers."),
    tags=["health"],
)
def health() -> Health:
    return Health(status="ok")


@app.get(
    "/users",
    summary="List users",
    description="Users in UserId order, a page at a time (ledger index; a user created a moment "
    "ago may appear a moment later).",
    **_answers(200, "One page of users.", 400),
    tags=["users"],
)
def list_users(
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description="Users per page (1..100).")
    ] = DEFAULT_PAGE_SIZE,
    next_token: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_NEXT_TOKEN_CHARS,
            description="The next_token of the previous page.",
        ),
    ] = None,
) -> UserPage:
    return UserPage.model_validate(services().users.list_users(limit, next_token))


@app.get(
    "/users/<userId>",
    summary="User detail",
    description="Ledger and Rekognition status, faces against the cap, activation time, and the "
    "erasure's progress once one was requested.",
    **_answers(200, "The user.", 400, 404),
    tags=["users"],
)
def get_user(userId: UserIdPath) -> UserDetail:  # the path parameter keeps its API name
    return UserDetail.model_validate(services().users.user_detail(userId))


@app.get(
    "/users/<userId>/photos",
    summary="Photo outcomes",
    description="Every photo under the user's prefix (each S3 version) with its state and "
    "reason; RECEIVED for one the pipeline has not recorded yet.",
    **_answers(200, "The user's photos.", 400, 404),
    tags=["users"],
)
def get_user_photos(userId: UserIdPath) -> UserPhotos:
    return UserPhotos.model_validate(services().users.user_photos(userId))


@app.post(
    "/search",
    summary="Search users by image",
    description="SearchUsersByImage with the largest face of the image. No match is an empty "
    "list; no face is 422 NO_FACE.",
    **_answers(200, "The matches, best first.", 400, 404, 413, 415),
    tags=["search"],
)
def search(request: Annotated[SearchRequest, Body()]) -> SearchResponse:
    svc = services()
    threshold = _default(request.threshold, svc.settings.search_match_threshold)
    max_users = _default(request.max_users, svc.settings.search_max_users)
    result = svc.matcher.search(_probe(svc, request), threshold=threshold, max_users=max_users)
    return SearchResponse.model_validate(
        {
            "matches": result.matches,
            "searched_face": asdict(result.searched_face),
            "faces_in_image": result.faces_in_image,
            "threshold": threshold,
            "max_users": max_users,
        }
    )


@app.post(
    "/users/<userId>/verify",
    summary="Verify a claimed identity (1:1)",
    description="Similarity of the image's largest face to the user's vector, and whether it "
    "reaches the threshold (default SEARCH_MATCH_THRESHOLD).",
    **_answers(200, "The decision.", 400, 404, 409, 413, 415),
    tags=["search"],
)
def verify(
    userId: UserIdPath,
    request: Annotated[VerifyRequest, Body()],
) -> VerifyResponse:
    svc = services()
    threshold = _default(request.threshold, svc.settings.search_match_threshold)
    result = svc.matcher.verify(userId, _probe(svc, request), threshold=threshold)
    result["searched_face"] = asdict(result["searched_face"])
    return VerifyResponse.model_validate(result)


@app.delete(
    "/users/<userId>",
    summary="Erase a user",
    description="Right to be forgotten: faces, user vector, every object version and delete "
    "marker under the prefix, ledger items. Idempotent; runs in the background; "
    "GET /users/{userId} shows its progress.",
    **_answers(202, "Erasure requested (or already running or done).", 400, 404),
    status_code=202,
    tags=["users"],
)
def delete_user(userId: UserIdPath) -> ErasureAccepted:
    from enrollment.erasure import UnknownUser

    try:
        item = services().erasure().request(userId)
    except UnknownUser:
        raise UserNotFound(f"user {userId!r} is not known") from None
    return ErasureAccepted.model_validate(
        {"user_id": userId, "status": item.get("status"), "erasure": item.get("erasure")}
    )


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


def _probe(svc: Services, request: SearchRequest | VerifyRequest) -> Probe:
    if request.image is not None:
        return image_probe(request.image)
    assert request.s3_key is not None  # the model requires exactly one
    return s3_probe(svc.settings.bucket_name, request.s3_key, request.s3_version_id)


# ---- errors: the one mapping to HTTP ---------------------------------------------------------


@app.exception_handler(QueryError)
def _domain_error(error: QueryError) -> Response:
    count("ApiClientErrors")
    return errors.domain_error(error)


@app.exception_handler(RequestValidationError)
def _validation_error(error: RequestValidationError) -> Response:
    count("ApiClientErrors")
    return errors.validation_error(error.errors())


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported_content_type(_: RequestUnsupportedContentType) -> Response:
    count("ApiClientErrors")
    return errors.unsupported_media_type()


@app.exception_handler([ClientError, BotoCoreError])
def _aws_error(error: ClientError | BotoCoreError) -> Response:
    answer = errors.aws_error(error)
    if answer is None:
        return _unexpected(error)
    logger.warning("AWS error answered", extra={"status": answer.status_code, "error": str(error)})
    count("ApiThrottled" if answer.status_code == HTTPStatus.TOO_MANY_REQUESTS else "ApiErrors")
    return answer


@app.exception_handler(ResponseValidationError)
def _bad_response(error: ResponseValidationError) -> Response:
    logger.error("response does not match its model", extra={"errors": list(error.errors())})
    count("ApiErrors")
    return errors.internal_error()


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response:
    logger.exception("unexpected error")
    count("ApiErrors")
    return errors.internal_error()


@app.not_found
def _not_found(_: NotFoundError) -> Response:
    """404 for an unknown path; 405 with Allow for a known path and another method.

    A path that fits a route's shape and method but that the router did not take has a path
    parameter it cannot match (a control character in the UserId...): 400, like any bad UserId.
    """
    path, method = app.current_event.path, app.current_event.http_method
    allowed = sorted({m for pattern, methods in _route_table() for m in methods if pattern(path)})
    if method in allowed:
        return errors.invalid_user_id()
    if allowed:
        return errors.error_response(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            f"{method} is not allowed here; use {', '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )
    return errors.error_response(HTTPStatus.NOT_FOUND, "NOT_FOUND", "no such route")


@cache
def _route_table() -> list[tuple[Any, list[str]]]:
    """(path matcher, methods) of every documented route, from the OpenAPI document itself."""
    table = []
    for template, item in (app.get_openapi_schema().paths or {}).items():
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template.rstrip("/") or "/"))
        methods = [m.upper() for m in ("get", "put", "post", "delete", "patch") if getattr(item, m)]
        table.append((re.compile(f"^{regex}/?$").match, methods))
    return table


# ---- entry point ----------------------------------------------------------------------------


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point: an API Gateway REST proxy event in, a proxy response out."""
    bind_service()
    refused = errors.unreadable_body(event)
    if refused is not None:
        count("ApiClientErrors")
        return _proxy_response(refused)
    return app.resolve(event, context)


def _proxy_response(response: Response) -> dict[str, Any]:
    """A response built before routing, in the REST proxy shape the resolver returns."""
    headers = {"Content-Type": [str(response.content_type)]}
    headers.update({name: [str(value)] for name, value in response.headers.items()})
    return {
        "statusCode": response.status_code,
        "body": json.dumps(response.body, separators=(",", ":")),
        "isBase64Encoded": False,
        "multiValueHeaders": headers,
    }
