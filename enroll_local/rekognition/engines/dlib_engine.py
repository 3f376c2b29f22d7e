"""The real face engine: dlib's HOG/MMOD detectors, 5-point landmarks and ResNet descriptor.

Pipeline per image (see docs/face-engine.md for the measured costs and rates):

1. Downscale to ``detect_max_side_px`` on the longest side. Phone photos reach 36 MP; HOG
   cost grows with the pixel count (292 ms at 2048x2048 against 76 ms at 1024x1024 on two
   cores) while a face worth enrolling is still far larger than HOG's 80 px window at 1024 px.
2. Detect with a deliberate fallback chain, cheapest first, stopping at the first pass that
   finds a face:
   a. HOG, no upsampling (tens of ms): frontal faces of 80 px and up;
   b. HOG, upsampled once (4x the pixels, a few hundred ms): faces of 40-80 px, which is what
      group photos and small images contain;
   c. the CNN (MMOD) detector on an image of at most ``cnn_max_side_px`` (about 1-2 s): tilted,
      turned, dark or partly hidden faces that HOG misses. Only photos where HOG found nothing
      pay for it, so the worst case per photo stays bounded (~2 s) and ``cnn_max_side_px=0``
      turns it off.
3. Per face: the 5-point shape, the aligned 150x150 chip (dlib's ``get_face_chip``), the
   128-d descriptor of that chip, and quality/pose measured from pixels and landmarks.

The models load lazily, once per process. The shape predictor is read-only at inference time;
the HOG detector (its scanner holds the feature pyramid of the image being scanned) and the DNNs
(descriptor, MMOD: per-call layer buffers) are not re-entrant, so each has its own lock (three
concurrent detections crashed the process before HOG had one).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..images import DecodedImage
from . import calibration
from .base import BoundingBox, DetectedFace, Landmark, Pose, Quality

NAME = "dlib"
DIMENSION = 128
# dlib's ResNet model v1 ("dlib_face_recognition_resnet_model_v1.dat"); reported as the
# collection's FaceModelVersion so a collection never mixes vectors of two different models.
FACE_MODEL_VERSION = "7.0-dlib"

# Aligned chip geometry expected by the ResNet model (dlib's defaults for compute_face_descriptor).
CHIP_SIZE_PX = 150
CHIP_PADDING = 0.25  # fraction of the face template added on each side
# The unpadded face template occupies the centre of the chip: 150 / (1 + 2 * 0.25) = 100 px.
_CHIP_MARGIN_PX = round(CHIP_SIZE_PX * CHIP_PADDING / (1 + 2 * CHIP_PADDING))


@dataclass(frozen=True)
class DlibSettings:
    """Tunable costs of the real engine; defaults measured on a shared 2-core box."""

    detect_max_side_px: int = 1024  # longest side of the image HOG sees (px)
    hog_fallback_upsample: int = 1  # pyramid-up steps of the second HOG pass (0 disables it)
    cnn_max_side_px: int = 512  # longest side of the image MMOD sees (px); 0 disables the CNN
    # Below this mean luma (percent) the CNN pass sees a contrast-stretched copy: in a photo
    # as dark as faces_edge/dark.jpeg (17 %) neither detector finds the face otherwise, while
    # Rekognition reports it (with a low Brightness). Descriptors and quality still come from
    # the original pixels.
    dark_luma_percent: float = 25.0
    max_faces: int = 100  # Rekognition describes at most the 100 largest faces of an image
    num_jitters: int = 0  # descriptor jitter passes (each costs a full forward pass)


class _Models:
    """dlib models, loaded on first use (importing the engine must stay cheap)."""

    _lock = threading.Lock()
    _loaded: dict[str, Any] = {}
    # One lock per stateful model, so one thread can scan with HOG while another describes.
    locks = {"hog": threading.Lock(), "descriptor": threading.Lock(), "cnn": threading.Lock()}

    @classmethod
    def get(cls, name: str) -> Any:
        model = cls._loaded.get(name)
        if model is None:
            with cls._lock:
                model = cls._loaded.get(name)
                if model is None:
                    model = cls._load(name)
                    cls._loaded[name] = model
        return model

    @staticmethod
    def _load(name: str) -> Any:
        import dlib  # deferred: dlib is a dev-time dependency of the local stack only
        import face_recognition_models as files

        if name == "hog":
            return dlib.get_frontal_face_detector()
        if name == "shape":
            return dlib.shape_predictor(files.pose_predictor_five_point_model_location())
        if name == "descriptor":
            return dlib.face_recognition_model_v1(files.face_recognition_model_location())
        if name == "cnn":
            return dlib.cnn_face_detection_model_v1(files.cnn_face_detector_model_location())
        raise KeyError(name)


@dataclass(frozen=True)
class Detection:
    """A face box in detection-image pixels plus which detector found it and its raw score."""

    left: float
    top: float
    right: float
    bottom: float
    score: float
    detector: str  # "hog" or "cnn"


class DlibEngine:
    """FaceEngine backed by dlib (see the module docstring for the pipeline)."""

    name = NAME
    dimension = DIMENSION
    face_model_version = FACE_MODEL_VERSION

    def __init__(self, settings: DlibSettings | None = None) -> None:
        self.settings = settings or DlibSettings()

    # -- FaceEngine -----------------------------------------------------------------------

    def detect(self, image: DecodedImage) -> list[DetectedFace]:
        """Every face found in ``image``, largest first, with descriptors (max ``max_faces``)."""
        return self.detect_with_pass(image)[0]

    def similarity(self, cosine: np.ndarray) -> np.ndarray:
        """Calibrated cosine -> 0..100 mapping (constants and derivation in calibration.py)."""
        return calibration.similarity_from_cosine(cosine)

    # -- detection ------------------------------------------------------------------------

    def detect_with_pass(self, image: DecodedImage) -> tuple[list[DetectedFace], str]:
        """``detect`` plus which pass found the faces: "hog", "hog-upsampled", "cnn" or "none".

        The calibration and benchmark scripts report it; the emulator only needs ``detect``.
        """
        pixels, scale = self.detection_image(image)
        found, which = self.find_faces(image.pixels, pixels, scale)
        found.sort(key=lambda d: (d.right - d.left) * (d.bottom - d.top), reverse=True)
        return [self.describe(pixels, d) for d in found[: self.settings.max_faces]], which

    def detection_image(self, image: DecodedImage) -> tuple[np.ndarray, float]:
        """The downscaled pixels HOG runs on and their scale relative to the original."""
        return _downscale(image.pixels, self.settings.detect_max_side_px)

    def find_faces(
        self, original: np.ndarray, pixels: np.ndarray, scale: float
    ) -> tuple[list[Detection], str]:
        """Face boxes in ``pixels`` coordinates from the first pass of the chain that finds any."""
        hog = _Models.get("hog")
        found = _hog(hog, pixels, upsample=0)
        if found:
            return found, "hog"
        if self.settings.hog_fallback_upsample > 0:
            found = _hog(hog, pixels, upsample=self.settings.hog_fallback_upsample)
            if found:
                return found, "hog-upsampled"
        if self.settings.cnn_max_side_px > 0:
            found = self._cnn(original, scale)
            if found:
                return found, "cnn"
        return [], "none"

    def _cnn(self, original: np.ndarray, scale: float) -> list[Detection]:
        # Downscale from the original (not from the already-reduced image) to keep detail, then
        # express the boxes in detection-image pixels like the HOG passes do.
        small, small_scale = _downscale(original, self.settings.cnn_max_side_px)
        if float((small @ _LUMA).mean()) * 100.0 / 255.0 < self.settings.dark_luma_percent:
            small = _stretch_contrast(small)
        ratio = scale / small_scale
        with _Models.locks["cnn"]:
            found = _Models.get("cnn")(small, 0)
        return [
            Detection(
                left=d.rect.left() * ratio,
                top=d.rect.top() * ratio,
                right=(d.rect.right() + 1) * ratio,
                bottom=(d.rect.bottom() + 1) * ratio,
                score=float(d.confidence),
                detector="cnn",
            )
            for d in found
        ]

    # -- description ----------------------------------------------------------------------

    def describe(self, pixels: np.ndarray, det: Detection) -> DetectedFace:
        """Landmarks, pose, quality and descriptor of one detected face."""
        import dlib

        height, width = pixels.shape[:2]
        rect = dlib.rectangle(
            round(det.left), round(det.top), round(det.right) - 1, round(det.bottom) - 1
        )
        shape = _Models.get("shape")(pixels, rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        chip = dlib.get_face_chip(pixels, shape, size=CHIP_SIZE_PX, padding=CHIP_PADDING)
        with _Models.locks["descriptor"]:
            raw = _Models.get("descriptor").compute_face_descriptor(
                chip, num_jitters=self.settings.num_jitters
            )
        geometry = face_geometry(points)
        return DetectedFace(
            bounding_box=BoundingBox(
                width=(det.right - det.left) / width,
                height=(det.bottom - det.top) / height,
                left=det.left / width,
                top=det.top / height,
            ),
            confidence=calibration.detection_confidence(det.score, det.detector),
            landmarks=tuple(
                Landmark(type=kind, x=float(x) / width, y=float(y) / height)
                for kind, (x, y) in geometry.landmarks.items()
            ),
            pose=geometry.pose,
            quality=chip_quality(chip),
            descriptor=unit_descriptor(np.asarray(raw, dtype=np.float32)),
        )


# -- pure helpers (unit-tested without dlib) ----------------------------------------------


def _downscale(pixels: np.ndarray, max_side_px: int) -> tuple[np.ndarray, float]:
    """``pixels`` reduced so the longest side is at most ``max_side_px``; (image, scale)."""
    height, width = pixels.shape[:2]
    scale = min(1.0, max_side_px / max(height, width))
    if scale >= 1.0:
        return np.ascontiguousarray(pixels), 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # reducing_gap: PIL first shrinks by an integer factor (fast box filter), then resamples.
    resized = Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(resized), size[0] / width


# Percentiles of luma mapped to black and white when stretching a dark image's contrast; a
# fraction of a percent is clipped so a few specular highlights cannot cancel the stretch.
STRETCH_LOW_PERCENTILE = 0.5
STRETCH_HIGH_PERCENTILE = 99.5


def _stretch_contrast(pixels: np.ndarray) -> np.ndarray:
    """Linear stretch of all channels so the given luma percentiles span 0..255."""
    luma = pixels @ _LUMA
    low, high = np.percentile(luma, [STRETCH_LOW_PERCENTILE, STRETCH_HIGH_PERCENTILE])
    if high - low < 1.0:
        return pixels  # a flat image has nothing to stretch
    stretched = (pixels.astype(np.float32) - low) * (255.0 / (high - low))
    return np.ascontiguousarray(np.clip(stretched, 0, 255).astype(np.uint8))


def _hog(detector: Any, pixels: np.ndarray, *, upsample: int) -> list[Detection]:
    with _Models.locks["hog"]:
        rects, scores, _ = detector.run(pixels, upsample, 0.0)
    return [
        Detection(
            left=float(r.left()),
            top=float(r.top()),
            right=float(r.right() + 1),
            bottom=float(r.bottom() + 1),
            score=float(s),
            detector="hog",
        )
        for r, s in zip(rects, scores, strict=True)
    ]


def unit_descriptor(vector: np.ndarray) -> np.ndarray:
    """``vector`` as float32 with unit L2 norm (dlib's own descriptors are only near-unit)."""
    vector = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    if not math.isfinite(norm) or norm == 0.0:
        raise ValueError("face descriptor has no direction (zero or non-finite norm)")
    return vector / np.float32(norm)


# Luma weights (ITU-R BT.601), the usual perceived-brightness measure for 8-bit RGB.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def chip_quality(chip: np.ndarray) -> Quality:
    """Brightness and sharpness (0..100) of the face proper inside an aligned 150 px chip.

    Measured on the chip rather than the raw box so that every face is judged at the same
    scale and orientation: the descriptor sees exactly these pixels. Brightness comes from the
    mean luma, mapped by ``calibration.brightness_from_mean_luma``. Sharpness is the variance
    of the 4-neighbour Laplacian divided by the variance of the luma itself (high-frequency
    share of the face's contrast), so a dark but focused face reads LOW_BRIGHTNESS, not
    LOW_SHARPNESS; calibration maps it to 0..100.
    """
    m = _CHIP_MARGIN_PX
    face = chip[m : chip.shape[0] - m, m : chip.shape[1] - m].astype(np.float32)
    luma = face @ _LUMA
    brightness = calibration.brightness_from_mean_luma(float(luma.mean()) / 255.0)
    laplacian = (
        luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4.0 * luma[1:-1, 1:-1]
    )
    contrast = float(luma.var()) + calibration.SHARPNESS_CONTRAST_FLOOR
    sharpness = calibration.sharpness_from_laplacian_ratio(float(laplacian.var()) / contrast)
    return Quality(brightness=round(brightness, 4), sharpness=round(sharpness, 4))


@dataclass(frozen=True)
class FaceGeometry:
    """Rekognition-style landmarks (pixels) and pose (degrees) from dlib's 5 points."""

    landmarks: dict[str, tuple[float, float]]
    pose: Pose


# Proportions of dlib's mean face (the template get_face_chip aligns to), in units of the
# distance between the eye centres: nose base 0.78 below the eye midpoint, mouth corners 1.07
# below it and 0.45 to either side. The 5-point model has no mouth points, so the mouth corners
# are placed with these ratios in the face's own frame (rotated with the eye line, stretched
# with the eye-to-nose vector so that pitch and yaw move them too).
MEAN_FACE_NOSE_DROP = 0.778
MEAN_FACE_MOUTH_DROP = 1.066
MEAN_FACE_MOUTH_HALF_WIDTH = 0.446
# How far the nose base (subnasale) stands in front of the eye centres, in eye distances: about
# 27 mm for a 63 mm eye distance on an average adult (the eye corners sit 10-20 mm behind the
# cornea, the subnasale about 12 mm in front of it). Converts the nose's sideways and vertical
# shifts into head rotation angles.
NOSE_DEPTH = 0.43


def face_geometry(points: np.ndarray) -> FaceGeometry:
    """Landmarks and pose from dlib's 5-point shape (pixels, in dlib's part order).

    dlib's 5 points are two corners of each eye and the base of the nose. Reported:
    eyeLeft/eyeRight = centre of each eye's two corners (eyeLeft is on the image's left, as in
    Rekognition's examples), nose = the measured nose base (a few pixels below the tip),
    mouthLeft/mouthRight = estimated from the mean face (see the constants above).
    Pose, in degrees: Roll = angle of the eye line (positive when the face is turned clockwise
    in the image); Yaw = from the nose's sideways offset from the eye midpoint (positive when
    the nose points to the image's right); Pitch = from the nose's drop below the eye line
    compared to the frontal mean face (positive when looking up). Yaw and pitch are estimates
    from three points and an average head: expect +-10-15 deg, and individual face proportions
    read as a few degrees of pitch.
    """
    eye_a = points[0:2].mean(axis=0)
    eye_b = points[2:4].mean(axis=0)
    nose = points[4]
    eye_left, eye_right = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
    middle = (eye_left + eye_right) / 2.0
    across = eye_right - eye_left
    eye_distance = float(np.linalg.norm(across))
    if eye_distance == 0.0:
        across, eye_distance = np.array([1.0, 0.0]), 1e-6
    u = across / np.linalg.norm(across)  # along the eye line, towards the image's right
    v = np.array([-u[1], u[0]])  # perpendicular, pointing down the face
    to_nose = nose - middle
    sideways = float(to_nose @ u)
    drop = float(to_nose @ v)

    roll = math.degrees(math.atan2(across[1], across[0]))
    # Sideways nose offset relative to the half eye distance: tan(yaw) * 2 * NOSE_DEPTH.
    yaw_rad = math.atan2(sideways / (eye_distance / 2.0), 2.0 * NOSE_DEPTH)
    # Turning the head shortens the visible eye distance by cos(yaw); undo it for pitch.
    true_distance = eye_distance / max(math.cos(yaw_rad), 0.2)
    # Rotating the head up by p moves the nose base up by about NOSE_DEPTH * p (eye distances)
    # for small p. The exact rigid-model inverse has a fold at -21 deg where individual face
    # proportions (frontal drop 0.67-0.91 over ../shared/data) would pile up, so the
    # monotonic arctangent form is used instead.
    pitch_rad = math.atan2(MEAN_FACE_NOSE_DROP - drop / true_distance, NOSE_DEPTH)

    mouth_centre = middle + to_nose * (MEAN_FACE_MOUTH_DROP / MEAN_FACE_NOSE_DROP)
    half_mouth = u * eye_distance * MEAN_FACE_MOUTH_HALF_WIDTH
    landmarks = {
        "eyeLeft": (float(eye_left[0]), float(eye_left[1])),
        "eyeRight": (float(eye_right[0]), float(eye_right[1])),
        "mouthLeft": (float((mouth_centre - half_mouth)[0]), float((mouth_centre - half_mouth)[1])),
        "mouthRight": (
            float((mouth_centre + half_mouth)[0]),
            float((mouth_centre + half_mouth)[1]),
        ),
        "nose": (float(nose[0]), float(nose[1])),
    }
    pose = Pose(
        roll=round(_wrap_degrees(roll), 4),
        yaw=round(math.degrees(yaw_rad), 4),
        pitch=round(math.degrees(pitch_rad), 4),
    )
    return FaceGeometry(landmarks=landmarks, pose=pose)


def _wrap_degrees(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0
