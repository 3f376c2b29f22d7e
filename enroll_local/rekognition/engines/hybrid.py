"""Synthetic faces for test images, the real dlib model for every other photo.

The local runner uses this engine so that one collection can hold both the fast synthetic test
photos and real photos dropped by a user. Both engines produce 128-d unit descriptors; the
synthetic ones sit at cosine ~0.93 within an identity and ~0 across identities, so any sane
calibration (including dlib's) keeps them apart from each other and from real faces.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..images import DecodedImage
from .base import DetectedFace, FaceEngine
from .synthetic import DIMENSION, FACE_MODEL_VERSION, SyntheticEngine, read_spec


class HybridEngine:
    """Route each image to the synthetic engine when it carries a spec, else to dlib."""

    name = "hybrid"
    dimension = DIMENSION
    face_model_version = FACE_MODEL_VERSION

    def __init__(self, real_engine: FaceEngine | None = None) -> None:
        self._synthetic = SyntheticEngine()
        self._real: Any = real_engine  # loaded on first real photo: the dlib model takes seconds

    def _real_engine(self) -> FaceEngine:
        if self._real is None:
            from .dlib_engine import DlibEngine

            self._real = DlibEngine()
        return self._real

    def detect(self, image: DecodedImage) -> list[DetectedFace]:
        """Faces from the synthetic spec if the image has one, else from the real model."""
        if read_spec(image.metadata) is not None:
            return self._synthetic.detect(image)
        return self._real_engine().detect(image)

    def similarity(self, cosine: np.ndarray) -> np.ndarray:
        """The real engine's calibration: it is the one that must be right for real photos."""
        return self._real_engine().similarity(cosine)
