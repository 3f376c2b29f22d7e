"""What to do with a photo given IndexFaces' answer: accept one face or reject with a reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Reason:
    """Rejection and failure reasons recorded in the ledger (photo item ``reason``)."""

    INVALID_USER_ID = "INVALID_USER_ID"
    DUPLICATE_PHOTO = "DUPLICATE_PHOTO"
    NO_FACE = "NO_FACE"
    MULTIPLE_FACES = "MULTIPLE_FACES"
    INVALID_IMAGE_FORMAT = "INVALID_IMAGE_FORMAT"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    INVALID_IMAGE = "INVALID_IMAGE"
    OBJECT_NOT_FOUND = "OBJECT_NOT_FOUND"
    USER_FACE_LIMIT = "USER_FACE_LIMIT"
    REPLACED_BY_BETTER_PHOTO = "REPLACED_BY_BETTER_PHOTO"
    LOW_MATCH_CONFIDENCE = "LOW_MATCH_CONFIDENCE"
    FACE_NOT_FOUND = "FACE_NOT_FOUND"
    ASSOCIATED_TO_A_DIFFERENT_USER = "ASSOCIATED_TO_A_DIFFERENT_USER"
    USER_DELETED = "USER_DELETED"
    # The user is being erased (right to be forgotten): nothing is enrolled until it finished.
    USER_BEING_ERASED = "USER_BEING_ERASED"
    # FAILED reasons (retries exhausted on a transient error).
    THROTTLED = "THROTTLED"
    SERVICE_ERROR = "SERVICE_ERROR"
    UNEXPECTED_ERROR = "UNEXPECTED_ERROR"


# A photo whose every face was filtered out (typically all too small) may still be a group photo:
# "several people" is what its owner can act on, where SMALL_BOUNDING_BOX is not. Faces make a
# group when the second largest covers at least this fraction of the largest one's area, so a
# tiny face in the background of a dark portrait does not hide the real reason (LOW_BRIGHTNESS).
COMPARABLE_FACE_AREA_RATIO = 0.25


@dataclass(frozen=True)
class AcceptedFace:
    face_id: str
    quality: float  # 0..100


@dataclass(frozen=True)
class PhotoDecision:
    """Outcome of one IndexFaces response under the multi-face policy."""

    accepted: AcceptedFace | None
    # Faces IndexFaces stored that must not stay in the collection (would become orphans).
    faces_to_delete: list[str] = field(default_factory=list)
    reason: str | None = None  # set when the photo is rejected
    detail: str | None = None


def face_quality(face_detail: dict[str, Any]) -> float:
    """A 0..100 usability score of a face: the weaker of its brightness and sharpness.

    A face is only as usable as its worst attribute (a sharp but black face is useless), and
    keep-best compares faces by this number. Rekognition documents both as 0..100 but its own
    examples show a sharpness of 160, hence the clamp.
    """
    quality = face_detail.get("Quality") or {}
    brightness = _clamp(float(quality.get("Brightness", 0.0)))
    sharpness = _clamp(float(quality.get("Sharpness", 0.0)))
    return round(min(brightness, sharpness), 3)


def decide(index_response: dict[str, Any], multi_face_policy: str) -> PhotoDecision:
    """Apply the photo policy to an IndexFaces response.

    Usable faces are the indexed ones plus those left out only because of MaxFaces
    (UnindexedFaces with EXCEEDS_MAX_FACES): indexing with MaxFaces=1 is enough to tell a group
    photo apart without storing faces that would have to be deleted again.
    Exactly one usable face -> accepted. Several -> rejected MULTIPLE_FACES with every indexed
    face to be deleted, or, with policy ``largest``, the largest kept (IndexFaces keeps the
    largest when MaxFaces cuts) and the others deleted. None -> NO_FACE; MULTIPLE_FACES when
    several faces of similar size were all filtered out (a crowd of small faces); otherwise the
    UnindexedFaces reasons (e.g. LOW_SHARPNESS), so the user learns why.
    """
    records = index_response.get("FaceRecords") or []
    unindexed = index_response.get("UnindexedFaces") or []
    if not records:
        return _no_face(unindexed)
    # Sort defensively by area: the API promises largest first, a fake may not.
    records = sorted(records, key=_area, reverse=True)
    face_ids = [r["Face"]["FaceId"] for r in records]
    usable = len(records) + sum(
        1 for face in unindexed if "EXCEEDS_MAX_FACES" in (face.get("Reasons") or [])
    )
    if usable == 1 or multi_face_policy == "largest":
        best = records[0]
        return PhotoDecision(
            accepted=AcceptedFace(
                face_id=best["Face"]["FaceId"], quality=face_quality(best.get("FaceDetail") or {})
            ),
            faces_to_delete=face_ids[1:],
        )
    return PhotoDecision(
        accepted=None,
        faces_to_delete=face_ids,
        reason=Reason.MULTIPLE_FACES,
        detail=f"{usable} faces found; a photo must show exactly one person",
    )


def _no_face(unindexed: list[dict[str, Any]]) -> PhotoDecision:
    areas = sorted((_box_area(face.get("FaceDetail") or {}) for face in unindexed), reverse=True)
    if len(areas) >= 2 and areas[1] > 0 and areas[1] >= COMPARABLE_FACE_AREA_RATIO * areas[0]:
        comparable = sum(1 for area in areas if area >= COMPARABLE_FACE_AREA_RATIO * areas[0])
        return PhotoDecision(
            accepted=None,
            reason=Reason.MULTIPLE_FACES,
            detail=(
                f"{comparable} faces of similar size found (none usable: "
                f"{', '.join(_distinct_reasons(unindexed))}); a photo must show exactly one person"
            ),
        )
    reasons = _distinct_reasons(unindexed)
    if not reasons:
        return PhotoDecision(accepted=None, reason=Reason.NO_FACE, detail="no face detected")
    # The first reason of the largest unindexed face names the problem; the detail keeps all.
    return PhotoDecision(
        accepted=None,
        reason=reasons[0],
        detail=f"{len(unindexed)} face(s) filtered out: {', '.join(reasons)}",
    )


def _distinct_reasons(unindexed: list[dict[str, Any]]) -> list[str]:
    reasons: list[str] = []
    for face in unindexed:
        for reason in face.get("Reasons") or []:
            if reason not in reasons:
                reasons.append(reason)
    return reasons


def _area(record: dict[str, Any]) -> float:
    return _box_area(record.get("Face") or {})


def _box_area(holder: dict[str, Any]) -> float:
    box = holder.get("BoundingBox") or {}
    return float(box.get("Width", 0.0)) * float(box.get("Height", 0.0))


def _clamp(value: float) -> float:
    return max(0.0, min(100.0, value))
