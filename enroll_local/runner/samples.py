"""The photos ``enroll demo`` uploads: a built-in set that needs no network, or a folder.

The built-in set comes from scikit-image's bundled images: NASA's public-domain portrait of
astronaut Eileen Collins (``skimage.data.astronaut``) in several variants (crops, a mirror
image, brightness changes, a resize) enrolled as user ``Eileen_Collins``; the classic
"cameraman" test picture (``skimage.data.camera``, which scikit-image ships for free use) in
three crops as user ``Cameraman``, so the search has a second person to tell apart (dlib scores
the two people 20-29 against each other, far below the threshold of 80); plus a photo with no
face (``coffee``) and a ``.jpg`` that is not an image at all, which must be REJECTED with a
readable reason. The full astronaut picture is not used: the mission patch on the suit is
detected as a second face, and the crops keep the demo about enrollment, not detector quirks.
A further variant that is never uploaded serves as the search probe.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageEnhance

#: JPEG quality of the generated variants (percent).
JPEG_QUALITY = 92

DEMO_USER = "Eileen_Collins"
SECOND_DEMO_USER = "Cameraman"
#: Where the face is in skimage's 512x512 astronaut picture (left, top, right, bottom), px.
_PORTRAIT_BOX = (80, 0, 400, 320)
#: Around the cameraman's face (~80 px) in skimage's 512x512 camera picture, px. The crops are
#: enlarged 2x so the face is well above the detector's 80 px window. A brightened variant is
#: left out on purpose: dlib's descriptor of it drifts to 74-79 against the others, which would
#: make the demo about LOW_MATCH_CONFIDENCE rather than enrollment.
_CAMERAMAN_BOX = (110, 50, 330, 270)
_CAMERAMAN_WIDE_BOX = (60, 20, 380, 340)


@dataclass(frozen=True)
class SamplePhoto:
    """One object to upload: ``<prefix><user_id>/<filename>`` with ``data`` as its body."""

    user_id: str
    filename: str
    data: bytes
    #: What a person should expect: "face", "no face", "not an image" (informative only).
    expectation: str = "face"

    def key(self, prefix: str) -> str:
        """The S3 key under the enroll prefix."""
        return f"{prefix}{self.user_id}/{self.filename}"


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def builtin_samples() -> list[SamplePhoto]:
    """The default demo set (no network): two people's variants, a no-face photo, a non-image."""
    from skimage import data

    astronaut = _astronaut()
    portrait = astronaut.crop(_PORTRAIT_BOX)
    variants = {
        "portrait.jpg": portrait,
        "mirrored.jpg": portrait.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "brighter.jpg": ImageEnhance.Brightness(astronaut.crop((60, 0, 420, 330))).enhance(1.3),
        "darker.jpg": ImageEnhance.Brightness(astronaut.crop((100, 10, 380, 290))).enhance(0.75),
        "small.jpg": portrait.resize((200, 200)),
        "close-up.jpg": astronaut.crop((130, 30, 320, 220)),
    }
    photos = [SamplePhoto(DEMO_USER, name, _jpeg(image)) for name, image in variants.items()]
    camera = Image.fromarray(data.camera()).convert("RGB")
    cameraman = camera.crop(_CAMERAMAN_BOX).resize((440, 440))
    photos += [
        SamplePhoto(SECOND_DEMO_USER, name, _jpeg(image))
        for name, image in {
            "portrait.jpg": cameraman,
            "mirrored.jpg": cameraman.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            "wide.jpg": camera.crop(_CAMERAMAN_WIDE_BOX).resize((480, 480)),
        }.items()
    ]
    photos.append(
        SamplePhoto(DEMO_USER, "coffee.jpg", _jpeg(Image.fromarray(data.coffee())), "no face")
    )
    photos.append(
        SamplePhoto(
            DEMO_USER,
            "notes.jpg",
            b"These are my travel notes, saved with the wrong extension.\n",
            "not an image",
        )
    )
    return photos


def builtin_probe() -> bytes:
    """A variant of the demo portrait that is never uploaded: the search-by-image probe."""
    astronaut = _astronaut()
    return _jpeg(ImageEnhance.Contrast(astronaut.crop((90, 15, 390, 300))).enhance(1.2))


def samples_from_dir(root: Path) -> list[SamplePhoto]:
    """Every file of ``root/<UserId>/`` (sorted), as uploads for user ``<UserId>``.

    Raises ValueError when the folder holds no ``<UserId>/<file>`` at all, so a wrong path is a
    clear error rather than an empty demo.
    """
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder (expected <UserId>/<photos> inside)")
    photos = [
        SamplePhoto(user_dir.name, path.name, path.read_bytes())
        for user_dir in sorted(p for p in root.iterdir() if p.is_dir())
        for path in sorted(user_dir.iterdir())
        if path.is_file() and not path.name.startswith(".")
    ]
    if not photos:
        raise ValueError(f"{root} holds no <UserId>/<photo> files")
    return photos


def probe_from_uploads(
    photos: list[SamplePhoto], active_keys: set[str], prefix: str
) -> SamplePhoto | None:
    """For ``--photos DIR``: the first uploaded photo the pipeline made ACTIVE, as a search probe
    (already enrolled, so its user should come first); None when no photo became ACTIVE.

    Picking from the ACTIVE ones keeps the search meaningful: the first file of a folder may be
    a non-image or a photo without a usable face, which SearchUsersByImage cannot use."""
    for photo in photos:
        if photo.key(prefix) in active_keys:
            return photo
    return None
