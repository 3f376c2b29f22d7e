"""An evaluation run as JSON (the keys of issue #10 and more), a text table and a ROC plot."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from enroll_cli.tables import format_table
from enroll_local.evaluation.metrics import (
    DEFAULT_THRESHOLD,
    ProbeScores,
    Summary,
    best_match,
    genuine_scores,
    impostor_scores,
    is_top1,
    roc_curve,
    summarize,
)
from enroll_local.evaluation.session import (
    DISTRACTOR,
    REJECTED,
    EvaluationRun,
    PhotoOutcome,
)
from enrollment.photo_policy import INDEX_QUALITY_REASONS, Reason

REPRESENTATIONS = (("user_vectors", "users"), ("face_vectors", "faces"))
DEFINITIONS = {
    "genuine_score": "a genuine probe's similarity to its own identity (user vector, or best "
    "of its faces); a probe with no searchable face has none and is never accepted",
    "impostor_scores": "every wrong-identity similarity of each genuine probe, plus the best "
    "similarity of each distractor probe with a searchable face",
    "top1": "genuine probes whose own identity scores strictly highest / genuine probes",
    "tar_at_far": "genuine probes scoring strictly above threshold_at_far / genuine probes",
    "threshold_at_far": "the (floor(FAR * N) + 1)-th highest of the N impostor scores: a "
    "threshold strictly above it lets at most FAR * N impostors through",
    "false_matches_at_80": "impostor scores >= 80 (Rekognition's default search threshold)",
    "detection": "the pipeline's photo policy (IndexFaces with QualityFilter AUTO, MaxFaces 1, "
    "multi-face policy reject) on every photo of --photos",
}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100.0 * value:.1f} %"


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def _probes(run: EvaluationRun, attr: str) -> list[ProbeScores]:
    return [getattr(search, attr) for search in run.searches]


def summaries(run: EvaluationRun) -> dict[str, Summary]:
    return {name: summarize(_probes(run, attr)) for name, attr in REPRESENTATIONS}


def detection(outcomes: Iterable[PhotoOutcome]) -> dict[str, Any]:
    """Counts of the photo policy's verdicts (before association) and every rejection."""
    photos = list(outcomes)
    # AssociateFaces refusals are enrollment outcomes, not detection: the policy accepted them.
    policy = [o for o in photos if o.associated is not False]
    rejected = [o for o in policy if o.status == REJECTED]
    reasons = Counter(str(o.reason) for o in rejected)
    quality = sum(n for reason, n in reasons.items() if reason in INDEX_QUALITY_REASONS)
    unreadable = sum(
        n
        for reason, n in reasons.items()
        if reason
        in (
            Reason.INVALID_IMAGE_FORMAT,
            Reason.INVALID_IMAGE,
            Reason.IMAGE_TOO_LARGE,
            Reason.OBJECT_NOT_FOUND,
        )
    )
    return {
        "photos": len(photos),
        "accepted": len(photos) - len(rejected),
        "no_face": reasons.get(Reason.NO_FACE, 0),
        "multiple_faces": reasons.get(Reason.MULTIPLE_FACES, 0),
        "quality_rejected": quality,
        "unreadable": unreadable,
        "reasons": dict(sorted(reasons.items())),
        "rejected": [
            {"photo": o.photo, "role": o.role, "reason": o.reason, "detail": o.detail}
            for o in rejected
        ],
    }


def _representation(summary: Summary) -> dict[str, Any]:
    data = asdict(summary)
    for key in (
        "top1",
        "tar_at_far_1pct",
        "tar_at_far_0_1pct",
        "tar_at_80",
        "threshold_at_far_0_1pct",
        "threshold_at_far_1pct",
    ):
        data[key] = _round(data[key])
    return data


