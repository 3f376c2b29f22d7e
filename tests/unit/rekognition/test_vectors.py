"""The exact nearest-neighbour index."""

from __future__ import annotations

import numpy as np

from enroll_local.rekognition.vectors import INITIAL_CAPACITY_ROWS, VectorIndex, unit


def _random_unit(rng, n, d=16):
    m = rng.standard_normal((n, d)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_top_k_matches_brute_force_after_growth_and_deletions():
    rng = np.random.default_rng(0)
    vectors = _random_unit(rng, INITIAL_CAPACITY_ROWS * 2 + 10)
    index = VectorIndex(16)
    for i, v in enumerate(vectors):
        index.put(f"v{i}", v)
    removed = {f"v{i}" for i in range(0, len(vectors), 3)}
    for key in removed:
        assert index.remove(key)
    assert not index.remove("v0")
    assert len(index) == len(vectors) - len(removed)
    query = unit(rng.standard_normal(16))
    got = index.search(query, 10)
    live = [(f"v{i}", float(v @ query)) for i, v in enumerate(vectors) if f"v{i}" not in removed]
    want = sorted(live, key=lambda kv: -kv[1])[:10]
    assert [k for k, _ in got] == [k for k, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5)


def test_exclude_does_not_shrink_k_and_put_replaces():
    index = VectorIndex(2)
    index.put("a", unit(np.array([1.0, 0.0])))
    index.put("b", unit(np.array([1.0, 0.1])))
    index.put("c", unit(np.array([0.0, 1.0])))
    assert [k for k, _ in index.search(np.array([1.0, 0.0]), 2, exclude=["a"])] == ["b", "c"]
    index.put("c", unit(np.array([1.0, 0.0])))
    assert index.search(np.array([1.0, 0.0]), 1, exclude=["a"])[0][0] == "c"


def test_export_restore_round_trip():
    rng = np.random.default_rng(1)
    index = VectorIndex(16)
    for i, v in enumerate(_random_unit(rng, 50)):
        index.put(str(i), v)
    ids, matrix = index.export()
    copy = VectorIndex.restore(16, ids, matrix)
    np.testing.assert_array_equal(copy.get("7"), index.get("7"))
    copy.put("new", unit(rng.standard_normal(16)))
    assert len(copy) == 51
