"""Enroll and search a labelled folder through the pipeline's own calls, in-process.

Everything runs against moto's S3 and the Rekognition emulator inside ``mock_aws`` (nothing
leaves the process). The calls are the pipeline's, with its settings (``Settings()``
defaults: QualityFilter AUTO, MaxFaces 1, multi-face policy ``reject``, UserMatchThreshold 75):

- every photo is uploaded to a bucket and indexed from there (``rekognition.index_faces``, as
  the index function does), and the pipeline's photo policy (``photo_policy.decide``) says
  whether it is usable; enrollment photos are indexed into the gallery collection, every other
  photo into a scratch collection, only to learn the policy's verdict on it;
- each enrolled identity's accepted faces go to ``CreateUser`` and ``AssociateFaces`` (sorted
  face ids, in calls of at most 100, the association stage's threshold); a face AssociateFaces
  refuses is deleted, as the association stage does;
- each probe is searched with the query API's own ``FaceMatcher.search``
  (SearchUsersByImage, threshold 0, the API's maximum of 500 users) and with
  SearchFacesByImage (threshold 0, up to 4,096 faces), each face match counting for the user
  the face belongs to; both searches use the largest face and no QualityFilter (the API's).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from botocore.exceptions import ClientError

from enroll_local.evaluation.dataset import DatasetError, Photo, Split, user_ids
from enroll_local.evaluation.engine import MemoizedEngine
from enroll_local.evaluation.metrics import ProbeScores
from enroll_local.rekognition.engines import make_engine
from enroll_local.rekognition.engines.base import FaceEngine
from enrollment import keys
from enrollment import rekognition as rk
from enrollment.ledger import Ledger
from enrollment.observability import metrics
from enrollment.photo_policy import decide
from enrollment.probe import VERIFY_MAX_USERS, FaceMatcher, ProbeError, s3_probe
from enrollment.settings import Settings

REGION = "us-east-1"
BUCKET = "face-enrollment-evaluation"
GALLERY = "evaluation-gallery"
SCRATCH = "evaluation-photo-policy"  # probes' policy verdicts; never searched
ENROLL_PREFIX = "enroll/"
PROBE_PREFIX = "probes/"  # outside the enrollment prefix, as the query API advises
DISTRACTOR_PREFIX = "distractors/"
#: SearchFacesByImage's MaxFaces maximum (botocore model): more enrolled faces than this and
#: the lowest face scores would be cut off, so such a gallery is refused.
MAX_SEARCH_FACES = 4096
#: Seconds to wait for the users to become ACTIVE (the emulator publishes at once here).
ACTIVE_WAIT_SECONDS = 10.0

ACCEPTED = "ACCEPTED"
REJECTED = "REJECTED"
# Reasons of the policy that mean "rejected for quality" (IndexFaces' UnindexedFaces reasons).
ENROLLMENT, PROBE, SKIPPED, DISTRACTOR = "enrollment", "probe", "skipped", "distractor"
#: SearchFacesByImage errors that say the probe cannot be searched (as ``probe._probe_error``).
_UNSEARCHABLE = {
    "InvalidParameterException": "NO_FACE_OR_INVALID_IMAGE",
    "InvalidImageFormatException": "UNSUPPORTED_IMAGE_TYPE",
    "ImageTooLargeException": "IMAGE_TOO_LARGE",
    "InvalidS3ObjectException": "OBJECT_NOT_FOUND",
}


@dataclass
class PhotoOutcome:
    """The pipeline's photo policy on one photo, and for enrollment photos the association."""

    photo: str
    identity: str
    role: str  # ENROLLMENT, PROBE, SKIPPED or DISTRACTOR
    status: str  # ACCEPTED or REJECTED
    reason: str | None = None
    detail: str | None = None
    faces_found: int | None = None  # FaceRecords + UnindexedFaces; None: image not readable
    associated: bool | None = None  # enrollment photos: associated to the user vector


@dataclass
class SearchOutcome:
    """One probe searched both ways."""

    photo: str
    identity: str | None  # None for a distractor
    users: ProbeScores
    faces: ProbeScores
    failure: str | None = None  # why nothing was searched (both searches agree)


@dataclass
class EvaluationRun:
    """Everything the report needs, before any figure is computed."""

    engine: str
    enroll: int
    outcomes: list[PhotoOutcome] = field(default_factory=list)
    searches: list[SearchOutcome] = field(default_factory=list)
    enrolled_faces: dict[str, int] = field(default_factory=dict)  # identity -> faces in vector
    skipped: dict[str, int] = field(default_factory=dict)  # identity -> photos (<= K)
    images_detected: int = 0
    seconds: float = 0.0


Progress = Callable[[str], None]


