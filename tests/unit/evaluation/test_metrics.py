"""The accuracy figures on hand-made scores, each expected value worked out by hand below.

Three enrolled identities A, B, C. Probes (scores: identity -> similarity):

    p1  genuine A  {A 90, B 70, C 20}   top-1 yes   impostor scores 70, 20
    p2  genuine A  {A 60, B 85, C 10}   top-1 no    impostor scores 85, 10
    p3  genuine B  {A 50, B 95, C 50}   top-1 yes   impostor scores 50, 50
    p4  genuine C  no face searched     miss        -
    p5  genuine C  {A 30, B 30, C 30}   tie: no     impostor scores 30, 30
    d1  distractor {A 82, B 40, C 5}    -           best score 82
    d2  distractor no face searched     -           -
    d3  distractor {} (nobody enrolled) -           -

genuine = [90, 60, 95, None, 30]; impostor = [70, 20, 85, 10, 50, 50, 30, 30, 82] (N = 9),
sorted: 85, 82, 70, 50, 50, 30, 30, 20, 10.
"""

from __future__ import annotations

import math

import pytest

from enroll_local.evaluation.metrics import (
    ProbeScores,
    RocPoint,
    accepted_share,
    best_match,
    false_matches_at,
    genuine_scores,
    impostor_scores,
    is_top1,
    probes_with_false_match,
    roc_curve,
    summarize,
    tar_at_far,
    threshold_at_far,
    top1,
)

PROBES = [
    ProbeScores("p1", "A", {"A": 90.0, "B": 70.0, "C": 20.0}),
    ProbeScores("p2", "A", {"A": 60.0, "B": 85.0, "C": 10.0}),
    ProbeScores("p3", "B", {"A": 50.0, "B": 95.0, "C": 50.0}),
    ProbeScores("p4", "C", None),
    ProbeScores("p5", "C", {"A": 30.0, "B": 30.0, "C": 30.0}),
    ProbeScores("d1", None, {"A": 82.0, "B": 40.0, "C": 5.0}),
    ProbeScores("d2", None, None),
    ProbeScores("d3", None, {}),
]
GENUINE = [90.0, 60.0, 95.0, None, 30.0]
IMPOSTOR = [70.0, 20.0, 85.0, 10.0, 50.0, 50.0, 30.0, 30.0, 82.0]


def test_genuine_scores_are_own_identity_scores_with_misses_kept():
    assert genuine_scores(PROBES) == GENUINE


def test_impostor_scores_are_wrong_identities_plus_each_distractors_best():
    assert impostor_scores(PROBES) == IMPOSTOR


def test_a_genuine_probe_whose_identity_is_missing_from_its_scores_has_no_score():
    assert genuine_scores([ProbeScores("x", "A", {"B": 99.0})]) == [None]


def test_top1_counts_strict_firsts_over_every_genuine_probe():
    assert top1(PROBES) == pytest.approx(2 / 5)  # p1, p3; p4 (no face) and p5 (tie) miss
    assert [is_top1(p) for p in PROBES[:5]] == [True, False, True, False, False]
    assert top1([PROBES[5]]) is None  # no genuine probe at all


def test_best_match_breaks_ties_by_name():
    assert best_match(PROBES[4]) == ("A", 30.0)
    assert best_match(PROBES[1]) == ("B", 85.0)
    assert best_match(PROBES[3]) is None


def test_false_matches_count_scores_at_or_above_the_threshold():
    assert false_matches_at(IMPOSTOR, 80.0) == 2  # 85, 82
    assert false_matches_at(IMPOSTOR, 82.0) == 2  # >= : 82 itself is a false match
    assert false_matches_at(IMPOSTOR, 82.01) == 1
    assert probes_with_false_match(PROBES, 80.0) == ["p2", "d1"]


@pytest.mark.parametrize(
    ("far", "threshold", "tar"),
    [
        (0.001, 85.0, 2 / 5),  # floor(0.009) = 0 allowed: above the highest impostor
        (0.01, 85.0, 2 / 5),
        (0.2, 82.0, 2 / 5),  # floor(1.8) = 1: above the 2nd highest
        (0.25, 70.0, 2 / 5),  # floor(2.25) = 2: above the 3rd highest
        (0.5, 50.0, 3 / 5),  # floor(4.5) = 4: 5th highest is 50; 90, 60, 95 are above it
    ],
)
def test_threshold_and_tar_at_far(far, threshold, tar):
    assert threshold_at_far(IMPOSTOR, far) == threshold
    assert tar_at_far(GENUINE, IMPOSTOR, far) == pytest.approx(tar)
    # The promise: at most floor(far * N) impostors strictly above the threshold.
    assert sum(1 for s in IMPOSTOR if s > threshold) <= math.floor(far * len(IMPOSTOR))


def test_ties_with_the_threshold_impostor_are_refused():
    # 50 twice: at FAR 0.5 the threshold is 50 and neither 50 passes, so only 3 get through.
    assert sum(1 for s in IMPOSTOR if s > threshold_at_far(IMPOSTOR, 0.5)) == 3


def test_far_times_n_is_floored_without_binary_rounding_errors():
    impostor = [float(s) for s in range(100)]  # 0..99
    # 0.29 * 100 == 28.999999999999996 in binary: still 29 allowed, threshold 70 (71..99 pass).
    assert threshold_at_far(impostor, 0.29) == 70.0
    assert threshold_at_far(impostor, 0.07) == 92.0  # 7 allowed: 93..99


def test_no_impostor_or_no_genuine_gives_none():
    assert threshold_at_far([], 0.01) is None
    assert tar_at_far(GENUINE, [], 0.01) is None
    assert tar_at_far([], IMPOSTOR, 0.01) is None
    assert accepted_share([], 80.0) is None


def test_tar_at_a_fixed_threshold_uses_at_or_above():
    assert accepted_share(GENUINE, 90.0) == pytest.approx(2 / 5)  # 90, 95
    assert accepted_share(GENUINE, 30.0) == pytest.approx(4 / 5)  # the miss never passes


def test_roc_curve_walks_every_distinct_threshold():
    points = roc_curve(GENUINE, IMPOSTOR)
    assert points[0] == RocPoint(math.inf, 0.0, 0.0)
    assert [p.threshold for p in points[1:]] == [95, 90, 85, 82, 70, 60, 50, 30, 20, 10]
    by_threshold = {p.threshold: (p.far, p.tar) for p in points}
    assert by_threshold[95] == (0.0, pytest.approx(1 / 5))
    assert by_threshold[90] == (0.0, pytest.approx(2 / 5))
    assert by_threshold[85] == (pytest.approx(1 / 9), pytest.approx(2 / 5))
    assert by_threshold[30] == (pytest.approx(7 / 9), pytest.approx(4 / 5))
    assert by_threshold[10] == (1.0, pytest.approx(4 / 5))  # the miss keeps TAR below 1
    assert roc_curve([], IMPOSTOR) == []


def test_summarize_gathers_every_figure():
    summary = summarize(PROBES)
    assert summary.top1 == pytest.approx(0.4)
    assert summary.tar_at_far_1pct == pytest.approx(0.4)
    assert summary.tar_at_far_0_1pct == pytest.approx(0.4)
    assert summary.threshold_at_far_1pct == 85.0
    assert summary.threshold_at_far_0_1pct == 85.0
    assert summary.false_matches_at_80 == 2
    assert summary.tar_at_80 == pytest.approx(0.4)
    assert (summary.genuine_probes, summary.genuine_without_score) == (5, 1)
    assert summary.impostor_scores == 9
    assert summary.probes_with_false_match_at_80 == ["p2", "d1"]
