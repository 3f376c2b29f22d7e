"""Probe images: who is in this photo (1:N search), and is this photo that user (1:1 verify).

A probe is an image given inline (base64) or as a key in the pipeline's bucket. What can be
checked without Rekognition is checked here first (base64, size, JPEG/PNG magic bytes), so a
wrong input costs no billed call and gets a precise answer; what only Rekognition can tell (a
decodable image, a face in it) comes back from SearchUsersByImage and is translated into the
same domain errors.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from . import rekognition as rk
from .ledger import Ledger, UserStatus
from .observability import count
from .queries import QueryError, UserBeingErased, UserNotFound
from .settings import REKOGNITION_MAX_USERS_PER_SEARCH, Settings

# Image.Bytes limit: 5 MB of raw bytes once decoded (botocore model ImageBlob max).
MAX_IMAGE_BYTES = 5_242_880
# Base64 longer than this cannot decode to MAX_IMAGE_BYTES or less (4 chars per 3 bytes, plus
# padding): refused before decoding so a huge body costs no memory.
MAX_IMAGE_BASE64_CHARS = 4 * ((MAX_IMAGE_BYTES + 2) // 3)
# An image given as an S3 object may be up to 15 MB (Rekognition limits page).
MAX_S3_IMAGE_MEGABYTES = 15
# S3 object keys are 1..1024 bytes of UTF-8 (also Rekognition's S3ObjectName length).
MAX_S3_KEY_BYTES = 1024
# Verify searches with threshold 0 and the most users SearchUsersByImage returns.
VERIFY_MAX_USERS = REKOGNITION_MAX_USERS_PER_SEARCH

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Whitespace is tolerated (line-wrapped base64 from `base64` CLIs); anything else is not.
_WHITESPACE = re.compile(r"\s+")


class ProbeError(QueryError):
    """The probe image cannot be searched."""


class InvalidImage(ProbeError):
    """Not decodable base64, empty, or an image Rekognition refuses (e.g. below 80x80 px)."""

    code = "INVALID_IMAGE"


class ImageTooLarge(ProbeError):
    """Over Rekognition's size limit (5 MB inline, 15 MB as an S3 object)."""

    code = "IMAGE_TOO_LARGE"


class UnsupportedImageType(ProbeError):
    """Neither JPEG nor PNG."""

    code = "UNSUPPORTED_IMAGE_TYPE"


class InvalidS3Key(ProbeError):
    """An ``s3_key`` that cannot name an object."""

    code = "INVALID_S3_KEY"


class ProbeObjectNotFound(ProbeError):
    """No readable object at the given ``s3_key`` (and version)."""

    code = "OBJECT_NOT_FOUND"


class NoFace(ProbeError):
    """No searchable face in the probe image."""

    code = "NO_FACE"


@dataclass(frozen=True)
class Probe:
    """A checked probe image, as the ``Image`` parameter of a Rekognition call."""

    image: dict[str, Any]


def image_probe(data: str) -> Probe:
    """A probe from base64 image bytes: at most 5 MB decoded, JPEG or PNG by magic bytes."""
    compact = _WHITESPACE.sub("", data)
    if not compact:
        raise InvalidImage("image is empty: give the JPEG or PNG bytes in base64")
    if len(compact) > MAX_IMAGE_BASE64_CHARS:
        raise ImageTooLarge(_too_large_inline())
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("image is not valid base64 (standard alphabet, with padding)") from None
    if not raw:
        raise InvalidImage("image is empty: give the JPEG or PNG bytes in base64")
    if len(raw) > MAX_IMAGE_BYTES:
        raise ImageTooLarge(_too_large_inline())
    if not (raw.startswith(_JPEG_MAGIC) or raw.startswith(_PNG_MAGIC)):
        raise UnsupportedImageType("image is neither JPEG nor PNG (judged by its first bytes)")
    return Probe(image={"Bytes": raw})


def s3_probe(bucket: str, key: str, version_id: str | None = None) -> Probe:
    """A probe naming an object in the pipeline's bucket (any prefix: see ``FaceMatcher``).

    The bucket is never the caller's choice: the API reads only the pipeline's own bucket, so
    it cannot be used to make Rekognition read any other bucket the function could reach.
    """
    if not key or len(key.encode("utf-8")) > MAX_S3_KEY_BYTES:
        raise InvalidS3Key(f"s3_key must be 1..{MAX_S3_KEY_BYTES} bytes of UTF-8")
    s3_object: dict[str, str] = {"Bucket": bucket, "Name": key}
    if version_id:
        s3_object["Version"] = version_id
    return Probe(image={"S3Object": s3_object})


@dataclass(frozen=True)
class SearchedFace:
    """The face Rekognition searched with: the largest in the image."""

    bounding_box: dict[str, float]  # width, height, left, top: ratios of the image size
    confidence: float | None


@dataclass(frozen=True)
class SearchResult:
    """What a search found: the matches, the face searched, the faces seen."""

    matches: list[dict[str, Any]]  # [{user_id, similarity, user_status}], best first
    searched_face: SearchedFace
    faces_in_image: int


