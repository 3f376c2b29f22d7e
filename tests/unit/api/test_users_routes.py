"""GET /health, GET /users, GET /users/{userId}, GET /users/{userId}/photos, DELETE /users/{userId}.

Every answer is also checked against the committed openapi.json (conftest.assert_documented).
"""

from __future__ import annotations

import base64
import json

import pytest

from enrollment.keys import photo_id

from .conftest import BUCKET


def test_health_answers_without_touching_aws(api):
    answer = api.call("GET", "/health")

    assert (answer.status, answer.body) == (200, {"status": "ok"})


def test_users_are_paged_in_user_id_order(api, photo):
    for user in ("carol", "alice", "bob"):
        api.enroll(user, {"1.jpg": photo(user, 1)})
    # A user known only by a rejected photo has no user item: not listed.
    api.enroll("nobody", {"empty.jpg": photo(faces=[])})

    first = api.call("GET", "/users", query={"limit": "2"})
    assert first.status == 200
    assert [u["user_id"] for u in first.body["users"]] == ["alice", "bob"]
    assert first.body["users"][0]["face_count"] == 1
    assert first.body["users"][0]["status"] == "UPDATING"
    assert first.body["next_token"]

    second = api.call("GET", "/users", query={"limit": "2", "next_token": first.body["next_token"]})
    assert [u["user_id"] for u in second.body["users"]] == ["carol"]
    assert second.body["next_token"] is None

    everyone = api.call("GET", "/users")  # default page size holds all three
    assert [u["user_id"] for u in everyone.body["users"]] == ["alice", "bob", "carol"]
    assert everyone.body["next_token"] is None


def test_an_exact_last_page_says_there_is_no_next_one(api, photo):
    for user in ("alice", "bob"):
        api.enroll(user, {"1.jpg": photo(user, 1)})

    answer = api.call("GET", "/users", query={"limit": "2"})

    assert len(answer.body["users"]) == 2
    assert answer.body["next_token"] is None


@pytest.mark.parametrize("limit", ["0", "101", "abc", "1.5", "99999999999999999999999", ""])
def test_a_limit_outside_1_to_100_is_422_naming_it(api, limit):
    answer = api.call("GET", "/users", query={"limit": limit})

    assert (answer.status, answer.code) == (422, "INVALID_REQUEST")
    assert "limit" in answer.body["error"]["message"]


def _token(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        "garbage!",
        "bm90IGpzb24",  # base64url of "not json"
        _token(["USER"]),
        _token({"kind": "USER", "pk": "USER#alice", "sk": "USER"}),  # a field missing
        _token({"kind": "USER", "pk": "USER#bob", "sk": "USER", "user_id": "alice"}),
        _token({"kind": "USER", "pk": "PHOTO#x", "sk": "USER", "user_id": "x"}),
        _token({"kind": "USER", "pk": "USER#a b", "sk": "USER", "user_id": "a b"}),
        _token({"kind": 1, "pk": "USER#alice", "sk": "USER", "user_id": "alice"}),
    ],
)
def test_a_next_token_we_did_not_hand_out_is_400(api, photo, token):
    api.enroll("alice", {"1.jpg": photo("alice", 1)})

    answer = api.call("GET", "/users", query={"next_token": token})

    assert (answer.status, answer.code) == (400, "INVALID_NEXT_TOKEN")


def test_user_detail_joins_ledger_and_rekognition(api, photo):
    api.enroll("alice", {"1.jpg": photo("alice", 1), "2.jpg": photo("alice", 2, sharpness=60)})

    answer = api.call("GET", "/users/alice")

    assert answer.status == 200
    body = answer.body
    assert body["user_id"] == "alice"
    assert body["status"] == "UPDATING"  # the activation execution has not finished
    assert body["rekognition_status"] == "ACTIVE"  # the emulator activates at once here
    assert (body["face_count"], body["max_faces"]) == (2, 100)
    assert body["photo_count"] == 2
    assert body["erasure"] is None
    faces = {f["key"]: f for f in body["faces"]}
    assert set(faces) == {"enroll/alice/1.jpg", "enroll/alice/2.jpg"}
    assert faces["enroll/alice/2.jpg"]["quality"] == 60.0
    assert set(f["face_id"] for f in body["faces"]) == api.pipeline.user_face_ids("alice")
    version = api.pipeline.s3.head_object(Bucket=BUCKET, Key="enroll/alice/1.jpg")["VersionId"]
    assert faces["enroll/alice/1.jpg"]["version_id"] == version
    assert faces["enroll/alice/1.jpg"]["photo_id"] == photo_id(
        BUCKET, "enroll/alice/1.jpg", version
    )


def test_user_detail_reads_settings_for_the_cap(api, photo, monkeypatch):
    monkeypatch.setenv("MAX_FACES_PER_USER", "7")
    api.enroll("alice", {"1.jpg": photo("alice", 1)})

    assert api.call("GET", "/users/alice").body["max_faces"] == 7


def test_a_user_with_only_rejected_photos_is_known_without_status(api, photo):
    api.enroll("ghost", {"empty.jpg": photo(faces=[])})

    answer = api.call("GET", "/users/ghost")

    assert answer.status == 200
    assert answer.body["status"] is None
    assert answer.body["rekognition_status"] is None
    assert (answer.body["face_count"], answer.body["faces"]) == (0, [])
    assert answer.body["photo_count"] == 1


def test_an_unknown_user_is_404(api):
    answer = api.call("GET", "/users/nobody")

    assert (answer.status, answer.code) == (404, "USER_NOT_FOUND")
    assert "nobody" in answer.body["error"]["message"]


