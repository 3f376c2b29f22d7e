"""Associate stage: a batch of accepted faces -> per user: CreateUser, capacity, AssociateFaces.

Replays are harmless because every decision is re-derived from Rekognition and the ledger:
faces already associated to the user (ListFaces shows their UserId) count as associated,
photos already past INDEXED are skipped, and every call carries a deterministic token.

CreateUser (5 TPS per account) is called only while the ledger's user item does not record that
the Rekognition user exists (``rekognition_user_created_at``, set once CreateUser succeeded or
answered ConflictException). If AssociateFaces answers ResourceNotFoundException (the user was
deleted behind our back), the mark is dropped and the user's records fail: the retry creates it.

Faces AssociateFaces does not associate. Two batches for one user can plan from the same face
count and cross the cap together. AWS documents that faces past 100 are "returned as part of an
array of UnsuccessfulFaceAssociations", but its Reasons enum has no value for the cap (such a
face may carry any of the three, or none), and that ServiceQuotaExceededException comes once
"the limit is reached". So the reason is not trusted: ListFaces(FaceIds) says what became of
each unsuccessful face, and the rule is:

- gone from the collection: REJECTED FACE_NOT_FOUND;
- held by this user (a replayed or racing call associated it): associated;
- held by another user: REJECTED ASSOCIATED_TO_A_DIFFERENT_USER, and kept (it is owned);
- held by nobody, with the reason LOW_MATCH_CONFIDENCE: REJECTED LOW_MATCH_CONFIDENCE, or
  USER_FACE_LIMIT when the user holds ``max_faces_per_user`` faces now (ListFaces(UserId)), and
  deleted; never planned again (keep-best must not evict a settled face for a poor match);
- held by nobody, with any other reason or none: refused at the cap (the one refusal AWS gives
  no reason for), see below.

ServiceQuotaExceededException refuses every face of the call at the cap, once ListFaces(UserId)
confirms the user holds ``max_faces_per_user`` faces (if not, the quota is something else and
the error fails the user's records like any other).

Faces refused at the cap are planned once more, from the user's faces as they are now and with
the same policy: a racing batch took the room this plan counted on (or, having evicted, freed
some). Under ``reject`` the new plan refuses them unless room was freed; under ``keep-best`` a
refused face still replaces a worse settled face, as it would have had its batch come second
(faces whose photo is not settled yet, the racing batch's among them, are never evicted). What
the second plan cannot place, or a second AssociateFaces refuses again, is REJECTED
USER_FACE_LIMIT. Every refused face is deleted: none stays in the collection without a user.

A message for a FAILED photo (redriven from the association DLQ once the cause is fixed, or
any later copy) is not skipped: the photo gets another way to a real outcome, resumed or sent
back through the index stage by where its face is now (failed_photos.py has the rule).

Siblings. A user's burst of photos can be split across batches (two gathered at the same time,
or one cut at its size). A batch with work for a user also associates the user's other photos
that are INDEXED in the ledger, so the burst goes out in one AssociateFaces call and one
activation. Each photo moved to ASSOCIATED records its activation's name; a later message for a
photo that is ASSOCIATED under a still-running activation is skipped (that execution settles
it), and otherwise handled like any replay.

A message whose face is not the one its ledger photo records (the photo was indexed again
since and got a new face) is stale: skipped, its face deleted unless someone holds it. The
ledger writes made for a message (FAILED on its last delivery, the return to ASSOCIATED) are
conditional on the photo still recording the message's face.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import capacity, keys
from . import rekognition as rk
from .activation import (
    activation_exists,
    execution_arn,
    start_activation,
    upload_lag_seconds,
)
from .backoff import ConflictBackoff
from .failed_photos import FailedPhotos
from .keys import activation_execution_name
from .ledger import Ledger, PhotoStatus, UserStatus
from .messages import AssociationMessage
from .observability import count, count_by_reason, logger
from .photo_policy import Reason
from .settings import Settings

# Rejections whose face must leave the collection (nobody else owns it).
_DELETE_FACE_REASONS = frozenset(
    {
        Reason.LOW_MATCH_CONFIDENCE,
        Reason.USER_FACE_LIMIT,
        Reason.REPLACED_BY_BETTER_PHOTO,
        Reason.MULTIPLE_FACES,
    }
)
_LIVE_PHOTO = frozenset({PhotoStatus.ASSOCIATED, PhotoStatus.ACTIVE})


@dataclass
class UserOutcome:
    """What one user's share of the batch came to (for logs, metrics and tests)."""

    user_id: str
    associated: list[str] = field(default_factory=list)  # face ids now associated
    rejected: dict[str, str] = field(default_factory=dict)  # face id -> reason
    evicted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # photos already past INDEXED
    requeued: list[str] = field(default_factory=list)  # FAILED photos sent back to indexing
    resumed: list[str] = field(default_factory=list)  # FAILED photos back to ASSOCIATED
    execution: str | None = None
    face_count: int | None = None
    #: When face_count was observed (epoch microseconds, taken before the ListFaces call).
    counted_at: int | None = None