@dataclass
class FaceMatcher:
    """Search users by image (1:N) and verify a claimed identity (1:1).

    An ``s3_key`` probe may name any object of the pipeline's bucket, not only the enrollment
    prefix: everything uploaded under the prefix is enrolled, so a photo meant only to be looked
    up must live elsewhere (e.g. ``probes/``), and the bucket itself is the boundary that matters
    (the function can read no other).
    """

    settings: Settings
    rekognition: Any
    ledger: Ledger

    def search(self, probe: Probe, *, threshold: float, max_users: int) -> SearchResult:
        """SearchUsersByImage: users whose vector matches the largest face, best first.

        No match is an empty list. No searchable face is NoFace: SearchUsersByImage itself does
        not fail then, it answers with no SearchedFace (and the faces it skipped, if any).
        """
        try:
            response = self.rekognition.search_users_by_image(
                CollectionId=self.settings.collection_id,
                Image=probe.image,
                UserMatchThreshold=threshold,
                MaxUsers=max_users,
            )
        except ClientError as error:
            raise _probe_error(error) or error from None
        unsearched = response.get("UnsearchedFaces") or []
        detail = (response.get("SearchedFace") or {}).get("FaceDetail")
        if detail is None:
            raise NoFace(_no_face_message(unsearched))
        box = detail.get("BoundingBox") or {}
        matches = [
            {
                "user_id": (m.get("User") or {}).get("UserId"),
                "similarity": round(float(m.get("Similarity") or 0.0), 3),
                "user_status": (m.get("User") or {}).get("UserStatus"),
            }
            for m in response.get("UserMatches") or []
        ]
        count("ImageSearches")  # search and verify alike: one billed image each
        return SearchResult(
            matches=matches,
            searched_face=SearchedFace(
                bounding_box={
                    "width": float(box.get("Width", 0.0)),
                    "height": float(box.get("Height", 0.0)),
                    "left": float(box.get("Left", 0.0)),
                    "top": float(box.get("Top", 0.0)),
                },
                confidence=_float_or_none(detail.get("Confidence")),
            ),
            faces_in_image=1 + len(unsearched),
        )

    def verify(self, user_id: str, probe: Probe, *, threshold: float) -> dict[str, Any]:
        """1:1: the similarity of the probe's largest face to ``user_id``'s vector, and a decision.

        Rekognition has no "compare a face with one user" call (CompareFaces takes two images,
        SearchUsers(UserId) compares users with users). So this is SearchUsersByImage with
        UserMatchThreshold 0 and MaxUsers 500, the API's maximum, and the claimed user is looked
        up among the results: at threshold 0 every user with a vector is ranked, and a user
        ranked below 500 others cannot plausibly clear any useful threshold (it would take 500
        users that all look like the probe). If the user is not among them (no vector yet, or
        far down the ranking) the similarity is None and the decision is no match.
        UserNotFound when the ledger has no live user item (never enrolled, or erased: there is
        no vector to compare with), UserBeingErased while an erasure runs.
        """
        user = self.ledger.get_user(user_id)
        status = (user or {}).get("status")
        if user is None or status == UserStatus.DELETED:
            raise UserNotFound(f"user {user_id!r} has no enrollment to verify against")
        if status == UserStatus.ERASING:
            raise UserBeingErased(f"user {user_id!r} is being erased")
        result = self.search(probe, threshold=0.0, max_users=VERIFY_MAX_USERS)
        similarity = next(
            (m["similarity"] for m in result.matches if m["user_id"] == user_id), None
        )
        match = similarity is not None and similarity >= threshold
        count("UserVerifications")
        if match:
            count("UserVerificationMatches")
        return {
            "user_id": user_id,
            "similarity": similarity,
            "threshold": threshold,
            "match": match,
            "searched_face": result.searched_face,
            "faces_in_image": result.faces_in_image,
        }


def _probe_error(error: ClientError) -> ProbeError | None:
    """The domain error a SearchUsersByImage error means, or None (throttling, server...)."""
    code = rk.error_code(error)
    message = str(error.response.get("Error", {}).get("Message") or "").strip()
    if code == "InvalidImageFormatException":
        return UnsupportedImageType("the image is not a JPEG or PNG Rekognition can decode")
    if code == "ImageTooLargeException":
        return ImageTooLarge(
            f"the image is over Rekognition's limit ({MAX_IMAGE_BYTES} bytes inline, "
            f"{MAX_S3_IMAGE_MEGABYTES} MB as an S3 object)"
        )
    if code == "InvalidS3ObjectException":
        return ProbeObjectNotFound("no readable object at s3_key (and s3_version_id) in the bucket")
    if code == "InvalidParameterException":
        return InvalidImage(f"Rekognition refused the image: {message or 'invalid parameter'}")
    return None


def _no_face_message(unsearched: list[dict[str, Any]]) -> str:
    if not unsearched:
        return "no face was found in the image"
    reasons = sorted({r for face in unsearched for r in face.get("Reasons") or []})
    return f"{len(unsearched)} face(s) found but none could be searched" + (
        f" ({', '.join(reasons)})" if reasons else ""
    )


def _too_large_inline() -> str:
    return f"image is over {MAX_IMAGE_BYTES} bytes once decoded (Rekognition's limit)"


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)
