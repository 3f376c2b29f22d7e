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
    # The deployment is wrong, not the photo: a request the pipeline built breaks a documented
    # constraint, the collection is missing, a permission is missing. Every photo fails the
    # same way until an operator fixes it, so it is a failure that reaches the DLQ (which
    # alarms), never a per-photo rejection.
    CONFIGURATION_ERROR = "CONFIGURATION_ERROR"
    # Written by the activation state machine (infra/statemachines/activation.asl.json).
    ACTIVATION_TIMEOUT = "ACTIVATION_TIMEOUT"
    ACTIVATION_ERROR = "ACTIVATION_ERROR"


# IndexFaces' own reasons for leaving a detected face out (UnindexedFaces[].Reasons, botocore's
# ``Reason`` enum): a photo whose every face was filtered out is REJECTED with the first of them.
INDEX_QUALITY_REASONS = frozenset(
    {
        "EXCEEDS_MAX_FACES",
        "EXTREME_POSE",
        "LOW_BRIGHTNESS",
        "LOW_SHARPNESS",
        "LOW_CONFIDENCE",
        "SMALL_BOUNDING_BOX",
        "LOW_FACE_QUALITY",
    }
)

# Which rejections are final, i.e. which keep the photo's content claim (ledger
# ``claim_content``) so that the same bytes uploaded again, under any key, are DUPLICATE_PHOTO
# pointing at the first upload instead of being indexed again.
#
# Final: the bytes themselves are the problem, and under the same index policy (see
# ``index_policy``) IndexFaces gives the same answer for the same bytes every time. A re-upload
# is answered DUPLICATE_PHOTO without calling IndexFaces: no IndexFaces quota spent, no face
# stored and deleted again, and the first photo's ledger item already says why (the detail
# names it). Once the index policy changes (e.g. QUALITY_FILTER lowered, MULTI_FACE_POLICY
# ``largest``), the claim is released and the same bytes are indexed again: the answer may
# differ. INVALID_IMAGE is final because an InvalidParameterException on a request that passed
# our own check of every documented constraint can only be about the image (rekognition.py).
FINAL_REASONS = frozenset(
    {
        Reason.NO_FACE,
        Reason.MULTIPLE_FACES,
        Reason.INVALID_IMAGE_FORMAT,
        Reason.IMAGE_TOO_LARGE,
        Reason.INVALID_IMAGE,
    }
    | INDEX_QUALITY_REASONS
)
# Not final: the cause lies outside the bytes and can go away, so the rejection releases the
# content claim and the same bytes uploaded again are indexed again. The user is under the cap
# again after a deletion (USER_FACE_LIMIT, REPLACED_BY_BETTER_PHOTO), a photo was reviewed
# (LOW_MATCH_CONFIDENCE), the user's erasure finished (USER_BEING_ERASED, USER_DELETED), the
# face or the object went away under the pipeline (FACE_NOT_FOUND, OBJECT_NOT_FOUND,
# ASSOCIATED_TO_A_DIFFERENT_USER: a new upload indexes a new face). INVALID_USER_ID and
# DUPLICATE_PHOTO never hold a claim (the key has no user; the first upload holds it): a
# DUPLICATE_PHOTO's bytes are accepted once the first photo releases them.
RETRYABLE_REASONS = frozenset(
    {
        Reason.INVALID_USER_ID,
        Reason.DUPLICATE_PHOTO,
        Reason.OBJECT_NOT_FOUND,
        Reason.USER_FACE_LIMIT,
        Reason.REPLACED_BY_BETTER_PHOTO,
        Reason.LOW_MATCH_CONFIDENCE,
        Reason.FACE_NOT_FOUND,
        Reason.ASSOCIATED_TO_A_DIFFERENT_USER,
        Reason.USER_DELETED,
        Reason.USER_BEING_ERASED,
    }
)
# FAILED reasons: a FAILED photo always releases its content (a redrive or a re-upload may
# succeed once the cause is fixed).
FAILURE_REASONS = frozenset(
    {
        Reason.THROTTLED,
        Reason.SERVICE_ERROR,
        Reason.UNEXPECTED_ERROR,
        Reason.CONFIGURATION_ERROR,
        Reason.ACTIVATION_TIMEOUT,
        Reason.ACTIVATION_ERROR,
    }
)
# FAILED reasons the activation state machine writes: an activation ran for the photo and gave
# up; the reconciler re-checks these photos' users (reconciler.py, failed activations).
ACTIVATION_FAILURE_REASONS = frozenset({Reason.ACTIVATION_TIMEOUT, Reason.ACTIVATION_ERROR})


def is_final(reason: str | None) -> bool:
    """Whether a REJECTED photo's ``reason`` is final for its bytes (FINAL_REASONS).

    A reason not listed (one added later and not yet classified) is not final: a needless
    IndexFaces call costs less than a photo that can never be enrolled again.
    """
    return reason in FINAL_REASONS


def index_policy(quality_filter: str, max_faces: int, multi_face_policy: str) -> str:
    """The settings a final rejection depends on, as one comparable string.

    Recorded on the content claim: a final rejection keeps the bytes only while this is unchanged.
    """
    return (
        f"QualityFilter={quality_filter};MaxFaces={max_faces};MultiFacePolicy={multi_face_policy}"
    )


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
