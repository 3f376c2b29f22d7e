"""Errors from AWS and from our own code: 429 with Retry-After, 503, 500 without details."""

from __future__ import annotations

import base64

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError


def _client_error(code: str, operation: str, http_status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} from the fake"},
            "ResponseMetadata": {"HTTPStatusCode": http_status},
        },
        operation,
    )


class Failing:
    """A client whose every call raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name):
        def fail(**_):
            raise self.error

        return fail


@pytest.fixture
def with_rekognition(api):
    """Swap the Rekognition client the API uses (restored after the test)."""
    svc = api.services()
    real = svc.users.rekognition

    def swap(client):
        svc.users.rekognition = client
        svc.matcher.rekognition = client

    yield swap
    swap(real)


@pytest.fixture
def probe(photo):
    return {"image": base64.b64encode(photo("alice", 7)).decode()}


@pytest.mark.parametrize("code", ["ThrottlingException", "ProvisionedThroughputExceededException"])
def test_rekognition_throttling_is_429_with_retry_after(api, with_rekognition, probe, code):
    with_rekognition(Failing(_client_error(code, "SearchUsersByImage")))

    answer = api.call("POST", "/search", body=probe)

    assert (answer.status, answer.code) == (429, "THROTTLED")
    assert int(answer.headers["Retry-After"]) >= 1


def test_ledger_throttling_is_429_too(api):
    svc = api.services()
    real = svc.ledger._ddb
    svc.ledger._ddb = Failing(_client_error("ThrottlingException", "Query"))
    try:
        answer = api.call("GET", "/users")
    finally:
        svc.ledger._ddb = real

    assert (answer.status, answer.code) == (429, "THROTTLED")
    assert answer.headers["Retry-After"]


@pytest.mark.parametrize(
    "error",
    [
        _client_error("InternalServerError", "SearchUsersByImage", 500),
        _client_error("ServiceUnavailable", "SearchUsersByImage", 503),
        _client_error("SomethingNew", "SearchUsersByImage", 502),
        _client_error("ResourceNotFoundException", "SearchUsersByImage"),  # collection gone
        EndpointConnectionError(endpoint_url="https://rekognition.us-east-1.amazonaws.com"),
    ],
)
def test_a_service_that_cannot_answer_is_503(api, with_rekognition, probe, error):
    with_rekognition(Failing(error))

    answer = api.call("POST", "/search", body=probe)

    assert (answer.status, answer.code) == (503, "SERVICE_UNAVAILABLE")


@pytest.mark.parametrize(
    "error",
    [
        _client_error("AccessDeniedException", "SearchUsersByImage"),
        RuntimeError("a bug with a secret: s3://bucket/private"),
    ],
)
def test_our_own_faults_are_500_without_details(api, with_rekognition, probe, error):
    with_rekognition(Failing(error))

    answer = api.call("POST", "/search", body=probe)

    assert (answer.status, answer.code) == (500, "INTERNAL_ERROR")
    assert "secret" not in answer.body["error"]["message"]
    assert "AccessDenied" not in answer.body["error"]["message"]


def test_a_throttled_user_detail_is_429(api, photo, with_rekognition):
    api.enroll("alice", {"1.jpg": photo("alice", 1)})
    with_rekognition(Failing(_client_error("ThrottlingException", "ListFaces")))

    answer = api.call("GET", "/users/alice")

    assert (answer.status, answer.code) == (429, "THROTTLED")


def test_a_face_deleted_under_the_status_check_leaves_the_status_unknown(
    api, photo, with_rekognition
):
    api.enroll("alice", {"1.jpg": photo("alice", 1)})
    real = api.services().users.rekognition

    class FaceGone:
        def search_users(self, **_):
            raise _client_error("InvalidParameterException", "SearchUsers")

        def __getattr__(self, name):
            return getattr(real, name)

    with_rekognition(FaceGone())

    answer = api.call("GET", "/users/alice")

    assert answer.status == 200
    assert answer.body["rekognition_status"] is None
    assert answer.body["face_count"] == 1


def test_missing_settings_are_a_500_not_a_crash(api, monkeypatch):
    from query_api import handler

    monkeypatch.delenv("LEDGER_TABLE")
    handler._services.cache_clear()

    answer = api.call("GET", "/users")

    assert (answer.status, answer.code) == (500, "INTERNAL_ERROR")
    assert api.call("GET", "/health").status == 200  # health needs no settings


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/users", "GET"),
        ("POST", "/users/alice", "DELETE, GET"),
        ("GET", "/search", "POST"),
        ("PUT", "/users/alice/verify", "POST"),
        ("DELETE", "/health", "GET"),
        ("OPTIONS", "/users/alice/photos", "GET"),
    ],
)
def test_another_method_on_a_known_path_is_405_with_allow(api, method, path, allowed):
    answer = api.call(method, path)

    assert (answer.status, answer.code) == (405, "METHOD_NOT_ALLOWED")
    assert answer.headers["Allow"] == allowed


@pytest.mark.parametrize("path", ["/", "/nope", "/users/alice/faces", "/users/a/b/c"])
def test_an_unknown_path_is_404_in_our_shape(api, path):
    answer = api.call("GET", path)

    assert (answer.status, answer.code) == (404, "NOT_FOUND")


def test_a_response_off_its_model_is_our_500_not_a_422(api, monkeypatch):
    users = api.services().users
    monkeypatch.setattr(users, "list_users", lambda *_: {"users": [{"user_id": 7}]})

    answer = api.call("GET", "/users")

    assert (answer.status, answer.code) == (500, "INTERNAL_ERROR")


def test_a_body_on_a_get_is_ignored(api):
    answer = api.call("GET", "/health", raw_body="x", headers={"Content-Type": "text/plain"})

    assert answer.status == 200
