"""``enroll cost``: the cost per 1,000 photos of a counted local run, ours against the naive design.

    enroll cost --counts bench.json [--json OUT] [--photos N] [--naive-wait S]

``--counts`` is either the load benchmark's JSON (the counted calls under ``counted_calls``, the
photo count under ``photos``) or ``collect_counted_calls``' dict itself (``enroll_local/runner/
call_counter.py``). The prices and every assumption are in ``enroll_local/cost/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from enroll_cli.tables import format_fields, format_table
from enroll_local.cost.report import CostLine, CostReport, cost_report

EXIT_OK, EXIT_USAGE = 0, 2


def add_parser(commands: Any) -> None:
    """Add the ``cost`` command to the ``enroll`` sub-command parsers."""
    cost = commands.add_parser(
        "cost", help="cost per 1,000 photos from a counted run's calls, against the naive design"
    )
    cost.add_argument(
        "--counts",
        type=Path,
        required=True,
        metavar="FILE.json",
        help="the load benchmark's JSON (its counted_calls) or collect_counted_calls' JSON",
    )
    cost.add_argument("--json", dest="json_out", type=Path, metavar="OUT", help="also write it")
    cost.add_argument(
        "--photos", type=int, help="photos the run enrolled (default: the file's photos)"
    )
    cost.add_argument(
        "--naive-wait",
        type=float,
        metavar="S",
        help="activation wait for the naive design's polling (default: the run's mean)",
    )


def load_counts(path: Path) -> tuple[dict[str, Any], int]:
    """(counted calls, photos) from a benchmark JSON or a counted-calls JSON."""
    document = json.loads(path.read_text())
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a JSON object")
    counted = document.get("counted_calls", document)
    if not isinstance(counted, dict) or "requests" not in counted:
        raise ValueError(f"{path}: no counted calls (a 'counted_calls' or 'requests' member)")
    photos = document.get("photos", counted.get("photos"))
    if not isinstance(photos, int) or photos <= 0:
        raise ValueError(f"{path}: no positive 'photos' count (pass --photos)")
    return counted, photos


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        counted, photos = load_counts(args.counts)
    except (OSError, ValueError) as error:
        print(f"enroll cost: {error}", file=err)
        return EXIT_USAGE
    if args.photos is not None:
        if args.photos <= 0:
            print("enroll cost: --photos must be positive", file=err)
            return EXIT_USAGE
        photos = args.photos
    report = cost_report(counted, photos, naive_activation_wait_s=args.naive_wait)
    print(render_cost_report(report), file=out)
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    return EXIT_OK


def _rows(lines: list[CostLine]) -> list[list[str]]:
    rows = []
    for line in lines:
        mark = " *" if line.user_vector else ""
        rows.append([line.service, line.item + mark, line.arithmetic, line.grade, line.note])
    return rows


def _design(title: str, report: CostReport, lines: list[CostLine]) -> str:
    totals = format_table(
        ["service", "$ per 1,000 photos"],
        [[name, f"{usd:.4f}"] for name, usd in report.by_service(lines).items()],
    )
    return "\n".join(
        [
            title,
            format_table(["service", "item", "per 1,000 photos", "grade", "note"], _rows(lines)),
            "",
            totals,
            f"total: ${report.total(lines):.4f} per 1,000 photos "
            f"(${report.total(lines, user_vector_billed=False):.4f} if the * user-vector APIs "
            "are unbilled)",
        ]
    )


def render_cost_report(report: CostReport) -> str:
    inputs = report.inputs
    header = format_fields(
        [
            ("photos", report.photos),
            ("users", report.users),
            ("activation wait (naive polling)", f"{inputs['activation_wait_s']} s"),
            ("headline", "user-vector APIs (*) billed as Group 1, $0.001 a call [U]"),
        ]
    )
    ours, naive = report.total(report.ours), report.total(report.naive)
    saving = (
        f"ours ${ours:.4f} against naive ${naive:.4f} per 1,000 photos "
        f"(${report.total(report.ours, user_vector_billed=False):.4f} against "
        f"${report.total(report.naive, user_vector_billed=False):.4f} if * are unbilled)"
    )
    return "\n\n".join(
        [
            header,
            _design("OUR DESIGN", report, report.ours),
            _design(
                "NAIVE DESIGN (AssociateFaces per photo, a Standard execution per photo polling "
                "ListUsers every second)",
                report,
                report.naive,
            ),
            saving,
            "Grades: [P] AWS pricing page, [S] a third-party copy, [U] unverified. Free tiers "
            "and fixed monthly costs are excluded; see enroll_local/cost/report.py.",
        ]
    )
