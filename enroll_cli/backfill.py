"""``enroll backfill``: enqueue the photos already in the bucket, as S3 would have notified them.

enroll backfill [--manifest s3://BUCKET/.../manifest.json | PATH] [--rate TPS] [--restart]
                [--endpoints PATH | --stack NAME | --stack-outputs FILE
                 | --bucket B --queue-url URL --table T [--prefix P]] [--region R]
                [--no-count] [--json] [--in-stack]

Without ``--manifest`` it lists the bucket (ListObjectVersions, the current version of each key);
with it, it reads an S3 Inventory report (CSV or Parquet). The work is
``enrollment.backfill.run_backfill``; this module finds the stack, paces, shows progress, keeps
the checkpoint file (``.local-data/backfill-<hash>.json``) and prints the summary.

Where the stack is: the local one (``--endpoints``, default ``.local-data/endpoints.json``), a
deployed one by its CloudFormation outputs (``--stack FaceEnrollment-dev`` reads them with
DescribeStacks, ``--stack-outputs`` reads ``cdk deploy --outputs-file``), or explicit names.
``--in-stack`` starts the stack's backfill state machine on the manifest instead (no laptop
needed once it runs).

Exit status: 0 done, 1 the run stopped before the end (refused sends, Ctrl-C: run it again to
continue), 2 bad input (no stack, a missing bucket, a manifest that is not one).
"""

from __future__ import annotations

import argparse
import io
import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from enroll_cli.api_client import DEFAULT_ENDPOINTS_PATH
from enrollment.backfill import DEFAULT_QUOTA_SHARE

#: Where checkpoints live (next to the local stack's data, git-ignored).
CHECKPOINT_DIR = Path(".local-data")
#: A plain progress line this often (seconds) when stderr is not a terminal.
PLAIN_PROGRESS_INTERVAL_S = 10.0
#: The stack outputs the command reads (infra/stack.py).
OUTPUT_BUCKET, OUTPUT_PREFIX, OUTPUT_TABLE = "PhotoBucketName", "EnrollPrefix", "LedgerTableName"
OUTPUT_QUEUE, OUTPUT_STATE_MACHINE = "UploadQueueUrl", "BackfillStateMachineArn"
OUTPUT_INVENTORY = "InventoryBucketName"
EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE = 0, 1, 2


class TargetError(Exception):
    """The stack to backfill cannot be found from the options (exit status 2)."""


@dataclass(frozen=True)
class ResolvedTarget:
    """The backfill target plus what the command needs around it."""

    target: Any  # enrollment.backfill.BackfillTarget
    quota_tps: int
    state_machine_arn: str | None
    stepfunctions: Any
    inventory_bucket: str | None = None


