"""A labelled photo folder (``<identity>/<photos>``) and its enrollment / probe split."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# Rekognition's UserId pattern (botocore model): a folder name outside it is mapped to one.
_USER_ID_CHARS = re.compile(r"[^a-zA-Z0-9_.\-:]")
MAX_USER_ID_CHARS = 128
_DIGITS = re.compile(r"(\d+)")


class DatasetError(ValueError):
    """The folder cannot be evaluated (missing, empty, wrongly laid out, too big)."""


@dataclass(frozen=True)
class Photo:
    """One file of the folder and the identity its folder names."""

    identity: str
    path: Path

    @property
    def label(self) -> str:
        return f"{self.identity}/{self.path.name}"


@dataclass(frozen=True)
class Dataset:
    """``{identity: photos}``, identities and photos in natural order (``2.jpg`` < ``10.jpg``)."""

    root: Path
    identities: dict[str, list[Photo]]

    @property
    def photos(self) -> list[Photo]:
        return [photo for photos in self.identities.values() for photo in photos]


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders embedded numbers by value: 1, 2, 10 rather than 1, 10, 2."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.lower())
        for part in _DIGITS.split(name)
        if part
    )


def load_folder(root: Path, option: str = "--photos") -> Dataset:
    """Every non-hidden file of every ``root/<identity>/`` folder (files in ``root`` ignored).

    Every file is a photo: the pipeline enrolls whatever is uploaded under a user's prefix, so a
    file Rekognition cannot read is counted as such rather than silently skipped.
    Raises DatasetError when ``root`` is not a folder or holds no ``<identity>/<file>``.
    """
    if not root.is_dir():
        raise DatasetError(f"{option} {root}: not a folder (expected <identity>/<photos> inside)")
    identities: dict[str, list[Photo]] = {}
    folders = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: natural_key(p.name),
    )
    for folder in folders:
        files = sorted(
            (p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
            key=lambda p: natural_key(p.name),
        )
        if files:
            identities[folder.name] = [Photo(folder.name, path) for path in files]
    if not identities:
        raise DatasetError(
            f"{option} {root}: holds no <identity>/<photo> files (one folder per person, "
            "named after the person, with that person's photos inside)"
        )
    return Dataset(root, identities)


@dataclass(frozen=True)
class Split:
    """Which photos enroll whom, and which are searched."""

    enrollment: dict[str, list[Photo]]  # identity -> its first K photos
    genuine: list[Photo]  # the other photos of enrolled identities
    skipped: dict[str, list[Photo]]  # identities with K photos or fewer: not used


def split(dataset: Dataset, enroll: int) -> Split:
    """The first ``enroll`` photos of each identity with more than ``enroll`` photos enroll it;
    its remaining photos are genuine probes."""
    if enroll < 1:
        raise DatasetError(f"--enroll must be at least 1 (got {enroll})")
    enrollment: dict[str, list[Photo]] = {}
    genuine: list[Photo] = []
    skipped: dict[str, list[Photo]] = {}
    for identity, photos in dataset.identities.items():
        if len(photos) > enroll:
            enrollment[identity] = photos[:enroll]
            genuine += photos[enroll:]
        else:
            skipped[identity] = photos
    return Split(enrollment, genuine, skipped)


def user_ids(identities: list[str]) -> dict[str, str]:
    """A valid, distinct Rekognition UserId for each identity (the name itself when valid)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for identity in identities:
        base = _USER_ID_CHARS.sub("_", identity)[:MAX_USER_ID_CHARS] or "_"
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            suffix = f"-{n}"
            candidate = base[: MAX_USER_ID_CHARS - len(suffix)] + suffix
        taken.add(candidate)
        out[identity] = candidate
    return out
