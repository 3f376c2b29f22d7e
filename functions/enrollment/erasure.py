"""Right-to-be-forgotten erasure of one user (DELETE /users/{userId}).

``Erasure.request`` turns the user item into a tombstone (status ERASING) and queues the work;
``Erasure.run`` (the erase-user worker) carries it out, one recorded step at a time, so that an
erasure interrupted anywhere resumes where it stopped, from the next delivery of its message
or from the next DELETE. ``erasure.step`` names the step under way:

``collect``  the user's faces still in the collection: its ledger photos' faces +
             ListFaces(UserId), which also finds faces the ledger never recorded
             (stored in ``erasure.face_ids``)
``user``     DeleteUser (Rekognition disassociates the faces first; the face vectors stay)
``faces``    DeleteFaces of the collected ids
``objects``  every object version and delete marker under ``<prefix><userId>/``
``ledger``   every item of the user's partition but the tombstone, then a final sweep of all
             of the above for work that raced the erasure (an upload, a batch in flight)
``done``     status DELETED, ``erasure.receipt`` complete

Every step is idempotent: a face already deleted is FACE_NOT_FOUND, a user already deleted is
ResourceNotFoundException (or the replay of this request's own DeleteUser token), an object
version already deleted is no longer listed. Counts are added to the receipt as each batch
completes, so a resumed erasure still reports what was really removed: faces and ledger items
exactly even when a run died between a deletion and its record (the collected set, and what the
next listing no longer shows, say what went); object versions as S3 answered each
DeleteObjects (a run dying between that answer and its record, a few milliseconds, would leave
up to one page of versions uncounted, though deleted).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from . import keys
from . import rekognition as rk
from .ledger import Ledger, UserStatus, utc_now_iso
from .messages import MessageError
from .observability import count, logger
from .settings import Settings

# S3 DeleteObjects takes at most 1000 keys (versions) per call: one listing page of
# ListObjectVersions (at most that many entries) is deleted by one call.
S3_MAX_KEYS_PER_DELETE = 1000
S3_LIST_PAGE_SIZE = S3_MAX_KEYS_PER_DELETE
# Faces per DisassociateFaces call (API maximum 100).
DISASSOCIATE_MAX_FACE_IDS = 100
# Ledger deletions recorded in the receipt in batches of this many items (one write per batch).
LEDGER_PROGRESS_EVERY = 25

# Bookkeeping of a running erasure, dropped from the tombstone once it is DELETED.
INTERNAL_FIELDS = ("last_object", "ledger_remaining")

RECEIPT_COUNTS = (
    "faces_deleted",
    "objects_deleted",
    "versions_deleted",
    "delete_markers_deleted",
    "ledger_items_deleted",
)


class Step:
    """The erasure's steps, in order (``erasure.step`` names the one under way)."""

    COLLECT = "collect"
    USER = "user"
    FACES = "faces"
    OBJECTS = "objects"
    LEDGER = "ledger"
    DONE = "done"

    ORDER = (COLLECT, USER, FACES, OBJECTS, LEDGER, DONE)


class UnknownUser(Exception):
    """Nothing is known of the user: no user item, no photo item, no object under its prefix."""


class ErasureIncomplete(Exception):
    """Something could not be removed yet (it is retried with the message)."""


class _Superseded(Exception):
    """The tombstone now belongs to another request, or a concurrent run finished it."""