def add_parser(commands: Any, api_common: argparse.ArgumentParser | None = None) -> None:
    """Register ``enroll backfill`` (``api_common`` is unused: no query API call is made)."""
    del api_common
    parser = commands.add_parser(
        "backfill",
        help="enqueue the photos already in the bucket (a listing or an S3 Inventory manifest)",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--manifest",
        metavar="LOCATION",
        help="an S3 Inventory manifest.json (s3://bucket/key or a local path), CSV or Parquet; "
        "default: list the bucket",
    )
    parser.add_argument(
        "--rate",
        type=float,
        metavar="TPS",
        help=f"messages per second (default: {DEFAULT_QUOTA_SHARE:.0%} of the configured "
        "IndexFaces quota, leaving room for live uploads)",
    )
    parser.add_argument(
        "--restart", action="store_true", help="ignore the checkpoint of an interrupted run"
    )
    parser.add_argument(
        "--no-count",
        action="store_true",
        help="do not count the objects first (no total, no time left; saves one pass)",
    )
    parser.add_argument(
        "--in-stack",
        action="store_true",
        help="start the deployed stack's backfill state machine on --manifest s3://... instead",
    )
    where = parser.add_argument_group("where the stack is (default: the local stack)")
    where.add_argument(
        "--endpoints",
        metavar="PATH",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"endpoints.json of a running `enroll local` (default: {DEFAULT_ENDPOINTS_PATH})",
    )
    where.add_argument("--stack", metavar="NAME", help="a deployed stack's name (its outputs)")
    where.add_argument(
        "--stack-outputs",
        metavar="FILE",
        type=Path,
        help="the JSON `cdk deploy --outputs-file FILE` wrote",
    )
    where.add_argument("--bucket", help="the photo bucket (with --queue-url and --table)")
    where.add_argument("--queue-url", help="the upload queue's URL")
    where.add_argument("--table", help="the ledger table")
    where.add_argument("--prefix", help="the enrollment prefix (default: the stack's)")
    where.add_argument("--region", default=argparse.SUPPRESS, help="AWS region of a deployed stack")
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the summary as JSON"
    )


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``enroll backfill`` with parsed ``args``; the exit status."""
    from enrollment.backfill import BackfillError

    try:
        resolved = resolve_target(args)
        source = _source(args, resolved.target)
        if args.in_stack:
            return _start_in_stack(args, resolved, out)
        rate = args.rate if args.rate is not None else DEFAULT_QUOTA_SHARE * resolved.quota_tps
        if not rate > 0:
            raise TargetError(f"--rate must be positive, got {rate}")
        return _run(args, resolved, source, rate, out, err)
    except (TargetError, BackfillError) as error:
        print(f"enroll backfill: {error}", file=err)
        return EXIT_USAGE


def _run(
    args: argparse.Namespace,
    resolved: ResolvedTarget,
    source: Any,
    rate: float,
    out: TextIO,
    err: TextIO,
) -> int:
    from enrollment.backfill import CheckpointFile, checkpoint_name, run_backfill

    target = resolved.target
    checkpoint = CheckpointFile(
        CHECKPOINT_DIR / checkpoint_name(source.identity(), target.queue_url)
    )
    if args.restart:
        checkpoint.clear()
    after = checkpoint.load(source.identity())
    if after is not None:
        print(f"continuing an interrupted run from {after} ({checkpoint.path})", file=err)
    total = None if args.no_count else sum(1 for _ in source.records(after))
    stop = threading.Event()
    previous = _stop_on_signals(stop)
    reporter = ProgressReporter(total, rate, err)
    try:
        result = run_backfill(
            source, target, rate=rate, checkpoint=checkpoint, progress=reporter, stop=stop
        )
    finally:
        reporter.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    summary = result.as_dict()
    if getattr(args, "json", False):
        print(json.dumps(summary, indent=2), file=out)
    else:
        print(render_summary(summary), file=out)
    if result.error:
        print(f"enroll backfill: {result.error}; run it again to continue", file=err)
        return EXIT_INCOMPLETE
    if result.stopped:
        print(
            f"enroll backfill: interrupted; run it again to continue ({checkpoint.path})", file=err
        )
        return EXIT_INCOMPLETE
    return EXIT_OK


def _stop_on_signals(stop: threading.Event) -> dict[int, Any]:
    """Ctrl-C / SIGTERM set ``stop`` (the run ends after its batch, checkpoint saved)."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, _stop)
    return previous


