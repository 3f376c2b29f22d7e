"""Calibrated mappings of the dlib engine's raw numbers onto Rekognition's 0..100 scales.

Each constant says how it was derived. The similarity constants come from
``python -m tests.benchmarks.calibrate`` over ``../shared/data/faces`` (19 identities,
3-10 photos each); docs/face-engine.md records the measured distributions and rates. Rerun the
script after changing the detector, the chip geometry or the model, and update both.
"""

from __future__ import annotations

import math

import numpy as np

# -- Similarity ---------------------------------------------------------------------------
# Rekognition's default thresholds: 80 for SearchFaces*/SearchUsers*, 75 for AssociateFaces.
SEARCH_THRESHOLD = 80.0
ASSOCIATION_THRESHOLD = 75.0

# The mapping is a logistic curve in cosine similarity of unit descriptors, rescaled so that
# identical descriptors (cosine 1, e.g. the same photo indexed twice) read exactly 100:
#     similarity = 100 * sigmoid(SLOPE * (cosine - MIDPOINT)) / sigmoid(SLOPE * (1 - MIDPOINT))
# SLOPE and MIDPOINT are solved (below) so that two cosines read off the distributions land on
# the default thresholds. Measured by tests/benchmarks/calibrate.py on ../shared/data/faces
# (133 photos, 19 identities; 467 genuine and 8,311 impostor pairs): genuine cosine min 0.878 /
# p5 0.919 / median 0.958, impostor median 0.824 / p99 0.900 / max 0.932. Pairwise trade-off:
# cosine 0.90 keeps 98.9 % of genuine pairs and admits 1.0 % of impostors, 0.91 -> 97.9 % /
# 0.22 %, 0.92 -> 94.4 % / 0.05 %, 0.94 -> 81 % / 0 %.
#   COSINE_AT_ASSOCIATION (-> 75) = 0.91: AssociateFaces compares a new face with the user's
#       other faces, where a false rejection loses an enrollment photo and the user vector
#       itself separates better (face vs leave-one-out user mean: genuine min 0.920);
#   COSINE_AT_SEARCH (-> 80) = 0.92: search is the stricter of the two, as in Rekognition, at
#       about 1 false match in 2,000 impostor pairs on this set.
# Genuine pairs (median cosine 0.958) then read ~93, impostor pairs (median 0.824) ~23.
COSINE_AT_ASSOCIATION = 0.91
COSINE_AT_SEARCH = 0.92


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _solve_logistic(c1: float, p1: float, c2: float, p2: float) -> tuple[float, float]:
    """(slope, midpoint) with sigmoid(s(c - m)) / sigmoid(s(1 - m)) == p at c1 and c2 (Newton)."""

    def residual(slope: float, mid: float) -> tuple[float, float]:
        top = _sigmoid(slope * (1.0 - mid))
        return (
            _sigmoid(slope * (c1 - mid)) / top - p1,
            _sigmoid(slope * (c2 - mid)) / top - p2,
        )

    # Start from the plain logistic through both points (exact when the rescaling is ~1).
    logit = lambda p: math.log(p / (1.0 - p))  # noqa: E731
    slope = (logit(p2) - logit(p1)) / (c2 - c1)
    mid = c1 - logit(p1) / slope
    for _ in range(100):
        f1, f2 = residual(slope, mid)
        if abs(f1) < 1e-12 and abs(f2) < 1e-12:
            break
        h = 1e-7
        a1, b1 = residual(slope + h, mid)
        a2, b2 = residual(slope, mid + h)
        j11, j12, j21, j22 = (a1 - f1) / h, (a2 - f1) / h, (b1 - f2) / h, (b2 - f2) / h
        det = j11 * j22 - j12 * j21
        slope -= (j22 * f1 - j12 * f2) / det
        mid -= (-j21 * f1 + j11 * f2) / det
    return slope, mid


# Solved at import (microseconds): about 25.45 and 0.8725 for the cosines above.
SIMILARITY_SLOPE, SIMILARITY_MIDPOINT = _solve_logistic(
    COSINE_AT_ASSOCIATION,
    ASSOCIATION_THRESHOLD / 100.0,
    COSINE_AT_SEARCH,
    SEARCH_THRESHOLD / 100.0,
)
_SIMILARITY_AT_ONE = _sigmoid(SIMILARITY_SLOPE * (1.0 - SIMILARITY_MIDPOINT))


