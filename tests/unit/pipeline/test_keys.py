"""Keys and ids: decoding, UserId validation, deterministic ids and tokens."""

from __future__ import annotations

from urllib.parse import quote_plus

import pytest

from enrollment import keys


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("enroll/alice/red+flower.jpg", "enroll/alice/red flower.jpg"),
        ("enroll/alice/1%2B1.jpg", "enroll/alice/1+1.jpg"),
        ("enroll/alice/%C3%A9t%C3%A9.jpg", "enroll/alice/été.jpg"),
        ("enroll/alice/%E5%86%99%E7%9C%9F.png", "enroll/alice/写真.png"),
        ("enroll/alice/100%25.jpg", "enroll/alice/100%.jpg"),
    ],
)
def test_event_keys_are_form_decoded(raw, decoded):
    assert keys.decode_event_key(raw) == decoded
    assert keys.decode_event_key(quote_plus(decoded, safe="/")) == decoded


def test_enroll_key_parsing():
    assert keys.parse_enroll_key("other/alice/a.jpg", "enroll/") is None
    ok = keys.parse_enroll_key("enroll/alice.b-c_d:e/a b.jpg", "enroll/")
    assert ok is not None and (ok.user_id, ok.file_name) == ("alice.b-c_d:e", "a b.jpg")
    for key in ("enroll/a.jpg", "enroll/bad user/a.jpg", "enroll/x/y/z.jpg", "enroll//a.jpg"):
        parsed = keys.parse_enroll_key(key, "enroll/")
        assert parsed is not None and parsed.user_id is None, key
    assert keys.is_folder_marker("enroll/alice/")


@pytest.mark.parametrize("user_id", ["a", "A-z_0.9:x", "u" * 128])
def test_valid_user_ids(user_id):
    assert keys.is_valid_user_id(user_id)


@pytest.mark.parametrize("user_id", ["", "u" * 129, "a b", "a/b", "é", "a+b", "a%20"])
def test_invalid_user_ids(user_id):
    assert not keys.is_valid_user_id(user_id)


def test_photo_id_is_deterministic_and_a_valid_external_image_id():
    a = keys.photo_id("b", "enroll/alice/été 1+1.jpg", "v1")
    assert a == keys.photo_id("b", "enroll/alice/été 1+1.jpg", "v1")
    assert keys.EXTERNAL_IMAGE_ID_PATTERN.match(a)
    assert len(a) == 42 and a.startswith("p-")
    others = {
        keys.photo_id("b", "enroll/alice/été 1+1.jpg", "v2"),
        keys.photo_id("b", "enroll/alice/été 1+1.jpg", None),
        keys.photo_id("c", "enroll/alice/été 1+1.jpg", "v1"),
        keys.photo_id("b", "enroll/alice/ete 1+1.jpg", "v1"),
    }
    assert a not in others and len(others) == 4


def test_ledger_keys():
    assert keys.photo_pk("alice") == "USER#alice"
    assert keys.photo_pk(None) == "UNROUTED"
    assert keys.photo_sk("p-1") == "PHOTO#p-1"
    assert keys.content_sk('"abc"') == "CONTENT#abc"


def test_tokens_are_deterministic_order_free_and_valid():
    params = {"collection_id": "c", "threshold": 75.0}
    t = keys.associate_token("alice", ["f2", "f1"], **params)
    assert t == keys.associate_token("alice", ["f1", "f2"], collection_id="c", threshold=75)
    assert t != keys.associate_token("bob", ["f1", "f2"], **params)
    # Another parameter value must never reuse the token (IdempotentParameterMismatch).
    assert t != keys.associate_token("alice", ["f1", "f2"], collection_id="c", threshold=80.0)
    assert t != keys.associate_token("alice", ["f1", "f2"], collection_id="d", threshold=75.0)
    assert len(t) == 64 and t.isalnum()
    assert keys.create_user_token("alice", "t1") != keys.create_user_token("alice", "t2")
    assert keys.disassociate_token("alice", ["f1"], collection_id="c") != t


def test_execution_name_follows_the_contract():
    import hashlib

    name = keys.activation_execution_name("alice", ["f2", "f1"])
    expected = hashlib.sha256(b"alice\nf1,f2").hexdigest()[:60]
    assert name == "act-" + expected
    assert len(name) == 64  # Step Functions allows 80
