"""The faces-per-user cap under both policies."""

from __future__ import annotations

import pytest

from enrollment.capacity import Candidate, plan


def _faces(prefix, qualities, order=None):
    return [
        Candidate(f"{prefix}{i}", q, order_key=(order[i] if order else f"{i:03}"))
        for i, q in enumerate(qualities)
    ]


def test_room_for_everyone():
    p = plan(_faces("c", [50]), _faces("n", [10, 20]), 100, "reject")
    assert (sorted(p.accept), p.reject, p.evict) == (["n0", "n1"], [], [])


def test_reject_policy_is_first_come_first_served():
    incoming = _faces("n", [90, 10, 50], order=["t3", "t1", "t2"])
    p = plan(_faces("c", [1] * 8), incoming, 10, "reject")
    assert p.accept == ["n1", "n2"]  # earliest two by indexed_at, whatever their quality
    assert p.reject == ["n0"] and p.evict == []


def test_full_user_rejects_everything_under_reject():
    p = plan(_faces("c", [1] * 3), _faces("n", [99]), 3, "reject")
    assert (p.accept, p.reject) == ([], ["n0"])


def test_keep_best_replaces_only_strictly_worse_faces():
    current = _faces("c", [40, 60, 80])
    incoming = _faces("n", [70, 60, 95])
    p = plan(current, incoming, 3, "keep-best")
    assert sorted(p.accept) == ["n0", "n2"]
    assert sorted(p.evict) == ["c0", "c1"]
    assert p.reject == ["n1"]  # 60 does not beat the remaining worst (80); ties keep the old


def test_keep_best_fills_free_slots_with_the_best_new_faces():
    p = plan(_faces("c", [50]), _faces("n", [10, 90, 30]), 3, "keep-best")
    assert sorted(p.accept) == ["n1", "n2"]
    assert p.reject == ["n0"] and p.evict == []


def test_unknown_quality_is_never_evicted():
    current = [Candidate("mystery", None), Candidate("c1", 20.0)]
    p = plan(current, _faces("n", [90, 95]), 2, "keep-best")
    assert p.evict == ["c1"] and p.accept == ["n1"] and p.reject == ["n0"]


def test_plan_is_deterministic_for_replays():
    current, incoming = _faces("c", [40, 40, 40]), _faces("n", [41, 41])
    assert plan(current, incoming, 3, "keep-best") == plan(
        current, list(reversed(incoming)), 3, "keep-best"
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown face cap policy"):
        plan([], [], 1, "random")
    with pytest.raises(ValueError):
        plan([], [], 0, "reject")
