"""The query API through its Lambda handler: real-shaped REST proxy events in, responses out.

Runs on the pipeline fixture (moto ``mock_aws`` + the synthetic Rekognition emulator,
in-process), plus the erasure queue the API needs. ``api.call(method, path, ...)`` builds the
event from ``events/api_*.json`` and returns (status, headers, JSON body); ``api.enroll`` enrolls
photos the way the pipeline does (index stage, then associate stage).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.conftest import load_event
from tests.unit.pipeline.conftest import (  # noqa: F401 (fixtures used by these tests)
    BUCKET,
    Pipeline,
    _reset_metrics,
    aws_env,
    photo,
    pipeline,
)

# The sample event each route is built from (resource template, path parameters, method).
_EVENT_BY_RESOURCE = {
    ("GET", "/health"): "api_health",
    ("GET", "/users"): "api_list_users",
    ("GET", "/users/{userId}"): "api_get_user",
    ("GET", "/users/{userId}/photos"): "api_get_user_photos",
    ("POST", "/search"): "api_search",
    ("POST", "/users/{userId}/verify"): "api_verify",
    ("DELETE", "/users/{userId}"): "api_delete_user",
}


@dataclass
class FakeContext:
    function_name: str = "query-api"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:query-api"
    aws_request_id: str = "req-api-1"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def code(self) -> str | None:
        """The error code of an error answer."""
        return (self.body or {}).get("error", {}).get("code")


@dataclass
class Api:
    pipeline: Pipeline
    erasure_queue_url: str

    def event(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        raw_body: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A REST proxy event for ``method path`` shaped like the sample of its route."""
        resource, params = _resource(method, path)
        name = _EVENT_BY_RESOURCE.get((method, resource), "api_get_user")
        event = load_event(name)
        event["httpMethod"] = method
        event["path"] = path
        event["resource"] = resource
        event["requestContext"].update(
            {"httpMethod": method, "resourcePath": resource, "path": "/prod" + path}
        )
        event["pathParameters"] = params or None
        event["queryStringParameters"] = query or None
        event["multiValueQueryStringParameters"] = (
            {k: [v] for k, v in query.items()} if query else None
        )
        if raw_body is not None:
            event["body"] = raw_body
        elif body is not None:
            event["body"] = json.dumps(body)
        elif method in ("GET", "DELETE"):
            event["body"] = None
        for name_, value in (headers or {}).items():
            for existing in [h for h in event["headers"] if h.lower() == name_.lower()]:
                del event["headers"][existing]
                del event["multiValueHeaders"][existing]
            event["headers"][name_] = value
            event["multiValueHeaders"][name_] = [value]
        return event

    def call(self, method: str, path: str, **kwargs: Any) -> Answer:
        """Send one request through the Lambda handler."""
        return self.send(self.event(method, path, **kwargs))

    def send(self, event: dict[str, Any]) -> Answer:
        """Send ``event`` through the handler; check the answer against openapi.json."""
        from query_api import handler

        response = handler.handler(event, FakeContext())
        headers = {k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}
        headers.update(response.get("headers") or {})
        assert "Traceback" not in (response.get("body") or "")
        body = json.loads(response["body"]) if response.get("body") else None
        answer = Answer(status=response["statusCode"], headers=headers, body=body)
        assert_documented(event["httpMethod"], event["resource"], answer)
        return answer

    def enroll(self, user_id: str, photos: dict[str, bytes]) -> None:
        """Upload ``{file name: photo}`` under the user's prefix and run index + associate."""
        index = self.pipeline.index_stage()
        for name, content in photos.items():
            index.handle_notification(self.pipeline.upload(f"enroll/{user_id}/{name}", content))
        messages = dict(self.pipeline.association_messages())
        if messages:
            _, failures = self.pipeline.associate_stage().handle_batch(messages)
            assert failures == {}

    def services(self) -> Any:
        from query_api import handler

        return handler.services()


@cache
def _document() -> dict[str, Any]:
    from query_api.openapi import DOCUMENT

    return dict(json.loads(DOCUMENT.read_text()))


def assert_documented(method: str, resource: str, answer: Answer) -> None:
    """The answer's status is documented for the operation and its body matches the schema.

    Requests outside the document (an unknown path or method) are not checked.
    """
    doc = _document()
    operation = doc["paths"].get(resource, {}).get(method.lower())
    if operation is None:
        return
    documented = operation["responses"].get(str(answer.status))
    assert documented is not None, f"{method} {resource} answered undocumented {answer.status}"
    schema = documented["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": doc["components"]})
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(answer.body)]
    assert not problems, f"{method} {resource} {answer.status} off the document: {problems}"
    for header in documented.get("headers", {}):
        assert header in answer.headers, f"{answer.status} lacks its documented {header} header"


def _resource(method: str, path: str) -> tuple[str, dict[str, str]]:
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "users":
        rest = "/".join(parts[2:])
        return "/users/{userId}" + (f"/{rest}" if rest else ""), {"userId": parts[1]}
    return path, {}


@pytest.fixture
def api(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The query API handler with the pipeline's resources in its environment."""
    from query_api import handler

    stack: Pipeline = request.getfixturevalue("pipeline")

    queue_url = stack.sqs.create_queue(QueueName="face-enrollment-erasure")["QueueUrl"]
    for name, value in stack.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ERASURE_QUEUE_URL", queue_url)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "query-api")
    handler._services.cache_clear()
    yield Api(pipeline=stack, erasure_queue_url=queue_url)
    handler._services.cache_clear()
