"""Calibrate and check the dlib engine's similarity mapping on a labelled photo folder.

Rerun:  .venv/bin/python -m tests.benchmarks.calibrate [--faces DIR]

DIR is laid out as <identity>/<photos> (JPEG/PNG; other files are ignored). The default is
../shared/data/faces next to the repository (or $ENROLL_SHARED_DATA/faces). The script describes
the largest face of every photo, forms every same-identity (genuine) and cross-identity
(impostor) pair, and prints the cosine distributions, the true- and false-match rates at the
association (75) and search (80) thresholds with the constants in
enroll_local/rekognition/engines/calibration.py, the detection misses, and suggested constants.
It takes about a minute for ~150 photos on two cores. Not a pytest test.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from enroll_local.rekognition.engines import calibration
from enroll_local.rekognition.engines.base import DetectedFace
from enroll_local.rekognition.engines.dlib_engine import DlibEngine
from enroll_local.rekognition.errors import RekognitionError
from enroll_local.rekognition.images import MAX_BYTES_S3, decode_image

ROOT = Path(__file__).resolve().parents[2]
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}
# Where FMR must be zero on this data set, keep this much cosine headroom above the worst
# impostor pair when suggesting COSINE_AT_ASSOCIATION (the set is small; real traffic is not).
IMPOSTOR_MARGIN = 0.01


def default_faces_dir() -> Path:
    """../shared/data/faces next to the repository, or $ENROLL_SHARED_DATA/faces."""
    configured = os.environ.get("ENROLL_SHARED_DATA")
    base = Path(configured) if configured else ROOT.parent / "shared" / "data"
    return base / "faces"


def identity_photos(faces_dir: Path) -> dict[str, list[Path]]:
    """{identity: photos} for every sub-folder of ``faces_dir`` holding JPEG/PNG files."""
    out: dict[str, list[Path]] = {}
    for folder in sorted(p for p in faces_dir.iterdir() if p.is_dir()):
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        if photos:
            out[folder.name] = photos
    return out


@dataclass
class Described:
    identity: str
    path: Path
    descriptor: np.ndarray
    detector: str
    face: DetectedFace


@dataclass
class Measurement:
    described: list[Described]
    misses: list[Path]
    unreadable: list[tuple[Path, str]]
    seconds: float


def describe_folder(faces_dir: Path, engine: DlibEngine, *, verbose: bool = True) -> Measurement:
    """Largest-face descriptor of every photo under ``faces_dir`` (see module docstring)."""
    described: list[Described] = []
    misses: list[Path] = []
    unreadable: list[tuple[Path, str]] = []
    started = time.perf_counter()
    for identity, photos in identity_photos(faces_dir).items():
        for path in photos:
            try:
                image = decode_image(path.read_bytes(), max_bytes=MAX_BYTES_S3)
            except RekognitionError as err:
                unreadable.append((path, err.code))
                continue
            faces, detector = engine.detect_with_pass(image)
            if not faces:
                misses.append(path)
                continue
            described.append(Described(identity, path, faces[0].descriptor, detector, faces[0]))
        if verbose:
            print(f"  {identity}: {len(photos)} photos", file=sys.stderr)
    return Measurement(described, misses, unreadable, time.perf_counter() - started)


def pair_cosines(described: list[Described]) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    """(genuine cosines, impostor cosines, impostor pairs sorted by cosine, highest first)."""
    genuine: list[float] = []
    impostor: list[tuple[float, Path, Path]] = []
    for a, b in itertools.combinations(described, 2):
        cosine = float(a.descriptor @ b.descriptor)
        if a.identity == b.identity:
            genuine.append(cosine)
        else:
            impostor.append((cosine, a.path, b.path))
    impostor.sort(key=lambda t: t[0], reverse=True)
    return np.array(genuine), np.array([t[0] for t in impostor]), impostor


def face_vs_user_cosines(described: list[Described]) -> tuple[np.ndarray, np.ndarray]:
    """(genuine, impostor) cosines of each face against each identity's *user vector*.

    The user vector is the renormalised mean of the identity's descriptors, leaving the probe
    face out of its own identity (so a genuine score is never a face matched with itself).
    This is how AssociateFaces compares a face with a user whose faces are aggregated into
    one vector (SearchUsers scores are the mean of the pair cosines instead: see
    ``vectors.user_search_vector``); identities with a single photo have no genuine score.
    """
    by_identity: dict[str, list[np.ndarray]] = {}
    for d in described:
        by_identity.setdefault(d.identity, []).append(d.descriptor)
    sums = {k: np.sum(v, axis=0) for k, v in by_identity.items()}
    counts = {k: len(v) for k, v in by_identity.items()}
    genuine: list[float] = []
    impostor: list[float] = []
    for d in described:
        for identity, total in sums.items():
            if identity == d.identity:
                if counts[identity] < 2:
                    continue
                total = total - d.descriptor
            user = total / np.linalg.norm(total)
            cosine = float(user @ d.descriptor)
            (genuine if identity == d.identity else impostor).append(cosine)
    return np.array(genuine), np.array(impostor)


def _quantiles(values: np.ndarray) -> str:
    if values.size == 0:
        return "n/a"
    q = np.quantile(values, [0.0, 0.01, 0.05, 0.5, 0.95, 0.99, 1.0])
    labels = ["min", "p1", "p5", "median", "p95", "p99", "max"]
    return "  ".join(f"{k} {v:.3f}" for k, v in zip(labels, q, strict=True))


def _rate(hits: int, total: int) -> str:
    return f"{hits}/{total} = {100.0 * hits / total:.2f} %" if total else "n/a"


def _rates_at_thresholds(label: str, genuine: np.ndarray, impostor: np.ndarray) -> None:
    sim_g = calibration.similarity_from_cosine(genuine)
    sim_i = calibration.similarity_from_cosine(impostor)
    print(
        f"{label}: genuine {genuine.size} (similarity median {np.median(sim_g):.1f}), "
        f"impostor {impostor.size} (similarity median {np.median(sim_i):.1f})"
    )
    for threshold in (calibration.ASSOCIATION_THRESHOLD, calibration.SEARCH_THRESHOLD):
        tmr = _rate(int((sim_g >= threshold).sum()), genuine.size)
        fmr = _rate(int((sim_i >= threshold).sum()), impostor.size)
        print(f"  at {threshold:g}: true-match rate {tmr}; false-match rate {fmr}")


def _tradeoff(genuine: np.ndarray, impostor: np.ndarray) -> None:
    print("cosine threshold trade-off (pairs):  cosine  TMR %   FMR %")
    for cosine in np.arange(0.86, 0.955, 0.01):
        tmr = 100.0 * float((genuine >= cosine).mean()) if genuine.size else float("nan")
        fmr = 100.0 * float((impostor >= cosine).mean()) if impostor.size else float("nan")
        print(f"  {cosine:.2f}  {tmr:6.2f}  {fmr:6.3f}")


def _quality_summary(described: list[Described]) -> None:
    faces = [d.face for d in described]
    rows = {
        "confidence": [f.confidence for f in faces],
        "brightness": [f.quality.brightness for f in faces],
        "sharpness": [f.quality.sharpness for f in faces],
        "yaw": [f.pose.yaw for f in faces],
        "pitch": [f.pose.pitch for f in faces],
        "roll": [f.pose.roll for f in faces],
    }
    print("face measures over the described photos:")
    for name, values in rows.items():
        print(f"  {name:10s} {_quantiles(np.array(values))}")
    sharp = np.clip(np.array(rows["sharpness"]), 0.01, 99.99)
    # Invert the log mapping to recover the raw Laplacian/contrast ratio (exact inside 0..100).
    low, high = calibration.SHARPNESS_RATIO_AT_0, calibration.SHARPNESS_RATIO_AT_100
    ratio = low * (high / low) ** (sharp / 100.0)
    print(
        f"  Laplacian/contrast ratio p5 {np.quantile(ratio, 0.05):.4f}, p10 "
        f"{np.quantile(ratio, 0.1):.4f}, median {np.median(ratio):.4f}"
    )


def report(faces_dir: Path, m: Measurement, top: int = 5) -> None:
    """Print the calibration report for a measurement."""
    genuine, impostor, impostor_pairs = pair_cosines(m.described)

    def rel(p: Path) -> str:
        return p.relative_to(faces_dir).as_posix()

    photos = len(m.described) + len(m.misses) + len(m.unreadable)
    identities = len({d.identity for d in m.described})
    print(f"faces folder: {faces_dir}")
    print(
        f"photos: {photos} of {identities} identities, described: {len(m.described)}, "
        f"in {m.seconds:.1f} s"
    )
    passes: dict[str, int] = {}
    for d in m.described:
        passes[d.detector] = passes.get(d.detector, 0) + 1
    print(f"found by pass: {passes}")
    print(f"detection misses: {len(m.misses)}")
    for path in m.misses:
        print(f"  {rel(path)}")
    for path, code in m.unreadable:
        print(f"  unreadable {rel(path)}: {code}")
    print(f"genuine pairs: {genuine.size}   cosine {_quantiles(genuine)}")
    print(f"impostor pairs: {impostor.size}  cosine {_quantiles(impostor)}")
    _tradeoff(genuine, impostor)
    print(
        f"mapping: logistic slope {calibration.SIMILARITY_SLOPE:.3f}, midpoint "
        f"{calibration.SIMILARITY_MIDPOINT:.4f} (cosine {calibration.COSINE_AT_ASSOCIATION} -> 75, "
        f"{calibration.COSINE_AT_SEARCH} -> 80)"
    )
    _rates_at_thresholds("face vs face pairs", genuine, impostor)
    user_genuine, user_impostor = face_vs_user_cosines(m.described)
    print(f"face vs user genuine cosine {_quantiles(user_genuine)}")
    print(f"face vs user impostor cosine {_quantiles(user_impostor)}")
    _rates_at_thresholds("face vs user vector (leave-one-out mean)", user_genuine, user_impostor)
    print(f"highest impostor pairs (top {top}):")
    for cosine, a, b in impostor_pairs[:top]:
        sim = float(calibration.similarity_from_cosine(np.array([cosine]))[0])
        print(f"  {cosine:.3f} (similarity {sim:.1f})  {rel(a)}  {rel(b)}")
    _worst_genuine(m.described, rel, top)
    if impostor.size:
        suggestion = math.ceil((float(impostor.max()) + IMPOSTOR_MARGIN) * 100) / 100
        print(f"cosine above every impostor pair (+{IMPOSTOR_MARGIN} margin): {suggestion:.2f}")
    if m.described:
        _quality_summary(m.described)


def _worst_genuine(described: list[Described], rel: Callable[[Path], str], top: int) -> None:
    pairs = [
        (float(a.descriptor @ b.descriptor), a.path, b.path)
        for a, b in itertools.combinations(described, 2)
        if a.identity == b.identity
    ]
    pairs.sort(key=lambda t: t[0])
    print(f"lowest genuine pairs (bottom {top}):")
    for cosine, a, b in pairs[:top]:
        sim = float(calibration.similarity_from_cosine(np.array([cosine]))[0])
        print(f"  {cosine:.3f} (similarity {sim:.1f})  {rel(a)}  {rel(b)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--faces", type=Path, default=None, help="folder laid out as <identity>/<photos>"
    )
    parser.add_argument("--top", type=int, default=5, help="extreme pairs to list")
    args = parser.parse_args(argv)
    faces_dir: Path = args.faces or default_faces_dir()
    if not faces_dir.is_dir():
        print(
            f"faces folder not found: {faces_dir}\n"
            "Pass --faces DIR with a folder laid out as <identity>/<photos> (JPEG or PNG), or set "
            "ENROLL_SHARED_DATA to a folder holding faces/.",
            file=sys.stderr,
        )
        return 2
    if len(identity_photos(faces_dir)) < 2:
        print(f"need at least two identity folders with photos in {faces_dir}", file=sys.stderr)
        return 2
    measurement = describe_folder(faces_dir, DlibEngine())
    report(faces_dir, measurement, top=args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
