"""The faces-per-user cap: which new faces fit, which are refused, which old ones make room.

Rekognition allows at most 100 faces per user vector. Pure planning, no I/O: the associate step
feeds it the user's current faces and the batch's new ones and carries out the plan.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """A face with the quality used to rank it (0..100; None = unknown, never evicted)."""

    face_id: str
    quality: float | None
    order_key: str = ""  # arrival order for the reject policy (e.g. indexed_at), then face_id


@dataclass(frozen=True)
class CapacityPlan:
    accept: list[str]  # new faces to associate
    reject: list[str]  # new faces refused: USER_FACE_LIMIT
    evict: list[str]  # current faces to disassociate and delete: REPLACED_BY_BETTER_PHOTO


def plan(
    current: list[Candidate], incoming: list[Candidate], max_faces: int, policy: str
) -> CapacityPlan:
    """Decide how ``incoming`` faces fit next to the ``current`` ones under ``max_faces``.

    ``reject``: first come, first served (by ``order_key``); faces past the cap are refused.
    ``keep-best``: the user keeps the ``max_faces`` best faces overall; a new face replaces the
    worst current one only when its quality is strictly higher (ties keep what is there, so a
    replay never churns). Faces of unknown quality are never evicted. The result is a pure
    function of its inputs, so a replayed batch gets the same plan.
    """
    if max_faces < 1:
        raise ValueError("max_faces must be >= 1")
    ordered = sorted(incoming, key=lambda c: (c.order_key, c.face_id))
    free = max(0, max_faces - len(current))
    if policy == "reject":
        return CapacityPlan(
            accept=[c.face_id for c in ordered[:free]],
            reject=[c.face_id for c in ordered[free:]],
            evict=[],
        )
    if policy != "keep-best":
        raise ValueError(f"unknown face cap policy {policy!r}")

    # Best new faces first; the free slots go to them before anything is replaced.
    by_quality = sorted(ordered, key=lambda c: (-(c.quality or 0.0), c.order_key, c.face_id))
    accept = [c.face_id for c in by_quality[:free]]
    waiting = by_quality[free:]
    evictable = sorted(
        (c for c in current if c.quality is not None),
        key=lambda c: (c.quality or 0.0, c.face_id),
    )
    evict: list[str] = []
    reject: list[str] = []
    for new in waiting:
        worst = evictable[0] if evictable else None
        if worst is not None and (new.quality or 0.0) > (worst.quality or 0.0):
            evictable.pop(0)
            evict.append(worst.face_id)
            accept.append(new.face_id)
        else:
            reject.append(new.face_id)
    return CapacityPlan(accept=accept, reject=reject, evict=evict)
