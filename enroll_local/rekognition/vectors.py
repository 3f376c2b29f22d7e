"""Exact nearest-neighbour search over unit vectors, one contiguous float32 matrix per index.

Why exact and not an ANN graph: at 1 M x 128-d a brute-force matrix-vector product is one BLAS
call over 512 MB (tens of milliseconds on one core) with perfect recall and no build time, while
an HNSW graph costs minutes to build per million vectors and loses recall (see
performance-anchors §4.2). Rekognition itself promises exact-looking results, so the emulator
must never miss a match the real service would return.

Rows are packed: a deletion moves the last row into the hole (swap-remove), so the live rows are
always ``matrix[:size]`` and a search never scans dead rows. Capacity doubles when full
(amortised O(1) appends).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

INITIAL_CAPACITY_ROWS = 1024


class VectorIndex:
    """A growable id -> unit-vector table with exact cosine top-k search."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self._matrix = np.zeros((INITIAL_CAPACITY_ROWS, dimension), dtype=np.float32)
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    @property
    def ids(self) -> list[str]:
        """Ids in row order (a copy)."""
        return list(self._ids)

    @property
    def matrix(self) -> np.ndarray:
        """The live rows, ``len(self) x dimension`` (a view: do not keep it across mutations)."""
        return self._matrix[: len(self._ids)]

    def get(self, key: str) -> np.ndarray:
        """The stored vector of ``key`` (a copy); KeyError if absent."""
        return self._matrix[self._rows[key]].copy()

    def put(self, key: str, vector: np.ndarray) -> None:
        """Insert or replace the vector of ``key``: a unit face descriptor, or a user vector
        (``user_search_vector``, norm <= 1), so that a search's dot product is the score."""
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vec.shape[0] != self.dimension:
            raise ValueError(f"vector has {vec.shape[0]} dimensions, index has {self.dimension}")
        row = self._rows.get(key)
        if row is None:
            row = len(self._ids)
            if row == self._matrix.shape[0]:
                self._grow()
            self._ids.append(key)
            self._rows[key] = row
        self._matrix[row] = vec

    def remove(self, key: str) -> bool:
        """Delete ``key``; returns False when it was absent."""
        row = self._rows.pop(key, None)
        if row is None:
            return False
        last = len(self._ids) - 1
        if row != last:
            moved = self._ids[last]
            self._matrix[row] = self._matrix[last]
            self._ids[row] = moved
            self._rows[moved] = row
        self._ids.pop()
        return True

    def clear(self) -> None:
        """Drop every vector and give the memory back."""
        self._matrix = np.zeros((INITIAL_CAPACITY_ROWS, self.dimension), dtype=np.float32)
        self._ids = []
        self._rows = {}

    def search(
        self, query: np.ndarray, k: int, *, exclude: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """The ``k`` ids most similar to ``query`` as (id, cosine), best first.

        ``exclude`` ids are skipped (e.g. the searched face itself) without shrinking ``k``.
        """
        excluded = {key for key in exclude if key in self._rows}
        size = len(self._ids)
        if size == 0 or k <= 0:
            return []
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        scores = self._matrix[:size] @ q
        for key in excluded:
            scores[self._rows[key]] = -np.inf
        want = min(k, size - len(excluded))
        if want <= 0:
            return []
        top = np.argpartition(-scores, want - 1)[:want] if want < size else np.arange(size)
        # Sort by score desc, ties by id so results are reproducible.
        order = sorted(top.tolist(), key=lambda r: (-float(scores[r]), self._ids[r]))
        return [(self._ids[r], float(scores[r])) for r in order if np.isfinite(scores[r])]

    def export(self) -> tuple[list[str], np.ndarray]:
        """(ids, matrix copy) for persistence."""
        return list(self._ids), self.matrix.copy()

    @classmethod
    def restore(cls, dimension: int, ids: list[str], matrix: np.ndarray) -> VectorIndex:
        """Rebuild an index from :meth:`export` output."""
        index = cls(dimension)
        capacity = max(INITIAL_CAPACITY_ROWS, 1 << max(0, len(ids) - 1).bit_length())
        index._matrix = np.zeros((capacity, dimension), dtype=np.float32)
        if ids:
            index._matrix[: len(ids)] = np.asarray(matrix, dtype=np.float32).reshape(
                len(ids), dimension
            )
        index._ids = list(ids)
        index._rows = {key: row for row, key in enumerate(ids)}
        return index

    def _grow(self) -> None:
        bigger = np.zeros((self._matrix.shape[0] * 2, self.dimension), dtype=np.float32)
        bigger[: self._matrix.shape[0]] = self._matrix
        self._matrix = bigger


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to unit L2 norm (float32); a zero vector stays zero."""
    vec = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vec))
    return vec if norm == 0.0 else (vec / norm).astype(np.float32)


def user_search_vector(descriptors: np.ndarray) -> np.ndarray:
    """The user vector searches compare with: the mean of the user's unit face descriptors
    (one per row), deliberately *not* renormalised.

    Why: a probe's dot product with it is the mean of the probe's cosines with each of the
    user's faces (score fusion), which lives on the same scale as one face-to-face cosine, so the
    engine's similarity calibration (cosine 0.92 -> 80, pinned on face pairs) means the same for
    users as for faces, and averaging only narrows both distributions. Renormalising (the
    earlier rule) divides that mean by the mean's norm, which is below 1 whenever the faces
    differ: every score against a user rose, strangers' too, and the default threshold 80
    let wrong identities through (``enroll eval`` on ../shared/data/faces enrolled from 3
    photos: 3 wrong-identity scores >= 80 against user vectors, 1 against face vectors; none
    with this rule, the same top-1 and TAR at FAR 1 % / 0.1 %; docs/evaluation.md). A single
    face's user vector is that face's descriptor either way.
    """
    stacked = np.asarray(descriptors, dtype=np.float32).reshape(-1, descriptors.shape[-1])
    return stacked.mean(axis=0).astype(np.float32)
