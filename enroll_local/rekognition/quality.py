"""QualityFilter levels: which detected faces IndexFaces / Search*ByImage refuse, and why.

Rekognition does not publish its bars, only the reasons (UnindexedFaces / UnsearchedFaces). These
are ours, chosen so that the synthetic engine's defaults (confidence 99.5, brightness and sharpness
80, frontal pose) pass every level and that each reason can be triggered on its own:

========  ==========  ==========  =========  ===========  ==============  ==============
level     confidence  brightness  sharpness  |yaw|,       face side (px   mean of bright-
          >=          >=          >=         |pitch| <=   at 1920 px) >=  ness+sharpness
========  ==========  ==========  =========  ===========  ==============  ==============
LOW       50          10          10         75 deg       40              20
MEDIUM    80          25          25         50 deg       40              40
HIGH      95          40          40         30 deg       80              60
========  ==========  ==========  =========  ===========  ==============  ==============

AUTO is MEDIUM (IndexFaces' default); NONE refuses nothing. LOW and MEDIUM take the smallest
face the service documents it can detect (40x40 px in a 1920x1080 image). The face-side bar
scales with the image's long side over 1920 px, as the service's "40x40 in a 1920x1080 image,
proportionally larger for larger images" rule does. LOW_FACE_QUALITY is reported only when no
single measure fails but their mean is below the bar: a face that is mediocre in every way.
"""

from __future__ import annotations

from dataclasses import dataclass

from .engines.base import DetectedFace

REFERENCE_LONG_SIDE_PX = 1920


@dataclass(frozen=True)
class QualityBar:
    """Minimums (and pose maximum) a face must meet at one QualityFilter level."""

    min_confidence: float  # 0..100
    min_brightness: float  # 0..100
    min_sharpness: float  # 0..100
    max_abs_pose_deg: float  # degrees, applied to yaw and pitch
    min_face_side_px: float  # pixels, at REFERENCE_LONG_SIDE_PX
    min_mean_quality: float  # 0..100, mean of brightness and sharpness


QUALITY_BARS: dict[str, QualityBar] = {
    "LOW": QualityBar(50.0, 10.0, 10.0, 75.0, 40.0, 20.0),
    "MEDIUM": QualityBar(80.0, 25.0, 25.0, 50.0, 40.0, 40.0),
    "HIGH": QualityBar(95.0, 40.0, 40.0, 30.0, 80.0, 60.0),
}
QUALITY_BARS["AUTO"] = QUALITY_BARS["MEDIUM"]


def quality_reasons(face: DetectedFace, width_px: int, height_px: int, level: str) -> list[str]:
    """Rekognition reasons why ``face`` fails ``level`` (empty: it passes, or level is NONE)."""
    bar = QUALITY_BARS.get(level)
    if bar is None:
        return []
    reasons: list[str] = []
    box = face.bounding_box
    scale = max(1.0, max(width_px, height_px) / REFERENCE_LONG_SIDE_PX)
    side_px = min(box.width * width_px, box.height * height_px)
    if side_px < bar.min_face_side_px * scale:
        reasons.append("SMALL_BOUNDING_BOX")
    if face.confidence < bar.min_confidence:
        reasons.append("LOW_CONFIDENCE")
    if face.quality.brightness < bar.min_brightness:
        reasons.append("LOW_BRIGHTNESS")
    if face.quality.sharpness < bar.min_sharpness:
        reasons.append("LOW_SHARPNESS")
    if max(abs(face.pose.yaw), abs(face.pose.pitch)) > bar.max_abs_pose_deg:
        reasons.append("EXTREME_POSE")
    mean_quality = (face.quality.brightness + face.quality.sharpness) / 2.0
    if not reasons and mean_quality < bar.min_mean_quality:
        reasons.append("LOW_FACE_QUALITY")
    return reasons