def _probe_rows(run: EvaluationRun) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for search in run.searches:
        row: dict[str, Any] = {"photo": search.photo, "identity": search.identity}
        for name, attr in REPRESENTATIONS:
            probe: ProbeScores = getattr(search, attr)
            best = best_match(probe)
            own = None
            if probe.scores is not None and search.identity is not None:
                own = probe.scores.get(search.identity)
            row[name] = {
                "own": own,
                "best": None if best is None else best[0],
                "best_score": None if best is None else best[1],
                "top1": is_top1(probe) if search.identity is not None else None,
            }
        if search.failure:
            row["failure"] = search.failure
        rows.append(row)
    return rows


def build_report(run: EvaluationRun, *, photos_dir: str, distractors_dir: str | None) -> dict:
    """The JSON document ``enroll eval --json`` writes."""
    figures = summaries(run)
    photos = [o for o in run.outcomes if o.role != DISTRACTOR]
    distractors = [o for o in run.outcomes if o.role == DISTRACTOR]
    enrollment = [o for o in run.outcomes if o.role == "enrollment"]
    return {
        "photos_dir": photos_dir,
        "distractors_dir": distractors_dir,
        "engine": run.engine,
        "enroll": run.enroll,
        "enrolled_identities": len(run.enrolled_faces),
        "enrolled_faces": sum(run.enrolled_faces.values()),
        "faces_per_identity": dict(run.enrolled_faces),
        "identities_without_vector": sorted(
            {o.identity for o in enrollment} - set(run.enrolled_faces)
        ),
        "skipped_identities": dict(run.skipped),
        "genuine_probes": sum(1 for s in run.searches if s.identity is not None),
        "impostor_probes": sum(1 for s in run.searches if s.identity is None),
        "user_vectors": _representation(figures["user_vectors"]),
        "face_vectors": _representation(figures["face_vectors"]),
        "detection": detection(photos),
        "distractor_detection": detection(distractors),
        "enrollment_refused": [
            {"photo": o.photo, "reason": o.reason, "detail": o.detail}
            for o in enrollment
            if o.associated is False
        ],
        "probes": _probe_rows(run),
        "photo_outcomes": [asdict(o) for o in run.outcomes],
        "definitions": DEFINITIONS,
        "images_detected": run.images_detected,
        "seconds": round(run.seconds, 1),
    }


