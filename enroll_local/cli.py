"""The ``enroll`` command: ``enroll local`` runs the local stack, ``enroll demo`` shows it working.

enroll local [--data-dir DIR] [--port N] [--api-port N] [--engine dlib|synthetic|hybrid]
enroll demo  [--photos DIR] [--engine ...] [--timeout S]
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

ENGINES = ("dlib", "synthetic", "hybrid")
DEFAULT_DEMO_TIMEOUT_SECONDS = 180.0
#: The handlers log through Powertools; the demo keeps only their warnings to stay readable.
DEMO_HANDLER_LOG_LEVEL = "WARNING"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="enroll", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    local = commands.add_parser(
        "local", help="run the pipeline on one local AWS endpoint until Ctrl-C"
    )
    local.add_argument(
        "--data-dir",
        type=Path,
        help="keeps the Rekognition emulator's state across restarts and gets endpoints.json",
    )
    local.add_argument("--port", type=int, default=0, help="endpoint port (0 = any free port)")
    local.add_argument(
        "--api-port",
        type=int,
        default=0,
        help="query API port (reserved: api_url stays null until the API function exists)",
    )
    local.add_argument("--engine", choices=ENGINES, default="dlib", help="face engine")
    local.add_argument("--region", default="us-east-1")

    demo = commands.add_parser("demo", help="enroll sample photos end to end and show the result")
    demo.add_argument(
        "--photos", type=Path, help="folder laid out as <UserId>/<photos> (default: built-in set)"
    )
    demo.add_argument("--engine", choices=ENGINES, default="dlib", help="face engine")
    demo.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_DEMO_TIMEOUT_SECONDS,
        help="seconds to wait for every photo to reach a final state",
    )
    return parser


def _run_local(args: argparse.Namespace) -> int:
    from enroll_local.runner.stack import (
        LocalSettings,
        LocalStack,
        PortInUseError,
        ensure_port_free,
    )

    try:
        ensure_port_free(LocalSettings.host, args.port)
    except PortInUseError as error:
        print(
            f"enroll local: {error.strerror}; pick another --port (0 = any free port)",
            file=sys.stderr,
        )
        return 2

    settings = LocalSettings(
        port=args.port, engine=args.engine, data_dir=args.data_dir, region=args.region
    )
    stopped = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()
        # A second Ctrl-C during the shutdown interrupts it, as usual.
        signal.signal(signal.SIGINT, signal.default_int_handler)

    # Installed for SIGINT too: a background job started by a non-interactive shell
    # (`enroll local &` in a script) inherits SIGINT ignored, and Ctrl-C / `kill -INT` must
    # stop it all the same.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"Starting the local stack (engine: {args.engine}) ...", flush=True)
    with LocalStack(settings) as stack:
        assert stack.endpoints is not None
        print(stack.endpoints.to_json(), flush=True)
        if args.data_dir is not None:
            stack.write_endpoints(args.data_dir / "endpoints.json")
            print(f"(written to {args.data_dir / 'endpoints.json'})", flush=True)
        endpoints = stack.endpoints
        print(
            "\nTry:\n"
            f"  aws --endpoint-url {endpoints.endpoint_url} s3 cp me.jpg "
            f"s3://{endpoints.bucket}/{endpoints.prefix}Daniel/\n"
            f"  aws --endpoint-url {endpoints.endpoint_url} dynamodb scan "
            f"--table-name {endpoints.table}\n"
            "Ctrl-C stops.",
            flush=True,
        )
        while not stopped.wait(0.5):
            pass
        print("Stopping ...", flush=True)
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from enroll_local.runner.demo import DemoOptions, run_demo

    result = run_demo(
        DemoOptions(
            photos_dir=args.photos,
            engine=args.engine,
            timeout_seconds=args.timeout,
            extra_environment={
                "POWERTOOLS_LOG_LEVEL": DEMO_HANDLER_LOG_LEVEL,
                # The metrics (EMF lines on stdout) would bury the report.
                "POWERTOOLS_METRICS_DISABLED": "true",
            },
        )
    )
    return result.exit_code


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``enroll`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "local":
        return _run_local(args)
    return _run_demo(args)


if __name__ == "__main__":
    sys.exit(main())
