"""Benchmark of the real face engine and of the emulator's face search (not a pytest test).

Rerun from the repository root (about 1-2 minutes on 2 cores; stop other CPU work first, the
numbers are per box, not per core):

    .venv/bin/python -m tests.benchmarks.bench_engine [--faces DIR] [--limit N]
        [--search-sizes 10000,100000,1000000] [--queries 50] [--skip-search]

Part 1 runs the dlib engine over every photo under DIR (<identity>/<photos>, default
../shared/data/faces or $ENROLL_SHARED_DATA/faces) exactly as IndexFaces does (decode +
detect + describe) and prints photos per second, per-stage timings, which detection pass found
the faces, and the photos where no face was found; then the cost of full-size camera photos
(seed_media/aws_dani next to DIR, 7 MP, and one of them upscaled to 36 MP). Part 2 times one
top-k search over 10k, 100k and 1M stored faces with the emulator's vector index
(enroll_local/rekognition/vectors.py) or, if that module is absent, a plain float32
matrix-vector product with argpartition; the output says which. Results: docs/face-engine.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from enroll_local.rekognition.engines.dlib_engine import DIMENSION, DlibEngine
from enroll_local.rekognition.errors import RekognitionError
from enroll_local.rekognition.images import MAX_BYTES_S3, decode_image

from .calibrate import default_faces_dir, identity_photos

DEFAULT_SEARCH_SIZES = (10_000, 100_000, 1_000_000)
DEFAULT_QUERIES = 50
SEARCH_TOP_K = 100  # faces returned per search (SearchFaces' MaxFaces is up to 4,096)
INDEX_SEED = 20260101  # reproducible random vectors


@dataclass
class StageTimes:
    """Seconds per photo for each stage, in photo order."""

    read: list[float] = field(default_factory=list)
    decode: list[float] = field(default_factory=list)
    downscale: list[float] = field(default_factory=list)
    detect: list[float] = field(default_factory=list)
    describe: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)


def bench_photos(faces_dir: Path, engine: DlibEngine, limit: int | None) -> None:
    """Part 1: real-engine throughput over a labelled photo folder."""
    photos = [p for ps in identity_photos(faces_dir).values() for p in ps]
    if limit is not None:
        photos = photos[:limit]
    times = StageTimes()
    passes: Counter[str] = Counter()
    pass_log: list[str] = []
    misses: list[Path] = []
    unreadable: list[tuple[Path, str]] = []
    faces_total = 0
    megapixels: list[float] = []

    # Load the models before timing: a cold start is paid once per process, not per photo.
    started = time.perf_counter()
    engine.detect(decode_image(photos[0].read_bytes(), max_bytes=MAX_BYTES_S3))
    print(f"model load + first photo: {time.perf_counter() - started:.2f} s")

    wall = time.perf_counter()
    for path in photos:
        t0 = time.perf_counter()
        data = path.read_bytes()
        t1 = time.perf_counter()
        try:
            image = decode_image(data, max_bytes=MAX_BYTES_S3)
        except RekognitionError as err:
            unreadable.append((path, err.code))
            continue
        t2 = time.perf_counter()
        pixels, scale = engine.detection_image(image)
        t3 = time.perf_counter()
        found, which = engine.find_faces(image.pixels, pixels, scale)
        t4 = time.perf_counter()
        found.sort(key=lambda d: (d.right - d.left) * (d.bottom - d.top), reverse=True)
        faces = [engine.describe(pixels, d) for d in found[: engine.settings.max_faces]]
        t5 = time.perf_counter()
        times.read.append(t1 - t0)
        times.decode.append(t2 - t1)
        times.downscale.append(t3 - t2)
        times.detect.append(t4 - t3)
        times.describe.append(t5 - t4)
        times.total.append(t5 - t1)
        passes[which] += 1
        pass_log.append(which)
        faces_total += len(faces)
        megapixels.append(image.width * image.height / 1e6)
        if not faces:
            misses.append(path)
    wall = time.perf_counter() - wall

    done = len(times.total)
    print(f"photos: {done} described from {faces_dir} ({len(unreadable)} unreadable)")
    print(
        f"image sizes: median {np.median(megapixels):.2f} MP, max {max(megapixels):.2f} MP; "
        f"faces described: {faces_total}"
    )
    print(
        f"throughput (decode + detect + describe, one process): {done / sum(times.total):.2f} "
        f"photos/s; wall clock incl. file reads {done / wall:.2f} photos/s"
    )
    print("per stage, ms per photo:      mean     p50     p95     max")
    for name in ("read", "decode", "downscale", "detect", "describe", "total"):
        values = np.array(getattr(times, name)) * 1000.0
        print(
            f"  {name:10s}              {values.mean():7.1f} {np.median(values):7.1f} "
            f"{np.quantile(values, 0.95):7.1f} {values.max():7.1f}"
        )
    describe_per_face = sum(times.describe) / max(faces_total, 1) * 1000.0
    print(f"  describe per face: {describe_per_face:.1f} ms (landmarks, chip, descriptor)")
    by_pass = {
        k: round(
            1000.0
            * float(np.mean([t for t, w in zip(times.detect, pass_log, strict=True) if w == k])),
            1,
        )
        for k in passes
    }
    print(f"found by pass: {dict(passes)}; mean detect ms by pass: {by_pass}")
    print(f"detection misses: {len(misses)}")
    for path in misses:
        print(f"  {path.relative_to(faces_dir).as_posix()}")
    for path, code in unreadable:
        print(f"  unreadable {path.relative_to(faces_dir).as_posix()}: {code}")


# The largest camera photo the pipeline must take (48 MP phones: 4912 x 7360 px, i.e. 36 MP).
LARGE_PHOTO_PX = (4912, 7360)
LARGE_PHOTO_JPEG_QUALITY = 85  # keeps the 36 MP JPEG under the 15 MB S3 image limit


def bench_large_photos(photos: list[Path], engine: DlibEngine) -> None:
    """Cost of full-size camera photos: the given ones plus the first upscaled to 36 MP."""
    import io

    from PIL import Image

    samples: list[tuple[str, bytes]] = [(p.name, p.read_bytes()) for p in photos]
    with Image.open(io.BytesIO(samples[0][1])) as img:
        big = img.convert("RGB").resize(LARGE_PHOTO_PX, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG", quality=LARGE_PHOTO_JPEG_QUALITY)
    samples.append(
        (f"{samples[0][0]} upscaled to {LARGE_PHOTO_PX[0]}x{LARGE_PHOTO_PX[1]}", buffer.getvalue())
    )
    print("large photos (decode / downscale / detect / describe ms, pass):")
    for name, data in samples:
        t0 = time.perf_counter()
        image = decode_image(data, max_bytes=MAX_BYTES_S3)
        t1 = time.perf_counter()
        pixels, scale = engine.detection_image(image)
        t2 = time.perf_counter()
        found, which = engine.find_faces(image.pixels, pixels, scale)
        t3 = time.perf_counter()
        faces = [engine.describe(pixels, d) for d in found]
        t4 = time.perf_counter()
        print(
            f"  {name} ({image.width}x{image.height}, {len(data) / 1e6:.1f} MB): "
            f"{(t1 - t0) * 1e3:.0f} / {(t2 - t1) * 1e3:.0f} / {(t3 - t2) * 1e3:.0f} / "
            f"{(t4 - t3) * 1e3:.0f} ms = {(t4 - t0) * 1e3:.0f} ms, {len(faces)} face(s), {which}"
        )


def _unit_rows(rng: np.random.Generator, rows: int) -> np.ndarray:
    matrix = rng.standard_normal((rows, DIMENSION), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


def _numpy_top_k(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Row numbers of the SEARCH_TOP_K best cosines, best first (the fallback search)."""
    scores = matrix @ query
    k = min(SEARCH_TOP_K, scores.shape[0])
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top])]