def render_text(report: dict[str, Any]) -> str:
    """The table ``enroll eval`` prints."""
    users, faces = report["user_vectors"], report["face_vectors"]
    head = (
        f"{report['enrolled_identities']} identities enrolled from their first "
        f"{report['enroll']} photo(s) ({report['enrolled_faces']} faces), "
        f"{report['genuine_probes']} genuine probes, {report['impostor_probes']} impostor "
        f"probes, engine {report['engine']}, {report['seconds']} s"
    )
    rows = [
        ("top-1 identification", _pct(users["top1"]), _pct(faces["top1"])),
        ("TAR at FAR 1 %", _pct(users["tar_at_far_1pct"]), _pct(faces["tar_at_far_1pct"])),
        ("TAR at FAR 0.1 %", _pct(users["tar_at_far_0_1pct"]), _pct(faces["tar_at_far_0_1pct"])),
        (
            "threshold at FAR 0.1 % (accept >)",
            _score(users["threshold_at_far_0_1pct"]),
            _score(faces["threshold_at_far_0_1pct"]),
        ),
        (
            "threshold at FAR 1 % (accept >)",
            _score(users["threshold_at_far_1pct"]),
            _score(faces["threshold_at_far_1pct"]),
        ),
        (
            f"TAR at threshold {DEFAULT_THRESHOLD:.0f}",
            _pct(users["tar_at_80"]),
            _pct(faces["tar_at_80"]),
        ),
        (
            f"false matches at {DEFAULT_THRESHOLD:.0f}",
            f"{users['false_matches_at_80']} of {users['impostor_scores']}",
            f"{faces['false_matches_at_80']} of {faces['impostor_scores']}",
        ),
        (
            "genuine probes with no face searched",
            users["genuine_without_score"],
            faces["genuine_without_score"],
        ),
    ]
    blocks = [head, "", format_table(("", "user vectors", "face vectors"), rows)]
    if report["skipped_identities"]:
        skipped = ", ".join(f"{k} ({v})" for k, v in report["skipped_identities"].items())
        blocks += ["", f"skipped (no more than {report['enroll']} photos): {skipped}"]
    for name in ("user_vectors", "face_vectors"):
        wrong = report[name]["probes_with_false_match_at_80"]
        if wrong:
            blocks += ["", f"{name}: probes matching a wrong identity at 80: {', '.join(wrong)}"]
    detections = [
        (option, report[key])
        for option, key in (("--photos", "detection"), ("--distractors", "distractor_detection"))
        if report[key]["photos"]
    ]
    blocks += [
        "",
        "detection (the pipeline's photo policy: QualityFilter AUTO, MaxFaces 1, one face)",
        format_table(
            ("", "photos", "accepted", "no face", "several faces", "low quality", "unreadable"),
            [
                (
                    option,
                    det["photos"],
                    det["accepted"],
                    det["no_face"],
                    det["multiple_faces"],
                    det["quality_rejected"],
                    det["unreadable"],
                )
                for option, det in detections
            ],
        ),
    ]
    rejected = [r for _, det in detections for r in det["rejected"]]
    if rejected:
        blocks += [
            "",
            format_table(
                ("rejected photo", "role", "reason", "detail"),
                [(r["photo"], r["role"], r["reason"], r["detail"]) for r in rejected],
            ),
        ]
    if report["enrollment_refused"]:
        blocks += [
            "",
            "enrollment photos AssociateFaces refused:",
            format_table(
                ("photo", "reason", "detail"),
                [(r["photo"], r["reason"], r["detail"]) for r in report["enrollment_refused"]],
            ),
        ]
    return "\n".join(blocks)


def plot_roc(run: EvaluationRun, path: Path, *, title: str | None = None) -> Path:
    """ROC curves of both representations (FAR on a log axis) with the threshold-80 points."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on a build box
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=100)
    curves = []
    for (name, attr), colour in zip(REPRESENTATIONS, ("tab:blue", "tab:orange"), strict=True):
        probes = _probes(run, attr)
        impostor = impostor_scores(probes)
        points = roc_curve(genuine_scores(probes), impostor)
        if points:
            curves.append((name.replace("_", " "), colour, points, summarize(probes), impostor))
    # A log axis cannot show FAR 0: points with no false accept sit at the left edge, half of
    # the smallest non-zero FAR the larger impostor set can measure.
    floor = min((0.5 / len(curve[4]) for curve in curves), default=0.001)
    for label, colour, points, summary, impostor in curves:
        fars = [max(p.far, floor) for p in points]
        ax.step(fars, [p.tar for p in points], where="post", color=colour, label=label)
        far80 = summary.false_matches_at_80 / len(impostor)
        ax.plot(
            [max(far80, floor)],
            [summary.tar_at_80 or 0.0],
            marker="o",
            color=colour,
            label=f"{label} at threshold {DEFAULT_THRESHOLD:.0f}",
        )
    for far in (0.01, 0.001):
        ax.axvline(far, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    # Zoom on the part that differs: from a little under the lowest TAR at no false accept.
    start = min((max(p.tar for p in c[2] if p.far == 0.0) for c in curves), default=0.0)
    ax.set_ylim(max(0.0, math.floor((start - 0.02) * 20.0) / 20.0), 1.005)
    ax.set_xlabel("false-accept rate (impostor scores accepted; left edge = none)")
    ax.set_ylabel("true-accept rate (genuine probes)")
    genuine_n = sum(1 for search in run.searches if search.identity is not None)
    ax.set_title(
        title
        or f"ROC, {len(run.enrolled_faces)} identities enrolled from {run.enroll} photo(s) each, "
        f"{genuine_n} genuine probes",
        fontsize="medium",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