def render_summary(summary: dict[str, Any]) -> str:
    """The run's counts as a two-column table."""
    rows = [
        ("listed", summary["listed"]),
        ("skipped: already in the ledger", summary["skipped_enrolled"]),
        ("skipped: not a photo key", summary["skipped_not_photo"]),
        ("skipped: not the current version", summary["skipped_not_current"]),
        ("enqueued", summary["enqueued"]),
        ("failed", summary["failed"]),
        ("seconds", f"{summary['seconds']:.1f}"),
        ("rate (messages/s)", f"{summary['rate']:.2f}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value:>10}" for name, value in rows)


class ProgressReporter:
    """A tqdm bar on a terminal, else a plain line every PLAIN_PROGRESS_INTERVAL_S seconds."""

    def __init__(
        self, total: int | None, rate: float, stream: TextIO, *, clock: Any = time.monotonic
    ) -> None:
        self._total = total
        self._rate = rate
        self._stream = stream
        self._clock = clock
        self._started = clock()
        self._last_line = self._started
        self._seen = 0
        self._bar: Any = None
        if stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="obj", file=stream, dynamic_ncols=True)

    def __call__(self, result: Any) -> None:
        handled = result.listed
        if self._bar is not None:
            self._bar.update(handled - self._seen)
            self._bar.set_postfix(
                enqueued=result.enqueued, skipped=result.skipped_enrolled, refresh=False
            )
            self._seen = handled
            return
        self._seen = handled
        now = self._clock()
        if now - self._last_line >= PLAIN_PROGRESS_INTERVAL_S:
            self._last_line = now
            print(self.line(result, now - self._started), file=self._stream, flush=True)

    def line(self, result: Any, elapsed: float) -> str:
        """``1200/5000 objects, 900 enqueued, 44.9 msg/s, about 85 s left``."""
        rate = result.enqueued / elapsed if elapsed > 0 else 0.0
        of_total = f"/{self._total}" if self._total is not None else ""
        text = f"{result.listed}{of_total} objects, {result.enqueued} enqueued, {rate:.1f} msg/s"
        if self._total is not None and result.listed and elapsed > 0:
            # Objects handled per second so far, skipped ones included.
            pace = result.listed / elapsed
            text += f", about {max(0.0, (self._total - result.listed) / pace):.0f} s left"
        return text

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# -- the target -------------------------------------------------------------------------------


def resolve_target(args: argparse.Namespace) -> ResolvedTarget:
    """The target from the options: explicit names, stack outputs, or the local stack."""
    import boto3

    from enrollment.backfill import BackfillTarget
    from infra.config import PipelineConfig

    explicit = [args.bucket, args.queue_url, args.table]
    region = getattr(args, "region", None)
    if any(explicit) or args.stack or args.stack_outputs:
        session = boto3.Session(region_name=region)
        region = session.region_name
        if not region:
            raise TargetError("no AWS region: pass --region or configure one")
        if any(explicit):
            if not all(explicit):
                raise TargetError("--bucket, --queue-url and --table go together")
            outputs = {
                OUTPUT_BUCKET: args.bucket,
                OUTPUT_QUEUE: args.queue_url,
                OUTPUT_TABLE: args.table,
            }
        elif args.stack_outputs:
            outputs = _outputs_file(args.stack_outputs)
        else:
            outputs = _stack_outputs(session.client("cloudformation"), args.stack)
        missing = [
            name for name in (OUTPUT_BUCKET, OUTPUT_QUEUE, OUTPUT_TABLE) if not outputs.get(name)
        ]
        if missing:
            raise TargetError(
                f"the stack outputs lack {', '.join(missing)} (deploy the current stack)"
            )
        config = PipelineConfig.for_region(region)
        target = BackfillTarget(
            s3=session.client("s3"),
            sqs=session.client("sqs"),
            dynamodb=session.client("dynamodb"),
            bucket=outputs[OUTPUT_BUCKET],
            prefix=args.prefix or outputs.get(OUTPUT_PREFIX) or config.enroll_prefix,
            queue_url=outputs[OUTPUT_QUEUE],
            table=outputs[OUTPUT_TABLE],
        )
        return ResolvedTarget(
            target=target,
            quota_tps=config.rekognition_index_faces_tps,
            state_machine_arn=outputs.get(OUTPUT_STATE_MACHINE),
            stepfunctions=session.client("stepfunctions"),
            inventory_bucket=outputs.get(OUTPUT_INVENTORY),
        )
    return _local_target(args)


