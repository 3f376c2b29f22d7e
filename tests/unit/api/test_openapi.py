"""The committed OpenAPI document is the one the code generates, and it documents every error."""

from __future__ import annotations

import json

from query_api import openapi


def test_the_committed_document_is_up_to_date():
    committed = openapi.DOCUMENT.read_text(encoding="utf-8")

    assert committed == openapi.render(), (
        f"{openapi.DOCUMENT.name} is stale: regenerate it with `{openapi.REGENERATE_COMMAND}` "
        "(python -m query_api.openapi) and commit it"
    )


def test_the_document_describes_every_route_and_its_errors():
    doc = json.loads(openapi.DOCUMENT.read_text(encoding="utf-8"))
    operations = {
        (method.upper(), path): operation
        for path, item in doc["paths"].items()
        for method, operation in item.items()
    }

    assert set(operations) == {
        ("GET", "/health"),
        ("GET", "/users"),
        ("GET", "/users/{userId}"),
        ("GET", "/users/{userId}/photos"),
        ("POST", "/search"),
        ("POST", "/users/{userId}/verify"),
        ("DELETE", "/users/{userId}"),
    }
    expected_errors = {
        ("GET", "/users"): {400},
        ("GET", "/users/{userId}"): {400, 404},
        ("GET", "/users/{userId}/photos"): {400, 404},
        ("POST", "/search"): {400, 404, 413, 415},
        ("POST", "/users/{userId}/verify"): {400, 404, 409, 413, 415},
        ("DELETE", "/users/{userId}"): {400, 404},
    }
    error_ref = "#/components/schemas/ErrorResponse"
    for key, operation in operations.items():
        statuses = {int(s) for s in operation["responses"]}
        success = 202 if key[0] == "DELETE" else 200
        assert success in statuses, key
        assert expected_errors.get(key, set()) | {422, 429, 500, 503} <= statuses, key
        for status, response in operation["responses"].items():
            schema = response["content"]["application/json"]["schema"]
            if int(status) >= 400:
                assert schema == {"$ref": error_ref}, (key, status)
            else:
                assert schema["$ref"] != error_ref, (key, status)
        assert "Retry-After" in operation["responses"]["429"]["headers"]
    assert doc["info"]["title"] and doc["info"]["version"] and doc["info"]["description"]
    user_id = doc["paths"]["/users/{userId}"]["get"]["parameters"][0]
    assert user_id["schema"]["pattern"] == "^[a-zA-Z0-9_.\\-:]{1,128}$"
