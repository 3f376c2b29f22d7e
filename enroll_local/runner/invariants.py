"""The pipeline's promises, checked on a whole stack: what must hold once it is quiet.

- every photo (each object version under the prefix) has exactly one ledger item, in a terminal
  state (ACTIVE, REJECTED, FAILED, DELETED);
- no face in the collection without a user;
- no user over ``max_faces_per_user`` faces;
- no duplicate face: one face per photo (ExternalImageId), and no face claimed by two photos;
- every user with an ACTIVE photo is ACTIVE, in the ledger and in Rekognition, and holds the
  face of each of its ACTIVE photos.

Used by the fault suite (tests/faults) after each scenario, and by anyone who wants to know
whether a local stack kept its promises (``check_invariants(stack).violations()``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from enroll_local.runner.ledger_report import TERMINAL_PHOTO_STATES, read_ledger
from enrollment import keys


@dataclass
class InvariantReport:
    """What was found; every list empty means every promise held."""

    photos: int = 0
    faces: int = 0
    users: int = 0
    #: Object versions without any ledger item ("key@version").
    photos_without_outcome: list[str] = field(default_factory=list)
    #: Object versions with more than one ledger item.
    photos_with_several_items: list[str] = field(default_factory=list)
    #: Ledger photos not in a terminal state ("key: STATUS").
    photos_not_terminal: list[str] = field(default_factory=list)
    #: Face ids in the collection that no user holds.
    faces_without_user: list[str] = field(default_factory=list)
    #: "user: n faces" for each user over the cap.
    users_over_cap: list[str] = field(default_factory=list)
    #: Photos (ExternalImageId) with several faces, or face ids claimed by several photos.
    duplicate_faces: list[str] = field(default_factory=list)
    #: Users with an ACTIVE photo that are not ACTIVE ("user: ledger X, rekognition Y").
    active_photo_users_not_active: list[str] = field(default_factory=list)
    #: ACTIVE photos whose face their user does not hold.
    active_photos_not_held: list[str] = field(default_factory=list)

    def violations(self) -> dict[str, list[str]]:
        """Only the broken promises, by name."""
        return {
            name: value for name, value in vars(self).items() if isinstance(value, list) and value
        }


def check_invariants(stack: Any, *, max_faces_per_user: int | None = None) -> InvariantReport:
    """Check every promise on a started ``LocalStack`` (best when it is idle)."""
    endpoints, clients = stack.endpoints, stack.clients
    cap = max_faces_per_user or _max_faces_per_user(stack)
    report = InvariantReport()

    versions = _object_versions(clients.s3, endpoints.bucket, endpoints.prefix)
    ledger = read_ledger(clients.dynamodb, endpoints.table)
    items_by_photo: dict[str, list[dict[str, Any]]] = {}
    for photo in ledger.photos:
        items_by_photo.setdefault(str(photo.get("photo_id")), []).append(photo)
    report.photos = len(versions)
    for key, version in versions:
        label = f"{key}@{version}"
        items = items_by_photo.get(keys.photo_id(endpoints.bucket, key, version), [])
        if not items:
            report.photos_without_outcome.append(label)
        elif len(items) > 1:
            report.photos_with_several_items.append(label)
    for photo in ledger.photos:
        if photo.get("status") not in TERMINAL_PHOTO_STATES:
            report.photos_not_terminal.append(f"{photo.get('key')}: {photo.get('status')}")

    faces = _all_faces(clients.rekognition, endpoints.collection_id)
    report.faces = len(faces)
    held: dict[str, set[str]] = {}
    for face in faces:
        user = face.get("UserId")
        if user:
            held.setdefault(user, set()).add(face["FaceId"])
        else:
            report.faces_without_user.append(face["FaceId"])
    report.users_over_cap = [
        f"{user}: {len(ids)} faces" for user, ids in sorted(held.items()) if len(ids) > cap
    ]
    per_image = Counter(face.get("ExternalImageId") for face in faces)
    report.duplicate_faces = [
        f"photo {image}: {n} faces" for image, n in sorted(per_image.items()) if image and n > 1
    ]
    claimed = Counter(
        str(p["face_id"])
        for p in ledger.photos
        if p.get("face_id") and p.get("status") not in ("REJECTED", "FAILED", "DELETED")
    )
    report.duplicate_faces += [
        f"face {face_id}: claimed by {n} photos" for face_id, n in claimed.items() if n > 1
    ]

    users = ledger.users_by_id()
    report.users = len(users)
    rekognition_status = _rekognition_user_status(clients.rekognition, endpoints.collection_id)
    active_users = sorted({str(p["user_id"]) for p in ledger.photos if p.get("status") == "ACTIVE"})
    for user in active_users:
        in_ledger = (users.get(user) or {}).get("status")
        in_rekognition = rekognition_status.get(user)
        if in_ledger != "ACTIVE" or in_rekognition != "ACTIVE":
            report.active_photo_users_not_active.append(
                f"{user}: ledger {in_ledger}, rekognition {in_rekognition}"
            )
    for photo in ledger.photos:
        if photo.get("status") == "ACTIVE":
            user = str(photo["user_id"])
            if photo.get("face_id") not in held.get(user, set()):
                report.active_photos_not_held.append(f"{photo.get('key')}: {photo.get('face_id')}")
    return report


def _max_faces_per_user(stack: Any) -> int:
    value = stack.lambda_environment().get("MAX_FACES_PER_USER")
    return int(value) if value else 100


def _object_versions(s3: Any, bucket: str, prefix: str) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            version_id = version.get("VersionId")
            found.append((version["Key"], None if version_id in (None, "null") else version_id))
    return found


def _all_faces(rekognition: Any, collection_id: str) -> list[dict[str, Any]]:
    faces: list[dict[str, Any]] = []
    for page in rekognition.get_paginator("list_faces").paginate(CollectionId=collection_id):
        faces.extend(page.get("Faces", []))
    return faces


def _rekognition_user_status(rekognition: Any, collection_id: str) -> dict[str, str]:
    status: dict[str, str] = {}
    for page in rekognition.get_paginator("list_users").paginate(CollectionId=collection_id):
        for user in page.get("Users", []):
            status[user["UserId"]] = user.get("UserStatus", "")
    return status