def _vector_index_class() -> Any:
    """helper A's VectorIndex when enroll_local/rekognition/vectors.py exists, else None."""
    try:
        from enroll_local.rekognition.vectors import VectorIndex
    except ImportError:
        return None
    return VectorIndex


def bench_search(sizes: list[int], queries: int) -> None:
    """Part 2: top-k latency of one exact search over ``sizes`` stored unit vectors."""
    vector_index = _vector_index_class()
    method = (
        "emulator VectorIndex.search (enroll_local/rekognition/vectors.py)"
        if vector_index is not None
        else "plain numpy: float32 matrix @ query, top-k by argpartition (vectors.py absent)"
    )
    print(f"search method: {method}; top-k {SEARCH_TOP_K}, {queries} queries per size")
    print("  stored faces   build s   mean ms   p50 ms   p95 ms   queries/s")
    rng = np.random.default_rng(INDEX_SEED)
    probes = _unit_rows(rng, queries)
    for size in sizes:
        t0 = time.perf_counter()
        matrix = _unit_rows(rng, size)
        search: Callable[[np.ndarray], object]
        if vector_index is not None:
            index = vector_index.restore(DIMENSION, [f"face-{i:07d}" for i in range(size)], matrix)
            del matrix
            search = partial(index.search, k=SEARCH_TOP_K)
        else:
            search = partial(_numpy_top_k, matrix)

        build = time.perf_counter() - t0
        search(probes[0])  # warm caches
        latencies = []
        for q in probes:
            t = time.perf_counter()
            search(q)
            latencies.append(time.perf_counter() - t)
        ms = np.array(latencies) * 1000.0
        print(
            f"  {size:>12,d}   {build:7.2f}   {ms.mean():7.2f}  {np.median(ms):7.2f}  "
            f"{np.quantile(ms, 0.95):7.2f}   {1000.0 / ms.mean():9.1f}"
        )
        del search


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="dlib engine and face search benchmark")
    parser.add_argument("--faces", type=Path, default=None, help="<identity>/<photos> folder")
    parser.add_argument("--limit", type=int, default=None, help="benchmark only N photos")
    parser.add_argument(
        "--search-sizes",
        default=",".join(str(s) for s in DEFAULT_SEARCH_SIZES),
        help="comma-separated stored-face counts",
    )
    parser.add_argument("--queries", type=int, default=DEFAULT_QUERIES)
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-photos", action="store_true")
    args = parser.parse_args(argv)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"load average {os.getloadavg()[0]:.2f} (other work skews the numbers)"
    )
    if not args.skip_photos:
        faces_dir: Path = args.faces or default_faces_dir()
        if not faces_dir.is_dir() or not identity_photos(faces_dir):
            print(
                f"faces folder not found or empty: {faces_dir}\n"
                "Pass --faces DIR laid out as <identity>/<photos>, set ENROLL_SHARED_DATA, or "
                "use --skip-photos to run only the search benchmark.",
                file=sys.stderr,
            )
            return 2
        engine = DlibEngine()
        bench_photos(faces_dir, engine, args.limit)
        large = sorted((faces_dir.parent / "seed_media" / "aws_dani").glob("*.jpg"))
        if large:
            bench_large_photos(large, engine)
    if not args.skip_search:
        sizes = [int(s) for s in args.search_sizes.split(",") if s.strip()]
        bench_search(sizes, args.queries)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
