"""Pose, landmarks and quality from points and pixels (no dlib model needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from enroll_local.rekognition.engines.calibration import brightness_from_mean_luma
from enroll_local.rekognition.engines.dlib_engine import (
    CHIP_SIZE_PX,
    chip_quality,
    face_geometry,
    unit_descriptor,
)

# dlib's 5-point order (two corners of the image-right eye, two of the image-left eye, nose
# base) placed on dlib's mean face, in a 1000 px frame.
FRONTAL = np.array([[858.5, 216.4], [645.6, 231.7], [121.7, 216.4], [334.6, 231.7], [490.1, 628.1]])


def _rotate(points: np.ndarray, degrees: float) -> np.ndarray:
    angle = math.radians(degrees)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    centre = points.mean(axis=0)
    return (points - centre) @ rotation.T + centre


def test_frontal_mean_face_has_a_neutral_pose() -> None:
    pose = face_geometry(FRONTAL).pose
    assert pose.roll == pytest.approx(0.0, abs=0.5)
    assert pose.yaw == pytest.approx(0.0, abs=0.5)
    assert pose.pitch == pytest.approx(0.0, abs=3.0)


@pytest.mark.parametrize("degrees", [-30.0, -10.0, 15.0, 40.0])
def test_roll_follows_an_in_plane_rotation(degrees: float) -> None:
    pose = face_geometry(_rotate(FRONTAL, degrees)).pose
    assert pose.roll == pytest.approx(degrees, abs=0.5)
    # Rotating in the image plane is not a turn or a nod.
    assert pose.yaw == pytest.approx(0.0, abs=0.5)
    assert pose.pitch == pytest.approx(face_geometry(FRONTAL).pose.pitch, abs=0.5)


def test_yaw_sign_follows_the_nose_and_grows_with_the_offset() -> None:
    def yaw_for(shift_px: float) -> float:
        shifted = FRONTAL.copy()
        shifted[4, 0] += shift_px
        return face_geometry(shifted).pose.yaw

    assert yaw_for(60.0) > 0.0 > yaw_for(-60.0)
    assert yaw_for(120.0) > yaw_for(60.0)
    assert abs(yaw_for(1e6)) < 90.0


def test_pitch_is_positive_when_the_nose_rises_towards_the_eyes() -> None:
    up, down = FRONTAL.copy(), FRONTAL.copy()
    up[4, 1] -= 100.0
    down[4, 1] += 100.0
    assert face_geometry(up).pose.pitch > 10.0
    assert face_geometry(down).pose.pitch < -10.0


def test_landmarks_are_rekognition_types_in_image_order() -> None:
    landmarks = face_geometry(FRONTAL).landmarks
    assert set(landmarks) == {"eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "nose"}
    assert landmarks["eyeLeft"][0] < landmarks["nose"][0] < landmarks["eyeRight"][0]
    assert landmarks["mouthLeft"][0] < landmarks["mouthRight"][0]
    # Mouth below the nose, nose below the eyes (image y grows downwards).
    assert landmarks["mouthLeft"][1] > landmarks["nose"][1] > landmarks["eyeLeft"][1]
    # The estimated mouth corners sit where dlib's mean face has them (within 3 % of the frame).
    assert landmarks["mouthLeft"] == pytest.approx((254.1, 780.2), abs=30.0)
    assert landmarks["mouthRight"] == pytest.approx((726.1, 780.2), abs=30.0)


def test_eye_order_does_not_depend_on_dlibs_part_order() -> None:
    swapped = FRONTAL[[2, 3, 0, 1, 4]]
    assert face_geometry(swapped) == face_geometry(FRONTAL)


def test_degenerate_points_do_not_crash() -> None:
    geometry = face_geometry(np.zeros((5, 2)))
    assert all(math.isfinite(v) for v in (geometry.pose.roll, geometry.pose.yaw))


def _chip(values: np.ndarray) -> np.ndarray:
    return np.repeat(values[:, :, None], 3, axis=2).astype(np.uint8)


def test_brightness_comes_from_the_mean_luma() -> None:
    flat = _chip(np.full((CHIP_SIZE_PX, CHIP_SIZE_PX), 51))
    quality = chip_quality(flat)
    assert quality.brightness == pytest.approx(brightness_from_mean_luma(0.2), abs=0.01)
    assert quality.sharpness == 0.0  # a flat patch has no detail at all


def test_sharpness_drops_when_the_same_face_is_blurred() -> None:
    rng = np.random.default_rng(7)
    detail = rng.integers(40, 220, size=(CHIP_SIZE_PX, CHIP_SIZE_PX)).astype(np.float64)
    blurred = detail.copy()
    for _ in range(10):  # repeated 3x3 box blur ~ a Gaussian of sigma ~2.6 px
        padded = np.pad(blurred, 1, mode="edge")
        blurred = (
            sum(
                padded[dy : dy + CHIP_SIZE_PX, dx : dx + CHIP_SIZE_PX]
                for dy in range(3)
                for dx in range(3)
            )
            / 9.0
        )
    sharp_q, blur_q = chip_quality(_chip(detail)), chip_quality(_chip(blurred))
    assert sharp_q.sharpness > 90.0
    assert blur_q.sharpness < sharp_q.sharpness - 25.0


def test_dark_but_detailed_face_reads_dark_not_blurry() -> None:
    rng = np.random.default_rng(3)
    detail = rng.integers(40, 220, size=(CHIP_SIZE_PX, CHIP_SIZE_PX)).astype(np.float64)
    bright, dark = chip_quality(_chip(detail)), chip_quality(_chip(detail / 6.0))
    assert dark.brightness < bright.brightness - 25.0
    assert dark.sharpness == pytest.approx(bright.sharpness, abs=5.0)


def test_unit_descriptor_normalises_to_float32_unit_length() -> None:
    vector = unit_descriptor(np.arange(1, 129, dtype=np.float64))
    assert vector.dtype == np.float32
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("bad", [np.zeros(128), np.full(128, np.nan)])
def test_unit_descriptor_refuses_a_vector_without_direction(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="no direction"):
        unit_descriptor(bad)
