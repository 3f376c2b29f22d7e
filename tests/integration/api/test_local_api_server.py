"""The local API server on loopback with stand-in handlers: what API Gateway does around them."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from enroll_local.runner.api_server import LocalApiServer

from .conftest import Answer, call


class Stack:
    """Just what ``call`` needs: the API's URL."""

    def __init__(self, url: str) -> None:
        self.endpoints = type("E", (), {"api_url": url})()


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[LocalApiServer] = []

    def start(handler: Any, environment: dict[str, str] | None = None, **kwargs: Any) -> Stack:
        server = LocalApiServer(
            handler,
            environment=lambda: dict(environment or {}),
            invoke_lock=threading.Lock(),
            function_name="stand-in",
            region="us-east-1",
            account_id="123456789012",
            **kwargs,
        )
        servers.append(server)
        return Stack(server.start())

    yield start
    for server in servers:
        server.stop()


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    body = {
        "event": event,
        "env": os.environ.get("STAND_IN_SETTING"),
        "deadline_ms": context.get_remaining_time_in_millis(),
    }
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
    }


def test_the_function_sees_its_event_environment_and_deadline(serve: Any) -> None:
    stack = serve(echo, {"STAND_IN_SETTING": "on"}, timeout_seconds=25)
    answer = call(stack, "POST", "/users/a%3Ab/verify?x=1", body={"s3_key": "k"})
    assert answer.status == 200
    seen = answer.json
    assert seen["env"] == "on"
    assert 0 < seen["deadline_ms"] <= 25_000
    event = seen["event"]
    assert (event["httpMethod"], event["path"]) == ("POST", "/users/a%3Ab/verify")
    assert json.loads(event["body"]) == {"s3_key": "k"}
    assert event["queryStringParameters"] == {"x": "1"}


def test_every_method_reaches_the_function(serve: Any) -> None:
    stack = serve(echo)
    for method in ("TRACE", "PATCH", "OPTIONS", "PUT"):
        answer = call(stack, method, "/health")
        assert answer.status == 200 and answer.json["event"]["httpMethod"] == method


def test_a_function_that_raises_is_a_502_without_a_trace(serve: Any) -> None:
    def broken(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("secret detail")

    answer: Answer = call(serve(broken), "GET", "/users")
    assert answer.status == 502
    assert answer.json["error"]["code"] == "INTERNAL_ERROR"
    assert b"secret detail" not in answer.raw and b"Traceback" not in answer.raw


def test_a_request_over_the_cap_never_reaches_the_function(serve: Any) -> None:
    calls: list[Any] = []

    def counted(event: dict[str, Any], context: Any) -> Any:
        calls.append(event)
        return echo(event, context)

    stack = serve(counted, max_request_bytes=1000)
    answer = call(stack, "POST", "/search", raw=b"{" + b" " * 1000 + b"}")
    assert answer.status == 413
    assert answer.json["error"]["code"] == "REQUEST_TOO_LARGE"
    assert calls == []
    # At the cap it does
    assert call(stack, "POST", "/search", raw=b"{" + b" " * 998 + b"}").status == 200
