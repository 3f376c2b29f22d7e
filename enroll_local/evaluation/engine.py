"""A face engine that detects each distinct image once per evaluation run.

The evaluation sends the same photo through several calls (IndexFaces for the photo policy,
then SearchUsersByImage and SearchFacesByImage as a probe); each would run the detector and the
descriptor again, and with dlib that is 0.1-2 s a photo. Detection depends only on the image's
bytes (the emulator's ``DecodedImage.sha256``), and every engine is deterministic, so the
answer is kept in memory for the run (never on disk) and every call sees the same faces.
"""

from __future__ import annotations

import numpy as np

from enroll_local.rekognition.engines.base import DetectedFace, FaceEngine
from enroll_local.rekognition.images import DecodedImage


class MemoizedEngine:
    """Wraps ``inner``: ``detect`` once per image content, ``similarity`` passed through."""

    def __init__(self, inner: FaceEngine) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.face_model_version = inner.face_model_version
        self._faces: dict[str, list[DetectedFace]] = {}
        self.detections = 0  # how many images the inner engine really looked at

    def detect(self, image: DecodedImage) -> list[DetectedFace]:
        faces = self._faces.get(image.sha256)
        if faces is None:
            faces = self.inner.detect(image)
            self._faces[image.sha256] = faces
            self.detections += 1
        return list(faces)

    def similarity(self, cosine: np.ndarray) -> np.ndarray:
        return self.inner.similarity(cosine)
