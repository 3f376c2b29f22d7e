"""The local API server's translation: HTTP request -> REST API proxy event -> HTTP response."""

from __future__ import annotations

import base64
import json

import pytest

from enroll_local.runner.api_server import (
    ApiRequest,
    BadProxyResponse,
    http_response,
    proxy_event,
)


def request(
    target: str = "/users",
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> ApiRequest:
    return ApiRequest(method=method, target=target, headers=headers or [], body=body)


def test_a_get_becomes_a_rest_proxy_event() -> None:
    event = proxy_event(
        request("/users?limit=5&next_token=a%2Bb&x=1&x=2", headers=[("Host", "127.0.0.1:8080")]),
        request_id="r-1",
        now=1_700_000_000.0,
    )
    assert event["resource"] == "/{proxy+}"
    assert event["path"] == "/users"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"proxy": "users"}
    # Query parameters: decoded, the last value single-valued, every value multi-valued
    assert event["queryStringParameters"] == {"limit": "5", "next_token": "a+b", "x": "2"}
    assert event["multiValueQueryStringParameters"]["x"] == ["1", "2"]
    assert event["body"] is None and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["requestId"] == "r-1" and context["stage"] == "local"
    assert context["path"] == "/local/users" and context["resourcePath"] == "/{proxy+}"
    assert context["requestTimeEpoch"] == 1_700_000_000_000
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["domainName"] == "127.0.0.1:8080"


def test_the_path_keeps_its_encoding_and_the_path_parameter_is_decoded() -> None:
    # As API Gateway's REST APIs deliver them
    event = proxy_event(request("/users/a%3Ab/photos"))
    assert event["path"] == "/users/a%3Ab/photos"
    assert event["pathParameters"] == {"proxy": "users/a:b/photos"}


def test_repeated_headers_are_single_and_multi_valued() -> None:
    event = proxy_event(request(headers=[("X-A", "1"), ("X-A", "2"), ("Accept", "*/*")]))
    assert event["headers"] == {"X-A": "2", "Accept": "*/*"}
    assert event["multiValueHeaders"] == {"X-A": ["1", "2"], "Accept": ["*/*"]}


def test_a_json_body_is_text_and_a_binary_one_base64() -> None:
    text = proxy_event(
        request(
            method="POST", headers=[("Content-Type", "application/json")], body=b'{"a": "\xc3\xa9"}'
        )
    )
    assert text["body"] == '{"a": "é"}' and text["isBase64Encoded"] is False

    binary = proxy_event(
        request(method="POST", headers=[("Content-Type", "image/jpeg")], body=b"\xff\xd8\xff")
    )
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\xff\xd8\xff"

    # Declared text but not UTF-8: handed over exactly, as base64
    mislabelled = proxy_event(
        request(method="POST", headers=[("Content-Type", "application/json")], body=b"\xff")
    )
    assert mislabelled["isBase64Encoded"] is True


def test_a_proxy_response_becomes_http() -> None:
    answer = http_response(
        {
            "statusCode": 429,
            "headers": {"Retry-After": "1", "Content-Length": "999"},
            "multiValueHeaders": {"Content-Type": ["application/json"], "X-Many": ["a", "b"]},
            "body": json.dumps({"error": {"code": "THROTTLED", "message": "slow down"}}),
            "isBase64Encoded": False,
        }
    )
    assert answer.status == 429
    assert ("Retry-After", "1") in answer.headers
    assert [v for k, v in answer.headers if k == "X-Many"] == ["a", "b"]
    # The server computes the length of what it sends
    assert all(k != "Content-Length" for k, _ in answer.headers)
    assert json.loads(answer.body)["error"]["code"] == "THROTTLED"


def test_a_base64_response_body_is_decoded() -> None:
    answer = http_response(
        {"statusCode": 200, "body": base64.b64encode(b"\x89PNG").decode(), "isBase64Encoded": True}
    )
    assert answer.body == b"\x89PNG"


@pytest.mark.parametrize(
    "response",
    [None, "text", {}, {"statusCode": "abc"}, {"statusCode": 700}, {"statusCode": 200, "body": 5}],
)
def test_a_malformed_proxy_response_is_refused(response: object) -> None:
    # API Gateway answers 502 to these; the server does the same
    with pytest.raises(BadProxyResponse):
        http_response(response)
