"""A small load benchmark in every `make test`: quotas on, a backfill and live uploads at once.

The full run (10,000 photos) is `make bench-load` and its report docs/load-benchmark.md; this
one keeps its promises at a few hundred photos and a rate floor. The floor is below the full
run's figure because this run shares the machine with the rest of the test suite.
"""

from __future__ import annotations

import pytest

from enroll_local.bench.load import LoadOptions, run_load, summarise

#: IndexFaces calls per second sustained over the quota, at least (the full run alone: 0.93).
RATE_FLOOR = 0.7

pytestmark = pytest.mark.slow


def test_a_small_load_run_keeps_every_promise_at_the_quota():
    options = LoadOptions(photos=240, users_max=60, quota_scale=0.1, seed=11, timeout_s=600)

    run = run_load(options, progress=lambda line: None)
    report = summarise(run)

    assert run.idle, "the stack never went idle"
    assert report["detail"]["invariant_violations"] == {}
    for invariant in ("lost", "orphan_faces", "users_over_cap", "duplicate_faces"):
        assert report[invariant] == 0, invariant
    assert report["index_rate_vs_quota"] >= RATE_FLOOR
    # Every photo reached an outcome the user can read: the faceless ones REJECTED, the rest
    # ACTIVE (nobody passes the cap at 60 photos).
    faceless = sum(p.faceless for u in run.workload.users for p in u.photos)
    assert faceless > 0
    assert report["detail"]["outcomes"] == {"ACTIVE": 240 - faceless, "REJECTED": faceless}
    assert report["detail"]["backfill"]["enqueued"] == report["detail"]["backfill_photos"]
    # The quotas were on and the pipeline rode them out.
    assert report["throttled_calls"] > 0
    assert report["faces_per_associate_call"] > 1
    assert report["counted_calls"]["requests"]["rekognition"]["IndexFaces"] >= 240
