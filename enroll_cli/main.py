"""The ``enroll`` command: run the local stack, and ask the query API (local or deployed).

enroll local  [--data-dir DIR] [--port N] [--api-port N | --no-api] [--engine dlib|synthetic|hybrid]
enroll demo   [--photos DIR] [--engine ...] [--timeout S]
enroll users  [--limit N] [--next-token T]          enroll status USER
enroll photos USER                                   enroll delete USER [--wait]
enroll search IMAGE | --s3-key KEY [--threshold P] [--max-users N]
enroll verify USER IMAGE | --s3-key KEY [--threshold P]
enroll dashboard [--out FILE.png] [--since 30m]
enroll reconcile [--stuck-after S] [--orphan-grace S] [--json]
enroll cost   --counts FILE.json [--json OUT] [--photos N] [--naive-wait S]
enroll backfill [--manifest s3://.../manifest.json] [--rate TPS] [--restart] [--stack NAME]
enroll bench load [--photos N] [--users-max K] [--quota-scale S] [--json FILE] [--plot FILE]
enroll eval --photos DIR [--distractors DIR] [--enroll K] [--json FILE] [--plot FILE] [--engine E]

The API commands call the local stack's API (its URL from ``--endpoints``, default
``.local-data/endpoints.json``) or a deployed one (``--api URL``, signed with SigV4 from the usual
AWS credentials). Exit status: 0 ok, 1 the API answered an error (or could not be reached),
2 bad usage (or no local stack to talk to).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from enroll_cli import backfill as backfill_command
from enroll_cli import bench as bench_command
from enroll_cli import cost as cost_command
from enroll_cli import eval as eval_command
from enroll_cli.api_client import (
    DEFAULT_ENDPOINTS_PATH,
    DEFAULT_TIMEOUT_SECONDS,
    ApiClient,
    ApiError,
    ApiUnreachable,
    CredentialsProvider,
    NoEndpoints,
    SigV4Signer,
    api_url_from_endpoints,
    default_credentials,
    region_of,
)
from enroll_cli.render import render
from enroll_local.runner.workers import DEFAULT_MAX_LOCAL_CONCURRENCY

ENGINES = ("dlib", "synthetic", "hybrid")
DEFAULT_DEMO_TIMEOUT_SECONDS = 180.0
#: The handlers log through Powertools; the demo keeps only their warnings to stay readable.
DEMO_HANDLER_LOG_LEVEL = "WARNING"
#: ``enroll delete --wait``: how long to wait for the erasure to finish, and how often to look.
DELETE_WAIT_SECONDS = 120.0
DELETE_POLL_SECONDS = 1.0
#: The region signed for when neither --region nor the URL nor the AWS config says one.
FALLBACK_REGION = "us-east-1"
#: Powertools warns on every invocation that publishes no metric (a GET on the query API); in
#: Lambda that is a log line, on the terminal of ``enroll local``/``demo`` it buries the output.
EMPTY_METRICS_WARNING = "No application metrics to publish"
#: ``enroll local`` runs the reconcile function this often (seconds), like its schedule.
LOCAL_RECONCILE_INTERVAL_SECONDS = 60.0
#: Exit statuses.
EXIT_OK, EXIT_API_ERROR, EXIT_USAGE = 0, 1, 2


def _api_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """Where the API is and how to print its answers.

    Accepted before and after the command (``enroll --json users`` and ``enroll users --json``);
    the copies on the commands default to SUPPRESS so they never overwrite the top-level value.
    """

    def default(value: Any) -> Any:
        return value if top_level else argparse.SUPPRESS

    parser.add_argument(
        "--api",
        metavar="URL",
        default=default(None),
        help="a deployed API's URL (https://<id>.execute-api.<region>.amazonaws.com/<stage>); "
        "requests are signed with SigV4 from the usual AWS credentials",
    )
    parser.add_argument(
        "--endpoints",
        metavar="PATH",
        type=Path,
        default=default(DEFAULT_ENDPOINTS_PATH),
        help=f"endpoints.json of a running `enroll local` (default: {DEFAULT_ENDPOINTS_PATH})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the API's JSON instead of a table",
    )
    parser.add_argument(
        "--region",
        default=default(None),
        help="region to sign for with --api (default: from the URL, then the AWS config)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=default(DEFAULT_TIMEOUT_SECONDS),
        help="seconds to wait for each API answer",
    )


def _image_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", nargs="?", type=Path, help="a JPEG or PNG file")
    parser.add_argument("--s3-key", help="an object under the stack's bucket instead of a file")
    parser.add_argument(
        "--threshold", type=float, help="minimum similarity in percent (default: the API's)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="enroll",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    _api_options(parser, top_level=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    api_common = argparse.ArgumentParser(add_help=False)
    _api_options(api_common, top_level=False)

    local = commands.add_parser(
        "local", help="run the pipeline and its API on local endpoints until Ctrl-C"
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
        help="query API port on 127.0.0.1 (0 = any free port; its URL is api_url)",
    )
    local.add_argument(
        "--no-api", action="store_true", help="do not serve the query API (api_url is null)"
    )
    local.add_argument("--engine", choices=ENGINES, default="dlib", help="face engine")
    local.add_argument("--region", default="us-east-1")
    local.add_argument(
        "--max-concurrency",
        type=int,
        default=DEFAULT_MAX_LOCAL_CONCURRENCY,
        help="concurrent invocations per function at most, each in a process of its own "
        "(capped by the function's deployed concurrency; default %(default)s)",
    )
    local.add_argument(
        "--inline",
        action="store_true",
        help="run the functions in this process, one invocation at a time (for a debugger)",
    )

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

    users = commands.add_parser("users", parents=[api_common], help="list users (one page)")
    users.add_argument("--limit", type=int, help="users per page (default: the API's)")
    users.add_argument("--next-token", help="the page after the one that printed this token")

    status = commands.add_parser(
        "status", parents=[api_common], help="a user's status, faces and erasure progress"
    )
    status.add_argument("user", help="UserId")

    photos = commands.add_parser(
        "photos", parents=[api_common], help="every photo of a user with its outcome and reason"
    )
    photos.add_argument("user", help="UserId")

    search = commands.add_parser("search", parents=[api_common], help="who is in this photo?")
    _image_options(search)
    search.add_argument("--max-users", type=int, help="matches to return (default: the API's)")

    verify = commands.add_parser(
        "verify", parents=[api_common], help="is this photo that user? (1:1)"
    )
    verify.add_argument("user", help="UserId")
    _image_options(verify)

    delete = commands.add_parser(
        "delete", parents=[api_common], help="erase a user: faces, photos and ledger items"
    )
    delete.add_argument("user", help="UserId")
    delete.add_argument(
        "--wait", action="store_true", help="wait until the erasure finished and print its receipt"
    )

    dashboard = commands.add_parser(
        "dashboard", help="render the pipeline's dashboard from the local stack's metrics"
    )
    dashboard.add_argument(
        "--endpoints",
        metavar="PATH",
        type=Path,
        # The top-level option's default applies; SUPPRESS keeps it from being overwritten.
        default=argparse.SUPPRESS,
        help=f"endpoints.json of a running `enroll local` (default: {DEFAULT_ENDPOINTS_PATH})",
    )
    reconcile = commands.add_parser(
        "reconcile",
        help="repair the local stack now: stuck photos, orphan faces, failed activations, DLQs",
    )
    reconcile.add_argument(
        "--endpoints",
        metavar="PATH",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"endpoints.json of a running `enroll local` (default: {DEFAULT_ENDPOINTS_PATH})",
    )
    reconcile.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the report as JSON"
    )
    reconcile.add_argument(
        "--stuck-after",
        type=int,
        metavar="S",
        help="seconds after which an INDEXED/ASSOCIATED photo is stuck (default: the stack's)",
    )
    reconcile.add_argument(
        "--orphan-grace",
        type=int,
        metavar="S",
        help="seconds a face must have been seen unowned before it is deleted (default: the "
        "stack's)",
    )
    dashboard.add_argument("--out", type=Path, default=Path("dashboard.png"), help="PNG to write")
    dashboard.add_argument("--since", default="30m", help="time window, e.g. 30m, 2h, 1d")
    cost_command.add_parser(commands)
    eval_command.add_parser(commands)
    backfill_command.add_parser(commands, api_common)
    bench_command.add_parser(commands)
    return parser


# -- enroll local / enroll demo ------------------------------------------------------------------


def _run_local(args: argparse.Namespace) -> int:
    from enroll_local.runner.stack import (
        LocalSettings,
        LocalStack,
        PortInUseError,
        ensure_port_free,
    )

    api_port = None if args.no_api else args.api_port
    for option, port in (("--port", args.port), ("--api-port", api_port)):
        try:
            if port is not None:
                ensure_port_free(LocalSettings.host, port)
        except PortInUseError as error:
            print(
                f"enroll local: {error.strerror}; pick another {option} (0 = any free port)",
                file=sys.stderr,
            )
            return EXIT_USAGE

    settings = LocalSettings(
        port=args.port,
        api_port=api_port,
        engine=args.engine,
        data_dir=args.data_dir,
        region=args.region,
        reconcile_interval_seconds=LOCAL_RECONCILE_INTERVAL_SECONDS,
        isolation="inline" if args.inline else "process",
        max_local_concurrency=args.max_concurrency,
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
        tries = [
            f"  aws --endpoint-url {endpoints.endpoint_url} s3 cp me.jpg "
            f"s3://{endpoints.bucket}/{endpoints.prefix}Daniel/",
            f"  aws --endpoint-url {endpoints.endpoint_url} dynamodb scan "
            f"--table-name {endpoints.table}",
        ]
        if endpoints.api_url:
            tries.append(f"  curl {endpoints.api_url}/users")
            if args.data_dir is not None:
                tries.append(f"  enroll users --endpoints {args.data_dir / 'endpoints.json'}")
        print("\nTry:\n" + "\n".join(tries) + "\nCtrl-C stops.", flush=True)
        while not stopped.wait(0.5):
            pass
        print("Stopping ...", flush=True)
    return EXIT_OK


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


def _run_dashboard(args: argparse.Namespace) -> int:
    # Imported here: it needs matplotlib, which only this command uses.
    from enroll_local.dashboard import figures_path, parse_since, run_dashboard
    from enroll_local.runner.stack import load_endpoints

    try:
        since_seconds = parse_since(args.since)
    except ValueError as error:
        print(f"enroll dashboard: --since: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not args.endpoints.is_file():
        print(
            f"enroll dashboard: {args.endpoints} not found: start the local stack with "
            f"`enroll local --data-dir {args.endpoints.parent}` (it writes "
            f"{args.endpoints.name})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    out = run_dashboard(load_endpoints(args.endpoints), args.out, since_seconds)
    print(f"wrote {out} (its numbers: {figures_path(out)})")
    return EXIT_OK


def _run_reconcile(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """One reconciler run against the local stack named by endpoints.json; print its report."""
    from enroll_local.runner.stack import load_endpoints

    if not args.endpoints.is_file():
        print(
            f"enroll reconcile: {args.endpoints} not found: start the local stack with "
            f"`enroll local --data-dir {args.endpoints.parent}` (it writes "
            f"{args.endpoints.name})",
            file=err,
        )
        return EXIT_USAGE
    from enrollment.observability import logger, metrics
    from enrollment.settings import SettingsError

    try:
        reconciler = local_reconciler(
            load_endpoints(args.endpoints),
            stuck_after_s=args.stuck_after,
            orphan_grace_s=args.orphan_grace,
        )
    except SettingsError as error:
        print(f"enroll reconcile: {error}", file=err)
        return EXIT_USAGE
    # The report is the output: the run's own INFO log line would repeat it.
    level = logger.log_level
    logger.setLevel(logging.WARNING)
    try:
        report = reconciler.run().as_dict()
    finally:
        logger.setLevel(level)
        metrics.clear_metrics()  # nothing flushes them here; CloudWatch is not the point
    if args.json:
        print(json.dumps(report, indent=2), file=out)
    else:
        print(render_reconcile_report(report), file=out)
    return EXIT_OK


def local_reconciler(
    endpoints: Any, *, stuck_after_s: int | None = None, orphan_grace_s: int | None = None
) -> Any:
    """A Reconciler on the local stack's endpoint, with the settings its functions get."""

    from enroll_local.runner.stack import local_client
    from enrollment.reconciler import Reconciler
    from enrollment.settings import Settings
    from infra.config import PipelineConfig

    config = PipelineConfig()
    env = config.lambda_environment(
        service_name=config.reconcile_service_name,
        bucket_name=endpoints.bucket,
        ledger_table=endpoints.table,
        association_queue_url=endpoints.association_queue_url,
        activation_state_machine_arn=endpoints.state_machine_arn,
        upload_dlq_url=endpoints.upload_dlq_url,
        association_dlq_url=endpoints.association_dlq_url,
    )
    env.update({"COLLECTION_ID": endpoints.collection_id, "ENROLL_PREFIX": endpoints.prefix})
    if stuck_after_s is not None:
        env["RECONCILE_STUCK_AFTER_S"] = str(stuck_after_s)
    if orphan_grace_s is not None:
        env["RECONCILE_ORPHAN_GRACE_S"] = str(orphan_grace_s)
    settings = Settings.from_env(env)

    def client(service: str) -> Any:
        return local_client(endpoints, service)

    return Reconciler.build(settings, client)


