"""Downscaling before detection (no dlib model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from enroll_local.rekognition.engines.dlib_engine import DlibEngine, DlibSettings
from enroll_local.rekognition.images import DecodedImage


def _image(height: int, width: int) -> DecodedImage:
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[height // 4 : height // 2, width // 4 : width // 2] = 200  # something to resample
    return DecodedImage(pixels=pixels, format="JPEG", sha256="0" * 64)


def test_large_photo_is_reduced_to_the_detection_size_keeping_its_aspect() -> None:
    engine = DlibEngine(DlibSettings(detect_max_side_px=1024))
    pixels, scale = engine.detection_image(_image(3088, 2320))
    assert pixels.shape == (1024, 769, 3)
    assert pixels.dtype == np.uint8
    assert scale == pytest.approx(769 / 2320)


def test_small_photo_is_left_alone() -> None:
    engine = DlibEngine(DlibSettings(detect_max_side_px=1024))
    image = _image(266, 200)
    pixels, scale = engine.detection_image(image)
    assert scale == 1.0
    np.testing.assert_array_equal(pixels, image.pixels)
    assert pixels.flags["C_CONTIGUOUS"]  # dlib needs contiguous memory


def test_settings_defaults_are_the_documented_costs() -> None:
    settings = DlibSettings()
    assert settings.detect_max_side_px == 1024
    assert settings.hog_fallback_upsample == 1
    assert settings.cnn_max_side_px == 512
    assert settings.max_faces == 100
