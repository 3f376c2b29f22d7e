"""What the query API reads: the users list, one user's detail and one user's photo outcomes.

Every answer is built from the ledger (what the pipeline decided) plus, where the ledger cannot
know, the source of truth: Rekognition for the faces a user vector holds and its status, S3 for
photos that arrived but have no outcome yet. Each call costs O(that user's items), never O(users):
there is no DescribeUser, and paging ListUsers to find one user is what the design forbids.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from botocore.exceptions import ClientError

from . import keys
from . import rekognition as rk
from .ledger import Ledger, UserStatus
from .settings import Settings

# A status check needs the user the probe face belongs to, which is its best user match; a few
# more are asked for in case a near-identical user ranks first (same as the activation check).
STATUS_PROBE_MAX_USERS = 10
# S3 ListObjectVersions page size (its maximum).
LIST_VERSIONS_PAGE_SIZE = 1000
# A photo S3 has but the ledger has not recorded yet: the index function has not run.
RECEIVED = "RECEIVED"
# An S3 listing reports an unversioned object's version as "null"; the pipeline records None.
_S3_NULL_VERSION = "null"
_TOKEN_FIELDS = ("kind", "pk", "sk", "user_id")


class QueryError(Exception):
    """A query that cannot be answered because of what the caller asked; ``code`` names why."""

    code = "INVALID_REQUEST"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UserNotFound(QueryError):
    """Nothing is known about the user (or, for verify, it has no enrollment to compare with)."""

    code = "USER_NOT_FOUND"


class UserBeingErased(QueryError):
    """The user is being erased: it can no longer be matched."""

    code = "USER_BEING_ERASED"


class InvalidPageToken(QueryError):
    """A ``next_token`` this API did not hand out (or damaged on the way)."""

    code = "INVALID_NEXT_TOKEN"


def encode_page_token(last_key: dict[str, Any]) -> str:
    """The opaque ``next_token`` for a page ending at ``last_key`` (base64url of its JSON)."""
    raw = json.dumps({k: last_key[k] for k in _TOKEN_FIELDS}, sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_page_token(token: str) -> dict[str, Any]:
    """The ledger key a ``next_token`` stands for; InvalidPageToken unless it is one of ours.

    The key is checked field by field (a user item's key, consistent with itself) so that a
    forged token can neither reach DynamoDB as a malformed ExclusiveStartKey (a 500) nor start
    the page inside another item collection.
    """
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8"))
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidPageToken("next_token is not a token this API returned") from None
    if not isinstance(data, dict) or set(data) != set(_TOKEN_FIELDS):
        raise InvalidPageToken("next_token is not a token this API returned")
    user_id = data.get("user_id")
    valid = (
        isinstance(user_id, str)
        and keys.is_valid_user_id(user_id)
        and data.get("kind") == "USER"
        and data.get("pk") == keys.user_pk(user_id)
        and data.get("sk") == keys.USER_SK
    )
    if not valid:
        raise InvalidPageToken("next_token is not a token this API returned")
    return data


@dataclass
class UserQueries:
    """Read-only questions about users and their photos."""

    settings: Settings
    rekognition: Any
    s3: Any
    ledger: Ledger

    def list_users(self, limit: int, next_token: str | None = None) -> dict[str, Any]:
        """``{"users": [...], "next_token": str | None}``: one page in UserId order."""
        start = decode_page_token(next_token) if next_token else None
        items, last = self.ledger.list_users(limit, start)
        return {
            "users": [
                {
                    "user_id": item.get("user_id"),
                    "status": item.get("status"),
                    "face_count": int(item.get("face_count") or 0),
                    "updated_at": item.get("updated_at"),
                }
                for item in items
            ],
            "next_token": encode_page_token(last) if last else None,
        }

    def user_detail(self, user_id: str) -> dict[str, Any]:
        """The user as the ledger and Rekognition see it; UserNotFound if neither knows it.

        A user with photos but no user item (every photo rejected) is known, with status None.
        Faces come from ListFaces(UserId), the faces the user vector is made of right now, each
        completed from the ledger photo that produced it (source key, quality). Rekognition's own
        status comes from SearchUsers(FaceId=<one of its faces>): one call whatever the
        collection size; None when the user has no face in the collection (nothing to ask with).
        """
        user = self.ledger.get_user(user_id)
        photos = self.ledger.user_photos(user_id)
        if user is None and not photos:
            raise UserNotFound(f"user {user_id!r} is not known")
        status = (user or {}).get("status")
        faces: list[dict[str, Any]] = []
        if status != UserStatus.DELETED:  # a tombstone has nothing left in the collection
            faces = rk.list_user_faces(self.rekognition, self.settings.collection_id, user_id)
        by_face = {str(p["face_id"]): p for p in photos if p.get("face_id")}
        detail: dict[str, Any] = {
            "user_id": user_id,
            "status": status,
            "rekognition_status": self._rekognition_status(user_id, faces),
            "face_count": len(faces),
            "max_faces": self.settings.max_faces_per_user,
            "faces": [_face(face, by_face.get(str(face.get("FaceId")))) for face in faces],
            "photo_count": len(photos),
        }
        for name in ("created_at", "updated_at", "activated_at", "activation_seconds", "reason"):
            detail[name] = (user or {}).get(name)
        detail["erasure"] = (user or {}).get("erasure")
        return detail

    def user_photos(self, user_id: str) -> dict[str, Any]:
        """Every photo of the user: its ledger outcome, or RECEIVED for one not recorded yet.

        The ledger has every photo the pipeline saw (rejected and failed ones included); S3
        (ListObjectVersions under ``<prefix><user>/``, so every version) adds the uploads the
        index function has not reached yet. Each photo is its S3 key and version as uploaded.
        """
        items = self.ledger.user_photos(user_id)
        recorded = {str(item.get("photo_id")) for item in items}
        uploaded = self._uploaded_versions(user_id)
        if not items and not uploaded and self.ledger.get_user(user_id) is None:
            raise UserNotFound(f"user {user_id!r} is not known")
        photos = [
            {
                "key": item.get("key"),
                "version_id": item.get("version_id"),
                "photo_id": item.get("photo_id"),
                "status": item.get("status"),
                "reason": item.get("reason"),
                "detail": item.get("detail"),
                "face_id": item.get("face_id"),
                "quality": item.get("quality"),
                "updated_at": item.get("updated_at"),
                "uploaded_at": uploaded.get(str(item.get("photo_id")), {}).get("uploaded_at"),
            }
            for item in items
        ]
        for photo_id, version in uploaded.items():
            if photo_id not in recorded:
                photos.append(
                    {
                        "key": version["key"],
                        "version_id": version["version_id"],
                        "photo_id": photo_id,
                        "status": RECEIVED,
                        "reason": None,
                        "detail": None,
                        "face_id": None,
                        "quality": None,
                        "updated_at": None,
                        "uploaded_at": version["uploaded_at"],
                    }
                )
        photos.sort(key=lambda p: (str(p["key"]), str(p["uploaded_at"] or ""), p["photo_id"]))
        return {"user_id": user_id, "photos": photos}

    # ---- helpers ----------------------------------------------------------------------------

    def _rekognition_status(self, user_id: str, faces: list[dict[str, Any]]) -> str | None:
        if not faces:
            return None
        try:
            response = self.rekognition.search_users(
                CollectionId=self.settings.collection_id,
                FaceId=faces[0]["FaceId"],
                UserMatchThreshold=0,  # an UPDATING user's stale vector must still be found
                MaxUsers=STATUS_PROBE_MAX_USERS,
            )
        except ClientError as error:
            # The face was deleted between ListFaces and SearchUsers (an erasure, a cap
            # eviction): the status is unknown at this instant, the rest of the answer stands.
            if rk.error_code(error) == "InvalidParameterException":
                return None
            raise
        for match in response.get("UserMatches") or []:
            user = match.get("User") or {}
            if user.get("UserId") == user_id:
                return str(user.get("UserStatus")) if user.get("UserStatus") else None
        return None

    def _uploaded_versions(self, user_id: str) -> dict[str, dict[str, Any]]:
        """photo_id -> {key, version_id, uploaded_at} of every object version under the prefix."""
        bucket = self.settings.bucket_name
        prefix = f"{self.settings.enroll_prefix}{user_id}/"
        out: dict[str, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        while True:
            page = self.s3.list_object_versions(MaxKeys=LIST_VERSIONS_PAGE_SIZE, **kwargs)
            # Delete markers are not photos; "folder" markers the console creates are not either.
            for version in page.get("Versions") or []:
                key = str(version["Key"])
                if keys.is_folder_marker(key):
                    continue
                raw_version = version.get("VersionId")
                version_id = None if raw_version in (None, _S3_NULL_VERSION) else str(raw_version)
                modified = version.get("LastModified")
                out[keys.photo_id(bucket, key, version_id)] = {
                    "key": key,
                    "version_id": version_id,
                    "uploaded_at": _iso(modified) if modified is not None else None,
                }
            if not page.get("IsTruncated"):
                return out
            kwargs["KeyMarker"] = page.get("NextKeyMarker")
            kwargs["VersionIdMarker"] = page.get("NextVersionIdMarker")


def _face(face: dict[str, Any], photo: dict[str, Any] | None) -> dict[str, Any]:
    photo = photo or {}
    return {
        "face_id": face.get("FaceId"),
        "photo_id": photo.get("photo_id") or face.get("ExternalImageId"),
        "key": photo.get("key"),
        "version_id": photo.get("version_id"),
        "quality": photo.get("quality"),
        # Recorded by the index stage on the photo item (None for items written before it was).
        "indexed_at": photo.get("indexed_at"),
    }


def _iso(value: Any) -> str:
    """An S3 LastModified (datetime from boto3) as ISO-8601 UTC with milliseconds."""
    if hasattr(value, "astimezone"):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)