@pytest.mark.parametrize(
    "user_id",
    ["bad%20id", "a" * 129, "%C3%A9t%C3%A9", "été", "semi;colon", "x*", "a+b"],
)
@pytest.mark.parametrize("suffix", ["", "/photos"])
def test_a_malformed_user_id_is_400(api, user_id, suffix):
    answer = api.call("GET", f"/users/{user_id}{suffix}")

    assert (answer.status, answer.code) == (400, "INVALID_USER_ID")


def test_a_percent_encoded_user_id_is_the_decoded_one(api, photo):
    # REST APIs pass the path still percent-encoded; a client may well encode ':'.
    api.enroll("emp:42", {"1.jpg": photo("emp42", 1)})

    detail = api.call("GET", "/users/emp%3A42")
    photos = api.call("GET", "/users/emp%3a42/photos")

    assert (detail.status, detail.body["user_id"]) == (200, "emp:42")
    assert (photos.status, len(photos.body["photos"])) == (200, 1)
    assert api.call("GET", "/users/a%2Fb").code == "INVALID_USER_ID"


def test_photos_list_every_outcome_and_every_version(api, photo):
    api.enroll("alice", {"1.jpg": photo("alice", 1), "group.jpg": photo(faces=[])})
    # The same key uploaded again: a second version, a second photo.
    api.enroll("alice", {"1.jpg": photo("alice", 3)})
    # Uploaded, but the index function has not run yet.
    api.pipeline.upload("enroll/alice/new photo été.jpg", photo("alice", 4))

    answer = api.call("GET", "/users/alice/photos")

    assert answer.status == 200
    photos = answer.body["photos"]
    by_key: dict[str, list[dict]] = {}
    for p in photos:
        by_key.setdefault(p["key"], []).append(p)
    assert sorted(by_key) == [
        "enroll/alice/1.jpg",
        "enroll/alice/group.jpg",
        "enroll/alice/new photo été.jpg",
    ]
    versions = api.pipeline.s3.list_object_versions(Bucket=BUCKET, Prefix="enroll/alice/1.jpg")
    assert {p["version_id"] for p in by_key["enroll/alice/1.jpg"]} == {
        v["VersionId"] for v in versions["Versions"]
    }
    assert {p["status"] for p in by_key["enroll/alice/1.jpg"]} == {"ASSOCIATED"}
    rejected = by_key["enroll/alice/group.jpg"][0]
    assert (rejected["status"], rejected["reason"]) == ("REJECTED", "NO_FACE")
    received = by_key["enroll/alice/new photo été.jpg"][0]
    assert received["status"] == "RECEIVED"
    assert received["reason"] is None and received["uploaded_at"]
    assert received["photo_id"] == photo_id(BUCKET, received["key"], received["version_id"])


def test_photos_of_a_user_the_pipeline_has_not_seen_yet_are_received(api, photo):
    api.pipeline.upload("enroll/dave/1.jpg", photo("dave", 1))

    answer = api.call("GET", "/users/dave/photos")

    assert answer.status == 200
    assert [p["status"] for p in answer.body["photos"]] == ["RECEIVED"]


def test_photos_of_an_unknown_user_are_404(api):
    answer = api.call("GET", "/users/nobody/photos")

    assert (answer.status, answer.code) == (404, "USER_NOT_FOUND")


def test_delete_requests_the_erasure_and_the_detail_shows_it(api, photo):
    api.enroll("alice", {"1.jpg": photo("alice", 1)})

    answer = api.call("DELETE", "/users/alice")

    assert answer.status == 202
    assert answer.body["user_id"] == "alice"
    assert answer.body["status"] == "ERASING"
    assert answer.body["erasure"]["step"] == "collect"
    assert answer.body["erasure"]["requested_at"]
    sent = api.pipeline.sqs.receive_message(QueueUrl=api.erasure_queue_url)["Messages"]
    assert json.loads(sent[0]["Body"])["user_id"] == "alice"

    detail = api.call("GET", "/users/alice")
    assert detail.body["status"] == "ERASING"
    assert detail.body["erasure"]["requested_at"] == answer.body["erasure"]["requested_at"]

    again = api.call("DELETE", "/users/alice")  # idempotent
    assert (again.status, again.body["status"]) == (202, "ERASING")
    assert again.body["erasure"]["requested_at"] == answer.body["erasure"]["requested_at"]


def test_after_the_erasure_the_detail_shows_the_receipt(api, photo):
    api.enroll("alice", {"1.jpg": photo("alice", 1)})
    api.call("DELETE", "/users/alice")

    api.services().erasure().run("alice")

    detail = api.call("GET", "/users/alice")
    assert detail.status == 200
    assert detail.body["status"] == "DELETED"
    assert (detail.body["face_count"], detail.body["faces"]) == (0, [])
    receipt = detail.body["erasure"]["receipt"]
    assert receipt["faces_deleted"] == 1
    assert receipt["user_deleted"] is True
    assert receipt["objects_deleted"] >= 1
    assert api.call("DELETE", "/users/alice").body["status"] == "DELETED"


def test_deleting_an_unknown_user_is_404(api):
    answer = api.call("DELETE", "/users/nobody")

    assert (answer.status, answer.code) == (404, "USER_NOT_FOUND")


def test_deleting_a_malformed_user_id_is_400(api):
    answer = api.call("DELETE", "/users/bad%20id")

    assert (answer.status, answer.code) == (400, "INVALID_USER_ID")