def render_reconcile_report(report: dict[str, Any]) -> str:
    """The report as a two-column table (repairs, then what was seen and left)."""
    rows = [(kind, count) for kind, count in report["repaired"].items()]
    rows += [
        ("total repaired", report["total"]),
        ("orphan faces waiting (grace)", report["orphan_faces_waiting"]),
        ("DLQ messages read", report["dlq_messages_read"]),
        ("DLQ messages unreadable", report["dlq_messages_unreadable"]),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'repair':<{width}}  count", f"{'-' * width}  -----"]
    lines += [f"{name:<{width}}  {value:>5}" for name, value in rows]
    if report.get("capped"):
        lines.append(f"capped (more left for the next run): {', '.join(report['capped'])}")
    return "\n".join(lines)


# -- the API commands ----------------------------------------------------------------------------


def make_client(
    args: argparse.Namespace, credentials: CredentialsProvider | None = None
) -> ApiClient:
    """The client the options ask for: the deployed API signed with SigV4, or the local one."""
    if args.api:
        region = args.region or region_of(args.api) or _configured_region() or FALLBACK_REGION
        signer = SigV4Signer(region=region, credentials=credentials or default_credentials)
        return ApiClient(args.api, signer=signer, timeout_seconds=args.timeout)
    return ApiClient(api_url_from_endpoints(args.endpoints), timeout_seconds=args.timeout)