@dataclass(frozen=True)
class ErasureMessage:
    """The erasure queue's message: which user, and which request (its tombstone's time)."""

    user_id: str
    requested_at: str

    def to_json(self) -> str:
        """The queue message body."""
        return json.dumps(
            {"user_id": self.user_id, "requested_at": self.requested_at}, separators=(",", ":")
        )

    @classmethod
    def from_json(cls, body: str) -> ErasureMessage:
        """Parse and validate a message body; raise MessageError when malformed."""
        try:
            data: Any = json.loads(body)
        except (TypeError, json.JSONDecodeError) as error:
            raise MessageError(f"erasure message is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise MessageError("erasure message must be a JSON object")
        user_id, requested_at = data.get("user_id"), data.get("requested_at")
        if not isinstance(user_id, str) or not keys.is_valid_user_id(user_id):
            raise MessageError(f"erasure message user_id is not a valid UserId: {user_id!r}")
        if not isinstance(requested_at, str) or not requested_at:
            raise MessageError("erasure message lacks requested_at")
        return cls(user_id=user_id, requested_at=requested_at)


@dataclass
class _Progress:
    """One run's view of the tombstone's erasure map."""

    user_id: str
    requested_at: str
    face_ids: set[str]
    receipt: dict[str, Any]
    last_object: str | None = None  # digest of the last object key counted
    ledger_remaining: int | None = None  # ledger items listed and not yet counted as deleted


def empty_receipt() -> dict[str, Any]:
    """The receipt of an erasure that removed nothing yet."""
    receipt: dict[str, Any] = dict.fromkeys(RECEIPT_COUNTS, 0)
    receipt["user_deleted"] = False
    return receipt


@dataclass
class Erasure:
    """The erasure's collaborators; clients are boto3 clients (or moto/fakes)."""

    settings: Settings
    rekognition: Any
    s3: Any
    ledger: Ledger
    sqs: Any
    now: Callable[[], str] = field(default=utc_now_iso)

    # ---- request ---------------------------------------------------------------------------

    def request(self, user_id: str) -> dict[str, Any]:
        """Start (or re-start) the erasure: tombstone ERASING + message on the erasure queue.

        Idempotent: on an ERASING user the message is sent again (an erasure stuck after its
        last delivery resumes); on a DELETED tombstone nothing changes, unless something was
        stored for the user since (a photo uploaded after the erasure), which starts a new
        erasure. Returns the user item as stored. Raises UnknownUser.
        """
        if not keys.is_valid_user_id(user_id):
            raise UnknownUser(f"{user_id!r} is not a valid UserId: nothing can be stored under it")
        user = self.ledger.get_user(user_id)
        user = _plain(user) if user is not None else None
        status = user.get("status") if user else None
        if user is not None and status == UserStatus.ERASING:
            self._send(user_id, str(user["erasure"]["requested_at"]))
            logger.info("erasure already under way; its message was sent again")
            return user
        if user is not None and status == UserStatus.DELETED and not self._leftovers(user_id):
            return user
        if user is None and not self._leftovers(user_id):
            raise UnknownUser(f"no user, photo or object is known for {user_id!r}")

        erasure: dict[str, Any] = {
            "requested_at": self.now(),
            "step": Step.COLLECT,
            "face_ids": [],
            "receipt": empty_receipt(),
        }
        stored = self.ledger.start_erasure(user_id, erasure)
        if stored is None:
            # A concurrent DELETE won the race: resume its erasure.
            stored = self.ledger.get_user(user_id) or {}
        stored = _plain(stored)
        requested_at = str(stored.get("erasure", {}).get("requested_at", erasure["requested_at"]))
        self._send(user_id, requested_at)
        count("ErasuresRequested")
        logger.info("erasure requested", extra={"user_id": user_id, "requested_at": requested_at})
        return stored

    def _leftovers(self, user_id: str) -> bool:
        """Whether anything is stored for the user besides its user item."""
        if self.ledger.has_user_items(user_id):
            return True
        page = self.s3.list_object_versions(
            Bucket=self.settings.bucket_name, Prefix=self._prefix(user_id), MaxKeys=1
        )
        return bool(page.get("Versions") or page.get("DeleteMarkers"))

    def _send(self, user_id: str, requested_at: str) -> None:
        body = ErasureMessage(user_id=user_id, requested_at=requested_at).to_json()
        self.sqs.send_message(QueueUrl=self.settings.erasure_queue_url, MessageBody=body)

    # ---- run -------------------------------------------------------------------------------

    def run(self, user_id: str) -> dict[str, Any]:
        """Carry the erasure out (resumable, idempotent); returns the receipt.

        A DELETED tombstone returns its receipt unchanged; a user with no erasure under way
        (never erased, or enrolled again since) returns {} and nothing is touched: a stale
        message must not erase a new enrollment.
        """
        user = _plain(self.ledger.get_user(user_id) or {})
        erasure = user.get("erasure")
        if user.get("status") == UserStatus.DELETED:
            return dict((erasure or {}).get("receipt") or {})
        if not erasure or erasure.get("step") == Step.DONE:
            logger.warning("no erasure under way for this user; message ignored")
            return {}
        progress = _Progress(
            user_id=user_id,
            requested_at=str(erasure["requested_at"]),
            face_ids=set(erasure.get("face_ids") or []),
            receipt={**empty_receipt(), **(erasure.get("receipt") or {})},
            last_object=erasure.get("last_object"),
            ledger_remaining=erasure.get("ledger_remaining"),
        )
        step = str(erasure.get("step") or Step.COLLECT)
        logger.append_keys(erasure_requested_at=progress.requested_at)
        try:
            self._run_from(progress, step)
        except _Superseded:
            logger.info("erasure finished or superseded by a concurrent run")
        finally:
            logger.remove_keys(["erasure_requested_at"])
        final = _plain(self.ledger.get_user(user_id) or {})
        return dict((final.get("erasure") or {}).get("receipt") or {})

    def _run_from(self, p: _Progress, step: str) -> None:
        steps: dict[str, Callable[[_Progress], None]] = {
            Step.COLLECT: self._collect_step,
            Step.USER: self._user_step,
            Step.FACES: self._faces_step,
            Step.OBJECTS: self._objects_step,
            Step.LEDGER: self._ledger_step,
        }
        start = Step.ORDER.index(step) if step in Step.ORDER else 0
        for current, following in zip(Step.ORDER[start:], Step.ORDER[start + 1 :], strict=False):
            logger.info("erasure step", extra={"step": current})
            steps[current](p)
            if following != Step.DONE:
                self._record(p, step=following)
        completed_at = self.now()
        if not self.ledger.finish_erasure(
            p.user_id,
            p.requested_at,
            step=Step.DONE,
            completed_at=completed_at,
            drop=INTERNAL_FIELDS,
        ):
            raise _Superseded
        count("ErasuresCompleted")
        logger.info(
            "erasure completed", extra={"receipt": {**p.receipt, "completed_at": completed_at}}
        )

    # ---- steps -----------------------------------------------------------------------------

    def _collect_step(self, p: _Progress) -> None:
        self._collect(p, self.ledger.user_photos(p.user_id))

    def _user_step(self, p: _Progress) -> None:
        token = keys.delete_user_token(
            p.user_id, p.requested_at, collection_id=self.settings.collection_id
        )
        self._delete_user(p, token)
        # The user item no longer vouches for a Rekognition user (no batch can mark it again
        # while the status is ERASING, so the sweep's DeleteUser needs no second write).
        self.ledger.forget_rekognition_user(p.user_id)

    def _faces_step(self, p: _Progress) -> None:
        self._delete_faces(p, sorted(p.face_ids))
        self._count_faces(p)

    def _objects_step(self, p: _Progress) -> None:
        self._delete_objects(p)

    def _ledger_step(self, p: _Progress) -> None:
        late_faces = self._delete_ledger_items(p)
        self._sweep(p, late_faces)

    def _sweep(self, p: _Progress, late_faces: set[str]) -> None:
        """Once more, for work that raced the erasure: a batch that associated a face or even
        recreated the user, an upload indexed or recorded meanwhile."""
        found = self._collect(p, [], extra=late_faces)
        # No token: a fresh call must really delete a user recreated since the first one
        # (this request's token would only replay that first answer).
        self._delete_user(p, None)
        if found:
            self._delete_faces(p, sorted(found))
        self._delete_objects(p)
        latest = self._delete_ledger_items(p)
        if latest:
            self._delete_faces(p, sorted(self._collect(p, [], extra=latest)))
        self._count_faces(p)

    # ---- pieces ----------------------------------------------------------------------------

    def _collect(
        self, p: _Progress, photos: list[dict[str, Any]], *, extra: set[str] | None = None
    ) -> set[str]:
        """The user's faces in the collection now: its ledger photos' faces that are still
        stored + ListFaces(UserId); merged into ``face_ids`` and recorded."""
        collection = self.settings.collection_id
        known = {str(photo["face_id"]) for photo in photos if photo.get("face_id")}
        known |= extra or set()
        found = {
            face["FaceId"] for face in rk.list_user_faces(self.rekognition, collection, p.user_id)
        }
        # A rejected photo's face may be long gone; only stored faces are this erasure's to
        # delete (and count). Faces already collected need no second look.
        unseen = sorted(known - found - p.face_ids)
        found |= set(rk.faces_by_id(self.rekognition, collection, unseen)) if unseen else set()
        found |= known & p.face_ids
        if not found <= p.face_ids:
            p.face_ids |= found
            self._record(p, face_ids=sorted(p.face_ids))
        return found

    def _count_faces(self, p: _Progress) -> None:
        """Every collected face is gone now: the receipt's count is the collected set's size,
        exact even when a run died between DeleteFaces and its record."""
        if p.receipt.get("faces_deleted") != len(p.face_ids):
            p.receipt["faces_deleted"] = len(p.face_ids)
            self._record(p, receipt={"faces_deleted": len(p.face_ids)})

    def _delete_user(self, p: _Progress, token: str | None) -> None:
        """DeleteUser; ResourceNotFoundException means already gone."""
        kwargs: dict[str, Any] = {"ClientRequestToken": token} if token else {}
        try:
            self.rekognition.delete_user(
                CollectionId=self.settings.collection_id, UserId=p.user_id, **kwargs
            )
        except ClientError as error:
            if rk.error_code(error) != "ResourceNotFoundException":
                raise
            return
        count("UsersDeleted")
        if not p.receipt.get("user_deleted"):
            p.receipt["user_deleted"] = True
            self._record(p, receipt={"user_deleted": True})

    def _delete_faces(self, p: _Progress, face_ids: list[str]) -> None:
        """DeleteFaces; FACE_NOT_FOUND is done already. A face still associated (a batch that
        raced the DeleteUser) is disassociated from its holder and deleted then."""
        held: dict[str, list[str]] = {}
        for chunk in _chunks(sorted(set(face_ids)), rk.DELETE_FACES_MAX_IDS):
            for failure in self._delete_face_chunk(p, chunk):
                if "ASSOCIATED_TO_AN_EXISTING_USER" in (failure.get("Reasons") or []):
                    held.setdefault(str(failure.get("UserId") or p.user_id), []).append(
                        failure["FaceId"]
                    )
        stuck: list[dict[str, Any]] = []
        for holder, ids in sorted(held.items()):
            for chunk in _chunks(ids, DISASSOCIATE_MAX_FACE_IDS):
                try:
                    self.rekognition.disassociate_faces(
                        CollectionId=self.settings.collection_id, UserId=holder, FaceIds=chunk
                    )
                except ClientError as error:
                    if rk.error_code(error) != "ResourceNotFoundException":
                        raise
            for chunk in _chunks(ids, rk.DELETE_FACES_MAX_IDS):
                stuck.extend(self._delete_face_chunk(p, chunk))
        if stuck:
            raise ErasureIncomplete(f"faces not deleted yet: {stuck}")

    def _delete_face_chunk(self, p: _Progress, chunk: list[str]) -> list[dict[str, Any]]:
        """One DeleteFaces call; the failures other than FACE_NOT_FOUND."""
        response = self.rekognition.delete_faces(
            CollectionId=self.settings.collection_id, FaceIds=chunk
        )
        count("FacesDeleted", len(response.get("DeletedFaces") or []))
        return [
            f
            for f in response.get("UnsuccessfulFaceDeletions") or []
            if "FACE_NOT_FOUND" not in (f.get("Reasons") or [])
        ]

    def _delete_objects(self, p: _Progress) -> None:
        """Delete every version and delete marker under the user's prefix, a page at a time.

        Each round lists from the start again: what the previous rounds deleted is gone, so no
        page marker is needed (a marker naming a deleted version is not something to rely on).
        """
        bucket, prefix = self.settings.bucket_name, self._prefix(p.user_id)
        while True:
            page = self.s3.list_object_versions(
                Bucket=bucket, Prefix=prefix, MaxKeys=S3_LIST_PAGE_SIZE
            )
            entries = [(v["Key"], v["VersionId"], False) for v in page.get("Versions") or []]
            entries += [(m["Key"], m["VersionId"], True) for m in page.get("DeleteMarkers") or []]
            # The trailing "/" of the prefix already keeps enroll/bob/ from enroll/bobby/; the
            # check guards against a listing that ever returned more than asked.
            entries = sorted(e for e in entries if e[0].startswith(prefix))
            truncated = bool(page.get("IsTruncated"))
            errors = self._delete_page(p, bucket, entries, truncated)
            if errors:
                raise ErasureIncomplete(f"object versions not deleted yet: {errors[:5]}")
            if not truncated or not entries:
                return

    def _delete_page(
        self, p: _Progress, bucket: str, entries: list[tuple[str, str, bool]], truncated: bool
    ) -> list[dict[str, Any]]:
        """One DeleteObjects call for one listing page; returns its errors after counting.

        A key counts as one object once all its versions and markers are gone. The last key of
        a truncated page may go on in the next page: it is left pending (``last_object``, a
        digest) and counted when the next page, of this run or of a resumed one, starts with
        another key.
        """
        tail_done = bool(p.last_object) and (
            not entries or _key_hash(entries[0][0]) != p.last_object
        )
        deleted: set[tuple[str, str]] = set()
        errors: list[dict[str, Any]] = []
        if entries:
            response = self.s3.delete_objects(
                Bucket=bucket,
                Delete={
                    "Objects": [{"Key": key, "VersionId": version} for key, version, _ in entries],
                    "Quiet": False,
                },
            )
            deleted = {(d["Key"], d.get("VersionId")) for d in response.get("Deleted") or []}
            errors = list(response.get("Errors") or [])
        gone = [e for e in entries if (e[0], e[1]) in deleted]
        markers = sum(1 for e in gone if e[2])
        failed_keys = {key for key, version, _ in entries if (key, version) not in deleted}
        complete = {key for key, _, _ in entries} - failed_keys
        tail = entries[-1][0] if truncated and entries else None
        pending = _key_hash(tail) if tail in complete else None
        count("ObjectVersionsDeleted", len(gone) - markers)
        count("DeleteMarkersDeleted", markers)
        p.last_object = pending
        self._add(
            p,
            objects_deleted=len(complete - {tail}) + int(tail_done),
            versions_deleted=len(gone) - markers,
            delete_markers_deleted=markers,
            fields={"last_object": pending or ""},
        )
        return errors

    def _delete_ledger_items(self, p: _Progress) -> set[str]:
        """Delete the user's partition but the tombstone; the face ids its photos held that
        were not collected yet.

        ``ledger_remaining`` (items listed, not yet counted) makes the count exact across a run
        that died between a DeleteItem and its record: what the next listing no longer shows
        was deleted.
        """
        items = self.ledger.user_partition_items(p.user_id)
        uncounted = (p.ledger_remaining or 0) - len(items)
        p.ledger_remaining = len(items)
        self._add(
            p, ledger_items_deleted=max(0, uncounted), fields={"ledger_remaining": len(items)}
        )
        faces: set[str] = set()
        for batch in _chunks(items, LEDGER_PROGRESS_EVERY):
            deleted = 0
            for item in batch:
                if item.get("face_id"):
                    faces.add(str(item["face_id"]))
                deleted += self.ledger.delete_partition_item(p.user_id, str(item["sk"]))
            p.ledger_remaining -= len(batch)
            self._add(
                p, ledger_items_deleted=deleted, fields={"ledger_remaining": p.ledger_remaining}
            )
        return faces - p.face_ids

    # ---- bookkeeping -----------------------------------------------------------------------

    def _add(self, p: _Progress, *, fields: dict[str, Any] | None = None, **counts: int) -> None:
        """Add ``counts`` to the stored receipt (and to this run's view of it)."""
        counts = {name: n for name, n in counts.items() if n}
        if not counts and not fields:
            return
        for name, n in counts.items():
            p.receipt[name] = int(p.receipt.get(name, 0)) + n
        if counts.get("ledger_items_deleted"):
            count("LedgerItemsDeleted", counts["ledger_items_deleted"])
        self._record(p, add_counts=counts, fields=fields)

    def _record(self, p: _Progress, **changes: Any) -> None:
        if not self.ledger.update_erasure(p.user_id, p.requested_at, **changes):
            raise _Superseded

    def _prefix(self, user_id: str) -> str:
        return f"{self.settings.enroll_prefix}{user_id}/"


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _plain(value: Any) -> Any:
    """``value`` with DynamoDB's Decimals as int/float at every depth (the ledger converts
    only top-level attributes; the erasure map nests its counts)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return {_plain(v) for v in value}
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _key_hash(key: str) -> str:
    # Keys are file names a person chose: the tombstone keeps a digest, never the key itself.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
