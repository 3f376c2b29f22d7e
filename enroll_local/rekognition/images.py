"""Decode and validate images the way Rekognition accepts them.

Rekognition takes JPEG and PNG only, at most 5 MB as raw bytes or 15 MB as an S3 object, and
at least 80x80 pixels. Everything else is refused here, with the service's error codes, before
any face engine sees the pixels.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import RekognitionError, image_too_large, invalid_image_format

MAX_BYTES_INLINE = 5_242_880  # Image.Bytes limit (botocore model ImageBlob max)
MAX_BYTES_S3 = 15 * 1024 * 1024  # S3Object image limit (Rekognition limits page)
MIN_DIMENSION_PX = 80

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Decompression bombs: a 15 MB PNG can claim billions of pixels. Rekognition's own cap is not
# documented; 100 megapixels covers every real camera (the largest shared photo is 36 MP).
Image.MAX_IMAGE_PIXELS = 100_000_000


@dataclass(frozen=True)
class DecodedImage:
    """An accepted image: RGB pixels plus what the engines and the dedup rule need."""

    pixels: np.ndarray  # (height, width, 3) uint8 RGB, EXIF orientation applied
    format: str  # "JPEG" or "PNG"
    sha256: str  # of the raw bytes: same image == same bytes
    metadata: dict[str, str] = field(default_factory=dict)  # PNG text chunks, JPEG comment

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def sniff_format(data: bytes) -> str | None:
    """Return "JPEG" or "PNG" from the magic bytes, or None for anything else."""
    if data.startswith(_JPEG_MAGIC):
        return "JPEG"
    if data.startswith(_PNG_MAGIC):
        return "PNG"
    return None


def decode_image(data: bytes, *, max_bytes: int = MAX_BYTES_INLINE) -> DecodedImage:
    """Validate and decode ``data``; raise RekognitionError exactly as the service would."""
    if len(data) > max_bytes:
        raise image_too_large()
    fmt = sniff_format(data)
    if fmt is None:
        raise invalid_image_format()
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            metadata = _text_metadata(img)
            rotated: Image.Image = ImageOps.exif_transpose(img) or img
            rgb = _to_rgb(rotated)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise invalid_image_format() from None
    pixels = np.asarray(rgb, dtype=np.uint8)
    if pixels.shape[0] < MIN_DIMENSION_PX or pixels.shape[1] < MIN_DIMENSION_PX:
        raise RekognitionError(
            "InvalidParameterException",
            f"Image dimensions {pixels.shape[1]}x{pixels.shape[0]} are below the minimum of "
            f"{MIN_DIMENSION_PX}x{MIN_DIMENSION_PX} pixels.",
        )
    return DecodedImage(
        pixels=pixels, format=fmt, sha256=hashlib.sha256(data).hexdigest(), metadata=metadata
    )


def _text_metadata(img: Image.Image) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (img.info or {}).items():
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                continue
        if isinstance(value, str):
            out[str(key)] = value
    return out


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Flatten transparency on white, as a viewer would show it.
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        arr = 255.0 * arr / max(float(arr.max()), 1.0)
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    return img.convert("RGB")
