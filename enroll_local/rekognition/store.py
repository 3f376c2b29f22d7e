"""Collections, faces and users: the emulator's state, with no knowledge of the wire format.

User lifecycle (reference §4.1): CREATED (no vector) -> UPDATING after an Associate/Disassociate
-> ACTIVE once ``update_delay_seconds`` have passed. No thread does the update: every read first
calls :meth:`Collection.settle` with the current clock, which completes the updates that are due
(a heap keeps that O(due updates), not O(users)). Until then searches see the previous user
vector, and a user that never had one is not searchable at all.
"""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .vectors import VectorIndex, unit, user_search_vector

# Order of faces for ListFaces: insertion sequence. Dead entries are compacted away once they
# are this fraction of the order list, so paging never scans mostly tombstones.
COMPACT_DEAD_FRACTION = 0.5


@dataclass(slots=True)
class FaceRecord:
    """One stored face (its descriptor lives in the collection's VectorIndex)."""

    face_id: str
    image_id: str
    external_image_id: str | None
    bounding_box: tuple[float, float, float, float]  # width, height, left, top
    confidence: float
    seq: int
    user_id: str | None = None


@dataclass(slots=True)
class UserRecord:
    """One user vector's bookkeeping (its published vector lives in ``user_vectors``)."""

    user_id: str
    internal_id: str  # system-generated UUID: ListUsers' order
    face_ids: list[str] = field(default_factory=list)
    updating_until: float | None = None  # epoch seconds the pending rebuild completes
    has_vector: bool = False