def similarity_from_cosine(cosine: np.ndarray) -> np.ndarray:
    """Map cosine similarity (-1..1) of unit descriptors to 0..100, monotonically increasing."""
    c = np.clip(np.asarray(cosine, dtype=np.float64), -1.0, 1.0)
    # Written with exp of a non-positive number on each branch so large slopes cannot overflow.
    z = SIMILARITY_SLOPE * (c - SIMILARITY_MIDPOINT)
    e = np.exp(-np.abs(z))
    logistic = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return np.clip(100.0 * logistic / _SIMILARITY_AT_ONE, 0.0, 100.0).astype(np.float32)


# -- Detection confidence -----------------------------------------------------------------
# dlib reports an SVM margin (HOG) or a CNN score (MMOD); both detectors report a face when the
# score is >= 0. Rekognition gives a clearly visible face 99.9+ and anything it reports at all
# stays above ~90, so: confidence = 100 * sigmoid(OFFSET + SLOPE * score).
# OFFSET 3.0 puts a face exactly at the detector's threshold at 95.3; SLOPE 4.0 puts a score of
# 0.5 at 99.3 and 1.0 at 99.9. Measured scores of real faces in ../shared/data: HOG 0.06-3.1,
# MMOD 0.12-1.1 (MMOD saturates near 1), so the same curve serves both.
CONFIDENCE_OFFSET = {"hog": 3.0, "cnn": 3.0}
CONFIDENCE_SLOPE = {"hog": 4.0, "cnn": 4.0}


def detection_confidence(score: float, detector: str) -> float:
    """Detector score -> Rekognition-style Confidence (0..100)."""
    z = CONFIDENCE_OFFSET[detector] + CONFIDENCE_SLOPE[detector] * score
    return round(100.0 / (1.0 + math.exp(-z)), 4)


# -- Brightness ---------------------------------------------------------------------------
# Raw measure: mean luma (BT.601, 0..1) of the face proper in the aligned chip. Reported as
# 100 * luma ** BRIGHTNESS_GAMMA. Why not plain percent: Rekognition indexes the dim selfies of
# its own user-vector notebook (seed_media/aws_dani, mean face luma 12-23 %) under the default
# QualityFilter, so on a linear scale faces the service accepts would sit at the very bottom.
# The square root spreads the dark end the way a display's gamma does: those selfies read
# 34-48, a well-lit face (luma ~53 %, the curated set's median) 73, and the AWS workshop's
# "very dark" example (faces_edge/dark.jpeg, 7 %) 26. Monotonic; 0 -> 0, 1 -> 100.
BRIGHTNESS_GAMMA = 0.5


def brightness_from_mean_luma(luma: float) -> float:
    """Mean face luma (0..1) -> Brightness 0..100, monotonically increasing."""
    return 100.0 * min(max(luma, 0.0), 1.0) ** BRIGHTNESS_GAMMA


# -- Sharpness ----------------------------------------------------------------------------
# Raw measure: variance of the 4-neighbour Laplacian of the luma in the aligned 100x100 inner
# chip, divided by the luma variance plus SHARPNESS_CONTRAST_FLOOR (grey levels squared, so a
# flat patch cannot divide by ~0). The ratio halves with each blur step, so it is mapped on a
# log scale: SHARPNESS_RATIO_AT_0 -> 0, SHARPNESS_RATIO_AT_100 -> 100, clamped.
# Measured over ../shared/data/faces (133 faces): min 0.008, p5 0.017, median 0.11, p90 0.47,
# max 1.17. The bounds are chosen so that this curated enrollment set, which Rekognition indexes
# under its default QualityFilter, reads min 30 / p5 46 / median 76: it passes the emulator's
# MEDIUM (= AUTO) sharpness bar of 25 with room to spare, while the soft 125 px LFW crops start
# failing the HIGH bar of 40, and a face blurred with a 3 px Gaussian loses 20-40 points.
SHARPNESS_CONTRAST_FLOOR = 25.0
SHARPNESS_RATIO_AT_0 = 0.001
SHARPNESS_RATIO_AT_100 = 0.5


def sharpness_from_laplacian_ratio(ratio: float) -> float:
    """Laplacian-to-contrast variance ratio (>= 0) -> Sharpness 0..100, monotonic."""
    if ratio <= SHARPNESS_RATIO_AT_0:
        return 0.0
    span = math.log(SHARPNESS_RATIO_AT_100) - math.log(SHARPNESS_RATIO_AT_0)
    return min(100.0, 100.0 * (math.log(ratio) - math.log(SHARPNESS_RATIO_AT_0)) / span)