@dataclass
class AssociateStage:
    """The associate stage's collaborators; clients are boto3 clients (or moto/fakes)."""

    settings: Settings
    rekognition: Any
    ledger: Ledger
    sfn: Any
    sqs: Any  # sends FAILED photos back to the upload queue (settings.upload_queue_url)
    #: Associate the user's other INDEXED photos along with the batch's (module docstring,
    #: "Siblings"). Off only in tests that race two batches of photos indexed before either.
    gather_siblings: bool = True

    def handle_batch(
        self,
        messages: Mapping[str, AssociationMessage],
        receive_counts: Mapping[str, int] | None = None,
        conflicts: ConflictBackoff | None = None,
    ) -> tuple[list[UserOutcome], dict[str, BaseException]]:
        """Process a batch keyed by SQS message id, one user at a time.

        Returns the outcomes and, per failed message id, the transient error that must make
        that record fail (only the records of the user that failed). On a message's last
        allowed delivery its photo is first recorded FAILED, so nothing vanishes in the DLQ.
        With ``conflicts``, a user's records failed by a ConflictException are re-sent with a
        short delay instead (backoff.py) and count as processed: they spend no delivery.
        """
        count("AssociationMessagesReceived", len(messages))
        by_user: dict[str, dict[str, AssociationMessage]] = defaultdict(dict)
        for message_id, message in messages.items():
            by_user[message.user_id][message_id] = message
        outcomes: list[UserOutcome] = []
        failures: dict[str, BaseException] = {}
        for user_id in sorted(by_user):
            user_messages = by_user[user_id]
            logger.append_keys(user_id=user_id)
            try:
                outcomes.append(self.associate_user(user_id, list(user_messages.values())))
            except Exception as error:
                # Transient AWS errors (throttling, ConflictException while the user is
                # UPDATING, 5xx) and anything unforeseen alike: retry this user's records only,
                # and record FAILED on their last delivery so nothing vanishes in the DLQ.
                if isinstance(error, ClientError | BotoCoreError):
                    logger.warning(
                        "transient error; this user's records will be retried",
                        extra={"error": rk.describe_error(error)},
                    )
                else:
                    logger.exception("unexpected error associating faces")
                # Re-sent first: a conflicted record on its last delivery is not FAILED.
                retried = conflicts.retry_later(error, user_messages) if conflicts else set()
                last: list[AssociationMessage] = []
                for message_id, message in user_messages.items():
                    if message_id in retried:
                        continue
                    failures[message_id] = error
                    if (receive_counts or {}).get(message_id, 1) >= self.settings.max_receive_count:
                        last.append(message)
                if last:
                    self._record_failures(last, error)
            finally:
                logger.remove_keys(["user_id"])
        return outcomes, failures

    def associate_user(self, user_id: str, messages: list[AssociationMessage]) -> UserOutcome:
        """Associate one user's new faces (idempotent); raise on transient errors."""
        outcome = UserOutcome(user_id=user_id)
        photos = {p["photo_id"]: p for p in self.ledger.user_photos(user_id)}
        pending, in_flight = self._triage(outcome, user_id, messages, photos)
        if not pending and not in_flight:
            return outcome
        if pending and self.gather_siblings:
            pending += _waiting_siblings(user_id, messages, photos)

        # Never resurrects an ERASING user (a DELETED one starts afresh: a new enrollment).
        user = self.ledger.ensure_user(user_id)
        if user.get("status") == UserStatus.ERASING:
            self._refuse_erasing(outcome, user_id, pending + in_flight)
            return outcome
        self._ensure_rekognition_user(user_id, user)
        candidates = self._locate(outcome, user_id, pending, in_flight)
        photo_by_face = {p["face_id"]: p for p in photos.values() if p.get("face_id")}
        current, stale = self._current_faces(user_id, photo_by_face)
        # A batch racing this one (it took the same waiting siblings) may have associated some
        # candidates since _locate looked: they are held now, not room to plan for.
        held = {c.face_id for c in current}
        in_flight += [m for m in candidates if m.face_id in held]
        candidates = [m for m in candidates if m.face_id not in held]
        plan = self._apply_capacity(outcome, user_id, current, stale, candidates, photo_by_face)
        by_face = {m.face_id: m for m in candidates}
        outcome.associated.extend(m.face_id for m in in_flight)
        accepted = list(plan.accept)
        refused = self._associate(outcome, user_id, [by_face[f] for f in plan.accept], in_flight)
        if refused:
            # A racing batch changed the user since the plan: plan these faces once more from
            # what the user holds now (see the module docstring).
            current, stale = self._current_faces(user_id, photo_by_face)
            replan = self._apply_capacity(outcome, user_id, current, stale, refused, photo_by_face)
            accepted += replan.accept
            # Final: a second refusal (or the replay of the first answer, when the new call
            # names the same faces and so carries the same token) is not planned again.
            refused = self._associate(
                outcome, user_id, [by_face[f] for f in replan.accept], in_flight
            )
            self._refuse_at_cap(outcome, refused)

        associated = set(outcome.associated)
        ready = [m for m in in_flight if m.face_id in associated]
        # Each photo records the execution that settles it, so that its own message, arriving
        # in a later batch while that execution runs, starts no second one (see _triage).
        execution = (
            activation_execution_name(user_id, [m.face_id for m in ready]) if ready else None
        )
        for message in ready:
            self.ledger.transition_photo(
                user_id,
                message.photo_id,
                PhotoStatus.ASSOCIATED,
                from_statuses={PhotoStatus.INDEXED},
                activation=execution,
            )
        if not ready:
            return outcome
        newly = [f for f in accepted if f in associated]
        count("FacesAssociated", len(newly))
        # Count what the user holds now rather than add this batch's faces to the plan's count:
        # a batch of the same user running at the same time (MaximumConcurrency 2) may have
        # changed it since. The ledger keeps the count observed last (counted_at), whatever
        # order the two batches write in (Ledger.record_face_count).
        counted_at = time.time_ns() // 1000
        outcome.face_count = len(self._user_face_ids(user_id))
        outcome.counted_at = counted_at
        self._activate(outcome, user_id, ready, replay=not newly)
        return outcome

    # ---- steps ----------------------------------------------------------------------------

    def _triage(
        self,
        outcome: UserOutcome,
        user_id: str,
        messages: list[AssociationMessage],
        photos: dict[str, dict[str, Any]],
    ) -> tuple[list[AssociationMessage], list[AssociationMessage]]:
        """Split by ledger state: (INDEXED = to associate, ASSOCIATED = activation pending).

        FAILED photos are resumed (back to ASSOCIATED, joining the second list) or sent back
        to the index stage (module docstring). Photos already past that are skipped; faces
        left behind by a deletion, by an interrupted rejection or by a stale message are
        deleted (again: DeleteFaces is idempotent).
        """
        pending: list[AssociationMessage] = []
        in_flight: list[AssociationMessage] = []
        failed: list[tuple[AssociationMessage, dict[str, Any]]] = []
        leftovers: list[str] = []
        running: dict[str, bool] = {}  # activation name -> still running (one look per batch)
        for message in {m.face_id: m for m in messages}.values():
            photo = photos.get(message.photo_id)
            status = photo.get("status") if photo else None
            recorded_face = photo.get("face_id") if photo else None
            if photo is None or status == PhotoStatus.DELETED:
                # Deleted (with its user, maybe) while the message waited: the face is an
                # orphan now, and the user must not be recreated for it.
                leftovers.append(message.face_id)
                outcome.skipped.append(message.photo_id)
            elif recorded_face and recorded_face != message.face_id:
                # Stale: the photo was indexed again since (a FAILED photo sent back) and has
                # another face; this one belongs to no photo (DeleteFaces keeps it if owned).
                leftovers.append(message.face_id)
                outcome.skipped.append(message.photo_id)
            elif status == PhotoStatus.INDEXED:
                pending.append(message)
            elif status == PhotoStatus.ASSOCIATED and self._settled_elsewhere(photo, running):
                # Associated with its siblings by an earlier batch whose activation still runs:
                # that execution settles the photo (module docstring, "Siblings").
                outcome.skipped.append(message.photo_id)
            elif status == PhotoStatus.ASSOCIATED:
                in_flight.append(message)
            elif status == PhotoStatus.FAILED:
                failed.append((message, photo))
            else:
                if status == PhotoStatus.REJECTED and photo.get("reason") in _DELETE_FACE_REASONS:
                    leftovers.append(message.face_id)
                outcome.skipped.append(message.photo_id)
        if leftovers:
            self._delete_faces(leftovers)
        if failed:
            retried = FailedPhotos(self.settings, self.rekognition, self.ledger, self.sqs).retry(
                user_id, failed, self._delete_faces
            )
            outcome.resumed += [m.photo_id for m in retried.resumed]
            outcome.requeued += retried.requeued
            outcome.skipped += retried.skipped
            in_flight += retried.resumed
        return pending, in_flight

    def _settled_elsewhere(self, photo: dict[str, Any], running: dict[str, bool]) -> bool:
        """Whether the activation execution the photo records is still running."""
        name = photo.get("activation")
        if not name:
            return False
        if name not in running:
            running[name] = (
                execution_status(self.sfn, self.settings.activation_state_machine_arn, name)
                == "RUNNING"
            )
        return running[name]

    def _locate(
        self,
        outcome: UserOutcome,
        user_id: str,
        pending: list[AssociationMessage],
        in_flight: list[AssociationMessage],
    ) -> list[AssociationMessage]:
        """Where the pending faces stand in the collection; the ones still free to associate.

        Faces already associated to this user (an earlier run died before its ledger write)
        join ``in_flight``; missing or foreign faces are rejected now.
        """
        stored = rk.faces_by_id(
            self.rekognition, self.settings.collection_id, [m.face_id for m in pending]
        )
        candidates: list[AssociationMessage] = []
        for message in pending:
            face = stored.get(message.face_id)
            owner = (face or {}).get("UserId")
            if face is None:
                self._reject(outcome, message, Reason.FACE_NOT_FOUND, "face no longer stored")
            elif owner == user_id:
                in_flight.append(message)
            elif owner:
                self._reject(
                    outcome,
                    message,
                    Reason.ASSOCIATED_TO_A_DIFFERENT_USER,
                    f"face belongs to user {owner}",
                )
            else:
                candidates.append(message)
        return candidates

    def _current_faces(
        self, user_id: str, photo_by_face: dict[str, dict[str, Any]]
    ) -> tuple[list[capacity.Candidate], list[str]]:
        """The user's associated faces with their quality, and the stale ones to remove.

        Stale: still associated although the ledger already rejected or deleted the photo (an
        eviction interrupted between the ledger write and Rekognition).
        """
        current: list[capacity.Candidate] = []
        stale: list[str] = []
        for face in rk.list_user_faces(self.rekognition, self.settings.collection_id, user_id):
            face_id = face["FaceId"]
            photo = photo_by_face.get(face_id)
            status = photo.get("status") if photo else None
            if status in (PhotoStatus.REJECTED, PhotoStatus.DELETED):
                stale.append(face_id)
            else:
                # Unknown quality is never evicted by keep-best: no ledger photo, or a photo
                # still INDEXED (its association, interrupted before the ledger write, is being
                # completed by this very batch; evicting it would leave it ASSOCIATED faceless).
                quality = _num(photo.get("quality")) if photo and status in _LIVE_PHOTO else None
                current.append(capacity.Candidate(face_id=face_id, quality=quality))
        return current, stale

    def _apply_capacity(
        self,
        outcome: UserOutcome,
        user_id: str,
        current: list[capacity.Candidate],
        stale: list[str],
        candidates: list[AssociationMessage],
        photo_by_face: dict[str, dict[str, Any]],
    ) -> capacity.CapacityPlan:
        """Plan the faces-per-user cap, reject the excess and make room (evictions)."""
        s = self.settings
        plan = capacity.plan(
            current,
            [
                capacity.Candidate(face_id=m.face_id, quality=m.quality, order_key=m.indexed_at)
                for m in candidates
            ],
            s.max_faces_per_user,
            s.face_cap_policy,
        )
        by_face = {m.face_id: m for m in candidates}
        for face_id in plan.reject:
            self._reject(
                outcome,
                by_face[face_id],
                Reason.USER_FACE_LIMIT,
                f"user already has {s.max_faces_per_user} faces (policy {s.face_cap_policy})",
            )
        if plan.reject:
            self._delete_faces(plan.reject)
        for face_id in plan.evict:
            photo = photo_by_face[face_id]  # evictable faces always have a ledger photo
            # Ledger first: a replay then sees REJECTED and finishes the eviction (stale).
            if self.ledger.transition_photo(
                user_id,
                str(photo["photo_id"]),
                PhotoStatus.REJECTED,
                from_statuses=_LIVE_PHOTO,
                reason=Reason.REPLACED_BY_BETTER_PHOTO,
                detail="a better-quality photo took its place (policy keep-best)",
            ):
                count_by_reason("PhotosRejected", Reason.REPLACED_BY_BETTER_PHOTO)
        if stale or plan.evict:
            self._remove_from_user(user_id, stale + plan.evict)
            outcome.evicted.extend(plan.evict + stale)
        return plan

    def _activate(
        self, outcome: UserOutcome, user_id: str, ready: list[AssociationMessage], *, replay: bool
    ) -> None:
        """Mark the user UPDATING and start its activation for the faces now associated."""
        s = self.settings
        face_ids = [m.face_id for m in ready]
        outcome.execution = activation_execution_name(user_id, face_ids)
        if activation_exists(self.sfn, s.activation_state_machine_arn, user_id, face_ids):
            # A replay of a batch whose activation already runs or ran, or a batch that took the
            # same faces as a racing one (waiting siblings): that execution owns the user's
            # status from here (flipping it back to UPDATING could outlive the execution).
            return
        assert outcome.face_count is not None
        self.ledger.mark_user_updating(user_id, outcome.face_count, outcome.counted_at)
        begin = functools.partial(
            start_activation,
            self.sfn,
            s.activation_state_machine_arn,
            user_id,
            face_ids,
            [m.photo_id for m in ready],
            s.activation_wait_schedule,
            # Messages sent before uploaded_at was carried fall back to their indexing time.
            upload_lag_seconds([m.uploaded_at or m.indexed_at for m in ready]),
        )
        _, started = begin()
        if not started and (
            execution_status(self.sfn, s.activation_state_machine_arn, outcome.execution)
            != "RUNNING"
        ):
            # A racing batch with the same faces started this execution between the check above
            # and the start, and it has ended already: the UPDATING just written would outlive
            # it. An execution of this batch's own (78 characters, under the 80 allowed)
            # settles the user's status.
            outcome.execution = f"{outcome.execution}-{outcome.counted_at or 0:x}"
            _, started = begin(name=outcome.execution)
        count("ActivationsStarted", int(started))
        logger.info(
            "faces associated; activation started",
            extra={"face_ids": face_ids, "execution": outcome.execution},
        )

    def _ensure_rekognition_user(self, user_id: str, user: dict[str, Any]) -> None:
        """CreateUser unless the user item records that the Rekognition user exists."""
        if user.get("rekognition_user_created_at"):
            return
        # A user forgotten since (deleted behind our back) needs a token of its own: the old
        # one would replay the cached "created" answer for a user that no longer exists.
        incarnation = str(user.get("created_at", ""))
        if user.get("rekognition_user_forgotten_at"):
            incarnation += f"\n{user['rekognition_user_forgotten_at']}"
        rk.create_user(
            self.rekognition,
            self.settings.collection_id,
            user_id,
            keys.create_user_token(user_id, incarnation),
        )
        self.ledger.mark_rekognition_user(user_id, str(user.get("created_at", "")))

    def _associate(
        self,
        outcome: UserOutcome,
        user_id: str,
        accept: list[AssociationMessage],
        in_flight: list[AssociationMessage],
    ) -> list[AssociationMessage]:
        """AssociateFaces in chunks; settle each face it did not associate from the collection.

        Returns the faces refused at the cap, for the caller to plan again or reject.
        """
        s = self.settings
        refused: list[AssociationMessage] = []
        ordered = sorted(accept, key=lambda m: m.face_id)
        size = s.associate_max_face_ids
        for start in range(0, len(ordered), size):
            chunk = ordered[start : start + size]
            face_ids = [m.face_id for m in chunk]
            try:
                response = rk.associate_faces(
                    self.rekognition,
                    s.collection_id,
                    user_id,
                    face_ids,
                    threshold=s.user_match_threshold,
                    token=keys.associate_token(
                        user_id,
                        face_ids,
                        collection_id=s.collection_id,
                        threshold=s.user_match_threshold,
                    ),
                )
            except ClientError as error:
                code = rk.error_code(error)
                if code == "ResourceNotFoundException":
                    # The user is gone (deleted behind our back): the retry creates it again.
                    self.ledger.forget_rekognition_user(user_id)
                    raise
                if code != "ServiceQuotaExceededException" or not self._user_full(user_id):
                    raise
                # The user already holds the cap: nothing of this call was associated.
                failed: dict[str, dict[str, Any]] = {f: {"FaceId": f} for f in face_ids}
            else:
                failed = {
                    f["FaceId"]: f for f in response.get("UnsuccessfulFaceAssociations") or []
                }
            for message in chunk:
                if message.face_id not in failed:
                    # In AssociatedFaces, or in neither list = already associated to this user.
                    outcome.associated.append(message.face_id)
                    in_flight.append(message)
            unsuccessful = [m for m in chunk if m.face_id in failed]
            if unsuccessful:
                refused += self._settle_unsuccessful(
                    outcome, user_id, unsuccessful, failed, in_flight
                )
        return refused

    def _settle_unsuccessful(
        self,
        outcome: UserOutcome,
        user_id: str,
        messages: list[AssociationMessage],
        failed: dict[str, dict[str, Any]],
        in_flight: list[AssociationMessage],
    ) -> list[AssociationMessage]:
        """Decide each face AssociateFaces did not associate by what the collection says now,
        not by its reason (the rule is in the module docstring); return those refused at the cap.
        """
        s = self.settings
        stored = rk.faces_by_id(self.rekognition, s.collection_id, [m.face_id for m in messages])
        full: bool | None = None  # asked only for an unowned face refused as a poor match
        refused: list[AssociationMessage] = []
        unowned: list[str] = []  # refused here for good: deleted, so no orphan
        for message in messages:
            failure = failed[message.face_id]
            face = stored.get(message.face_id)
            owner = (face or {}).get("UserId")
            logger.append_keys(face_id=message.face_id)
            if face is None:
                self._reject(outcome, message, Reason.FACE_NOT_FOUND, "face no longer stored")
            elif owner == user_id:
                outcome.associated.append(message.face_id)
                in_flight.append(message)
            elif owner:
                self._reject(
                    outcome,
                    message,
                    Reason.ASSOCIATED_TO_A_DIFFERENT_USER,
                    f"face belongs to user {owner}",
                )
            elif "LOW_MATCH_CONFIDENCE" not in (failure.get("Reasons") or []):
                refused.append(message)
            else:
                if full is None:
                    full = self._user_full(user_id)
                # At the cap the face could not have been taken anyway; it is not planned
                # again either (keep-best must not evict a settled face for a poor match).
                reason, detail = (
                    (Reason.USER_FACE_LIMIT, f"user already has {s.max_faces_per_user} faces")
                    if full
                    else (
                        Reason.LOW_MATCH_CONFIDENCE,
                        f"match confidence {failure.get('Confidence')} below threshold "
                        f"{s.user_match_threshold}; needs review",
                    )
                )
                self._reject(outcome, message, reason, detail)
                unowned.append(message.face_id)
            logger.remove_keys(["face_id"])
        if unowned:
            self._delete_faces(unowned)
        if refused:
            logger.info(
                "faces refused at the user's face cap",
                extra={"face_ids": [m.face_id for m in refused]},
            )
        return refused

    def _refuse_at_cap(self, outcome: UserOutcome, refused: list[AssociationMessage]) -> None:
        """REJECTED USER_FACE_LIMIT for faces refused at the cap twice; delete them."""
        cap = self.settings.max_faces_per_user
        for message in refused:
            self._reject(
                outcome,
                message,
                Reason.USER_FACE_LIMIT,
                f"user reached {cap} faces while this batch was being associated",
            )
        if refused:
            self._delete_faces([m.face_id for m in refused])

    def _user_face_ids(self, user_id: str) -> list[str]:
        faces = rk.list_user_faces(self.rekognition, self.settings.collection_id, user_id)
        return [face["FaceId"] for face in faces]

    def _user_full(self, user_id: str) -> bool:
        return len(self._user_face_ids(user_id)) >= self.settings.max_faces_per_user

    def _refuse_erasing(
        self, outcome: UserOutcome, user_id: str, messages: list[AssociationMessage]
    ) -> None:
        """The user is being erased: no CreateUser, no AssociateFaces; its waiting photos are
        REJECTED and their faces deleted. A face a racing batch already associated is refused
        by DeleteFaces (still associated) and left to the erasure, which finds it by UserId."""
        detail = "user is being erased; upload the photo again once the erasure has completed"
        for message in messages:
            written = self.ledger.transition_photo(
                user_id,
                message.photo_id,
                PhotoStatus.REJECTED,
                from_statuses={PhotoStatus.INDEXED, PhotoStatus.ASSOCIATED},
                reason=Reason.USER_BEING_ERASED,
                detail=detail,
            )
            outcome.rejected[message.face_id] = Reason.USER_BEING_ERASED
            if written:
                count_by_reason("PhotosRejected", Reason.USER_BEING_ERASED)
        if messages:
            self._delete_faces([m.face_id for m in messages])
        logger.info(
            "user being erased: faces refused", extra={"face_ids": sorted(outcome.rejected)}
        )

    def _reject(
        self,
        outcome: UserOutcome,
        message: AssociationMessage,
        reason: str,
        detail: str,
    ) -> None:
        """Record a rejection decided at association (the caller deletes the face if due)."""
        written = self.ledger.transition_photo(
            message.user_id,
            message.photo_id,
            PhotoStatus.REJECTED,
            from_statuses={PhotoStatus.INDEXED},
            reason=reason,
            detail=detail,
        )
        outcome.rejected[message.face_id] = reason
        if written:
            count_by_reason("PhotosRejected", reason)
            logger.info(
                "face rejected at association",
                extra={"face_id": message.face_id, "reason": reason, "detail": detail},
            )

    def _remove_from_user(self, user_id: str, face_ids: list[str]) -> None:
        s = self.settings
        ordered = sorted(set(face_ids))
        for start in range(0, len(ordered), s.associate_max_face_ids):
            chunk = ordered[start : start + s.associate_max_face_ids]
            rk.disassociate_faces(
                self.rekognition,
                s.collection_id,
                user_id,
                chunk,
                token=keys.disassociate_token(user_id, chunk, collection_id=s.collection_id),
            )
        self._delete_faces(ordered)

    def _delete_faces(self, face_ids: list[str]) -> None:
        failures = rk.delete_faces(self.rekognition, self.settings.collection_id, face_ids)
        count("FacesDeleted", len(set(face_ids)) - len(failures))
        if failures:
            # ASSOCIATED_TO_AN_EXISTING_USER: someone owns the face; keeping it is correct.
            logger.warning("faces kept in the collection", extra={"failures": failures})

    def _record_failures(self, messages: list[AssociationMessage], error: BaseException) -> None:
        """Last delivery: every photo still waiting on this stage ends FAILED, leaving no orphan.

        INDEXED photos never got their face associated: the face is deleted (best effort;
        DeleteFaces refuses a face that did get associated, which is then owned, not orphaned).
        ASSOCIATED photos got their face associated but no activation was started for them
        (the error came after the association): nothing else would ever settle them.
        """
        unowned: list[str] = []
        for message in messages:
            if self._record_failure(message, error, PhotoStatus.INDEXED, "association"):
                unowned.append(message.face_id)
            else:
                self._record_failure(
                    message,
                    error,
                    PhotoStatus.ASSOCIATED,
                    "face associated, activation not started",
                )
        if unowned:
            try:
                self._delete_faces(unowned)
            except (ClientError, BotoCoreError) as delete_error:
                logger.error(
                    "could not delete the faces of failed photos",
                    extra={"face_ids": unowned, "error": rk.describe_error(delete_error)},
                )

    def _record_failure(
        self, message: AssociationMessage, error: BaseException, from_status: str, stage: str
    ) -> bool:
        """Move the photo from ``from_status`` to FAILED; True when written."""
        reason = rk.failure_reason(error)
        try:
            written = self.ledger.transition_photo(
                message.user_id,
                message.photo_id,
                PhotoStatus.FAILED,
                from_statuses={from_status},
                reason=reason,
                detail=f"{stage}: {rk.describe_error(error)} (last delivery; sent to DLQ)",
                # A stale message (the photo has another face now) must not fail the photo.
                face_id=message.face_id,
            )
        except (ClientError, BotoCoreError) as ledger_error:
            logger.error(
                "could not record FAILED; the DLQ message is the only trace",
                extra={"photo_id": message.photo_id, "error": rk.describe_error(ledger_error)},
            )
            return False
        if written:
            count_by_reason("PhotosFailed", reason)
        return written