class Collection:
    """One face collection: faces, users, their vectors and the orders that paging needs."""

    def __init__(
        self,
        collection_id: str,
        *,
        arn: str,
        created_at: float,
        face_model_version: str,
        dimension: int,
    ) -> None:
        self.collection_id = collection_id
        self.arn = arn
        self.created_at = created_at
        self.face_model_version = face_model_version
        self.dimension = dimension
        self.faces: dict[str, FaceRecord] = {}
        self.face_vectors = VectorIndex(dimension)
        self.users: dict[str, UserRecord] = {}
        self.user_vectors = VectorIndex(dimension)
        self._next_seq = 0
        self._face_order_ids: list[str] = []
        self._face_order_seqs: list[int] = []
        self._user_order: list[str] = []  # sorted internal ids
        self._user_by_internal: dict[str, str] = {}
        self._pending: list[tuple[float, str]] = []  # heap of (updating_until, user_id)

    # ---- faces -------------------------------------------------------------------------

    def add_face(
        self,
        face_id: str,
        image_id: str,
        external_image_id: str | None,
        bounding_box: tuple[float, float, float, float],
        confidence: float,
        descriptor: np.ndarray,
    ) -> FaceRecord:
        """Store a new face (the caller checked it is not there yet)."""
        record = FaceRecord(
            face_id, image_id, external_image_id, bounding_box, confidence, self._next_seq
        )
        self._next_seq += 1
        self.faces[face_id] = record
        self.face_vectors.put(face_id, descriptor)
        self._face_order_ids.append(face_id)
        self._face_order_seqs.append(record.seq)
        return record

    def delete_face(self, face_id: str) -> None:
        """Remove an unassociated face and its vector."""
        self.faces.pop(face_id, None)
        self.face_vectors.remove(face_id)
        dead = len(self._face_order_ids) - len(self.faces)
        if dead > COMPACT_DEAD_FRACTION * max(1, len(self._face_order_ids)):
            self._compact_face_order()

    def _compact_face_order(self) -> None:
        keep = [
            (fid, seq)
            for fid, seq in zip(self._face_order_ids, self._face_order_seqs, strict=True)
            if (rec := self.faces.get(fid)) is not None and rec.seq == seq
        ]
        self._face_order_ids = [fid for fid, _ in keep]
        self._face_order_seqs = [seq for _, seq in keep]

    def faces_after(self, after_seq: int, limit: int) -> list[FaceRecord]:
        """Up to ``limit`` faces with seq > ``after_seq``, in insertion order."""
        out: list[FaceRecord] = []
        i = bisect.bisect_right(self._face_order_seqs, after_seq)
        while i < len(self._face_order_ids) and len(out) < limit:
            rec = self.faces.get(self._face_order_ids[i])
            if rec is not None and rec.seq == self._face_order_seqs[i]:
                out.append(rec)
            i += 1
        return out

    def has_faces_after(self, after_seq: int) -> bool:
        """Whether any live face comes after ``after_seq``."""
        return bool(self.faces_after(after_seq, 1))

    # ---- users -------------------------------------------------------------------------

    def add_user(self, user_id: str, internal_id: str) -> UserRecord:
        """Create a user with no faces (status CREATED)."""
        user = UserRecord(user_id, internal_id)
        self.users[user_id] = user
        bisect.insort(self._user_order, internal_id)
        self._user_by_internal[internal_id] = user_id
        return user

    def delete_user(self, user_id: str) -> None:
        """Disassociate the user's faces, then drop the user and its vector."""
        user = self.users.pop(user_id)
        for face_id in user.face_ids:
            face = self.faces.get(face_id)
            if face is not None and face.user_id == user_id:
                face.user_id = None
        self.user_vectors.remove(user_id)
        i = bisect.bisect_left(self._user_order, user.internal_id)
        if i < len(self._user_order) and self._user_order[i] == user.internal_id:
            del self._user_order[i]
        self._user_by_internal.pop(user.internal_id, None)

    def users_after(self, after_internal_id: str, limit: int) -> list[UserRecord]:
        """Up to ``limit`` users whose internal id sorts after ``after_internal_id``."""
        i = bisect.bisect_right(self._user_order, after_internal_id)
        ids = self._user_order[i : i + limit]
        return [self.users[self._user_by_internal[iid]] for iid in ids]

    def status(self, user: UserRecord) -> str:
        """UserStatus as of the last :meth:`settle`."""
        if user.updating_until is not None:
            return "UPDATING"
        return "ACTIVE" if user.has_vector else "CREATED"

    def begin_update(self, user: UserRecord, now: float, delay_seconds: float) -> None:
        """Associations changed: the vector is rebuilt ``delay_seconds`` from now."""
        user.updating_until = now + delay_seconds
        heapq.heappush(self._pending, (user.updating_until, user.user_id))

    def settle(self, now: float) -> None:
        """Complete every user update that is due at ``now``."""
        while self._pending and self._pending[0][0] <= now:
            until, user_id = heapq.heappop(self._pending)
            user = self.users.get(user_id)
            # A later update of the same user pushed a later deadline; only that one counts.
            if user is not None and user.updating_until == until:
                self._publish(user)

    def _publish(self, user: UserRecord) -> None:
        vector = self.search_vector(user.face_ids)
        if vector is None:
            self.user_vectors.remove(user.user_id)
            user.has_vector = False
        else:
            self.user_vectors.put(user.user_id, vector)
            user.has_vector = True
        user.updating_until = None

    def search_vector(self, face_ids: list[str]) -> np.ndarray | None:
        """The user vector SearchUsers* compare with: the plain mean of these faces' unit
        descriptors (``vectors.user_search_vector``: a score is then the mean cosine to the
        user's faces, on the face calibration's scale); None when no face is left."""
        live = [fid for fid in face_ids if fid in self.face_vectors]
        if not live:
            return None
        return user_search_vector(np.stack([self.face_vectors.get(fid) for fid in live]))

    def mean_vector(self, face_ids: list[str]) -> np.ndarray | None:
        """AssociateFaces' reference for these faces: L2-normalised mean of their descriptors.

        Why the mean: it is the standard template fusion for face embeddings (the centroid is
        the point closest on average to every enrolled photo, so one odd photo cannot dominate),
        it does not depend on the order faces arrived in, and it is rebuilt from scratch in
        O(faces) whenever associations change, so no incremental state can drift.
        Renormalised here, unlike the search vector: the association threshold's pin
        (calibration.COSINE_AT_ASSOCIATION) was measured as the cosine of a face with the
        renormalised mean of the user's other faces (docs/face-engine.md).
        """
        live = [fid for fid in face_ids if fid in self.face_vectors]
        if not live:
            return None
        stacked = np.stack([self.face_vectors.get(fid) for fid in live])
        return unit(stacked.mean(axis=0))

    # ---- persistence -------------------------------------------------------------------

    def export(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able state, arrays) for persistence."""
        face_ids, face_matrix = self.face_vectors.export()
        user_ids, user_matrix = self.user_vectors.export()
        state = {
            "collection_id": self.collection_id,
            "arn": self.arn,
            "created_at": self.created_at,
            "face_model_version": self.face_model_version,
            "dimension": self.dimension,
            "next_seq": self._next_seq,
            "faces": [
                [
                    r.face_id,
                    r.image_id,
                    r.external_image_id,
                    list(r.bounding_box),
                    r.confidence,
                    r.seq,
                    r.user_id,
                ]
                for r in self.faces.values()
            ],
            "users": [
                [u.user_id, u.internal_id, u.face_ids, u.updating_until, u.has_vector]
                for u in self.users.values()
            ],
            "face_vector_ids": face_ids,
            "user_vector_ids": user_ids,
        }
        return state, {"faces": face_matrix, "users": user_matrix}

    @classmethod
    def restore(cls, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> Collection:
        """Rebuild a collection from :meth:`export` output."""
        col = cls(
            state["collection_id"],
            arn=state["arn"],
            created_at=state["created_at"],
            face_model_version=state["face_model_version"],
            dimension=state["dimension"],
        )
        col._next_seq = state["next_seq"]
        for fid, iid, ext, box, conf, seq, uid in sorted(state["faces"], key=lambda f: f[5]):
            col.faces[fid] = FaceRecord(fid, iid, ext, tuple(box), conf, seq, uid)  # type: ignore[arg-type]
            col._face_order_ids.append(fid)
            col._face_order_seqs.append(seq)
        col.face_vectors = VectorIndex.restore(
            col.dimension, state["face_vector_ids"], arrays["faces"]
        )
        col.user_vectors = VectorIndex.restore(
            col.dimension, state["user_vector_ids"], arrays["users"]
        )
        for uid, internal, face_ids, until, has_vector in state["users"]:
            user = col.add_user(uid, internal)
            user.face_ids = list(face_ids)
            user.has_vector = has_vector
            if until is not None:
                user.updating_until = until
                heapq.heappush(col._pending, (until, uid))
        return col