def _configured_region() -> str | None:
    import botocore.session

    region = botocore.session.get_session().get_config_variable("region")
    return str(region) if region else None


class UsageError(Exception):
    """A mistake in the command line that argparse cannot see (exit status 2)."""


def _image_body(args: argparse.Namespace) -> dict[str, Any]:
    if (args.image is None) == (args.s3_key is None):
        raise UsageError("give either an IMAGE file or --s3-key KEY")
    if args.s3_key is not None:
        return {"s3_key": args.s3_key}
    if not args.image.is_file():
        raise UsageError(f"{args.image} is not a file")
    return {"image": base64.b64encode(args.image.read_bytes()).decode("ascii")}


def _call(client: ApiClient, args: argparse.Namespace) -> Any:
    command = args.command
    if command == "users":
        return client.users(limit=args.limit, next_token=args.next_token)
    if command == "status":
        return client.user(args.user)
    if command == "photos":
        return client.photos(args.user)
    if command == "search":
        return client.search(_image_body(args), threshold=args.threshold, max_users=args.max_users)
    if command == "verify":
        return client.verify(args.user, _image_body(args), threshold=args.threshold)
    if command == "delete":
        answer = client.delete(args.user)
        if args.wait:
            return _wait_for_erasure(client, args.user, answer)
        return answer
    raise UsageError(f"unknown command {command}")


