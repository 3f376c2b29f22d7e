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

# The mapping is a logistic curve in cosine similarity of unit descriptors:
#     similarity = 100 / (1 + exp(-SIMILARITY_SLOPE * (cosine - SIMILARITY_MIDPOINT)))
# pinned by two cosines read off the distributions measured by tests/benchmarks/calibrate.py on
# ../shared/data/faces (133 photos, 19 identities; 467 genuine and 8,311 impostor pairs;
# genuine cosine min 0.878 / p5 0.919 / median 0.958, impostor median 0.824 / p99 0.900 /
# max 0.932). Pairwise trade-off: cosine 0.90 keeps 98.9 % of genuine pairs and admits 1.0 %
# of impostors, 0.91 -> 97.9 % / 0.22 %, 0.92 -> 94.4 % / 0.05 %, 0.94 -> 81 % / 0 %.
#   COSINE_AT_ASSOCIATION (-> 75) = 0.91: AssociateFaces compares a new face with the user's
#       other faces, where a false rejection loses an enrollment photo and the user vector
#       itself separates better (face vs leave-one-out user mean: genuine min 0.920);
#   COSINE_AT_SEARCH (-> 80) = 0.92: search is the stricter of the two, as in Rekognition, at
#       about 1 false match in 2,000 impostor pairs on this set.
# Genuine pairs (median cosine 0.958) then read ~92, impostor pairs (median 0.824) ~20.
COSINE_AT_ASSOCIATION = 0.91
COSINE_AT_SEARCH = 0.92


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


SIMILARITY_SLOPE = (_logit(SEARCH_THRESHOLD / 100.0) - _logit(ASSOCIATION_THRESHOLD / 100.0)) / (
    COSINE_AT_SEARCH - COSINE_AT_ASSOCIATION
)
SIMILARITY_MIDPOINT = (
    COSINE_AT_ASSOCIATION - _logit(ASSOCIATION_THRESHOLD / 100.0) / SIMILARITY_SLOPE
)


def similarity_from_cosine(cosine: np.ndarray) -> np.ndarray:
    """Map cosine similarity (-1..1) of unit descriptors to 0..100, monotonically increasing."""
    c = np.clip(np.asarray(cosine, dtype=np.float64), -1.0, 1.0)
    # Written with exp of a non-positive number on each branch so large slopes cannot overflow.
    z = SIMILARITY_SLOPE * (c - SIMILARITY_MIDPOINT)
    e = np.exp(-np.abs(z))
    out = np.where(z >= 0, 100.0 / (1.0 + e), 100.0 * e / (1.0 + e))
    return out.astype(np.float32)


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


# -- Sharpness ----------------------------------------------------------------------------
# Raw measure: variance of the 4-neighbour Laplacian of the luma in the aligned 100x100 inner
# chip, divided by the luma variance plus SHARPNESS_CONTRAST_FLOOR (grey levels squared, so a
# flat patch cannot divide by ~0). The ratio halves with each blur step, so it is mapped on a
# log scale: SHARPNESS_RATIO_AT_0 -> 0, SHARPNESS_RATIO_AT_100 -> 100, clamped.
# Measured over ../shared/data/faces (133 faces): p5 0.017, p10 0.021, median 0.11, p90 0.47,
# max 1.17; the darkest probe (seed_media/aws_test1, 200x266, blurred) 0.008. With the bounds
# below the curated set reads p5 ~30 / median ~62, i.e. it passes a MEDIUM bar of 25 while the
# soft 125 px LFW crops fail a HIGH bar of 40, and the blurred probe reads ~17.
SHARPNESS_CONTRAST_FLOOR = 25.0
SHARPNESS_RATIO_AT_0 = 0.003
SHARPNESS_RATIO_AT_100 = 1.0


def sharpness_from_laplacian_ratio(ratio: float) -> float:
    """Laplacian-to-contrast variance ratio (>= 0) -> Sharpness 0..100, monotonic."""
    if ratio <= SHARPNESS_RATIO_AT_0:
        return 0.0
    span = math.log(SHARPNESS_RATIO_AT_100) - math.log(SHARPNESS_RATIO_AT_0)
    return min(100.0, 100.0 * (math.log(ratio) - math.log(SHARPNESS_RATIO_AT_0)) / span)
