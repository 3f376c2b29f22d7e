"""Index stage: one S3 notification -> IndexFaces per photo -> ledger outcome + association message.

Order of effects per photo, chosen so that a crash or a redelivery at any point replays safely:
content claim -> IndexFaces (deduplicated by ExternalImageId) -> delete surplus faces -> ledger
(conditional) -> association message (the associate stage is idempotent, so a second copy is
harmless).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import keys
from . import rekognition as rk
from .ledger import Ledger, PhotoRef, PhotoStatus, UserStatus, utc_now_iso
from .messages import AssociationMessage, UploadedObject, parse_s3_notification
from .observability import count, count_by_reason, logger
from .photo_policy import Reason, decide, index_policy
from .settings import Settings


@dataclass(frozen=True)
class IndexOutcome:
    """What happened to one object of a notification (for logs, metrics and tests)."""

    key: str
    photo_id: str | None
    status: str  # a PhotoStatus, or "IGNORED"
    reason: str | None = None
    face_id: str | None = None
    replayed: bool = False


IGNORED = "IGNORED"


class IndexRetryableError(Exception):
    """At least one photo of the notification hit a transient error; the record must fail."""


@dataclass
class IndexStage:
    """The index stage's collaborators; clients are boto3 clients (or moto/fakes)."""

    settings: Settings
    rekognition: Any
    ledger: Ledger
    sqs: Any

    def handle_notification(self, body: str, *, receive_count: int = 1) -> list[IndexOutcome]:
        """Process one SQS message body holding an S3 notification.

        Every object is attempted even if one fails; transient failures and configuration
        errors are raised together at the end (IndexRetryableError) so SQS redelivers the
        message, and on the last allowed delivery they are first recorded as FAILED so nothing
        disappears into the DLQ unseen. A configuration error is never a rejection: the message
        reaches the DLQ, which alarms, and a redrive after the fix indexes the photo.
        """
        count("NotificationsReceived")
        objects = parse_s3_notification(body)
        if not objects:
            count("NotificationsIgnored")
            logger.info("notification without ObjectCreated records ignored (e.g. s3:TestEvent)")
            return []
        outcomes: list[IndexOutcome] = []
        errors: list[tuple[UploadedObject, BaseException]] = []
        for obj in objects:
            try:
                outcomes.append(self.index_object(obj))
            except rk.ConfigurationError as error:
                logger.error(
                    "configuration error: no photo can be indexed until it is fixed; the message "
                    "will be retried and then moved to the DLQ",
                    extra={"object_key": obj.key, "error": str(error)},
                )
                errors.append((obj, error))
            except (ClientError, BotoCoreError) as error:
                logger.warning(
                    "transient error, message will be retried",
                    extra={"object_key": obj.key, "error": rk.describe_error(error)},
                )
                errors.append((obj, error))
            except Exception as error:
                # A bug or an unforeseen answer: retried like a transient error, so that on the
                # last delivery the photo is still recorded FAILED instead of vanishing.
                logger.exception("unexpected error indexing photo", extra={"object_key": obj.key})
                errors.append((obj, error))
        if errors:
            if receive_count >= self.settings.max_receive_count:
                for failed_obj, failure in errors:
                    outcomes.append(self._record_failure(failed_obj, failure, receive_count))
            raise IndexRetryableError(
                "; ".join(f"{o.key}: {rk.describe_error(e)}" for o, e in errors)
            ) from errors[0][1]
        return outcomes

    def index_object(self, obj: UploadedObject) -> IndexOutcome:
        """Take one uploaded object to its index outcome (idempotent)."""
        settings = self.settings
        enroll = keys.parse_enroll_key(obj.key, settings.enroll_prefix)
        if enroll is None or keys.is_folder_marker(obj.key):
            count("ObjectsIgnored")
            logger.info("object outside the enrollment prefix ignored", extra={"key": obj.key})
            return IndexOutcome(key=obj.key, photo_id=None, status=IGNORED)

        photo = _photo_ref(obj, enroll.user_id)
        logger.append_keys(object_key=obj.key, user_id=enroll.user_id, photo_id=photo.photo_id)
        try:
            return self._index(photo)
        finally:
            logger.remove_keys(["object_key", "user_id", "photo_id", "face_id"])

    # ---- steps ----------------------------------------------------------------------------

    def _index(self, photo: PhotoRef) -> IndexOutcome:
        if photo.user_id is None:
            return self._reject(
                photo,
                Reason.INVALID_USER_ID,
                "key must look like <prefix><UserId>/<file> with UserId of 1-128 characters "
                "from [a-zA-Z0-9_.-:]",
            )

        replaceable = {PhotoStatus.FAILED}
        existing = self.ledger.get_photo(photo.user_id, photo.photo_id)
        if existing is not None:
            status = existing.get("status")
            if status == PhotoStatus.DELETED and existing.get("etag") != photo.etag:
                replaceable.add(PhotoStatus.DELETED)  # new content uploaded after a deletion
            elif status != PhotoStatus.FAILED:
                return self._replay(photo, existing)

        user = self.ledger.get_user(photo.user_id)
        if user is not None and user.get("status") == UserStatus.ERASING:
            # Before the content claim and IndexFaces: nothing of the photo is stored.
            return self._reject(
                photo,
                Reason.USER_BEING_ERASED,
                f"user {photo.user_id} is being erased (requested "
                f"{(user.get('erasure') or {}).get('requested_at', '?')}); upload the photo "
                "again once the erasure has completed",
                replaceable=replaceable,
            )

        if photo.etag:
            # A final rejection of the same bytes under the same index policy keeps its claim:
            # the answer would be the same (photo_policy.FINAL_REASONS).
            first_key = self.ledger.claim_content(
                photo.user_id,
                photo.etag,
                photo.photo_id,
                photo.key,
                index_policy=self._index_policy(),
            )
            if first_key is not None:
                return self._reject(
                    photo,
                    Reason.DUPLICATE_PHOTO,
                    f"same content as {first_key}",
                    replaceable=replaceable,
                )

        try:
            response = rk.index_faces(
                self.rekognition,
                self.settings.collection_id,
                rk.S3Photo(photo.bucket, photo.key, photo.version_id),
                photo.photo_id,
                max_faces=self.settings.index_max_faces,
                quality_filter=self.settings.quality_filter,
            )
        except ClientError as error:
            code = rk.error_code(error)
            if code in rk.INDEX_CONFIGURATION_ERRORS:
                raise rk.ConfigurationError(f"IndexFaces: {rk.describe_error(error)}") from error
            reason = rk.TERMINAL_INDEX_ERRORS.get(code)
            if reason is None:
                raise
            message = error.response.get("Error", {}).get("Message") or rk.error_code(error)
            return self._reject(photo, reason, message, replaceable=replaceable)

        decision = decide(response, self.settings.multi_face_policy)
        if decision.faces_to_delete:
            # Before the ledger write: if this crashes, the replay re-indexes (same faces thanks
            # to the ExternalImageId dedup) and deletes them again.
            self._delete_faces(decision.faces_to_delete)
        if decision.accepted is None:
            return self._reject(
                photo, decision.reason or Reason.NO_FACE, decision.detail, replaceable=replaceable
            )

        face = decision.accepted
        logger.append_keys(face_id=face.face_id)
        # One timestamp for the ledger and the message: the API shows when each face was indexed.
        indexed_at = utc_now_iso()
        written = self.ledger.record_photo(
            photo,
            PhotoStatus.INDEXED,
            face_id=face.face_id,
            quality=face.quality,
            indexed_at=indexed_at,
            replaceable=replaceable,
        )
        if not written:
            # A concurrent delivery got there first: behave exactly like a replay.
            current = self.ledger.get_photo(photo.user_id, photo.photo_id) or {}
            return self._replay(photo, current)
        self._send_association(photo, face.face_id, face.quality, indexed_at)
        count("PhotosIndexed")
        logger.info("photo indexed", extra={"quality": face.quality})
        return IndexOutcome(
            key=photo.key, photo_id=photo.photo_id, status=PhotoStatus.INDEXED, face_id=face.face_id
        )

    def _index_policy(self) -> str:
        settings = self.settings
        return index_policy(
            settings.quality_filter, settings.index_max_faces, settings.multi_face_policy
        )

    def _replay(self, photo: PhotoRef, existing: dict[str, Any]) -> IndexOutcome:
        status = str(existing.get("status"))
        face_id = existing.get("face_id")
        count("NotificationsReplayed")
        if status == PhotoStatus.INDEXED and face_id:
            # The first delivery may have died between the ledger write and SendMessage.
            self._send_association(
                photo,
                str(face_id),
                float(existing.get("quality") or 0.0),
                str(existing.get("indexed_at") or existing.get("updated_at") or utc_now_iso()),
            )
        logger.info("notification replayed; ledger unchanged", extra={"status": status})
        return IndexOutcome(
            key=photo.key,
            photo_id=photo.photo_id,
            status=status,
            reason=existing.get("reason"),
            face_id=face_id,
            replayed=True,
        )

    def _reject(
        self,
        photo: PhotoRef,
        reason: str,
        detail: str | None,
        *,
        replaceable: set[str] | None = None,
    ) -> IndexOutcome:
        written = self.ledger.record_photo(
            photo,
            PhotoStatus.REJECTED,
            reason=reason,
            detail=detail,
            replaceable=replaceable if replaceable is not None else {PhotoStatus.FAILED},
        )
        if written:
            count_by_reason("PhotosRejected", reason)
            logger.info("photo rejected", extra={"reason": reason, "detail": detail})
        return IndexOutcome(
            key=photo.key,
            photo_id=photo.photo_id,
            status=PhotoStatus.REJECTED,
            reason=reason,
            replayed=not written,
        )

    def _record_failure(
        self, obj: UploadedObject, error: BaseException, receive_count: int
    ) -> IndexOutcome:
        enroll = keys.parse_enroll_key(obj.key, self.settings.enroll_prefix)
        user_id = enroll.user_id if enroll else None
        photo = _photo_ref(obj, user_id)
        reason = rk.failure_reason(error)
        detail = (
            f"{rk.describe_error(error)} (delivery {receive_count} of "
            f"{self.settings.max_receive_count}; message moves to the DLQ)"
        )
        try:
            existing = self.ledger.get_photo(user_id, photo.photo_id) if user_id else None
            # INDEXED is replaceable too: an INDEXED photo whose message could not be sent
            # would otherwise wait forever for an association that never comes.
            written = self.ledger.record_photo(
                photo,
                PhotoStatus.FAILED,
                reason=reason,
                detail=detail,
                replaceable={PhotoStatus.FAILED, PhotoStatus.INDEXED},
            )
        except (ClientError, BotoCoreError) as ledger_error:
            logger.error(
                "could not record FAILED; the DLQ message is the only trace",
                extra={"object_key": obj.key, "error": rk.describe_error(ledger_error)},
            )
            existing, written = None, False
        face_id = (existing or {}).get("face_id")
        if written and face_id and (existing or {}).get("status") == PhotoStatus.INDEXED:
            # Its face would be an orphan: no association will ever claim it (DeleteFaces
            # refuses it if an earlier message did get it associated: owned, not orphaned).
            try:
                self._delete_faces([str(face_id)])
            except (ClientError, BotoCoreError) as delete_error:
                logger.error(
                    "could not delete the face of a failed photo",
                    extra={"face_id": face_id, "error": rk.describe_error(delete_error)},
                )
        count_by_reason("PhotosFailed", reason)
        logger.error("photo failed after its last delivery", extra={"object_key": obj.key})
        return IndexOutcome(
            key=obj.key, photo_id=photo.photo_id, status=PhotoStatus.FAILED, reason=reason
        )

    def _delete_faces(self, face_ids: list[str]) -> None:
        failures = rk.delete_faces(self.rekognition, self.settings.collection_id, face_ids)
        count("FacesDeleted", len(face_ids) - len(failures))
        if failures:
            logger.warning("faces not deleted", extra={"failures": failures})

    def _send_association(
        self, photo: PhotoRef, face_id: str, quality: float, indexed_at: str
    ) -> None:
        assert photo.user_id is not None  # only routed photos are indexed
        message = AssociationMessage(
            user_id=photo.user_id,
            face_id=face_id,
            photo_id=photo.photo_id,
            bucket=photo.bucket,
            key=photo.key,
            quality=quality,
            indexed_at=indexed_at,
            uploaded_at=photo.uploaded_at,
        )
        self.sqs.send_message(
            QueueUrl=self.settings.association_queue_url, MessageBody=message.to_json()
        )


def _photo_ref(obj: UploadedObject, user_id: str | None) -> PhotoRef:
    """The ledger's view of an uploaded object (its id is a function of bucket, key, version)."""
    return PhotoRef(
        photo_id=keys.photo_id(obj.bucket, obj.key, obj.version_id),
        user_id=user_id,
        bucket=obj.bucket,
        key=obj.key,
        version_id=obj.version_id,
        etag=obj.etag,
        uploaded_at=obj.event_time,
    )
