"""Accuracy figures from similarity scores: pure functions, no I/O, no emulator.

Vocabulary (the same for user vectors and face vectors; ``docs/evaluation.md`` repeats it):

- A *probe* is one photo searched against the collection. Its ``scores`` map every enrolled
  identity to the probe's similarity (0..100) with it: for user vectors the similarity to that
  user's vector (SearchUsersByImage), for face vectors the best similarity to any of that user's
  faces (SearchFacesByImage, the best face's user). ``scores`` is None when no face could be
  searched (no face found, unreadable image): such a probe never matches anybody.
- A *genuine* probe is a photo of an enrolled identity that was not used for enrollment; its
  *genuine score* is its score for its own identity (None, i.e. never accepted, when it has no
  scores or its identity is missing from them).
- *Impostor scores* are (a) every score of a genuine probe for an identity other than its own
  (one per wrong identity) and (b) the best score of each distractor probe (a person never
  enrolled), i.e. whether the search would have named anybody at all. Distractor probes with no
  searchable face give no impostor score (they cannot be falsely accepted).
- A score is *accepted* at threshold ``t`` when it is ``>= t`` (Rekognition's rule for
  FaceMatchThreshold / UserMatchThreshold). False-accept rate FAR(t) = accepted impostor scores
  / impostor scores; true-accept rate TAR(t) = accepted genuine scores / genuine probes, where
  genuine probes without a score count in the denominator (a photo the search cannot use is a
  miss, not an exclusion).
- *threshold at FAR x*: with ``N`` impostor scores sorted from the highest, ``a = floor(x * N)``
  false accepts are allowed, so the threshold ``T`` is the ``(a + 1)``-th highest impostor
  score and a score is accepted only when it is strictly above ``T`` (ties with the impostor
  are refused, so at most ``a`` impostors get through). With fewer than ``1 / x`` impostor
  scores, ``a`` is 0 and ``T`` is the highest impostor score. ``TAR at FAR x`` = genuine
  probes with a score ``> T`` / genuine probes. None when there is no impostor score.
- *top-1*: genuine probes whose own identity scores strictly higher than every other identity
  (a tie for first is a miss) / genuine probes; no threshold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Float slack for ``floor(x * N)`` (0.001 * 3000 is 3.0000000000000004 in binary, but
#: 0.07 * 100 is 7.000000000000001 and 0.29 * 100 is 28.999999999999996).
_FLOOR_SLACK = 1e-9


@dataclass(frozen=True)
class ProbeScores:
    """One probe searched against one representation (user vectors or face vectors)."""

    photo: str  # a label for reports, e.g. "alice/3.jpg"
    identity: str | None  # the enrolled identity it shows; None for a distractor
    scores: dict[str, float] | None  # identity -> similarity 0..100; None: nothing searched

    @property
    def genuine(self) -> bool:
        return self.identity is not None


def genuine_scores(probes: Iterable[ProbeScores]) -> list[float | None]:
    """Each genuine probe's score for its own identity; None when it has none."""
    return [
        None if p.scores is None else p.scores.get(p.identity)  # type: ignore[arg-type]
        for p in probes
        if p.genuine
    ]


def impostor_scores(probes: Iterable[ProbeScores]) -> list[float]:
    """Wrong-identity scores of genuine probes, plus the best score of each distractor probe."""
    out: list[float] = []
    for probe in probes:
        if not probe.scores:
            continue
        if probe.genuine:
            out += [score for who, score in probe.scores.items() if who != probe.identity]
        else:
            out.append(max(probe.scores.values()))
    return out


def top1(probes: Iterable[ProbeScores]) -> float | None:
    """Share of genuine probes ranked first for their own identity (strictly); None if none."""
    genuine = [p for p in probes if p.genuine]
    if not genuine:
        return None
    return sum(1 for p in genuine if is_top1(p)) / len(genuine)


def is_top1(probe: ProbeScores) -> bool:
    """Whether a genuine probe's own identity scores strictly above every other identity."""
    if not probe.scores or probe.identity not in probe.scores:
        return False
    own = probe.scores[probe.identity]
    return all(score < own for who, score in probe.scores.items() if who != probe.identity)


def best_match(probe: ProbeScores) -> tuple[str, float] | None:
    """(identity, score) ranked first for this probe (ties: the smaller identity name)."""
    if not probe.scores:
        return None
    who = min(probe.scores, key=lambda name: (-probe.scores[name], name))  # type: ignore[index]
    return who, probe.scores[who]