def _local_target(args: argparse.Namespace) -> ResolvedTarget:

    from enroll_local.runner.stack import load_endpoints, local_client
    from enrollment.backfill import BackfillTarget
    from infra.config import PipelineConfig

    path = getattr(args, "endpoints", DEFAULT_ENDPOINTS_PATH)
    if not path.is_file():
        raise TargetError(
            f"{path} not found: start the local stack with `enroll local --data-dir "
            f"{path.parent}` (it writes {path.name}), or name a deployed stack (--stack NAME, "
            "--stack-outputs FILE, or --bucket/--queue-url/--table)"
        )
    try:
        endpoints = load_endpoints(path)
    except (ValueError, TypeError) as error:
        raise TargetError(f"{path} is not an endpoints.json written by `enroll local`") from error

    def client(service: str) -> Any:
        return local_client(endpoints, service)

    target = BackfillTarget(
        s3=client("s3"),
        sqs=client("sqs"),
        dynamodb=client("dynamodb"),
        bucket=endpoints.bucket,
        prefix=args.prefix or endpoints.prefix,
        queue_url=endpoints.upload_queue_url,
        table=endpoints.table,
    )
    return ResolvedTarget(
        target=target,
        quota_tps=PipelineConfig().rekognition_index_faces_tps,
        # The local stack runs no distributed map (moto cannot read an ItemReader).
        state_machine_arn=None,
        stepfunctions=None,
    )


def _stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message")
        raise TargetError(f"stack {stack}: {message}") from None
    except BotoCoreError as error:
        raise TargetError(f"stack {stack}: {error}") from None
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def _outputs_file(path: Path) -> dict[str, str]:
    """The outputs of the one stack in a ``cdk deploy --outputs-file`` JSON."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise TargetError(f"cannot read {path}: {error}") from None
    stacks = document if isinstance(document, dict) else {}
    if len(stacks) != 1 or not isinstance(next(iter(stacks.values())), dict):
        raise TargetError(f"{path} must hold the outputs of exactly one stack")
    return {str(k): str(v) for k, v in next(iter(stacks.values())).items()}


# -- the source -------------------------------------------------------------------------------


def _source(args: argparse.Namespace, target: Any) -> Any:
    from enrollment.backfill import ListingSource, ManifestError, ManifestSource

    if args.in_stack:
        if not (args.manifest or "").startswith("s3://"):
            raise TargetError("--in-stack needs --manifest s3://bucket/key/manifest.json")
        return None
    if not args.manifest:
        return ListingSource(target.s3, target.bucket, target.prefix)
    source = ManifestSource.load(target.s3, args.manifest, parquet_reader=read_parquet)
    if source.source_bucket != target.bucket:
        raise ManifestError(
            f"{args.manifest} lists bucket {source.source_bucket}, not the stack's {target.bucket}"
        )
    return source


def read_parquet(data: bytes) -> Iterator[dict[str, Any]]:
    """The rows of one Parquet inventory file, as dicts of its column names."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from enrollment.backfill import ManifestError

    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
    except pa.ArrowException as error:
        raise ManifestError(f"an inventory data file is not Parquet: {error}") from None
    for batch in parquet.iter_batches():
        yield from batch.to_pylist()


def _start_in_stack(args: argparse.Namespace, resolved: ResolvedTarget, out: TextIO) -> int:
    if not resolved.state_machine_arn or resolved.stepfunctions is None:
        raise TargetError(
            f"--in-stack needs a deployed stack with the {OUTPUT_STATE_MACHINE} output "
            "(--stack NAME or --stack-outputs FILE)"
        )
    bucket, _, key = args.manifest[len("s3://") :].partition("/")
    if bucket != resolved.inventory_bucket:
        # The state machine reads manifests from the stack's inventory bucket only (its grant).
        raise TargetError(
            f"--in-stack reads manifests in the stack's {OUTPUT_INVENTORY} "
            f"({resolved.inventory_bucket}), not {bucket}"
        )
    started = resolved.stepfunctions.start_execution(
        stateMachineArn=resolved.state_machine_arn,
        input=json.dumps({"manifest": {"bucket": bucket, "key": key}}),
    )
    print(started["executionArn"], file=out)
    return EXIT_OK
