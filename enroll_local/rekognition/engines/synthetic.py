"""A deterministic, model-free face engine for fast tests.

How a test image says who is in it
----------------------------------
The faces are written into the image itself, as JSON under the key ``synthetic-faces``:

- PNG: a text chunk named ``synthetic-faces`` whose value is the spec;
- JPEG: the COM (comment) segment holding ``{"synthetic-faces": <spec>}``.

The spec is ``{"faces": [face, ...]}``, each face a dict with

====================  =====================================================  ==============
key                   meaning                                                default
====================  =====================================================  ==============
``identity``          who this is (same identity -> same person)              required
``variant``           which photo of that person (changes the descriptor)    0
``box``               [left, top, width, height] as ratios of the image      centred 40%x50%
``brightness``        Quality.Brightness, 0..100                             80
``sharpness``         Quality.Sharpness, 0..100                              80
``yaw``/``pitch``/    Pose, degrees                                          0
``roll``
``confidence``        detection confidence, 0..100                           99.5
``attributes``        extra FaceDetail attributes in Rekognition's shape     none
====================  =====================================================  ==============

An image without the key has no faces; a malformed spec is an InvalidParameterException that
names the problem. :func:`make_synthetic_photo` writes such images (a visible ellipse per face,
seeded pixel noise so two photos never share bytes).

Descriptors and similarity
--------------------------
``descriptor = unit(base(identity) + SIGMA * noise(identity, variant))``, 128-d, each term a
unit Gaussian direction drawn from an RNG seeded by a SHA-256 of its inputs. Independent random
directions in 128-d have cosine ~ N(0, 1/128), so different identities sit at |cos| < 0.35 in
practice, while two variants of one identity sit near 1 / (1 + SIGMA^2) ~ 0.94.
``similarity = 100 / (1 + exp(-SIMILARITY_SLOPE * (cos - SIMILARITY_MIDPOINT_COSINE)))`` maps
those to > 99 for the same identity and < 15 for different ones, so both Rekognition's default
thresholds (80 for search, 75 for association) separate people with a wide margin. The same
identity is therefore "> 90" and different identities "< 40" on the 0..100 scale.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

from ..errors import invalid_parameter
from ..images import DecodedImage
from .base import BoundingBox, DetectedFace, Landmark, Pose, Quality

METADATA_KEY = "synthetic-faces"
DIMENSION = 128
FACE_MODEL_VERSION = "7.0"
SIGMA = 0.25  # per-photo spread of one identity around its base direction (unitless)
SIMILARITY_MIDPOINT_COSINE = 0.5  # cosine that maps to similarity 50
SIMILARITY_SLOPE = 12.0  # logistic steepness, per unit of cosine

DEFAULT_BOX = (0.3, 0.25, 0.4, 0.5)  # left, top, width, height ratios
DEFAULT_BRIGHTNESS = 80.0
DEFAULT_SHARPNESS = 80.0
DEFAULT_CONFIDENCE = 99.5
MAX_FACES_PER_SPEC = 1000  # guards the engine against a runaway spec


def _rng(*parts: str) -> np.random.Generator:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def _direction(*parts: str) -> np.ndarray:
    vec = _rng(*parts).standard_normal(DIMENSION)
    return vec / np.linalg.norm(vec)


def synthetic_descriptor(identity: str, variant: int | str = 0) -> np.ndarray:
    """The unit descriptor of ``identity`` in photo ``variant`` (float32, 128-d)."""
    vec = _direction("base", identity) + SIGMA * _direction("noise", identity, str(variant))
    return (vec / np.linalg.norm(vec)).astype(np.float32)


def read_spec(metadata: dict[str, str]) -> dict[str, Any] | None:
    """The synthetic spec carried by an image's text metadata, or None if it carries none."""
    raw = metadata.get(METADATA_KEY)
    if raw is None:
        comment = metadata.get("comment")
        if comment is None or METADATA_KEY not in comment:
            return None
        try:
            wrapper = json.loads(comment)
        except ValueError:
            return None  # an ordinary JPEG comment that merely mentions the key
        if not isinstance(wrapper, dict) or METADATA_KEY not in wrapper:
            return None
        spec = wrapper[METADATA_KEY]
    else:
        try:
            spec = json.loads(raw)
        except ValueError as exc:
            raise invalid_parameter(f"Malformed {METADATA_KEY} spec: {exc}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("faces"), list):
        raise invalid_parameter(f'Malformed {METADATA_KEY} spec: expected {{"faces": [...]}}')
    if len(spec["faces"]) > MAX_FACES_PER_SPEC:
        raise invalid_parameter(f"{METADATA_KEY} spec has more than {MAX_FACES_PER_SPEC} faces")
    return spec


def _number(face: dict[str, Any], key: str, default: float) -> float:
    value = face.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_parameter(f"Malformed {METADATA_KEY} spec: {key!r} must be a number")
    return float(value)


def _landmarks(box: BoundingBox) -> tuple[Landmark, ...]:
    # Five canonical points placed as on an upright face, relative to the box.
    points = {
        "eyeLeft": (0.3, 0.38),
        "eyeRight": (0.7, 0.38),
        "nose": (0.5, 0.58),
        "mouthLeft": (0.35, 0.78),
        "mouthRight": (0.65, 0.78),
    }
    return tuple(
        Landmark(type=name, x=box.left + fx * box.width, y=box.top + fy * box.height)
        for name, (fx, fy) in points.items()
    )


def _face_from_spec(face: Any) -> DetectedFace:
    if not isinstance(face, dict) or not isinstance(face.get("identity"), str):
        raise invalid_parameter(f'Malformed {METADATA_KEY} spec: each face needs an "identity"')
    box_values = face.get("box", DEFAULT_BOX)
    if (
        not isinstance(box_values, list | tuple)
        or len(box_values) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box_values)
    ):
        raise invalid_parameter(f"Malformed {METADATA_KEY} spec: box must be 4 numbers")
    left, top, width, height = (float(v) for v in box_values)
    if width <= 0 or height <= 0:
        raise invalid_parameter(f"Malformed {METADATA_KEY} spec: box width/height must be > 0")
    box = BoundingBox(width=width, height=height, left=left, top=top)
    attributes = face.get("attributes", {})
    if not isinstance(attributes, dict):
        raise invalid_parameter(f"Malformed {METADATA_KEY} spec: attributes must be an object")
    return DetectedFace(
        bounding_box=box,
        confidence=_number(face, "confidence", DEFAULT_CONFIDENCE),
        landmarks=_landmarks(box),
        pose=Pose(
            roll=_number(face, "roll", 0.0),
            yaw=_number(face, "yaw", 0.0),
            pitch=_number(face, "pitch", 0.0),
        ),
        quality=Quality(
            brightness=_number(face, "brightness", DEFAULT_BRIGHTNESS),
            sharpness=_number(face, "sharpness", DEFAULT_SHARPNESS),
        ),
        descriptor=synthetic_descriptor(face["identity"], face.get("variant", 0)),
        attributes=dict(attributes),
    )


