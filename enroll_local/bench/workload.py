"""The load benchmark's workload: who uploads how many photos, and which arrive how.

Users have 1 to ``users_max`` photos each, drawn uniformly from a seeded RNG, so with the default
120 some users pass Rekognition's cap of 100 faces and the pipeline's cap policy must act. About
one photo in ``FACELESS_EVERY`` shows nobody, so the rejection path runs at scale too. Users are
split whole between the backfill (objects already in the bucket) and live uploads (each user's
photos put together, as a phone app uploading an album would): a user's photos arrive together
either way, which is what lets the associate stage batch them.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

from enroll_local.rekognition.engines.synthetic import make_synthetic_photo

#: One photo in this many has no face (it must end REJECTED with a reason, not vanish).
FACELESS_EVERY = 97
#: Small photos keep 10,000 objects cheap in the local S3; the synthetic engine reads the face
#: from the metadata, and the box still passes the pipeline's minimum face size.
PHOTO_SIZE = (200, 200)


@dataclass(frozen=True)
class PlannedPhoto:
    user_id: str
    index: int  # the photo's number within its user
    faceless: bool

    @property
    def name(self) -> str:
        return f"{self.index:03d}.jpg"

    def key(self, prefix: str) -> str:
        return f"{prefix}{self.user_id}/{self.name}"

    def body(self) -> bytes:
        """The photo's bytes, made on demand (10,000 photos are not held in memory)."""
        faces = [] if self.faceless else [{"identity": self.user_id, "variant": self.index}]
        seed = zlib.crc32(f"{self.user_id}/{self.index}".encode())  # stable across runs
        return make_synthetic_photo(faces, size=PHOTO_SIZE, seed=seed)


@dataclass(frozen=True)
class PlannedUser:
    user_id: str
    photos: tuple[PlannedPhoto, ...]
    live: bool


@dataclass(frozen=True)
class Workload:
    users: tuple[PlannedUser, ...]

    @property
    def photos(self) -> int:
        return sum(len(user.photos) for user in self.users)

    def backfill_photos(self) -> list[PlannedPhoto]:
        return [photo for user in self.users if not user.live for photo in user.photos]

    def live_users(self) -> list[PlannedUser]:
        return [user for user in self.users if user.live]

    def users_over(self, cap: int) -> int:
        return sum(1 for user in self.users if len(user.photos) > cap)


def plan_workload(
    photos: int, *, users_max: int = 120, live_fraction: float = 0.3, seed: int = 7
) -> Workload:
    """Users with 1..users_max photos until ``photos`` are planned (the last user is cut to fit).

    About ``live_fraction`` of the photos belong to users who upload live; the others are in
    the bucket before the run starts and reach the pipeline through the backfill.
    """
    if photos < 1 or users_max < 1:
        raise ValueError("photos and users_max must be at least 1")
    if not 0.0 <= live_fraction <= 1.0:
        raise ValueError("live_fraction must be between 0 and 1")
    rng = random.Random(seed)
    users: list[PlannedUser] = []
    planned = live_planned = 0
    counter = 0
    while planned < photos:
        count = min(rng.randint(1, users_max), photos - planned)
        user_id = f"user-{len(users):05d}"
        # Live until the live share is reached, interleaved with backfill users so both kinds
        # include large and small albums.
        live = live_planned < live_fraction * photos and rng.random() < live_fraction * 1.5
        batch = []
        for index in range(count):
            counter += 1
            batch.append(PlannedPhoto(user_id, index, faceless=counter % FACELESS_EVERY == 0))
        users.append(PlannedUser(user_id, tuple(batch), live))
        planned += count
        live_planned += count if live else 0
    return Workload(tuple(users))
