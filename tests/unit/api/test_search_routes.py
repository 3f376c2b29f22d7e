"""POST /search and POST /users/{userId}/verify with the synthetic engine, and every input error."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from enrollment.ledger import UserStatus


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def enrolled(api, photo):
    api.enroll("alice", {"1.jpg": photo("alice", 1), "2.jpg": photo("alice", 2)})
    api.enroll("bob", {"1.jpg": photo("bob", 1)})
    return api


# ---- search -------------------------------------------------------------------------------


def test_search_puts_the_right_person_first(enrolled, photo):
    answer = enrolled.call("POST", "/search", body={"image": b64(photo("alice", 7))})

    assert answer.status == 200
    body = answer.body
    assert body["matches"][0]["user_id"] == "alice"
    assert body["matches"][0]["similarity"] > 90
    assert body["matches"][0]["user_status"] == "ACTIVE"
    assert all(m["user_id"] != "bob" for m in body["matches"])  # under the default 80
    assert body["faces_in_image"] == 1
    assert body["searched_face"]["bounding_box"] == pytest.approx(
        {"width": 0.4, "height": 0.5, "left": 0.3, "top": 0.25}
    )
    assert (body["threshold"], body["max_users"]) == (80.0, 10)  # the settings' defaults


def test_search_takes_threshold_and_max_users(enrolled, photo):
    answer = enrolled.call(
        "POST", "/search", body={"image": b64(photo("alice", 7)), "threshold": 0, "max_users": 1}
    )

    assert [m["user_id"] for m in answer.body["matches"]] == ["alice"]
    assert (answer.body["threshold"], answer.body["max_users"]) == (0, 1)
    everyone = enrolled.call(
        "POST", "/search", body={"image": b64(photo("alice", 7)), "threshold": 0}
    )
    assert [m["user_id"] for m in everyone.body["matches"]] == ["alice", "bob"]


def test_no_match_is_an_empty_list(enrolled, photo):
    answer = enrolled.call("POST", "/search", body={"image": b64(photo("stranger", 1, fmt="PNG"))})

    assert answer.status == 200
    assert answer.body["matches"] == []
    assert answer.body["faces_in_image"] == 1


def test_faces_in_image_counts_the_unsearched_ones(enrolled, photo):
    group = photo(
        faces=[
            {"identity": "alice", "variant": 5, "box": [0.05, 0.1, 0.4, 0.5]},
            {"identity": "bob", "variant": 5, "box": [0.6, 0.1, 0.2, 0.25]},
        ]
    )

    answer = enrolled.call("POST", "/search", body={"image": b64(group)})

    assert answer.body["faces_in_image"] == 2
    assert answer.body["matches"][0]["user_id"] == "alice"  # the largest face is searched
    assert answer.body["searched_face"]["bounding_box"]["left"] == pytest.approx(0.05)


def test_search_by_s3_key_reads_the_bucket(enrolled, photo):
    enrolled.pipeline.s3.put_object(
        Bucket="face-enrollment-photos", Key="probes/who is this.jpg", Body=photo("bob", 9)
    )

    answer = enrolled.call("POST", "/search", body={"s3_key": "probes/who is this.jpg"})

    assert answer.status == 200
    assert answer.body["matches"][0]["user_id"] == "bob"


def test_search_by_s3_key_and_version(enrolled, photo):
    s3 = enrolled.pipeline.s3
    first = s3.put_object(Bucket="face-enrollment-photos", Key="probes/p.jpg", Body=photo("bob", 9))
    s3.put_object(Bucket="face-enrollment-photos", Key="probes/p.jpg", Body=photo("alice", 9))

    answer = enrolled.call(
        "POST", "/search", body={"s3_key": "probes/p.jpg", "s3_version_id": first["VersionId"]}
    )

    assert answer.body["matches"][0]["user_id"] == "bob"


def test_a_missing_s3_object_is_404(api):
    answer = api.call("POST", "/search", body={"s3_key": "probes/nothing-here.jpg"})

    assert (answer.status, answer.code) == (404, "OBJECT_NOT_FOUND")


def test_no_face_is_422_no_face(enrolled, photo):
    answer = enrolled.call("POST", "/search", body={"image": b64(photo(faces=[]))})

    assert (answer.status, answer.code) == (422, "NO_FACE")


# ---- image checks -------------------------------------------------------------------------


def _png(size: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (120, 130, 140)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("image", "status", "code"),
    [
        (b64(b"GIF89a" + b"\0" * 64), 415, "UNSUPPORTED_IMAGE_TYPE"),
        (b64(b"\xff\xd8\xff" + b"not really a jpeg" * 10), 415, "UNSUPPORTED_IMAGE_TYPE"),
        (b64(b"\xff\xd8\xff" + b"\0" * (5 * 1024 * 1024)), 413, "IMAGE_TOO_LARGE"),
        ("A" * (8 * 1024 * 1024), 413, "IMAGE_TOO_LARGE"),
        ("not base64 at all!", 422, "INVALID_IMAGE"),
        ("QUJ", 422, "INVALID_IMAGE"),  # padding missing
        ("   ", 422, "INVALID_IMAGE"),
        (b64(_png(20)), 422, "INVALID_IMAGE"),  # below Rekognition's 80x80 pixels
    ],
)
def test_probe_images_are_checked(api, image, status, code):
    answer = api.call("POST", "/search", body={"image": image})

    assert (answer.status, answer.code) == (status, code)
    assert answer.body["error"]["message"]


def test_an_image_of_exactly_5_mb_is_not_too_large(enrolled, photo):
    jpeg = photo("alice", 7)
    padded = jpeg + b"\0" * (5_242_880 - len(jpeg))  # bytes after the JPEG's end are ignored

    answer = enrolled.call("POST", "/search", body={"image": b64(padded)})

    assert answer.status != 413


def test_line_wrapped_base64_is_accepted(enrolled, photo):
    wrapped = base64.encodebytes(photo("alice", 7)).decode("ascii")  # 76-char lines

    answer = enrolled.call("POST", "/search", body={"image": wrapped})

    assert answer.status == 200


# ---- request validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "exactly one of"),
        ({"image": "AAAA", "s3_key": "k"}, "exactly one of"),
        ({"image": None, "s3_key": "k"}, "image"),
        ({"s3_key": ""}, "s3_key"),
        ({"s3_key": "k" * 1025}, "s3_key"),
        ({"image": "AAAA", "s3_version_id": "v"}, "s3_version_id"),
        ({"s3_key": "k", "threshold": 101}, "threshold"),
        ({"s3_key": "k", "threshold": -1}, "threshold"),
        ({"s3_key": "k", "threshold": "50"}, "threshold"),
        ({"s3_key": "k", "threshold": 1e308 * 10}, "threshold"),
        ({"s3_key": "k", "max_users": 0}, "max_users"),
        ({"s3_key": "k", "max_users": 501}, "max_users"),
        ({"s3_key": "k", "max_users": True}, "max_users"),
        ({"s3_key": "k", "max_users": 2.5}, "max_users"),
        ({"s3_key": "k", "max_users": 10**30}, "max_users"),
        ({"s3_key": "k", "colour": "red"}, "colour"),
        ({"image": 12}, "image"),
        ({"s3_key": ["a"]}, "s3_key"),
    ],
)
def test_a_wrong_body_is_422_naming_what_is_wrong(api, body, words):
    answer = api.call("POST", "/search", body=body)

    assert (answer.status, answer.code) == (422, "INVALID_REQUEST")
    assert words in answer.body["error"]["message"]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("", "body: is required"),
        ("null", "body: is required"),
        ("not json", "not valid JSON"),
        ('{"threshold": NaN, "s3_key": "k"}', "threshold"),
        ('{"threshold": Infinity, "s3_key": "k"}', "threshold"),
        ("[]", "JSON object"),
        ('"text"', "JSON object"),
        ("1e999", "JSON object"),
        ('{"s3_key": "k"', "not valid JSON"),
        ('{"s3_key": "\\ud800"}', ""),  # a lone surrogate: valid JSON, then S3 says no such key
    ],
)
def test_an_unreadable_body_is_a_4xx_with_a_message(api, raw, words):
    answer = api.call("POST", "/search", raw_body=raw)

    assert 400 <= answer.status < 500
    assert words in answer.body["error"]["message"]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "image/jpeg"],
)
def test_a_body_that_is_not_json_is_415(api, content_type):
    answer = api.call(
        "POST", "/search", raw_body='{"s3_key": "k"}', headers={"Content-Type": content_type}
    )

    assert (answer.status, answer.code) == (415, "UNSUPPORTED_MEDIA_TYPE")


def test_json_with_a_charset_is_json(enrolled, photo):
    answer = enrolled.call(
        "POST",
        "/search",
        body={"image": b64(photo("alice", 7))},
        headers={"content-type": "application/json; charset=utf-8"},
    )

    assert answer.status == 200


def test_a_base64_encoded_body_is_decoded_or_refused(enrolled, photo):
    event = enrolled.event("POST", "/search")
    event["isBase64Encoded"] = True
    event["body"] = base64.b64encode(b'{"image": "%s"}' % b64(photo("alice", 7)).encode()).decode()
    assert enrolled.send(event).status == 200

    event["body"] = base64.b64encode(b"\xff\xfe not utf-8").decode()
    answer = enrolled.send(event)
    assert (answer.status, answer.code) == (400, "INVALID_REQUEST")
    event["body"] = "%%% not base64"
    assert enrolled.send(event).status == 400


# ---- verify -------------------------------------------------------------------------------


def test_verify_says_yes_for_the_user_and_no_for_another(enrolled, photo):
    probe = {"image": b64(photo("alice", 7))}

    yes = enrolled.call("POST", "/users/alice/verify", body=probe)
    no = enrolled.call("POST", "/users/bob/verify", body=probe)

    assert yes.status == 200
    assert (yes.body["user_id"], yes.body["match"]) == ("alice", True)
    assert yes.body["similarity"] > 90
    assert yes.body["threshold"] == 80.0
    assert yes.body["faces_in_image"] == 1
    assert no.status == 200
    assert (no.body["user_id"], no.body["match"]) == ("bob", False)
    assert no.body["similarity"] < 40


def test_verify_decides_at_the_given_threshold(enrolled, photo):
    probe = {"image": b64(photo("alice", 7))}
    similarity = enrolled.call("POST", "/users/alice/verify", body=probe).body["similarity"]

    above = enrolled.call("POST", "/users/alice/verify", body={**probe, "threshold": 100})
    at = enrolled.call("POST", "/users/alice/verify", body={**probe, "threshold": similarity})

    assert (above.body["match"], above.body["threshold"]) == (similarity >= 100, 100)
    assert at.body["match"] is True


def test_verify_a_user_without_a_vector_is_no_match_without_similarity(enrolled, photo):
    enrolled.pipeline.ledger.ensure_user("carol")  # enrolled, no face associated yet

    answer = enrolled.call("POST", "/users/carol/verify", body={"image": b64(photo("carol", 1))})

    assert answer.status == 200
    assert (answer.body["similarity"], answer.body["match"]) == (None, False)


def test_verify_an_unknown_user_is_404(enrolled, photo):
    answer = enrolled.call("POST", "/users/nobody/verify", body={"image": b64(photo("x", 1))})

    assert (answer.status, answer.code) == (404, "USER_NOT_FOUND")


def test_verify_a_user_being_erased_is_409(enrolled, photo):
    enrolled.call("DELETE", "/users/alice")
    assert enrolled.pipeline.ledger.get_user("alice")["status"] == UserStatus.ERASING

    answer = enrolled.call("POST", "/users/alice/verify", body={"image": b64(photo("alice", 7))})

    assert (answer.status, answer.code) == (409, "USER_BEING_ERASED")


def test_verify_an_erased_user_is_404(enrolled, photo):
    enrolled.call("DELETE", "/users/alice")
    enrolled.services().erasure().run("alice")

    answer = enrolled.call("POST", "/users/alice/verify", body={"image": b64(photo("alice", 7))})

    assert (answer.status, answer.code) == (404, "USER_NOT_FOUND")


def test_verify_with_no_face_is_422(enrolled, photo):
    answer = enrolled.call("POST", "/users/alice/verify", body={"image": b64(photo(faces=[]))})

    assert (answer.status, answer.code) == (422, "NO_FACE")


def test_verify_validates_user_id_and_body(enrolled, photo):
    bad_user = enrolled.call("POST", "/users/a%20b/verify", body={"image": b64(photo("x", 1))})
    bad_body = enrolled.call("POST", "/users/alice/verify", body={"max_users": 3, "s3_key": "k"})

    assert (bad_user.status, bad_user.code) == (400, "INVALID_USER_ID")
    assert (bad_body.status, bad_body.code) == (422, "INVALID_REQUEST")
    assert "max_users" in bad_body.body["error"]["message"]
