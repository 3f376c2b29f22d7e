"""The load benchmark's workload plan and the arithmetic of its figures (no stack needed)."""

from __future__ import annotations

import pytest

from enroll_local.bench.load import (
    LoadOptions,
    LoadRun,
    _percentile,
    _sustained_rate,
    scaled_quotas,
    summarise,
)
from enroll_local.bench.workload import FACELESS_EVERY, plan_workload


def test_the_workload_has_exactly_the_photos_asked_for_with_users_over_the_cap():
    workload = plan_workload(10_000, users_max=120, live_fraction=0.3, seed=7)

    assert workload.photos == 10_000
    sizes = [len(user.photos) for user in workload.users]
    assert min(sizes) >= 1 and max(sizes) <= 120
    assert workload.users_over(100) > 0
    live = sum(len(user.photos) for user in workload.live_users())
    assert 0.25 * 10_000 <= live <= 0.4 * 10_000
    faceless = sum(p.faceless for u in workload.users for p in u.photos)
    assert faceless == 10_000 // FACELESS_EVERY


def test_the_workload_is_the_same_for_the_same_seed():
    first, second = plan_workload(500, seed=3), plan_workload(500, seed=3)
    assert first == second
    assert first.users[0].photos[0].body() == second.users[0].photos[0].body()
    assert plan_workload(500, seed=4) != first


def test_bad_workloads_are_refused():
    with pytest.raises(ValueError):
        plan_workload(0)
    with pytest.raises(ValueError):
        plan_workload(10, live_fraction=1.5)
    with pytest.raises(ValueError):
        scaled_quotas(0)


def test_quotas_scale_by_a_constant_factor():
    quotas = scaled_quotas(0.1)
    assert quotas["IndexFaces"] == pytest.approx(5.0)
    assert quotas["AssociateFaces"] == pytest.approx(0.5)


def test_the_sustained_rate_leaves_out_ramp_up_and_drain():
    # 100 calls: 5 slow ones at the start, 90 at 10/s, 5 slow ones at the end.
    calls = [float(i) for i in range(5)]
    calls += [5.0 + i / 10 for i in range(90)]
    calls += [20.0 + i for i in range(5)]
    # Calls number 5 to 94 (the 5th to 95th percentile): 89 intervals over 8.9 s.
    assert _sustained_rate(calls) == pytest.approx(10.0)
    assert _sustained_rate(calls[:10]) == 0.0  # too few calls to speak of a rate


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert _percentile(values, 50) == 50.0
    assert _percentile(values, 99) == 99.0
    assert _percentile([], 50) is None


def test_summary_figures_from_a_fixed_run():
    workload = plan_workload(40, users_max=20, seed=1)
    run = LoadRun(LoadOptions(photos=40), workload, scaled_quotas(0.1))
    run.started, run.finished = 1000.0, 1100.0
    run.served = {"IndexFaces": [1000.0 + i for i in range(40)], "AssociateFaces": [1050.0] * 4}
    run.throttled = {"IndexFaces": 7, "AssociateFaces": 2}
    run.associate_face_ids = [10, 20, 30, 40]
    run.uploaded_at = {"a": 1000.0, "b": 1001.0, "c": 1002.0}
    run.active_at = {"a": 1010.0, "b": 1031.0, "c": 1012.0}
    run.state_transitions = {"executions": 4, "transitions": 100, "status_checks": 6}
    run.invariants = {"faces_without_user": ["f1"], "photos_not_terminal": ["k: INDEXED"]}

    report = summarise(run)

    assert report["photos"] == 40 and report["seconds"] == 100.0
    # Calls 2..37 at 1/s: 35 intervals over 35 s = 1 TPS against a 5 TPS quota.
    assert report["index_rate_vs_quota"] == 0.2
    assert report["faces_per_associate_call"] == 25.0
    assert report["status_checks_per_activation"] == 1.5
    assert report["state_transitions_per_activation"] == 25.0
    assert report["upload_to_active_p50_s"] == 10.0  # latencies 10, 10, 30
    assert report["upload_to_active_p99_s"] == 30.0
    assert report["throttled_calls"] == 9
    assert (report["lost"], report["orphan_faces"]) == (1, 1)
    assert (report["users_over_cap"], report["duplicate_faces"]) == (0, 0)
    assert report["timeline"]["calls_per_second"]["IndexFaces"][:3] == [1, 1, 1]
