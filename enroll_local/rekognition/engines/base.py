"""The face-engine contract shared by the synthetic and the real (dlib) engines.

The emulator core never looks at pixels itself: it asks an engine for the faces in a decoded
image, each with a unit-length descriptor, and turns descriptor similarity into Rekognition's
0-100 scale with the engine's own calibrated mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..images import DecodedImage


@dataclass(frozen=True)
class BoundingBox:
    """Ratios of the image width/height, as Rekognition reports them (may leave 0..1 at edges)."""

    width: float
    height: float
    left: float
    top: float


@dataclass(frozen=True)
class Pose:
    roll: float  # degrees, -180..180
    yaw: float
    pitch: float


@dataclass(frozen=True)
class Quality:
    brightness: float  # 0..100
    sharpness: float  # 0..100


@dataclass(frozen=True)
class Landmark:
    type: str  # one of Rekognition's LandmarkType enum values, e.g. "eyeLeft", "nose"
    x: float  # ratio of image width
    y: float  # ratio of image height


@dataclass(frozen=True)
class DetectedFace:
    """One face as an engine sees it. ``descriptor`` is float32, unit L2 norm."""

    bounding_box: BoundingBox
    confidence: float  # 0..100, detection confidence
    landmarks: tuple[Landmark, ...]
    pose: Pose
    quality: Quality
    descriptor: np.ndarray
    # Optional extra attributes for DetectionAttributes=ALL, already in Rekognition's shape
    # (e.g. {"Smile": {"Value": False, "Confidence": 80.0}}); engines may leave it empty.
    attributes: dict[str, object] = field(default_factory=dict)

    @property
    def area(self) -> float:
        return self.bounding_box.width * self.bounding_box.height


class FaceEngine(Protocol):
    """What the emulator needs from a face model."""

    name: str  # e.g. "synthetic", "dlib"
    dimension: int  # descriptor length
    face_model_version: str  # reported as FaceModelVersion / IndexFacesModelVersion

    def detect(self, image: DecodedImage) -> list[DetectedFace]:
        """Every face found in ``image``, largest bounding box first, descriptors included."""
        ...

    def similarity(self, cosine: np.ndarray) -> np.ndarray:
        """Map cosine similarity of unit descriptors (-1..1) to Rekognition's 0..100 scale.

        Monotonic; calibrated so that the service's default thresholds (80 for search, 75 for
        association) separate the same person from different people.
        """
        ...
