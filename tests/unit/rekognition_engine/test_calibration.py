"""The calibrated mappings: monotonic, bounded, and pinned where calibration.py says."""

from __future__ import annotations

import numpy as np
import pytest

from enroll_local.rekognition.engines import calibration


def test_similarity_is_pinned_at_the_default_thresholds() -> None:
    # Given the two calibration cosines, When mapped, Then they land on 75 and 80 exactly.
    sims = calibration.similarity_from_cosine(
        np.array([calibration.COSINE_AT_ASSOCIATION, calibration.COSINE_AT_SEARCH])
    )
    assert sims[0] == pytest.approx(calibration.ASSOCIATION_THRESHOLD, abs=1e-3)
    assert sims[1] == pytest.approx(calibration.SEARCH_THRESHOLD, abs=1e-3)


def test_similarity_is_monotonic_bounded_and_keeps_shape() -> None:
    cosine = np.linspace(-1.0, 1.0, 2001).reshape(1, -1)
    sims = calibration.similarity_from_cosine(cosine)
    assert sims.shape == cosine.shape
    assert sims.dtype == np.float32
    assert np.all(np.diff(sims.ravel().astype(np.float64)) >= 0.0)
    assert float(sims.min()) >= 0.0 and float(sims.max()) <= 100.0
    # Identical faces read as a near-certain match, opposite descriptors as none at all.
    assert float(sims.ravel()[-1]) == pytest.approx(100.0)
    assert float(sims.ravel()[0]) < 1e-6


def test_similarity_clips_out_of_range_cosines_without_overflow() -> None:
    with np.errstate(over="raise"):
        sims = calibration.similarity_from_cosine(np.array([-5.0, 5.0, np.float32(1.0000001)]))
    assert sims.tolist() == pytest.approx(
        calibration.similarity_from_cosine(np.array([-1.0, 1.0, 1.0])).tolist()
    )


def test_genuine_and_impostor_medians_read_like_rekognition() -> None:
    # The measured medians (docs/face-engine.md): genuine 0.958, impostor 0.824.
    genuine, impostor = calibration.similarity_from_cosine(np.array([0.958, 0.824]))
    assert genuine > calibration.SEARCH_THRESHOLD + 10
    assert impostor < calibration.ASSOCIATION_THRESHOLD - 40


@pytest.mark.parametrize("detector", ["hog", "cnn"])
def test_detection_confidence_maps_scores_onto_0_100(detector: str) -> None:
    at_threshold = calibration.detection_confidence(0.0, detector)
    assert at_threshold == pytest.approx(95.26, abs=0.01)
    scores = [-1.0, 0.0, 0.5, 1.0, 3.0]
    confidences = [calibration.detection_confidence(s, detector) for s in scores]
    assert confidences == sorted(confidences)
    assert all(0.0 <= c <= 100.0 for c in confidences)
    assert confidences[3] > 99.8


def test_detection_confidence_rejects_unknown_detector() -> None:
    with pytest.raises(KeyError):
        calibration.detection_confidence(1.0, "mtcnn")


def test_sharpness_mapping_is_log_scaled_and_clamped() -> None:
    low, high = calibration.SHARPNESS_RATIO_AT_0, calibration.SHARPNESS_RATIO_AT_100
    assert calibration.sharpness_from_laplacian_ratio(0.0) == 0.0
    assert calibration.sharpness_from_laplacian_ratio(low) == 0.0
    assert calibration.sharpness_from_laplacian_ratio(high) == pytest.approx(100.0)
    assert calibration.sharpness_from_laplacian_ratio(high * 10) == 100.0
    middle = calibration.sharpness_from_laplacian_ratio(float(np.sqrt(low * high)))
    assert middle == pytest.approx(50.0)


def test_brightness_mapping_is_monotonic_and_spreads_the_dark_end() -> None:
    lumas = [0.0, 0.07, 0.12, 0.25, 0.53, 1.0]
    values = [calibration.brightness_from_mean_luma(v) for v in lumas]
    assert values == sorted(values)
    assert values[0] == 0.0 and values[-1] == pytest.approx(100.0)
    # A dim selfie (12 % luma) reads well above 12, a well-lit face in the 70s.
    assert 30.0 < values[2] < 40.0
    assert 70.0 < values[4] < 75.0
    assert calibration.brightness_from_mean_luma(-0.1) == 0.0
    assert calibration.brightness_from_mean_luma(1.5) == pytest.approx(100.0)
