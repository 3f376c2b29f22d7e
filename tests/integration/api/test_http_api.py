"""The query API through real HTTP on the local stack: every route, its success and its errors.

HTTP -> the local API server -> an API Gateway proxy event -> the real handler -> the ledger, S3
and the Rekognition emulator (synthetic engine) -> HTTP. Every error answer must have the one
error shape and never a stack trace; no client mistake may be a 5xx.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import (
    Answer,
    b64,
    call,
    enroll,
    faceless_photo,
    photo,
    wait_for_status,
)

#: Rekognition's limit on an image passed as bytes (SearchUsersByImage), in bytes.
MAX_IMAGE_BYTES = 5 * 1024 * 1024
#: API Gateway's payload limit (bytes), which the local server enforces too.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
#: Marks of a leaked stack trace.
TRACE_MARKS = ("Traceback", 'File "')


def assert_error(answer: Answer, status: int | tuple[int, ...], code: str | None = None) -> None:
    """``answer`` is an error in the API's one shape, with ``status`` (and ``code``)."""
    statuses = (status,) if isinstance(status, int) else status
    assert answer.status in statuses, (answer.status, answer.raw)
    body = answer.json
    assert set(body) == {"error"}, body
    assert set(body["error"]) >= {"code", "message"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"], body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    if code is not None:
        assert body["error"]["code"] == code, body
    text = answer.raw.decode()
    assert not any(mark in text for mark in TRACE_MARKS), text
    assert "json" in str(answer.header("Content-Type")), answer.headers


# -- GET /health ---------------------------------------------------------------------------------


def test_health_answers_ok(api_stack: Any) -> None:
    answer = call(api_stack, "GET", "/health")
    assert answer.status == 200
    assert answer.json == {"status": "ok"}
    assert "application/json" in str(answer.header("Content-Type"))


# -- GET /users ----------------------------------------------------------------------------------


def test_users_lists_each_user_with_status_face_count_and_last_change(enrolled: Any) -> None:
    answer = call(enrolled, "GET", "/users")
    assert answer.status == 200, answer.raw
    users = {u["user_id"]: u for u in answer.json["users"]}
    assert users["alice"]["status"] == "ACTIVE" and users["alice"]["face_count"] == 2
    assert users["bob"]["status"] == "ACTIVE" and users["bob"]["face_count"] == 1
    assert all(u["updated_at"] for u in (users["alice"], users["bob"]))
    assert answer.json["next_token"] is None


def test_users_pages_follow_next_token_in_user_id_order(enrolled: Any) -> None:
    everyone = [u["user_id"] for u in call(enrolled, "GET", "/users").json["users"]]
    seen: list[str] = []
    token: str | None = None
    for _ in range(len(everyone) + 1):
        path = "/users?limit=1" + (f"&next_token={token}" if token else "")
        page = call(enrolled, "GET", path)
        assert page.status == 200, page.raw
        assert len(page.json["users"]) <= 1
        seen += [u["user_id"] for u in page.json["users"]]
        token = page.json["next_token"]
        if token is None:
            break
    assert seen == everyone == sorted(everyone)


# -- GET /users/{userId} -------------------------------------------------------------------------


def test_user_detail_shows_both_statuses_faces_against_the_cap_and_activation(
    enrolled: Any,
) -> None:
    answer = call(enrolled, "GET", "/users/alice")
    assert answer.status == 200, answer.raw
    user = answer.json
    assert user["user_id"] == "alice"
    assert user["status"] == "ACTIVE" and user["rekognition_status"] == "ACTIVE"
    assert user["face_count"] == 2 and user["max_faces"] == 100
    assert sorted(f["key"] for f in user["faces"]) == ["enroll/alice/0.jpg", "enroll/alice/1.jpg"]
    assert all(f["face_id"] and f["indexed_at"] for f in user["faces"])
    assert user["activated_at"]
    assert user["erasure"] is None


# -- GET /users/{userId}/photos ------------------------------------------------------------------


def test_photos_lists_every_photo_with_its_outcome_and_reason(enrolled: Any) -> None:
    answer = call(enrolled, "GET", "/users/carol/photos")
    assert answer.status == 200, answer.raw
    assert answer.json["user_id"] == "carol"
    outcomes = {p["key"]: (p["status"], p["reason"]) for p in answer.json["photos"]}
    assert outcomes == {
        "enroll/carol/empty-room.jpg": ("REJECTED", "NO_FACE"),
        "enroll/carol/notes.jpg": ("REJECTED", "INVALID_IMAGE_FORMAT"),
    }

    alice = call(enrolled, "GET", "/users/alice/photos").json["photos"]
    assert {p["key"]: p["status"] for p in alice} == {
        "enroll/alice/0.jpg": "ACTIVE",
        "enroll/alice/1.jpg": "ACTIVE",
    }
    # A photo is identified by its key and version, exactly as uploaded (the bucket is versioned)
    assert all(p["face_id"] and p["version_id"] for p in alice)


# -- POST /search --------------------------------------------------------------------------------


def test_search_finds_the_right_person_first_from_a_photo_not_uploaded(enrolled: Any) -> None:
    answer = call(enrolled, "POST", "/search", body={"image": b64(photo("alice", 7))})
    assert answer.status == 200, answer.raw
    found = answer.json
    assert found["matches"][0]["user_id"] == "alice"
    assert found["matches"][0]["user_status"] == "ACTIVE"
    assert "bob" not in [m["user_id"] for m in found["matches"]]
    assert found["faces_in_image"] == 1
    box = found["searched_face"]["bounding_box"]
    assert 0 < box["width"] <= 1 and 0 < box["height"] <= 1


def test_search_with_threshold_and_max_users_and_a_png(enrolled: Any) -> None:
    body = {"image": b64(photo("bob", 3, fmt="PNG")), "threshold": 0, "max_users": 1}
    answer = call(enrolled, "POST", "/search", body=body)
    assert answer.status == 200, answer.raw
    assert [m["user_id"] for m in answer.json["matches"]] == ["bob"]


def test_search_by_s3_key_under_the_bucket(enrolled: Any) -> None:
    answer = call(enrolled, "POST", "/search", body={"s3_key": "enroll/bob/0.jpg"})
    assert answer.status == 200, answer.raw
    assert answer.json["matches"][0]["user_id"] == "bob"


def test_search_with_nobody_matching_is_an_empty_list_not_an_error(enrolled: Any) -> None:
    answer = call(enrolled, "POST", "/search", body={"image": b64(photo("stranger", 0))})
    assert answer.status == 200, answer.raw
    assert answer.json["matches"] == []
    assert answer.json["faces_in_image"] == 1


# -- POST /users/{userId}/verify -----------------------------------------------------------------


def test_verify_says_yes_for_the_same_person_and_no_for_another(enrolled: Any) -> None:
    same = call(enrolled, "POST", "/users/alice/verify", body={"image": b64(photo("alice", 8))})
    assert same.status == 200, same.raw
    assert same.json["user_id"] == "alice" and same.json["match"] is True
    assert same.json["similarity"] >= same.json["threshold"]

    other = call(enrolled, "POST", "/users/alice/verify", body={"image": b64(photo("bob", 8))})
    assert other.status == 200, other.raw
    assert other.json["match"] is False
    assert other.json["similarity"] is None or other.json["similarity"] < other.json["threshold"]


def test_verify_at_a_given_threshold(enrolled: Any) -> None:
    body = {"image": b64(photo("alice", 9)), "threshold": 100}
    answer = call(enrolled, "POST", "/users/alice/verify", body=body)
    assert answer.status == 200, answer.raw
    assert answer.json["threshold"] == 100
    assert answer.json["match"] is (answer.json["similarity"] >= 100)


# -- DELETE /users/{userId} ----------------------------------------------------------------------


def _faces_of(stack: Any, user_id: str) -> list[dict[str, Any]]:
    faces = stack.clients.rekognition.list_faces(
        CollectionId=stack.endpoints.collection_id, UserId=user_id, MaxResults=4096
    )["Faces"]
    return list(faces)


def _versions_under(stack: Any, prefix: str) -> list[dict[str, Any]]:
    listed = stack.clients.s3.list_object_versions(Bucket=stack.endpoints.bucket, Prefix=prefix)
    return [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]


def test_delete_erases_faces_photos_and_ledger_and_leaves_a_tombstone_with_a_receipt(
    api_stack: Any,
) -> None:
    # Given erin enrolled with two photos, one of them overwritten (two versions)
    enroll(api_stack, {"erin": [photo("erin", 0), photo("erin", 1)]})
    enroll(api_stack, {"erin": [photo("erin", 2)]})  # a new version of enroll/erin/0.jpg
    assert _faces_of(api_stack, "erin")

    # When she is deleted
    answer = call(api_stack, "DELETE", "/users/erin")

    # Then the answer is 202 with the tombstone, and the erasure finishes on its own
    assert answer.status == 202, answer.raw
    assert answer.json["user_id"] == "erin"
    assert answer.json["status"] in ("ERASING", "DELETED")
    done = wait_for_status(api_stack, "erin", "DELETED")
    receipt = done["erasure"]["receipt"]
    assert receipt["faces_deleted"] >= 2 and receipt["user_deleted"] is True
    assert receipt["versions_deleted"] + receipt["delete_markers_deleted"] >= 3
    assert receipt["completed_at"]
    # And nothing of her is left: no face, no object version, no photo item
    assert _faces_of(api_stack, "erin") == []
    assert _versions_under(api_stack, "enroll/erin/") == []
    photos = call(api_stack, "GET", "/users/erin/photos")
    assert photos.status in (200, 404), photos.raw
    if photos.status == 200:
        assert photos.json["photos"] == []

    # And a second DELETE is harmless: same tombstone, same receipt
    again = call(api_stack, "DELETE", "/users/erin")
    assert again.status == 202, again.raw
    assert again.json["status"] == "DELETED"
    assert call(api_stack, "GET", "/users/erin").json["erasure"]["receipt"] == receipt


def test_a_user_being_erased_is_409(api_stack: Any) -> None:
    enroll(api_stack, {"frank": [photo("frank", 0)]})
    api_stack.stop_pollers()
    try:
        # Given frank's erasure requested but not carried out yet
        answer = call(api_stack, "DELETE", "/users/frank")
        assert answer.status == 202, answer.raw
        assert answer.json["status"] == "ERASING"

        # When he is verified, Then 409 USER_BEING_ERASED
        verify = call(
            api_stack, "POST", "/users/frank/verify", body={"image": b64(photo("frank", 1))}
        )
        assert_error(verify, 409, "USER_BEING_ERASED")
        # And a DELETE meanwhile is still accepted (it re-sends the request)
        assert call(api_stack, "DELETE", "/users/frank").status == 202
        assert call(api_stack, "GET", "/users/frank").json["status"] == "ERASING"
    finally:
        api_stack.start_pollers()
    # And once the worker runs, the erasure completes
    wait_for_status(api_stack, "frank", "DELETED")


# -- 400 / 422: malformed input ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/users/bad%20id"),
        ("GET", "/users/" + "x" * 129),
        ("GET", "/users/%E2%9C%93/photos"),
        ("POST", "/users/bad*id/verify"),
        ("DELETE", "/users/bad%2Fid"),
    ],
)
def test_a_malformed_user_id_is_400_or_422_and_says_so(
    enrolled: Any, method: str, path: str
) -> None:
    body = {"image": b64(photo("alice", 1))} if method == "POST" else None
    answer = call(enrolled, method, path, body=body)
    assert_error(answer, 400, "INVALID_USER_ID")


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "not an object"),
        (b"{}", "no image"),
        (b'{"image": "aGVsbG8=", "s3_key": "enroll/bob/0.jpg"}', "both image and s3_key"),
        (b'{"image": "%%% not base64 %%%"}', "image not base64"),
        (b'{"image": 42}', "image not a string"),
        (b'{"s3_key": ""}', "empty s3_key"),
        (b'{"s3_key": "enroll/bob/0.jpg", "threshold": 101}', "threshold over 100"),
        (b'{"s3_key": "enroll/bob/0.jpg", "threshold": -1}', "negative threshold"),
        (b'{"s3_key": "enroll/bob/0.jpg", "threshold": "50"}', "threshold a string"),
        (b'{"s3_key": "enroll/bob/0.jpg", "max_users": 0}', "max_users 0"),
        (b'{"s3_key": "enroll/bob/0.jpg", "max_users": 501}', "max_users over 500"),
        (b'{"s3_key": "enroll/bob/0.jpg", "colour": "blue"}', "unknown field"),
    ],
)
def test_a_malformed_search_body_is_400_or_422(enrolled: Any, raw: bytes, why: str) -> None:
    assert_error(call(enrolled, "POST", "/search", raw=raw), (400, 422))