def run_evaluation(
    split: Split,
    distractors: list[Photo],
    *,
    enroll: int,
    engine: str | FaceEngine = "dlib",
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> EvaluationRun:
    """Enroll ``split.enrollment``, search ``split.genuine`` and ``distractors`` (module doc)."""
    from moto import mock_aws

    from enroll_local.rekognition.moto_plugin import local_rekognition
    from enroll_local.testing import aws_test_environment

    faces = sum(len(photos) for photos in split.enrollment.values())
    if len(split.enrollment) > VERIFY_MAX_USERS or faces > MAX_SEARCH_FACES:
        raise DatasetError(
            f"{len(split.enrollment)} identities / {faces} enrollment photos: the searches rank "
            f"at most {VERIFY_MAX_USERS} users and {MAX_SEARCH_FACES} faces, so lower scores "
            "would be missing; evaluate a smaller folder or a smaller --enroll"
        )
    inner = make_engine(engine) if isinstance(engine, str) else engine
    memo = MemoizedEngine(inner)
    run = EvaluationRun(engine=inner.name, enroll=enroll)
    run.skipped = {identity: len(photos) for identity, photos in split.skipped.items()}
    started = time.perf_counter()
    with (
        aws_test_environment(),
        mock_aws(),
        local_rekognition(memo, update_delay_seconds=0.0),
    ):
        _Session(split, distractors, run, settings, progress or (lambda _: None)).run()
    run.images_detected = memo.detections
    run.seconds = time.perf_counter() - started
    return run


class _Session:
    def __init__(
        self,
        split: Split,
        distractors: list[Photo],
        run: EvaluationRun,
        settings: Settings | None,
        progress: Progress,
    ) -> None:
        import boto3

        self.split = split
        self.distractors = distractors
        self.run_ = run
        self.progress = progress
        self.settings = settings or Settings(bucket_name=BUCKET, collection_id=GALLERY)
        if self.settings.collection_id != GALLERY:
            raise ValueError(f"settings.collection_id must be {GALLERY!r}")
        self.rekognition = boto3.client("rekognition", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        # Search never reads the ledger (only verify does).
        self.matcher = FaceMatcher(self.settings, self.rekognition, cast(Ledger, None))
        identities = sorted({*split.enrollment, *(p.identity for p in split.genuine)})
        self.user_id = user_ids(identities)
        self.identity_of = {uid: identity for identity, uid in self.user_id.items()}

    def run(self) -> None:
        self.s3.create_bucket(Bucket=BUCKET)
        for collection in (GALLERY, SCRATCH):
            self.rekognition.create_collection(CollectionId=collection)
        for identity, photos in self.split.enrollment.items():
            self._enroll(identity, photos)
        self._wait_active()
        for photo in self.split.genuine:
            key = self._upload(photo, PROBE_PREFIX)
            self.run_.outcomes.append(self._assess(photo, key, PROBE, SCRATCH)[0])
            self.run_.searches.append(self._search(photo.label, photo.identity, key))
        for photos in self.split.skipped.values():
            for photo in photos:
                key = self._upload(photo, PROBE_PREFIX)
                self.run_.outcomes.append(self._assess(photo, key, SKIPPED, SCRATCH)[0])
        for photo in self.distractors:
            key = self._upload(photo, DISTRACTOR_PREFIX)
            self.run_.outcomes.append(self._assess(photo, key, DISTRACTOR, SCRATCH)[0])
            self.run_.searches.append(self._search(photo.label, None, key))
        metrics.clear_metrics()  # the searches count ImageSearches; nothing publishes them here

    # ---- enrollment ----------------------------------------------------------------------

    def _enroll(self, identity: str, photos: list[Photo]) -> None:
        user_id = self.user_id[identity]
        accepted: dict[str, PhotoOutcome] = {}
        for photo in photos:
            key = self._upload(photo, f"{ENROLL_PREFIX}{user_id}/")
            outcome, face_id = self._assess(photo, key, ENROLLMENT, GALLERY)
            self.run_.outcomes.append(outcome)
            if face_id is not None:
                accepted[face_id] = outcome
        self.progress(f"enrolling {identity}: {len(accepted)} of {len(photos)} photos usable")
        if not accepted:
            return  # no user vector: this identity's probes can only be misses
        settings = self.settings
        rk.create_user(
            self.rekognition, GALLERY, user_id, keys.create_user_token(user_id, "evaluation")
        )
        ordered = sorted(accepted)
        refused: dict[str, dict[str, Any]] = {}
        size = settings.associate_max_face_ids
        for start in range(0, len(ordered), size):
            chunk = ordered[start : start + size]
            response = rk.associate_faces(
                self.rekognition,
                GALLERY,
                user_id,
                chunk,
                threshold=settings.user_match_threshold,
                token=keys.associate_token(
                    user_id,
                    chunk,
                    collection_id=GALLERY,
                    threshold=settings.user_match_threshold,
                ),
            )
            for failure in response.get("UnsuccessfulFaceAssociations") or []:
                refused[failure["FaceId"]] = failure
        for face_id, outcome in accepted.items():
            failure = refused.get(face_id)
            outcome.associated = failure is None
            if failure is not None:
                outcome.status = REJECTED
                outcome.reason = next(iter(failure.get("Reasons") or []), "NOT_ASSOCIATED")
                outcome.detail = (
                    f"AssociateFaces refused it (confidence {failure.get('Confidence')})"
                )
        if refused:
            rk.delete_faces(self.rekognition, GALLERY, sorted(refused))
        associated = len(accepted) - len(refused)
        if associated:
            self.run_.enrolled_faces[identity] = associated

    def _wait_active(self) -> None:
        deadline = time.monotonic() + ACTIVE_WAIT_SECONDS
        while True:
            users = self._list_users()
            if all(status == "ACTIVE" for status in users.values()):
                return
            if time.monotonic() > deadline:
                pending = sorted(uid for uid, status in users.items() if status != "ACTIVE")
                raise RuntimeError(f"users never became ACTIVE: {', '.join(pending)}")
            time.sleep(0.05)

    def _list_users(self) -> dict[str, str]:
        out: dict[str, str] = {}
        kwargs: dict[str, Any] = {"CollectionId": GALLERY}
        while True:
            page = self.rekognition.list_users(**kwargs)
            out.update({u["UserId"]: u.get("UserStatus", "") for u in page.get("Users") or []})
            if not page.get("NextToken"):
                return out
            kwargs["NextToken"] = page["NextToken"]

    # ---- the photo policy ----------------------------------------------------------------

    def _upload(self, photo: Photo, prefix: str) -> str:
        key = f"{prefix}{photo.identity}/{photo.path.name}"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=photo.path.read_bytes())
        return key

    def _assess(
        self, photo: Photo, key: str, role: str, collection: str
    ) -> tuple[PhotoOutcome, str | None]:
        """IndexFaces as the index stage calls it, then the photo policy; (outcome, face id)."""
        settings = self.settings
        outcome = PhotoOutcome(photo.label, photo.identity, role, ACCEPTED)
        try:
            response = rk.index_faces(
                self.rekognition,
                collection,
                rk.S3Photo(BUCKET, key, None),
                keys.photo_id(BUCKET, key, None),
                max_faces=settings.index_max_faces,
                quality_filter=settings.quality_filter,
            )
        except ClientError as error:
            reason = rk.TERMINAL_INDEX_ERRORS.get(rk.error_code(error))
            if reason is None:
                raise
            outcome.status, outcome.reason = REJECTED, reason
            outcome.detail = str(error.response.get("Error", {}).get("Message") or reason)
            return outcome, None
        outcome.faces_found = len(response.get("FaceRecords") or []) + len(
            response.get("UnindexedFaces") or []
        )
        decision = decide(response, settings.multi_face_policy)
        if decision.faces_to_delete:
            rk.delete_faces(self.rekognition, collection, decision.faces_to_delete)
        if decision.accepted is None:
            outcome.status, outcome.reason, outcome.detail = (
                REJECTED,
                decision.reason,
                decision.detail,
            )
            return outcome, None
        return outcome, decision.accepted.face_id

    # ---- searches ------------------------------------------------------------------------

    def _search(self, label: str, identity: str | None, key: str) -> SearchOutcome:
        failure: str | None = None
        user_scores: dict[str, float] | None = None
        try:
            result = self.matcher.search(
                s3_probe(BUCKET, key), threshold=0.0, max_users=VERIFY_MAX_USERS
            )
            user_scores = {
                self.identity_of.get(m["user_id"], m["user_id"]): float(m["similarity"])
                for m in result.matches
            }
        except ProbeError as error:
            failure = f"{error.code}: {error}"
        face_scores: dict[str, float] | None = None
        try:
            response = self.rekognition.search_faces_by_image(
                CollectionId=GALLERY,
                Image={"S3Object": {"Bucket": BUCKET, "Name": key}},
                FaceMatchThreshold=0.0,
                MaxFaces=MAX_SEARCH_FACES,
            )
            face_scores = {}
            for match in response.get("FaceMatches") or []:
                owner = (match.get("Face") or {}).get("UserId")
                if owner is None:
                    continue  # not part of any user (cannot happen: refused faces are deleted)
                who = self.identity_of.get(owner, owner)
                # Rounded as FaceMatcher rounds user similarities, so both compare alike.
                score = round(float(match.get("Similarity") or 0.0), 3)
                face_scores[who] = max(score, face_scores.get(who, score))
        except ClientError as error:
            code = rk.error_code(error)
            if code not in _UNSEARCHABLE:
                raise
            failure = failure or f"{_UNSEARCHABLE[code]}: {rk.describe_error(error)}"
        metrics.clear_metrics()
        return SearchOutcome(
            photo=label,
            identity=identity,
            users=ProbeScores(label, identity, user_scores),
            faces=ProbeScores(label, identity, face_scores),
            failure=failure,
        )
