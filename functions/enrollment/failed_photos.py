"""FAILED photos named again by an association message: resumed, or sent back to indexing.

A message for a FAILED photo (redriven from the association DLQ once the cause is fixed, or
any later copy) is not skipped: the photo gets another way to a real outcome. Where its face is
now decides (ListFaces), not the FAILED reason:

- held by this user, and the face the ledger records for the photo: the face was associated
  (FAILED "face associated, activation not started", an INDEXED photo whose AssociateFaces did
  succeed, or the reconciler's DLQ verdict on an ASSOCIATED photo), so it is not indexed
  again. The photo goes back to ASSOCIATED (``PhotosResumed``) and the associate stage starts
  its activation, which settles it ACTIVE (or FAILED ACTIVATION_*), as the reconciler does for
  a stuck ASSOCIATED photo. Except when the reason is ACTIVATION_TIMEOUT or ACTIVATION_ERROR:
  an activation did run for it, and the reconciler re-checks exactly those (ACTIVE once
  SearchUsers shows the user ACTIVE), so the message leaves the photo to it;
- anything else (face gone, held by nobody, held by another user, or not recorded): the photo
  is sent back through the index stage. An unowned face is deleted first (no orphan;
  DeleteFaces is idempotent), then an S3 ObjectCreated notification for the photo's object
  (bucket, key, version, ETag and upload time from the ledger) goes to the upload queue
  (``PhotosRequeued``). The index stage replaces a FAILED photo: it claims the content again,
  indexes it (IndexFaces dedups by ExternalImageId), records INDEXED and sends a fresh
  association message, so the photo ends ACTIVE or REJECTED the normal way. Two copies of the
  message send two notifications; the index stage's conditional writes make the second a
  replay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import keys
from . import rekognition as rk
from .ledger import Ledger, PhotoStatus
from .messages import AssociationMessage, s3_notification
from .observability import count, logger
from .photo_policy import ACTIVATION_FAILURE_REASONS
from .settings import Settings


@dataclass
class RetryOutcome:
    """What became of the FAILED photos of one user's messages."""

    #: Back to ASSOCIATED: the caller starts their activation.
    resumed: list[AssociationMessage] = field(default_factory=list)
    #: Photo ids sent back to the index stage.
    requeued: list[str] = field(default_factory=list)
    #: Photo ids left as they are (the reconciler's, or moved meanwhile).
    skipped: list[str] = field(default_factory=list)


@dataclass
class FailedPhotos:
    """The associate stage's collaborators this rule needs."""

    settings: Settings
    rekognition: Any
    ledger: Ledger
    sqs: Any  # sends FAILED photos back to the upload queue (settings.upload_queue_url)

    def retry(
        self,
        user_id: str,
        failed: list[tuple[AssociationMessage, dict[str, Any]]],
        delete_faces: Callable[[list[str]], None],
    ) -> RetryOutcome:
        """Give FAILED photos (message, ledger photo) another way to an outcome.

        ``delete_faces`` removes the faces nobody holds before their photos are indexed again.
        """
        outcome = RetryOutcome()
        stored = rk.faces_by_id(
            self.rekognition, self.settings.collection_id, [m.face_id for m, _ in failed]
        )
        requeue: list[tuple[AssociationMessage, dict[str, Any]]] = []
        unowned: list[str] = []
        for message, photo in failed:
            face = stored.get(message.face_id)
            owner = (face or {}).get("UserId")
            if owner != user_id or photo.get("face_id") != message.face_id:
                # Not this user's face (or one the ledger does not record: the index stage,
                # given the photo again, finds out which face it has).
                if face is not None and not owner:
                    unowned.append(message.face_id)
                requeue.append((message, photo))
            elif photo.get("reason") in ACTIVATION_FAILURE_REASONS:
                # An activation ran for it and failed: the reconciler re-checks the user.
                outcome.skipped.append(message.photo_id)
            elif self.ledger.transition_photo(
                user_id,
                message.photo_id,
                PhotoStatus.ASSOCIATED,
                from_statuses={PhotoStatus.FAILED},
                face_id=message.face_id,
            ):
                outcome.resumed.append(message)
            else:
                # Moved meanwhile (a concurrent copy of this message resumed it first).
                outcome.skipped.append(message.photo_id)
        if outcome.resumed:
            count("PhotosResumed", len(outcome.resumed))
            logger.info(
                "failed photos whose face the user holds resumed: their activation starts",
                extra={"photo_ids": [m.photo_id for m in outcome.resumed]},
            )
        if unowned:
            # Before the photo is indexed again: its new face must not meet an orphan.
            delete_faces(unowned)
        for message, photo in requeue:
            if self.requeue(message, photo):
                outcome.requeued.append(message.photo_id)
            else:
                outcome.skipped.append(message.photo_id)
        return outcome

    def requeue(self, message: AssociationMessage, photo: dict[str, Any]) -> bool:
        """Send the FAILED photo's object to the index stage as S3 would announce it."""
        bucket = str(photo.get("bucket") or message.bucket)
        key = str(photo.get("key") or message.key)
        version_id = photo.get("version_id") or None
        if keys.photo_id(bucket, key, version_id) != message.photo_id:
            # The index stage would record another photo: nothing to send back.
            logger.error(
                "failed photo cannot be sent back to indexing: its ledger item does not name "
                "its object",
                extra={"photo_id": message.photo_id, "object_key": key},
            )
            return False
        body = s3_notification(
            bucket,
            key,
            version_id=version_id,
            etag=photo.get("etag") or None,
            size=photo.get("size") if isinstance(photo.get("size"), int) else None,
            event_time=photo.get("uploaded_at") or None,
        )
        self.sqs.send_message(QueueUrl=self.settings.upload_queue_url, MessageBody=body)
        count("PhotosRequeued")
        logger.info(
            "failed photo sent back to the index stage",
            extra={
                "photo_id": message.photo_id,
                "object_key": key,
                "reason": photo.get("reason"),
            },
        )
        return True