def test_a_malformed_verify_body_is_400_or_422(enrolled: Any) -> None:
    for raw in (b"{not json", b"{}", b'{"image": "aGVsbG8=", "threshold": 1000}'):
        assert_error(call(enrolled, "POST", "/users/alice/verify", raw=raw), (400, 422))


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=-1", "limit=abc", "limit=100000", "next_token=not-a-token"]
)
def test_a_malformed_users_parameter_is_400_or_422(enrolled: Any, query: str) -> None:
    assert_error(call(enrolled, "GET", f"/users?{query}"), (400, 422))


def test_an_s3_key_outside_the_photos_or_missing_is_a_client_error(enrolled: Any) -> None:
    for key in ("enroll/nobody/missing.jpg", "../etc/passwd"):
        answer = call(enrolled, "POST", "/search", body={"s3_key": key})
        assert_error(answer, (400, 404, 422))


# -- 404: unknown user (and unknown route) -------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/users/nobody"),
        ("GET", "/users/nobody/photos"),
        ("POST", "/users/nobody/verify"),
        ("DELETE", "/users/nobody"),
    ],
)
def test_an_unknown_user_is_404(enrolled: Any, method: str, path: str) -> None:
    body = {"image": b64(photo("alice", 1))} if method == "POST" else None
    assert_error(call(enrolled, method, path, body=body), 404, "USER_NOT_FOUND")