def _wait_for_erasure(client: ApiClient, user_id: str, answer: Any) -> Any:
    """Poll GET /users/{userId} until its status is DELETED; the last answer."""
    deadline = time.monotonic() + DELETE_WAIT_SECONDS
    while not (isinstance(answer, dict) and answer.get("status") == "DELETED"):
        if time.monotonic() > deadline:
            raise ApiUnreachable(
                f"the erasure of {user_id} did not finish within {DELETE_WAIT_SECONDS:.0f} s; "
                f"`enroll status {user_id}` shows where it is"
            )
        time.sleep(DELETE_POLL_SECONDS)
        answer = client.user(user_id)
    return answer


def run_api_command(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    credentials: CredentialsProvider | None = None,
) -> int:
    """Run one API command; print the answer to ``out`` or the error to ``err``."""
    try:
        client = make_client(args, credentials)
        answer = _call(client, args)
    except (NoEndpoints, UsageError) as error:
        print(f"enroll {args.command}: {error}", file=err)
        return EXIT_USAGE
    except ApiError as error:
        if args.json and error.body is not None:
            print(json.dumps(error.body, indent=2), file=out)
        print(f"enroll {args.command}: {error.status} {error.code}: {error.message}", file=err)
        return EXIT_API_ERROR
    except ApiUnreachable as error:
        print(f"enroll {args.command}: {error}", file=err)
        return EXIT_API_ERROR
    if args.json:
        print(json.dumps(answer, indent=2), file=out)
    else:
        print(render(args.command, answer), file=out)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``enroll`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command in ("local", "demo"):
        warnings.filterwarnings("ignore", message=EMPTY_METRICS_WARNING, category=UserWarning)
    if args.command == "local":
        return _run_local(args)
    if args.command == "demo":
        return _run_demo(args)
    if args.command == "dashboard":
        return _run_dashboard(args)
    if args.command == "reconcile":
        return _run_reconcile(args, sys.stdout, sys.stderr)
    if args.command == "cost":
        return cost_command.run(args, sys.stdout, sys.stderr)
    if args.command == "eval":
        return eval_command.run(args, sys.stdout, sys.stderr)
    if args.command == "backfill":
        return backfill_command.run(args, sys.stdout, sys.stderr)
    if args.command == "bench":
        return bench_command.run(args, sys.stdout, sys.stderr)
    return run_api_command(args, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
