"""One local stack with its query API on a free loopback port, shared by the API tests.

moto keeps its state in process-wide backends, so the API tests share one stack (package scope:
started before the first API test, stopped after the last) rather than one per test. Tests that
need a user of their own enroll it under a name no other test uses; ``enrolled`` uploads the
read-only users once.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from enroll_local.rekognition.engines.synthetic import make_synthetic_photo

#: Activation re-checks every 1-2 s in tests (the deployed schedule waits up to 60 s).
TEST_WAIT_SCHEDULE = "1,1,1,2,2,2,4,4"
#: Seconds a user stays UPDATING after AssociateFaces in the emulator.
TEST_UPDATE_DELAY_SECONDS = 0.3
#: The associate poller's batching window in tests (seconds; 5 s deployed).
TEST_BATCHING_WINDOW_SECONDS = 0.5
#: Budget for photos to settle or an erasure to finish (seconds); a healthy run needs a fraction.
SETTLE_TIMEOUT_SECONDS = 90
#: Budget for one HTTP call (seconds).
HTTP_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="package")
def api_stack() -> Iterator[Any]:
    """The local stack (synthetic engine) with its pollers and the query API running."""
    from enroll_local.rekognition.service import EmulatorConfig
    from enroll_local.runner.stack import LocalSettings, LocalStack
    from enroll_local.testing import aws_test_environment

    settings = LocalSettings(
        engine="synthetic",
        api_port=0,
        retry_delay_seconds=1,
        associate_batching_window_seconds=TEST_BATCHING_WINDOW_SECONDS,
        emulator_config=EmulatorConfig(update_delay_seconds=TEST_UPDATE_DELAY_SECONDS),
        extra_environment={
            "ACTIVATION_WAIT_SCHEDULE": TEST_WAIT_SCHEDULE,
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_METRICS_DISABLED": "true",
        },
    )
    with aws_test_environment(), LocalStack(settings) as stack:
        yield stack


def photo(identity: str, variant: int = 0, *, fmt: str = "JPEG") -> bytes:
    """A photo the synthetic engine reads as one face of ``identity``."""
    return make_synthetic_photo([{"identity": identity, "variant": variant}], seed=variant, fmt=fmt)


def faceless_photo() -> bytes:
    """A valid JPEG in which the synthetic engine finds no face."""
    return make_synthetic_photo([], seed=99)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def upload(stack: Any, user_id: str, name: str, data: bytes) -> str:
    """Put ``data`` under the user's prefix; return the key."""
    key = f"{stack.endpoints.prefix}{user_id}/{name}"
    stack.clients.s3.put_object(Bucket=stack.endpoints.bucket, Key=key, Body=data)
    return key


def settle(stack: Any, keys: list[str]) -> None:
    """Every key has a terminal outcome in the ledger and nothing runs any more."""
    from enroll_local.runner.demo import wait_for_terminal_states

    _, pending = wait_for_terminal_states(stack, keys, SETTLE_TIMEOUT_SECONDS)
    assert not pending, f"still pending after {SETTLE_TIMEOUT_SECONDS} s: {pending}"
    assert stack.wait_until_idle(SETTLE_TIMEOUT_SECONDS), "queues or executions never went idle"


@dataclass
class Answer:
    """One HTTP exchange with the API."""

    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    def header(self, name: str) -> str | None:
        found = {k.lower(): v for k, v in self.headers.items()}
        return found.get(name.lower())


def call(
    stack: Any,
    method: str,
    path: str,
    *,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One real HTTP request to the stack's API (``path`` with its query string)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    sent = {"Content-Type": "application/json"} if data is not None else {}
    sent.update(headers or {})
    request = urllib.request.Request(
        stack.endpoints.api_url + path, data=data, method=method, headers=sent
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            return Answer(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers.items()), error.read())


def enroll(stack: Any, photos: dict[str, list[bytes]]) -> list[str]:
    """Upload ``{user: [photo bytes]}`` and wait until every photo has its outcome."""
    keys = [
        upload(stack, user, f"{i}.jpg", data)
        for user, datas in photos.items()
        for i, data in enumerate(datas)
    ]
    settle(stack, keys)
    return keys


def wait_for_status(stack: Any, user_id: str, wanted: str) -> dict[str, Any]:
    """GET /users/{userId} until its status is ``wanted``; the last answer."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while True:
        answer = call(stack, "GET", f"/users/{user_id}")
        assert answer.status == 200, (answer.status, answer.raw)
        if answer.json["status"] == wanted:
            return dict(answer.json)
        assert time.monotonic() < deadline, f"{user_id} never became {wanted}: {answer.json}"
        time.sleep(0.3)


@pytest.fixture(scope="package")
def enrolled(api_stack: Any) -> Any:
    """The stack with alice (2 photos) and bob (1) ACTIVE, and carol's two rejected photos.

    Read-only for every test: a test that changes a user enrolls one of its own.
    """
    enroll(api_stack, {"alice": [photo("alice", 0), photo("alice", 1)], "bob": [photo("bob", 0)]})
    keys = [
        upload(api_stack, "carol", "empty-room.jpg", faceless_photo()),
        upload(api_stack, "carol", "notes.jpg", b"not a photo at all"),
    ]
    settle(api_stack, keys)
    return api_stack