class SyntheticEngine:
    """Faces come from the image's ``synthetic-faces`` metadata; see the module docstring."""

    name = "synthetic"
    dimension = DIMENSION
    face_model_version = FACE_MODEL_VERSION

    def detect(self, image: DecodedImage) -> list[DetectedFace]:
        """Every face of the spec, largest bounding box first (stable for equal sizes)."""
        spec = read_spec(image.metadata)
        if spec is None:
            return []
        faces = [_face_from_spec(face) for face in spec["faces"]]
        return sorted(faces, key=lambda f: -f.area)

    def similarity(self, cosine: np.ndarray) -> np.ndarray:
        """Logistic map of cosine to 0..100 (see the module docstring for the calibration)."""
        cos = np.asarray(cosine, dtype=np.float64)
        return 100.0 / (1.0 + np.exp(-SIMILARITY_SLOPE * (cos - SIMILARITY_MIDPOINT_COSINE)))


def _colour(identity: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(identity.encode()).digest()
    return (96 + digest[0] % 128, 64 + digest[1] % 128, 64 + digest[2] % 128)


def make_synthetic_photo(
    faces: list[dict[str, Any]],
    *,
    size: tuple[int, int] = (320, 320),
    fmt: str = "JPEG",
    seed: int = 0,
) -> bytes:
    """A JPEG or PNG that the synthetic engine reads as ``faces`` (see the module docstring).

    Draws a noisy background (from ``seed``, so photos differ byte-wise) and one ellipse per
    face, and embeds the spec. ``faces`` entries use the spec keys; ``[]`` gives a faceless photo
    that the hybrid engine still routes to the synthetic engine.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8) + 100
    img = Image.fromarray(background.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for face in faces:
        left, top, w, h = face.get("box", DEFAULT_BOX)
        x0, y0 = left * width, top * height
        draw.ellipse([x0, y0, x0 + w * width, y0 + h * height], fill=_colour(face["identity"]))
    spec = json.dumps({"faces": faces}, separators=(",", ":"), sort_keys=True)
    buffer = io.BytesIO()
    fmt = fmt.upper()
    if fmt == "PNG":
        info = PngInfo()
        info.add_text(METADATA_KEY, spec)
        img.save(buffer, "PNG", pnginfo=info)
    elif fmt in ("JPEG", "JPG"):
        comment = json.dumps({METADATA_KEY: json.loads(spec)}, separators=(",", ":"))
        img.save(buffer, "JPEG", quality=90, comment=comment.encode())
    else:
        raise ValueError(f"fmt must be JPEG or PNG, not {fmt!r}")
    return buffer.getvalue()