def test_an_unknown_route_is_404_in_the_error_shape(api_stack: Any) -> None:
    assert_error(call(api_stack, "GET", "/no/such/route"), 404)
    assert_error(call(api_stack, "PUT", "/users", body={}), (404, 405))


# -- 413 / 415 / 422 NO_FACE: the probe image ----------------------------------------------------


def test_an_image_over_5_mb_is_413(enrolled: Any) -> None:
    jpeg = photo("alice", 1)
    big = jpeg + b"\0" * (MAX_IMAGE_BYTES + 1 - len(jpeg))
    for path in ("/search", "/users/alice/verify"):
        assert_error(call(enrolled, "POST", path, body={"image": b64(big)}), 413)


def test_a_request_over_api_gateways_10_mb_is_413_before_the_function(api_stack: Any) -> None:
    raw = b'{"image": "' + b"A" * MAX_REQUEST_BYTES + b'"}'
    assert_error(call(api_stack, "POST", "/search", raw=raw), 413)


@pytest.mark.parametrize(
    "data",
    [
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04",
        b"just some text, not an image",
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
    ],
    ids=["gif", "text", "pdf"],
)
def test_an_image_that_is_not_jpeg_or_png_is_415(enrolled: Any, data: bytes) -> None:
    for path in ("/search", "/users/alice/verify"):
        assert_error(call(enrolled, "POST", path, body={"image": b64(data)}), 415)


def test_a_probe_without_a_face_is_422_no_face(enrolled: Any) -> None:
    for path in ("/search", "/users/alice/verify"):
        answer = call(enrolled, "POST", path, body={"image": b64(faceless_photo())})
        assert_error(answer, 422, "NO_FACE")


# -- 429: Rekognition throttling -----------------------------------------------------------------


def test_rekognition_throttling_is_429_with_retry_after(enrolled: Any) -> None:
    # Every Rekognition call throttled, whoever makes it. One route only: the function's client
    # retries (adaptive mode, 5 attempts) before the API answers, which takes 10-20 s; verify
    # goes through the same error mapping.
    faults = enrolled.emulator.config.faults
    faults.throttle_rate = 1.0
    try:
        answer = call(enrolled, "POST", "/search", body={"image": b64(photo("alice", 2))})
    finally:
        faults.throttle_rate = 0.0
    assert_error(answer, 429, "THROTTLED")
    retry_after = answer.header("Retry-After")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) > 0
    # And the API answers again once Rekognition does
    assert call(enrolled, "POST", "/search", body={"image": b64(photo("alice", 2))}).status == 200