def threshold_at_far(impostor: Sequence[float], far: float) -> float | None:
    """The impostor score a threshold must be strictly above for FAR <= ``far`` (module doc)."""
    if not impostor:
        return None
    allowed = math.floor(far * len(impostor) + _FLOOR_SLACK)
    ranked = sorted(impostor, reverse=True)
    if allowed >= len(ranked):
        return None  # every impostor may pass: no threshold is needed
    return ranked[allowed]


def tar_at_far(
    genuine: Sequence[float | None], impostor: Sequence[float], far: float
) -> float | None:
    """Share of genuine probes strictly above ``threshold_at_far``; None without impostors."""
    if not genuine or not impostor:
        return None
    threshold = threshold_at_far(impostor, far)
    if threshold is None:
        return accepted_share(genuine, -math.inf)
    return sum(1 for score in genuine if score is not None and score > threshold) / len(genuine)


def accepted_share(genuine: Sequence[float | None], threshold: float) -> float | None:
    """Share of genuine probes with a score ``>= threshold`` (TAR at a fixed threshold)."""
    if not genuine:
        return None
    return sum(1 for score in genuine if score is not None and score >= threshold) / len(genuine)


def false_matches_at(impostor: Iterable[float], threshold: float) -> int:
    """Impostor scores accepted at ``threshold`` (``>=``, Rekognition's rule)."""
    return sum(1 for score in impostor if score >= threshold)


def probes_with_false_match(probes: Iterable[ProbeScores], threshold: float) -> list[str]:
    """Probes that return at least one wrong identity at ``threshold`` (any distractor match)."""
    out: list[str] = []
    for probe in probes:
        if probe.scores and any(
            score >= threshold for who, score in probe.scores.items() if who != probe.identity
        ):
            out.append(probe.photo)
    return out


@dataclass(frozen=True)
class RocPoint:
    """One operating point: accept scores ``>= threshold``."""

    threshold: float
    far: float
    tar: float


def roc_curve(genuine: Sequence[float | None], impostor: Sequence[float]) -> list[RocPoint]:
    """Every distinct operating point, from the strictest threshold to the loosest.

    Thresholds are the distinct scores (genuine and impostor), highest first, plus +inf (nothing
    accepted) first; genuine probes without a score are never accepted, so the curve may end
    below TAR 1.
    """
    if not genuine or not impostor:
        return []
    observed = sorted({s for s in genuine if s is not None} | set(impostor), reverse=True)
    points = [RocPoint(math.inf, 0.0, 0.0)]
    for threshold in observed:
        points.append(
            RocPoint(
                threshold,
                false_matches_at(impostor, threshold) / len(impostor),
                accepted_share(genuine, threshold) or 0.0,
            )
        )
    return points


@dataclass(frozen=True)
class Summary:
    """The figures of one representation (the JSON's ``user_vectors`` / ``face_vectors``)."""

    top1: float | None
    tar_at_far_1pct: float | None
    tar_at_far_0_1pct: float | None
    false_matches_at_80: int
    threshold_at_far_0_1pct: float | None
    threshold_at_far_1pct: float | None
    tar_at_80: float | None
    genuine_probes: int
    genuine_without_score: int
    impostor_scores: int
    probes_with_false_match_at_80: list[str]


DEFAULT_THRESHOLD = 80.0


def summarize(probes: Sequence[ProbeScores]) -> Summary:
    """Every figure of the module docstring for one representation."""
    genuine = genuine_scores(probes)
    impostor = impostor_scores(probes)
    return Summary(
        top1=top1(probes),
        tar_at_far_1pct=tar_at_far(genuine, impostor, 0.01),
        tar_at_far_0_1pct=tar_at_far(genuine, impostor, 0.001),
        false_matches_at_80=false_matches_at(impostor, DEFAULT_THRESHOLD),
        threshold_at_far_0_1pct=threshold_at_far(impostor, 0.001),
        threshold_at_far_1pct=threshold_at_far(impostor, 0.01),
        tar_at_80=accepted_share(genuine, DEFAULT_THRESHOLD),
        genuine_probes=len(genuine),
        genuine_without_score=sum(1 for s in genuine if s is None),
        impostor_scores=len(impostor),
        probes_with_false_match_at_80=probes_with_false_match(probes, DEFAULT_THRESHOLD),
    )