def _waiting_siblings(
    user_id: str, messages: list[AssociationMessage], photos: dict[str, dict[str, Any]]
) -> list[AssociationMessage]:
    """The user's other photos that are INDEXED (waiting for association) but not in this batch.

    Two batches gathered at the same time (MaximumConcurrency 2) split a user's burst of
    photos between them; a batch cut at its size splits it too. Associating the waiting
    siblings with the batch's own faces makes one AssociateFaces call of the whole burst (up
    to 100 faces) instead of one per batch: fewer calls against the 5 TPS quota, and one
    activation. Their own messages, when they come, find the photos ASSOCIATED under a running
    activation and are skipped, or settle them as any replay does.
    """
    in_batch = {m.photo_id for m in messages}
    siblings = []
    for photo in photos.values():
        if (
            photo.get("status") != PhotoStatus.INDEXED
            or photo.get("photo_id") in in_batch
            or not photo.get("face_id")
        ):
            continue
        siblings.append(
            AssociationMessage(
                user_id=user_id,
                face_id=str(photo["face_id"]),
                photo_id=str(photo["photo_id"]),
                bucket=str(photo.get("bucket") or ""),
                key=str(photo.get("key") or ""),
                quality=_num(photo.get("quality")) or 0.0,
                indexed_at=str(photo.get("indexed_at") or photo.get("updated_at") or ""),
                uploaded_at=photo.get("uploaded_at"),
            )
        )
    return siblings


def execution_status(sfn: Any, state_machine_arn: str, name: str) -> str | None:
    """The status of the activation execution ``name`` (RUNNING, SUCCEEDED...), None if none."""
    try:
        answer = sfn.describe_execution(executionArn=execution_arn(state_machine_arn, name))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            return None
        raise
    return str(answer.get("status"))


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
