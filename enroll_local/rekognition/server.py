"""One local AWS endpoint: moto's threaded server with the Rekognition emulator plugged in.

Everything moto serves (S3, SQS, DynamoDB, Step Functions, CloudWatch) and the emulator's 17
Rekognition operations answer on the same ``http://127.0.0.1:<port>``, so boto3
(``AWS_ENDPOINT_URL``), the AWS CLI (``--endpoint-url``) and the state machine's
``aws-sdk:rekognition:*`` tasks all reach the same in-process state.

    with local_endpoint(emulator) as endpoint_url:
        boto3.client("rekognition", endpoint_url=endpoint_url, region_name="us-east-1")

Standalone: ``python -m enroll_local.rekognition.server --port 5000 --engine hybrid``.
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer

from enroll_local import moto_speedups

from .moto_plugin import build_emulator, install, uninstall

if TYPE_CHECKING:
    from .service import RekognitionEmulator

DEFAULT_HOST = "127.0.0.1"  # loopback only: the local stack has no authentication
DEFAULT_PORT = 0  # 0 = any free port, read back from the socket


@contextmanager
def local_endpoint(
    emulator: RekognitionEmulator,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    execute_state_machines: bool = True,
) -> Iterator[str]:
    """Serve moto + ``emulator`` on ``host:port`` until the block ends; yield the endpoint URL.

    On exit the emulator's pending state is written to its ``data_dir`` (if it has one).

    ``execute_state_machines`` makes moto's Step Functions run definitions for real (default
    off in moto). ``MOTO_PORT`` is set for the block because moto's Step Functions reaches the
    services of an ``aws-sdk:*`` task at ``localhost:$MOTO_PORT`` when it runs as a server.
    """
    moto_speedups.apply()
    previous_sfn = dict(default_user_config.get("stepfunctions", {}))
    previous_port = os.environ.get("MOTO_PORT")
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    install(emulator)
    try:
        server.start()
        bound_host, bound_port = server.get_host_and_port()
        os.environ["MOTO_PORT"] = str(bound_port)
        default_user_config["stepfunctions"] = {"execute_state_machine": execute_state_machines}
        try:
            yield f"http://{bound_host}:{bound_port}"
        finally:
            server.stop()
    finally:
        default_user_config["stepfunctions"] = previous_sfn  # type: ignore[typeddict-item]
        if previous_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = previous_port
        uninstall()
        # Saves are debounced: without this the last changes would wait for a timer or for
        # interpreter exit, and a stack restarted in this process would load a stale data_dir
        # (which the old timer could later overwrite with the old emulator's state).
        emulator.flush()


def main(argv: list[str] | None = None) -> None:
    """Run the local endpoint in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--engine", default="hybrid", choices=["synthetic", "dlib", "hybrid"])
    parser.add_argument(
        "--update-delay-seconds",
        type=float,
        default=None,
        help="seconds a user stays UPDATING after AssociateFaces/DisassociateFaces",
    )
    args = parser.parse_args(argv)
    overrides = {}
    if args.update_delay_seconds is not None:
        overrides["update_delay_seconds"] = args.update_delay_seconds
    emulator = build_emulator(args.engine, **overrides)
    with local_endpoint(emulator, host=args.host, port=args.port) as url:
        print(f"local AWS endpoint with the Rekognition emulator: {url} (Ctrl-C to stop)")
        with suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
