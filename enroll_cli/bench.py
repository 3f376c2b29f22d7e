"""``enroll bench load``: the load benchmark on the local stack (see enroll_local/bench/load.py)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

#: The figures printed as the run's table, in this order (the JSON carries more).
HEADLINE = (
    ("photos", "photos"),
    ("seconds", "seconds"),
    ("index_rate_vs_quota", "IndexFaces sustained / quota"),
    ("faces_per_associate_call", "faces per AssociateFaces call"),
    ("status_checks_per_activation", "status checks per activation"),
    ("state_transitions_per_activation", "state transitions per activation"),
    ("upload_to_active_p50_s", "upload to ACTIVE p50 (s)"),
    ("upload_to_active_p99_s", "upload to ACTIVE p99 (s)"),
    ("throttled_calls", "throttled calls"),
    ("lost", "lost photos"),
    ("orphan_faces", "orphan faces"),
    ("users_over_cap", "users over the cap"),
    ("duplicate_faces", "duplicate faces"),
)
INVARIANTS = ("lost", "orphan_faces", "users_over_cap", "duplicate_faces")


def add_parser(commands: Any) -> None:
    bench = commands.add_parser("bench", help="benchmarks on the local stack")
    kinds = bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    load = kinds.add_parser(
        "load",
        help="bulk enrollment at the Rekognition quota: backfill + live uploads, quotas on",
        description=(
            "Runs the pipeline on the local stack with the synthetic engine and the emulator's "
            "TPS quotas on (the default table times --quota-scale), a backfill and live uploads "
            "at once; prints the figures, checks the pipeline's promises, writes JSON and a plot."
        ),
    )
    load.add_argument("--photos", type=int, default=10_000, help="photos in all (default 10000)")
    load.add_argument(
        "--users-max", type=int, default=120, help="photos per user: 1 to this (default 120)"
    )
    load.add_argument(
        "--quota-scale",
        type=float,
        default=0.1,
        help="multiply every Rekognition quota by this (default 0.1: IndexFaces 5 TPS)",
    )
    load.add_argument(
        "--live-fraction", type=float, default=0.3, help="share of photos uploaded live"
    )
    load.add_argument("--seed", type=int, default=7)
    load.add_argument("--json", dest="json_path", help="write the figures to this JSON file")
    load.add_argument("--plot", dest="plot_path", help="write the throughput plot to this PNG")


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the benchmark; exit 0 when every invariant is 0, 1 otherwise, 2 on bad options."""
    from enroll_local.bench.load import LoadOptions, run_load, summarise, write_json
    from enroll_local.bench.plot import plot_load

    if args.photos < 1 or args.users_max < 1 or args.quota_scale <= 0:
        print("error: --photos and --users-max must be >= 1, --quota-scale > 0", file=err)
        return 2
    if not 0 <= args.live_fraction <= 1:
        print("error: --live-fraction must be between 0 and 1", file=err)
        return 2
    options = LoadOptions(
        photos=args.photos,
        users_max=args.users_max,
        quota_scale=args.quota_scale,
        live_fraction=args.live_fraction,
        seed=args.seed,
    )
    report = summarise(run_load(options, progress=lambda line: print(line, file=err)))
    out.write(render_load(report))
    if args.json_path:
        write_json(report, args.json_path)
        print(f"figures: {args.json_path} (cost: enroll cost --counts {args.json_path})", file=out)
    if args.plot_path:
        plot_load(report, args.plot_path)
        print(f"plot: {args.plot_path}", file=out)
    return 0 if all(report[name] == 0 for name in INVARIANTS) else 1


def render_load(report: dict[str, Any]) -> str:
    """The headline figures as a two-column table, then any broken promise by name."""
    width = max(len(label) for _, label in HEADLINE)
    lines = [f"{label:<{width}}  {_fmt(report.get(key))}" for key, label in HEADLINE]
    violations = report["detail"].get("invariant_violations") or {}
    for name, examples in violations.items():
        lines.append(f"BROKEN {name}: {json.dumps(examples[:5])}")
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
