"""``enroll eval``: how accurate are user vectors against face vectors on your own photos?

Runs in-process against moto and the Rekognition emulator (no local stack, no AWS account):
see ``enroll_local/evaluation`` for what is called and ``docs/evaluation.md`` for the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

ENGINES = ("dlib", "hybrid", "synthetic")
DEFAULT_ENROLL = 3
EXIT_OK, EXIT_USAGE = 0, 2


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Register ``eval`` on the ``enroll`` command's subparsers."""
    parser = commands.add_parser(
        "eval",
        help="accuracy of user vectors vs face vectors on a folder of labelled photos",
        description="Enroll the first K photos of each <identity>/ folder of --photos into a "
        "fresh collection (IndexFaces, the pipeline's photo policy, CreateUser, AssociateFaces), "
        "search every other photo, and those of --distractors, against user vectors "
        "(SearchUsersByImage) and face vectors (SearchFacesByImage), and report top-1, TAR at "
        "FAR 1 % and 0.1 %, false matches at 80 and detection failures.",
    )
    parser.add_argument(
        "--photos", type=Path, required=True, help="folder laid out as <identity>/<photos>"
    )
    parser.add_argument(
        "--distractors",
        type=Path,
        help="folder laid out as <identity>/<photos> of people not in --photos: impostor probes",
    )
    parser.add_argument(
        "--enroll",
        type=int,
        default=DEFAULT_ENROLL,
        metavar="K",
        help="photos enrolled per identity; identities with K photos or fewer are skipped "
        "(default %(default)s)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--plot", type=Path, metavar="FILE", help="write the ROC curves (PNG)")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="dlib",
        help="face engine (default %(default)s; synthetic reads test photos' metadata only)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the evaluation the options describe; 0 when it ran, 2 for a bad folder or option."""
    from enroll_local.evaluation.dataset import DatasetError, load_folder, split
    from enroll_local.evaluation.report import build_report, plot_roc, render_text
    from enroll_local.evaluation.session import run_evaluation

    def fail(message: str) -> int:
        print(f"enroll eval: {message}", file=err)
        return EXIT_USAGE

    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path is not None and not path.parent.is_dir():
            return fail(f"{option} {path}: folder {path.parent} does not exist")
    try:
        photos = load_folder(args.photos, "--photos")
        distractors = load_folder(args.distractors, "--distractors") if args.distractors else None
        chosen = split(photos, args.enroll)
        if not chosen.enrollment:
            return fail(
                f"--photos {args.photos}: no identity has more than {args.enroll} photos, so "
                "nothing can be both enrolled and searched; lower --enroll"
            )
        if distractors is not None:
            shared = sorted(set(distractors.identities) & set(photos.identities))
            if shared:
                return fail(
                    f"--distractors {args.distractors}: {', '.join(shared)} also in --photos; "
                    "distractors must be people who are never enrolled"
                )

        def progress(line: str) -> None:
            if not args.quiet:
                print(line, file=err, flush=True)

        evaluation = run_evaluation(
            chosen,
            distractors.photos if distractors else [],
            enroll=args.enroll,
            engine=args.engine,
            progress=progress,
        )
    except DatasetError as error:
        return fail(str(error))
    report = build_report(
        evaluation,
        photos_dir=str(args.photos),
        distractors_dir=None if args.distractors is None else str(args.distractors),
    )
    print(render_text(report), file=out)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}", file=out)
    if args.plot is not None:
        plot_roc(evaluation, args.plot)
        print(f"wrote {args.plot}", file=out)
    return EXIT_OK
