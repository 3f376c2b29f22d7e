"""The reconciler: makes the pipeline's invariants true again, whatever happened before.

A scheduled function (functions/reconcile), a periodic task of the local runner and
``enroll reconcile`` run ``Reconciler.run``. Each run repairs, in this order:

1. **DLQ messages** (upload and association DLQs) get a ledger outcome: every photo a message
   names that is not terminal yet (no item, INDEXED, ASSOCIATED) is recorded FAILED with the
   reason ``dead_lettered``'s detail names. The message is *left in the DLQ* (read with a short
   visibility timeout, made visible again at the end of the run): the DLQ alarm keeps meaning
   "someone must look", and a redrive after the fix can still reach a real outcome (FAILED is
   replaceable at the index stage). A message is never counted twice: the FAILED write is
   conditional on the photo not being terminal, so the next run finds nothing to record.
   DLQs go first: a message there says the pipeline gave up on the photo, and a re-sent
   association (step 2) must not race that verdict.
2. **Stuck photos**: INDEXED or ASSOCIATED and not updated for ``reconcile_stuck_after_s``
   (longer than every retry path, see settings). Decided from the collection, never from the
   ledger alone:

   - ASSOCIATED, face held by its user: SearchUsers(FaceId) as the activation state machine
     does, once per user; user ACTIVE -> the photos (and a non-ACTIVE user item) become
     ACTIVE; otherwise one new activation starts for the user's stuck photos (a deterministic
     name of its own, see ``_start_activation``);
   - INDEXED, face free or already held by its user: the association message is sent again
     (the associate stage is idempotent and finishes an association that died before its
     ledger write);
   - face gone from the collection: FAILED FACE_NOT_FOUND; face held by another user: FAILED
     ASSOCIATED_TO_A_DIFFERENT_USER (the face is owned, so it stays); ASSOCIATED with a face
     nobody holds: FAILED UNEXPECTED_ERROR (its face is then an orphan, step 3).

   Every action on a stuck photo writes its ``updated_at`` (a resend or an activation touches
   the item), so a second run right after finds it young again and repairs nothing.
   Finding them needs the status of every photo and the table has no index on status: one
   paged Scan per run. That is acceptable for a job that runs every few minutes (its cost is
   one read of the table); a status index would cost a write on every transition instead.
3. **Orphan faces**: faces in the collection that no user holds (ListFaces shows no UserId)
   and no live ledger photo (INDEXED, ASSOCIATED, ACTIVE) owns. ListFaces carries no creation
   time, so the grace period is counted from the first run that saw the face unowned: an
   ``ORPHAN#<face id>`` item (partition ``RECONCILER``) records ``first_seen``, and the face is
   deleted by the first run past ``reconcile_orphan_grace_s`` after that. A face being indexed
   right now (IndexFaces done, ledger write next) is therefore never deleted. Markers of faces
   that became owned or left are dropped. DeleteFaces refuses a face associated meanwhile.
4. **Users whose activation failed** (user FAILED, or FAILED ACTIVATION_TIMEOUT/ERROR photos):
   SearchUsers with one of the user's faces; if the user is ACTIVE now, the user item and those
   photos whose face the user holds become ACTIVE.

Every kind is bounded per run by ``reconcile_max_repairs`` (repairs of that kind, and DLQ
messages read per queue); what is left waits for the next run. Counts are logged and emitted
as metrics ``Reconciled<Kind>``.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from . import keys
from . import rekognition as rk
from .activation import activation_input, upload_lag_seconds
from .ledger import Ledger, PhotoRef, PhotoStatus, UserStatus, from_item, to_item
from .messages import AssociationMessage, MessageError, parse_s3_notification
from .observability import count, logger
from .photo_policy import ACTIVATION_FAILURE_REASONS, Reason
from .settings import Settings

# The reconciler's own ledger items (orphan first-seen markers) live in one partition that no
# user and no query reads.
RECONCILER_PK = "RECONCILER"
ORPHAN_SK_PREFIX = "ORPHAN#"
# A DLQ message read by a run stays invisible this long (seconds) so the run does not read it
# twice; the run makes it visible again when it ends. Far under any alarm period.
DLQ_READ_VISIBILITY_S = 30
# Name prefix of the activations the reconciler starts ("rec-" + 60 hex chars, within 80).
RECONCILE_EXECUTION_PREFIX = "rec-"
# ReceiveMessage returns at most 10 messages per call.
SQS_MAX_MESSAGES_PER_RECEIVE = 10
# SearchUsers' MaxUsers when checking a user's status (as the activation state machine asks).
STATUS_CHECK_MAX_USERS = 10
_LIVE_PHOTO = frozenset({PhotoStatus.INDEXED, PhotoStatus.ASSOCIATED, PhotoStatus.ACTIVE})
_STUCK = frozenset({PhotoStatus.INDEXED, PhotoStatus.ASSOCIATED})
_GONE_USER = frozenset({UserStatus.ERASING, UserStatus.DELETED})
# What the Scan reads of each item (a projection: content claims' other fields stay behind).
_SCANNED_ATTRIBUTES = (
    "pk",
    "sk",
    "status",
    "reason",
    "face_id",
    "user_id",
    "photo_id",
    "bucket",
    "key",
    "quality",
    "indexed_at",
    "uploaded_at",
    "updated_at",
    "first_seen",
)


class Repair:
    """The kinds of repair, as report keys; the metric is ``Reconciled`` + the CamelCase."""

    DLQ_PHOTOS_FAILED = "dlq_photos_failed"
    STUCK_PHOTOS_ACTIVATED = "stuck_photos_activated"
    STUCK_ACTIVATIONS_STARTED = "stuck_activations_started"
    STUCK_ASSOCIATIONS_RESENT = "stuck_associations_resent"
    STUCK_PHOTOS_FAILED = "stuck_photos_failed"
    ORPHAN_FACES_DELETED = "orphan_faces_deleted"
    USERS_ACTIVATED = "users_activated"
    FAILED_PHOTOS_ACTIVATED = "failed_photos_activated"

    ALL = (
        DLQ_PHOTOS_FAILED,
        STUCK_PHOTOS_ACTIVATED,
        STUCK_ACTIVATIONS_STARTED,
        STUCK_ASSOCIATIONS_RESENT,
        STUCK_PHOTOS_FAILED,
        ORPHAN_FACES_DELETED,
        USERS_ACTIVATED,
        FAILED_PHOTOS_ACTIVATED,
    )


class Capped:
    """What a run can leave for the next one when it reaches ``reconcile_max_repairs``."""

    STUCK_PHOTOS = "stuck_photos"
    ORPHAN_FACES = "orphan_faces"
    FAILED_ACTIVATIONS = "failed_activations"
    DLQ_MESSAGES = "dlq_messages"


def metric_name(kind: str) -> str:
    """``Reconciled<Kind>`` for a repair kind, e.g. ReconciledOrphanFacesDeleted."""
    return "Reconciled" + "".join(part.capitalize() for part in kind.split("_"))


@dataclass
class ReconcileReport:
    """What one run repaired (per kind) and what it saw but left for later."""

    repaired: dict[str, int] = field(default_factory=lambda: dict.fromkeys(Repair.ALL, 0))
    #: Unowned faces still inside their grace period (deleted by a later run).
    orphan_faces_waiting: int = 0
    #: DLQ messages read, and those no outcome can be recorded for (not JSON, no photo).
    dlq_messages_read: int = 0
    dlq_messages_unreadable: int = 0
    #: Kinds that hit ``reconcile_max_repairs``: more is left for the next run.
    capped: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Repairs of every kind."""
        return sum(self.repaired.values())

    def add(self, kind: str, amount: int = 1) -> None:
        self.repaired[kind] += amount

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (the handler's answer, ``enroll reconcile --json``)."""
        return {
            "repaired": dict(self.repaired),
            "total": self.total,
            "orphan_faces_waiting": self.orphan_faces_waiting,
            "dlq_messages_read": self.dlq_messages_read,
            "dlq_messages_unreadable": self.dlq_messages_unreadable,
            "capped": list(self.capped),
        }


@dataclass
class _LedgerView:
    """What one Scan of the ledger says, for one run."""

    stuck: list[dict[str, Any]] = field(default_factory=list)
    live_faces: set[str] = field(default_factory=set)
    failed_users: set[str] = field(default_factory=set)
    activation_failed_photos: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    orphan_markers: dict[str, str] = field(default_factory=dict)  # face id -> first_seen
    user_statuses: dict[str, str] = field(default_factory=dict)  # user id -> ledger status


@dataclass
class Reconciler:
    """The reconciler's collaborators; clients are boto3 clients (or moto/fakes)."""

    settings: Settings
    rekognition: Any
    ledger: Ledger
    dynamodb: Any  # the ledger's table, for the Scan and the reconciler's own items
    sqs: Any
    sfn: Any

    #: What a run reads besides the collection: the ledger, both DLQs, where it re-sends
    #: association messages and which state machine it starts.
    REQUIRED_SETTINGS = (
        "ledger_table",
        "association_queue_url",
        "activation_state_machine_arn",
        "upload_dlq_url",
        "association_dlq_url",
    )

    @classmethod
    def build(cls, settings: Settings, client: Callable[[str], Any]) -> Reconciler:
        """The reconciler for ``settings``, with ``client(service)`` making each boto3 client
        (the function's shared ones, or the CLI's pointed at a stack)."""
        settings.require(*cls.REQUIRED_SETTINGS)
        dynamodb = client("dynamodb")
        return cls(
            settings=settings,
            rekognition=client("rekognition"),
            ledger=Ledger(dynamodb, settings.ledger_table),
            dynamodb=dynamodb,
            sqs=client("sqs"),
            sfn=client("stepfunctions"),
        )

    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def run(self, now: datetime | None = None) -> ReconcileReport:
        """One pass over every repair (see the module docstring); returns what it repaired."""
        moment = now or self.clock()
        report = ReconcileReport()
        self._reconcile_dlqs(report)
        view = self._scan_ledger(moment)
        self._reconcile_stuck(view, report)
        self._reconcile_orphans(view, moment, report)
        self._reconcile_failed_activations(view, report)
        for kind, amount in report.repaired.items():
            count(metric_name(kind), amount)
        logger.info("reconciler run", extra={"report": report.as_dict()})
        return report

    # ---- 1. DLQs ---------------------------------------------------------------------------

    def _reconcile_dlqs(self, report: ReconcileReport) -> None:
        s = self.settings
        for url, read in (
            (s.upload_dlq_url, self._upload_photos),
            (s.association_dlq_url, self._association_photos),
        ):
            if not url:
                continue
            handles: list[str] = []
            try:
                for message in self._read_dlq(url, handles):
                    report.dlq_messages_read += 1
                    try:
                        photos = read(str(message.get("Body", "")))
                    except MessageError as error:
                        report.dlq_messages_unreadable += 1
                        logger.warning(
                            "DLQ message names no photo; left for a human",
                            extra={"queue": url, "error": str(error)},
                        )
                        continue
                    for photo in photos:
                        if report.repaired[Repair.DLQ_PHOTOS_FAILED] >= s.reconcile_max_repairs:
                            _cap(report, Capped.DLQ_MESSAGES)
                            break
                        if self._fail_dead_lettered(photo, url):
                            report.add(Repair.DLQ_PHOTOS_FAILED)
            finally:
                self._release(url, handles)
            if len(handles) >= s.reconcile_max_repairs:
                _cap(report, Capped.DLQ_MESSAGES)

    def _read_dlq(self, url: str, handles: list[str]) -> Iterator[dict[str, Any]]:
        """Up to ``reconcile_max_repairs`` messages of the DLQ, each read once this run."""
        budget = self.settings.reconcile_max_repairs
        while budget > 0:
            batch = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(SQS_MAX_MESSAGES_PER_RECEIVE, budget),
                VisibilityTimeout=DLQ_READ_VISIBILITY_S,
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not batch:
                return
            for message in batch:
                handles.append(message["ReceiptHandle"])
                budget -= 1
                yield message

    def _release(self, url: str, handles: list[str]) -> None:
        """Make the messages read visible again: they stay in the DLQ for a human redrive."""
        for handle in handles:
            try:
                self.sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0
                )
            except ClientError as error:
                # It becomes visible anyway after DLQ_READ_VISIBILITY_S.
                logger.warning("could not release a DLQ message", extra={"error": str(error)})

    def _upload_photos(self, body: str) -> list[PhotoRef]:
        refs = []
        for obj in parse_s3_notification(body):
            enroll = keys.parse_enroll_key(obj.key, self.settings.enroll_prefix)
            if enroll is None or keys.is_folder_marker(obj.key):
                continue  # the index stage ignores these too
            refs.append(
                PhotoRef(
                    photo_id=keys.photo_id(obj.bucket, obj.key, obj.version_id),
                    user_id=enroll.user_id,
                    bucket=obj.bucket,
                    key=obj.key,
                    version_id=obj.version_id,
                    etag=obj.etag,
                    uploaded_at=obj.event_time,
                )
            )
        return refs

    def _association_photos(self, body: str) -> list[PhotoRef]:
        message = AssociationMessage.from_json(body)
        return [
            PhotoRef(
                photo_id=message.photo_id,
                user_id=message.user_id,
                bucket=message.bucket,
                key=message.key,
                uploaded_at=message.uploaded_at,
            )
        ]

    def _fail_dead_lettered(self, photo: PhotoRef, url: str) -> bool:
        """FAILED for a photo of a dead-lettered message unless it already has an outcome."""
        detail = (
            f"its message is in the dead-letter queue {url.rsplit('/', 1)[-1]} "
            "(recorded by the reconciler; redrive the message once the cause is fixed)"
        )
        existing = self.ledger.get_photo(photo.user_id, photo.photo_id)
        reason = Reason.UNEXPECTED_ERROR
        if existing is None:
            return self.ledger.record_photo(
                photo, PhotoStatus.FAILED, reason=reason, detail=detail, replaceable=()
            )
        if existing.get("status") not in _STUCK:
            return False
        return self.ledger.transition_photo(
            photo.user_id,
            photo.photo_id,
            PhotoStatus.FAILED,
            from_statuses={str(existing.get("status"))},
            reason=reason,
            detail=detail,
        )

    # ---- the ledger scan -------------------------------------------------------------------

    def _scan_ledger(self, now: datetime) -> _LedgerView:
        """One paged Scan: stuck photos, live faces, failed users and photos, orphan markers."""
        view = _LedgerView()
        cutoff = now.timestamp() - self.settings.reconcile_stuck_after_s
        for item in self._scan():
            sk = str(item.get("sk", ""))
            status = item.get("status")
            if sk.startswith("PHOTO#"):
                face_id = item.get("face_id")
                if status in _LIVE_PHOTO and face_id:
                    view.live_faces.add(str(face_id))
                if status in _STUCK and _epoch(item.get("updated_at")) <= cutoff:
                    view.stuck.append(item)
                if (
                    status == PhotoStatus.FAILED
                    and item.get("reason") in ACTIVATION_FAILURE_REASONS
                    and item.get("user_id")
                ):
                    view.activation_failed_photos[str(item["user_id"])].append(item)
            elif sk == keys.USER_SK and item.get("user_id"):
                view.user_statuses[str(item["user_id"])] = str(status)
                if status == UserStatus.FAILED:
                    view.failed_users.add(str(item["user_id"]))
            elif item.get("pk") == RECONCILER_PK and sk.startswith(ORPHAN_SK_PREFIX):
                view.orphan_markers[sk[len(ORPHAN_SK_PREFIX) :]] = str(item.get("first_seen", ""))
        view.stuck.sort(key=lambda i: str(i.get("updated_at", "")))  # oldest first
        return view

    def _scan(self) -> Iterator[dict[str, Any]]:
        # Every name aliased: several (status, key, reason) are DynamoDB reserved words.
        names = {f"#a{i}": name for i, name in enumerate(_SCANNED_ATTRIBUTES)}
        kwargs: dict[str, Any] = {
            "TableName": self.settings.ledger_table,
            "ProjectionExpression": ", ".join(names),
            "ExpressionAttributeNames": names,
        }
        while True:
            page = self.dynamodb.scan(**kwargs)
            for raw in page.get("Items", []):
                yield from_item(raw)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # ---- 2. stuck photos -------------------------------------------------------------------

    def _reconcile_stuck(self, view: _LedgerView, report: ReconcileReport) -> None:
        s = self.settings
        limit = s.reconcile_max_repairs
        stuck = view.stuck[:limit]
        if len(view.stuck) > limit:
            _cap(report, Capped.STUCK_PHOTOS)
        faces = rk.faces_by_id(
            self.rekognition,
            s.collection_id,
            [str(p["face_id"]) for p in stuck if p.get("face_id")],
        )
        held: dict[str, list[dict[str, Any]]] = defaultdict(list)  # ASSOCIATED, face held
        for photo in stuck:
            user_id = str(photo.get("user_id") or "")
            status = str(photo["status"])
            face_id = str(photo.get("face_id") or "")
            owner = (faces.get(face_id) or {}).get("UserId")
            if view.user_statuses.get(user_id) in _GONE_USER:
                continue  # the erasure removes the photo and its face
            logger.append_keys(photo_id=photo.get("photo_id"), user_id=user_id or None)
            try:
                if not user_id or not face_id:
                    self._fail_stuck(
                        view, photo, Reason.UNEXPECTED_ERROR, "no user or face recorded"
                    )
                    report.add(Repair.STUCK_PHOTOS_FAILED)
                elif face_id not in faces:
                    self._fail_stuck(view, photo, Reason.FACE_NOT_FOUND, "face no longer stored")
                    report.add(Repair.STUCK_PHOTOS_FAILED)
                elif owner and owner != user_id:
                    self._fail_stuck(
                        view,
                        photo,
                        Reason.ASSOCIATED_TO_A_DIFFERENT_USER,
                        f"face belongs to user {owner}",
                    )
                    report.add(Repair.STUCK_PHOTOS_FAILED)
                elif status == PhotoStatus.INDEXED:
                    self._resend(photo)
                    report.add(Repair.STUCK_ASSOCIATIONS_RESENT)
                elif owner != user_id:
                    self._fail_stuck(
                        view,
                        photo,
                        Reason.UNEXPECTED_ERROR,
                        "ASSOCIATED but its user does not hold it",
                    )
                    report.add(Repair.STUCK_PHOTOS_FAILED)
                else:
                    held[user_id].append(photo)
            finally:
                logger.remove_keys(["photo_id", "user_id"])
        for user_id, photos in sorted(held.items()):
            self._finish_associated(user_id, photos, report)

    def _finish_associated(
        self, user_id: str, photos: list[dict[str, Any]], report: ReconcileReport
    ) -> None:
        """One user's stuck ASSOCIATED photos whose faces it holds: ACTIVE, or re-activated."""
        face_ids = sorted(str(p["face_id"]) for p in photos)
        if self._user_status(user_id, face_ids[0]) == "ACTIVE":
            for photo in photos:
                if self.ledger.transition_photo(
                    user_id,
                    str(photo["photo_id"]),
                    PhotoStatus.ACTIVE,
                    from_statuses={PhotoStatus.ASSOCIATED},
                ):
                    report.add(Repair.STUCK_PHOTOS_ACTIVATED)
            if self._mark_user_active(user_id):
                report.add(Repair.USERS_ACTIVATED)
            return
        if self._start_activation(user_id, photos):
            report.add(Repair.STUCK_ACTIVATIONS_STARTED)
            logger.info(
                "stuck photos: activation started again",
                extra={"user_id": user_id, "face_ids": face_ids},
            )
        # Touch them either way: the activation owns them now, and a next run waits again.
        for photo in photos:
            self.ledger.transition_photo(
                user_id,
                str(photo["photo_id"]),
                PhotoStatus.ASSOCIATED,
                from_statuses={PhotoStatus.ASSOCIATED},
            )

    def _start_activation(self, user_id: str, photos: list[dict[str, Any]]) -> bool:
        """Start the activation state machine for these photos; False if it already exists.

        Not keys.activation_execution_name: the batch's own execution (same user and faces)
        exists already, done without settling them. The name adds the photos' last update, so
        each time they get stuck gives one new execution, and a replay of this run none.
        """
        s = self.settings
        face_ids = sorted(str(p["face_id"]) for p in photos)
        stuck_since = max(str(p.get("updated_at", "")) for p in photos)
        material = "\n".join((user_id, ",".join(face_ids), stuck_since))
        name = RECONCILE_EXECUTION_PREFIX + hashlib.sha256(material.encode()).hexdigest()[:60]
        document = activation_input(
            user_id,
            face_ids,
            [str(p["photo_id"]) for p in photos],
            s.activation_wait_schedule,
            upload_lag_seconds([str(p.get("uploaded_at") or "") for p in photos]),
        )
        try:
            self.sfn.start_execution(
                stateMachineArn=s.activation_state_machine_arn,
                name=name,
                input=json.dumps(document),
            )
        except ClientError as error:
            if rk.error_code(error) == "ExecutionAlreadyExists":
                return False
            raise
        return True

    def _resend(self, photo: dict[str, Any]) -> None:
        """Send the INDEXED photo's association message again, then touch its item."""
        message = AssociationMessage(
            user_id=str(photo["user_id"]),
            face_id=str(photo["face_id"]),
            photo_id=str(photo["photo_id"]),
            bucket=str(photo.get("bucket", "")),
            key=str(photo.get("key", "")),
            quality=float(photo.get("quality") or 0.0),
            indexed_at=str(photo.get("indexed_at") or photo.get("updated_at") or ""),
            uploaded_at=photo.get("uploaded_at"),
        )
        self.sqs.send_message(
            QueueUrl=self.settings.association_queue_url, MessageBody=message.to_json()
        )
        self.ledger.transition_photo(
            message.user_id,
            message.photo_id,
            PhotoStatus.INDEXED,
            from_statuses={PhotoStatus.INDEXED},
        )
        logger.info("stuck photo: association message sent again")

    def _fail_stuck(self, view: _LedgerView, photo: dict[str, Any], reason: str, why: str) -> None:
        status = str(photo["status"])
        # Its face (if any, and unowned) is an orphan from now on, seen as one by this run.
        view.live_faces.discard(str(photo.get("face_id") or ""))
        self.ledger.transition_photo(
            photo.get("user_id") or None,
            str(photo["photo_id"]),
            PhotoStatus.FAILED,
            from_statuses={status},
            reason=reason,
            detail=f"stuck {status} past {self.settings.reconcile_stuck_after_s} s: {why} "
            "(recorded by the reconciler)",
        )
        logger.warning("stuck photo failed", extra={"reason": reason, "why": why})

    # ---- 3. orphan faces -------------------------------------------------------------------

    def _reconcile_orphans(self, view: _LedgerView, now: datetime, report: ReconcileReport) -> None:
        s = self.settings
        unowned = [
            face["FaceId"]
            for face in self._all_faces()
            if not face.get("UserId") and face["FaceId"] not in view.live_faces
        ]
        due: list[str] = []
        for face_id in unowned:
            first_seen = view.orphan_markers.pop(face_id, None)
            seen_at = _epoch(first_seen) if first_seen else now.timestamp()
            if now.timestamp() - seen_at >= s.reconcile_orphan_grace_s:
                due.append(face_id)
            else:
                report.orphan_faces_waiting += 1
                if first_seen is None:
                    self._put_marker(face_id, now)
        # Faces owned again, or gone: their markers are stale.
        for face_id in view.orphan_markers:
            self._delete_marker(face_id)
        if len(due) > s.reconcile_max_repairs:
            _cap(report, Capped.ORPHAN_FACES)
            due = due[: s.reconcile_max_repairs]
        if not due:
            return
        failures = rk.delete_faces(self.rekognition, s.collection_id, due)
        kept = {str(f.get("FaceId", "")) for f in failures}
        for face_id in due:
            self._delete_marker(face_id)
        deleted = [f for f in due if f not in kept]
        report.add(Repair.ORPHAN_FACES_DELETED, len(deleted))
        logger.info("orphan faces deleted", extra={"face_ids": deleted, "kept": sorted(kept)})

    def _all_faces(self) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            page = self.rekognition.list_faces(
                CollectionId=self.settings.collection_id,
                MaxResults=rk.LIST_FACES_PAGE_SIZE,
                **({"NextToken": token} if token else {}),
            )
            yield from page.get("Faces") or []
            token = page.get("NextToken")
            if not token:
                return

    def _put_marker(self, face_id: str, now: datetime) -> None:
        self.dynamodb.put_item(
            TableName=self.settings.ledger_table,
            Item=to_item(
                {
                    "pk": RECONCILER_PK,
                    "sk": ORPHAN_SK_PREFIX + face_id,
                    "face_id": face_id,
                    "first_seen": _iso(now),
                }
            ),
        )

    def _delete_marker(self, face_id: str) -> None:
        self.dynamodb.delete_item(
            TableName=self.settings.ledger_table,
            Key=to_item({"pk": RECONCILER_PK, "sk": ORPHAN_SK_PREFIX + face_id}),
        )

    # ---- 4. failed activations -------------------------------------------------------------

    def _reconcile_failed_activations(self, view: _LedgerView, report: ReconcileReport) -> None:
        s = self.settings
        users = sorted(view.failed_users | set(view.activation_failed_photos))
        if len(users) > s.reconcile_max_repairs:
            _cap(report, Capped.FAILED_ACTIVATIONS)
            users = users[: s.reconcile_max_repairs]
        for user_id in users:
            if view.user_statuses.get(user_id) in _GONE_USER:
                continue
            try:
                faces = rk.list_user_faces(self.rekognition, s.collection_id, user_id)
            except ClientError as error:
                if rk.error_code(error) != "ResourceNotFoundException":
                    raise
                continue  # no such Rekognition user: nothing can become ACTIVE
            held = {face["FaceId"] for face in faces}
            if not held or self._user_status(user_id, sorted(held)[0]) != "ACTIVE":
                continue  # still not ACTIVE: checked again next run
            if user_id in view.failed_users and self._mark_user_active(user_id):
                report.add(Repair.USERS_ACTIVATED)
                logger.info("user of a failed activation is ACTIVE", extra={"user_id": user_id})
            for photo in view.activation_failed_photos.get(user_id, []):
                if photo.get("face_id") not in held:
                    continue  # its face left the user: FAILED stays the truth
                if self.ledger.transition_photo(
                    user_id,
                    str(photo["photo_id"]),
                    PhotoStatus.ACTIVE,
                    from_statuses={PhotoStatus.FAILED},
                ):
                    report.add(Repair.FAILED_PHOTOS_ACTIVATED)

    # ---- shared ----------------------------------------------------------------------------

    def _user_status(self, user_id: str, face_id: str) -> str | None:
        """The user's status as SearchUsers(FaceId) reports it (None: not found)."""
        try:
            response = self.rekognition.search_users(
                CollectionId=self.settings.collection_id,
                FaceId=face_id,
                # 0, as the state machine asks: an UPDATING user with a stale vector still shows.
                UserMatchThreshold=0,
                MaxUsers=STATUS_CHECK_MAX_USERS,
            )
        except ClientError as error:
            if rk.error_code(error) in ("ResourceNotFoundException", "InvalidParameterException"):
                return None  # the face left meanwhile
            raise
        for match in response.get("UserMatches") or []:
            user = match.get("User") or {}
            if user.get("UserId") == user_id:
                return str(user.get("UserStatus"))
        return None

    def _mark_user_active(self, user_id: str) -> bool:
        """User item -> ACTIVE (Rekognition says so), unless ACTIVE, deleted or being erased."""
        now = _iso(self.clock())
        try:
            self.dynamodb.update_item(
                TableName=self.settings.ledger_table,
                Key=to_item({"pk": keys.user_pk(user_id), "sk": keys.USER_SK}),
                UpdateExpression="SET #status = :active, activated_at = :now, updated_at = :now "
                "REMOVE reason",
                ConditionExpression="attribute_exists(pk) AND #status IN (:failed, :updating, "
                ":created)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":active": {"S": UserStatus.ACTIVE},
                    ":failed": {"S": UserStatus.FAILED},
                    ":updating": {"S": UserStatus.UPDATING},
                    ":created": {"S": UserStatus.CREATED},
                    ":now": {"S": now},
                },
            )
        except ClientError as error:
            if rk.error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _cap(report: ReconcileReport, kind: str) -> None:
    if kind not in report.capped:
        report.capped.append(kind)


def _iso(moment: datetime) -> str:
    """The ledger's time format (ledger.utc_now_iso) for ``moment``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch(text: Any) -> float:
    """Seconds since the epoch of a ledger time; 0 (very old) when it does not parse."""
    if not isinstance(text, str) or not text:
        return 0.0
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
