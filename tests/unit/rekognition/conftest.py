"""Fixtures for the emulator core: a synthetic engine, a hand-driven clock, photo factories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from enroll_local.rekognition.engines.synthetic import SyntheticEngine, make_synthetic_photo
from enroll_local.rekognition.service import EmulatorConfig, RekognitionEmulator

COLLECTION = "faces"


class Clock:
    """A clock tests move by hand, so UPDATING -> ACTIVE needs no sleeping."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_emulator(clock: Clock) -> Callable[..., RekognitionEmulator]:
    def build(**config: Any) -> RekognitionEmulator:
        s3_reader = config.pop("s3_reader", None)
        data_dir = config.pop("data_dir", None)
        return RekognitionEmulator(
            SyntheticEngine(),
            EmulatorConfig(**config),
            s3_reader=s3_reader,
            data_dir=data_dir,
            clock=clock,
        )

    return build


@pytest.fixture
def emulator(make_emulator: Callable[..., RekognitionEmulator]) -> RekognitionEmulator:
    em = make_emulator()
    em.dispatch("CreateCollection", {"CollectionId": COLLECTION})
    return em


_seed = iter(range(1, 1_000_000))


def photo(*faces: dict[str, Any], fmt: str = "JPEG", size: tuple[int, int] = (320, 320)) -> bytes:
    """A synthetic photo of ``faces``; every call gives different bytes."""
    return make_synthetic_photo(list(faces), fmt=fmt, size=size, seed=next(_seed))


def index(
    em: RekognitionEmulator, identity: str, variant: int = 0, external_id: str | None = None
) -> str:
    """Index one photo of ``identity`` and return its FaceId."""
    params: dict[str, Any] = {
        "CollectionId": COLLECTION,
        "Image": {"Bytes": photo({"identity": identity, "variant": variant})},
    }
    if external_id:
        params["ExternalImageId"] = external_id
    records = em.dispatch("IndexFaces", params)["FaceRecords"]
    assert len(records) == 1
    return str(records[0]["Face"]["FaceId"])
