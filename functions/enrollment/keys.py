"""Object keys, identifiers and idempotency tokens: pure functions of their inputs.

Every id the pipeline hands to Rekognition or Step Functions is derived deterministically from
what identifies the work (bucket/key/version, user, face ids), so at-least-once delivery
(S3 -> SQS -> Lambda, SQS redelivery) replays the same call instead of doing new work.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import quote_plus, unquote_plus

USER_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_.\-:]{1,128}$")
# Rekognition's ExternalImageId pattern (1..255 chars); every photo_id must match it.
EXTERNAL_IMAGE_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_.\-:]{1,255}$")
# ClientRequestToken: 1..64 chars of [a-zA-Z0-9-_].
TOKEN_LENGTH = 64
EXECUTION_NAME_HASH_CHARS = 60

UNROUTED_PK = "UNROUTED"


@dataclass(frozen=True)
class EnrollKey:
    """What an object key under the enrollment prefix says about the photo."""

    key: str  # decoded S3 key
    user_id: str | None  # None when the key carries no valid UserId
    file_name: str


def decode_event_key(raw_key: str) -> str:
    """Decode an S3 notification key (form-URL-encoded: '+' is a space, '%2B' is '+')."""
    return unquote_plus(raw_key)


def encode_event_key(key: str) -> str:
    """Encode a key as S3 notifications carry it (the inverse of ``decode_event_key``).

    Form-URL encoding of the UTF-8 key, '/' left as is: ``enroll/alice/été 1+1.jpg`` becomes
    ``enroll/alice/%C3%A9t%C3%A9+1%2B1.jpg``.
    """
    return quote_plus(key, safe="/")


def is_folder_marker(key: str) -> bool:
    """True for zero-byte "folder" objects (``enroll/alice/``) the S3 console creates."""
    return key.endswith("/")


def parse_enroll_key(key: str, prefix: str) -> EnrollKey | None:
    """Split ``<prefix><UserId>/<file>``; None when the key is outside the prefix.

    A key under the prefix but without a valid UserId segment (``enroll/photo.jpg``,
    ``enroll/bad user/x.jpg``) still yields an EnrollKey with ``user_id=None`` so that the photo
    is recorded as rejected instead of vanishing.
    """
    if not key.startswith(prefix):
        return None
    rest = key[len(prefix) :]
    user_part, sep, file_name = rest.partition("/")
    if not sep or not file_name or "/" in file_name or not is_valid_user_id(user_part):
        return EnrollKey(key=key, user_id=None, file_name=rest)
    return EnrollKey(key=key, user_id=user_part, file_name=file_name)


def is_valid_user_id(user_id: str) -> bool:
    """Whether ``user_id`` is a valid Rekognition UserId (1..128 of [a-zA-Z0-9_.-:])."""
    return bool(USER_ID_PATTERN.match(user_id))


def photo_id(bucket: str, key: str, version_id: str | None) -> str:
    """The photo's ledger id and IndexFaces ExternalImageId: stable for one object version.

    Raw keys cannot be used (they contain '/', spaces, '+', non-ASCII), so the id is a hash;
    "p-" + 40 hex chars is well inside ExternalImageId's 255-char limit.
    """
    material = "\n".join((bucket, key, version_id or ""))
    return "p-" + hashlib.sha256(material.encode("utf-8")).hexdigest()[:40]


def user_pk(user_id: str) -> str:
    """Ledger partition key of a user's items."""
    return f"USER#{user_id}"


def photo_pk(user_id: str | None) -> str:
    """Ledger partition key of a photo: its user's, or UNROUTED when the key has no UserId."""
    return user_pk(user_id) if user_id else UNROUTED_PK


def photo_sk(photo: str) -> str:
    """Ledger sort key of a photo item."""
    return f"PHOTO#{photo}"


def content_sk(etag: str) -> str:
    """Ledger sort key of the claim on one photo content (by S3 ETag) inside a user."""
    return f"CONTENT#{etag.strip(chr(34))}"


USER_SK = "USER"


def create_user_token(user_id: str, user_created_at: str) -> str:
    """ClientRequestToken for CreateUser.

    Includes the ledger user's ``created_at`` so that a user deleted and enrolled again gets a
    new token: reusing the old one could replay the cached "created" answer for a user that no
    longer exists.
    """
    return _token("CreateUser", user_id, user_created_at)


def associate_token(
    user_id: str, face_ids: list[str], *, collection_id: str, threshold: float
) -> str:
    """ClientRequestToken for one AssociateFaces call: sha256 over every parameter, [:64].

    Every request parameter is part of it (not only user and sorted face ids): a token reused
    with another UserMatchThreshold (the setting changed between two deliveries) or collection
    is IdempotentParameterMismatchException, which no retry can cure.
    """
    return _token(
        "AssociateFaces", collection_id, user_id, ",".join(sorted(face_ids)), repr(float(threshold))
    )


def disassociate_token(user_id: str, face_ids: list[str], *, collection_id: str) -> str:
    """ClientRequestToken for one DisassociateFaces call (over every request parameter)."""
    return _token("DisassociateFaces", collection_id, user_id, ",".join(sorted(face_ids)))


def delete_user_token(user_id: str, requested_at: str, *, collection_id: str) -> str:
    """ClientRequestToken for the DeleteUser of one erasure request.

    Derived from the request (``requested_at``), so a resumed erasure replays its own DeleteUser
    and learns it succeeded (a plain second DeleteUser is ResourceNotFoundException), while a
    later erasure of the same UserId (a new enrollment erased again) gets a token of its own.
    """
    return _token("DeleteUser", collection_id, user_id, requested_at)


def activation_execution_name(user_id: str, face_ids: list[str]) -> str:
    """Step Functions execution name: "act-" + 60 hex chars over user and sorted face ids."""
    digest = hashlib.sha256((user_id + "\n" + ",".join(sorted(face_ids))).encode("utf-8"))
    return "act-" + digest.hexdigest()[:EXECUTION_NAME_HASH_CHARS]


def _token(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:TOKEN_LENGTH]
