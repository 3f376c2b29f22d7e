"""``enroll bench load``: the whole pipeline at the Rekognition quota, with quotas on.

One run, on the local stack with the synthetic engine and the emulator's TPS quotas enforced
(the default table of reference §3.2, times ``quota_scale`` so that a run fits on a laptop):

1. Plan the workload (``workload.py``): users with 1..users_max photos, some over the cap.
2. Put the backfill users' photos into the bucket *before* the pipeline sees the bucket: the
   bucket's notification configuration is taken off while they are written and put back
   after, so they are existing objects that fired no event, as in a real bucket.
3. Start, at once: ``run_backfill`` over a listing, paced at the IndexFaces quota (the stack's
   own bulk path), and the live users, each putting all its photos together, spread over the
   run so that index demand stays above the quota from start to end.
4. Wait until the stack is idle, then check the pipeline's promises
   (``invariants.check_invariants``) and count what was spent (``call_counter``).

Time is scaled with the quotas: every Rekognition quota is multiplied by ``quota_scale``, and
the associate stage's batching window is divided by it, so a user's burst of photos spans the
same number of windows as at full quota (50 photos/s into a 5 s window at scale 1 is 25
photos/s into a 10 s window at scale 0.5). Latencies are reported in this run's seconds.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from enroll_local.bench.recorder import QueueSampler, RekognitionRecorder
from enroll_local.bench.workload import PlannedPhoto, Workload, plan_workload
from enroll_local.rekognition.quotas import DEFAULT_QUOTA_TPS
from enroll_local.rekognition.service import EmulatorConfig
from enroll_local.runner.call_counter import collect_counted_calls
from enroll_local.runner.invariants import check_invariants
from enrollment.backfill import BackfillTarget, ListingSource, run_backfill
from infra.config import PipelineConfig

log = logging.getLogger(__name__)

#: The quota the headline rate is measured against.
INDEX_OPERATION = "IndexFaces"
#: Photos put into the bucket at once while seeding (S3 puts in parallel threads).
SEED_THREADS = 4
#: The sustained rate is measured between these fractions of all IndexFaces calls: the ramp-up
#: of the first calls and the drain of the last ones are not the steady state.
SUSTAINED_WINDOW = (0.05, 0.95)


@dataclass(frozen=True)
class LoadOptions:
    photos: int = 10_000
    users_max: int = 120
    quota_scale: float = 0.1
    live_fraction: float = 0.3
    seed: int = 7
    #: Give up waiting for the stack to go idle after this long (seconds).
    timeout_s: float = 7200.0
    #: Local execution environments per function (the machine's cores bound the useful number).
    max_local_concurrency: int = 4


@dataclass
class LoadRun:
    """Raw observations of one run (``summarise`` turns them into the report)."""

    options: LoadOptions
    workload: Workload
    quota_tps: dict[str, float]
    started: float = 0.0
    finished: float = 0.0
    uploaded_at: dict[str, float] = field(default_factory=dict)  # key -> put/enqueue time
    active_at: dict[str, float] = field(default_factory=dict)  # key -> ACTIVE time
    outcomes: dict[str, int] = field(default_factory=dict)
    served: dict[str, list[float]] = field(default_factory=dict)
    throttled: dict[str, int] = field(default_factory=dict)
    associate_face_ids: list[int] = field(default_factory=list)
    queue_samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    state_transitions: dict[str, Any] = field(default_factory=dict)
    counted_calls: dict[str, Any] = field(default_factory=dict)
    invariants: dict[str, list[str]] = field(default_factory=dict)
    backfill: dict[str, Any] = field(default_factory=dict)
    idle: bool = False


def scaled_quotas(scale: float) -> dict[str, float]:
    """The default quota table times ``scale``."""
    if scale <= 0:
        raise ValueError("quota_scale must be positive")
    return {operation: tps * scale for operation, tps in DEFAULT_QUOTA_TPS.items()}


def run_load(options: LoadOptions, progress: Callable[[str], None] = print) -> LoadRun:
    """Run the benchmark on a fresh local stack; see the module docstring."""
    from enroll_local.runner.stack import LocalSettings, LocalStack
    from enroll_local.testing import aws_test_environment

    workload = plan_workload(
        options.photos,
        users_max=options.users_max,
        live_fraction=options.live_fraction,
        seed=options.seed,
    )
    quotas = scaled_quotas(options.quota_scale)
    config = PipelineConfig()
    window = max(1, math.ceil(config.associate_batching_window_s / options.quota_scale))
    settings = LocalSettings(
        engine="synthetic",
        emulator_config=EmulatorConfig(quotas_enabled=True, quota_tps=quotas),
        associate_batching_window_seconds=min(window, 300),
        max_local_concurrency=options.max_local_concurrency,
        extra_environment={"POWERTOOLS_LOG_LEVEL": "WARNING"},
    )
    run = LoadRun(options, workload, quotas)
    with aws_test_environment(), LocalStack(settings, config) as stack:
        # moto's state is per process: start from an empty account even when another stack
        # ran in this process before (a test session), as a benchmark must.
        stack.reset()
        progress(
            f"local stack up; seeding {len(workload.backfill_photos())} existing photos "
            f"(no S3 events), {sum(len(u.photos) for u in workload.live_users())} live"
        )
        _seed_existing(stack, workload.backfill_photos())
        assert stack.call_counter is not None
        stack.call_counter.reset()  # count the run, not the seeding
        recorder = RekognitionRecorder(stack.emulator)
        sampler = QueueSampler(stack)
        recorder.start()
        sampler.start()
        run.started = time.time()
        # The backfill and the uploads are the pipeline's users, so their requests count (the
        # stack's own clients are counted apart as the runner's).
        assert stack.endpoints is not None
        users_clients = stack._make_clients(stack.endpoints.endpoint_url)
        backfill_thread, backfill_result = _start_backfill(
            stack, users_clients, run, quotas[INDEX_OPERATION]
        )
        live_thread = _start_live(stack, users_clients, run, quotas[INDEX_OPERATION])
        _report_progress(stack, run, recorder, [backfill_thread, live_thread], progress)
        run.idle = stack.wait_until_idle(options.timeout_s, settle_seconds=3.0)
        run.finished = time.time()
        recorder.stop()
        sampler.stop()
        progress(f"idle after {run.finished - run.started:.0f} s; checking the promises")
        run.backfill = backfill_result[0].as_dict() if backfill_result else {}
        run.served = recorder.log.served
        run.throttled = dict(recorder.log.throttled)
        run.associate_face_ids = list(recorder.log.associate_face_ids)
        run.queue_samples = [(s.at, s.depths) for s in sampler.samples]
        # Counted first: the checks below read the stack too (as the runner, counted apart).
        run.counted_calls = collect_counted_calls(stack, photos=workload.photos)
        run.state_transitions = run.counted_calls["state_transitions"]
        run.invariants = check_invariants(stack).violations()
        _read_outcomes(stack, run)
    return run


def _seed_existing(stack: Any, photos: list[PlannedPhoto]) -> None:
    """Write ``photos`` as objects that fired no event (the notification is off meanwhile)."""
    s3, bucket, prefix = stack.clients.s3, stack.endpoints.bucket, stack.endpoints.prefix
    notification = s3.get_bucket_notification_configuration(Bucket=bucket)
    notification.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    try:
        _put_all(s3, bucket, prefix, photos)
    finally:
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration=notification
        )


def _put_all(s3: Any, bucket: str, prefix: str, photos: list[PlannedPhoto]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def put(photo: PlannedPhoto) -> None:
        s3.put_object(Bucket=bucket, Key=photo.key(prefix), Body=photo.body())

    with ThreadPoolExecutor(SEED_THREADS) as pool:
        list(pool.map(put, photos))


class _EnqueueTimes:
    """An SQS client that notes when each photo's notification was sent (its "upload" time)."""

    def __init__(self, sqs: Any, times: dict[str, float]) -> None:
        self._sqs = sqs
        self._times = times

    def send_message_batch(self, **kwargs: Any) -> Any:
        answer = self._sqs.send_message_batch(**kwargs)
        now = time.time()
        from enrollment.messages import parse_s3_notification

        for entry in kwargs.get("Entries", []):
            for obj in parse_s3_notification(entry["MessageBody"]):
                self._times.setdefault(obj.key, now)
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)


def _start_backfill(
    stack: Any, clients: Any, run: LoadRun, rate: float
) -> tuple[threading.Thread, list[Any]]:
    endpoints = stack.endpoints
    target = BackfillTarget(
        s3=clients.s3,
        sqs=_EnqueueTimes(clients.sqs, run.uploaded_at),
        dynamodb=clients.dynamodb,
        bucket=endpoints.bucket,
        prefix=endpoints.prefix,
        queue_url=endpoints.upload_queue_url,
        table=endpoints.table,
    )
    result: list[Any] = []

    def backfill() -> None:
        source = ListingSource(clients.s3, endpoints.bucket, endpoints.prefix)
        result.append(run_backfill(source, target, rate=rate))

    thread = threading.Thread(target=backfill, name="bench-backfill", daemon=True)
    thread.start()
    return thread, result


def _start_live(stack: Any, clients: Any, run: LoadRun, index_tps: float) -> threading.Thread:
    """Live users put all their photos at once, one user after another, spread over the time the
    whole workload needs at the quota, so live demand overlaps the backfill from start to end."""
    s3, bucket, prefix = clients.s3, stack.endpoints.bucket, stack.endpoints.prefix
    users = run.workload.live_users()
    expected_s = run.workload.photos / index_tps
    gap = expected_s / (len(users) + 1) if users else 0.0

    def live() -> None:
        for number, user in enumerate(users, start=1):
            due = run.started + number * gap
            time.sleep(max(0.0, due - time.time()))
            for photo in user.photos:
                key = photo.key(prefix)
                run.uploaded_at[key] = time.time()
                s3.put_object(Bucket=bucket, Key=key, Body=photo.body())

    thread = threading.Thread(target=live, name="bench-live", daemon=True)
    thread.start()
    return thread


def _report_progress(
    stack: Any,
    run: LoadRun,
    recorder: RekognitionRecorder,
    threads: list[threading.Thread],
    progress: Callable[[str], None],
    every_s: float = 30.0,
) -> None:
    """Print a line every ``every_s`` until the backfill and the live uploads are done."""
    while any(thread.is_alive() for thread in threads):
        for thread in threads:
            thread.join(timeout=every_s / len(threads))
        indexed = len(recorder.log.served.get(INDEX_OPERATION, []))
        elapsed = time.time() - run.started
        progress(
            f"{elapsed:6.0f} s  IndexFaces {indexed:6d}/{run.workload.photos}  "
            f"({indexed / max(elapsed, 1e-9):.1f}/s, quota {run.quota_tps[INDEX_OPERATION]:.1f})  "
            f"throttled {sum(recorder.log.throttled.values())}  queues {stack.queue_depths()}"
        )


def _read_outcomes(stack: Any, run: LoadRun) -> None:
    """Each photo's final status, and when it became ACTIVE (the ledger's updated_at)."""
    from enroll_local.runner.ledger_report import read_ledger

    ledger = read_ledger(stack.clients.dynamodb, stack.endpoints.table)
    outcomes: dict[str, int] = {}
    for photo in ledger.photos:
        status = str(photo.get("status"))
        outcomes[status] = outcomes.get(status, 0) + 1
        key = photo.get("key") or photo.get("s3_key")
        if status == "ACTIVE" and key:
            run.active_at[str(key)] = _epoch(str(photo["updated_at"]))
    run.outcomes = outcomes


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# -- the report -------------------------------------------------------------------------------


def summarise(run: LoadRun) -> dict[str, Any]:
    """The benchmark's JSON: the figures issue #9 asks for, then the detail behind them."""
    index_calls = sorted(run.served.get(INDEX_OPERATION, []))
    quota = run.quota_tps[INDEX_OPERATION]
    sustained = _sustained_rate(index_calls)
    latencies = sorted(
        run.active_at[key] - run.uploaded_at[key] for key in run.active_at if key in run.uploaded_at
    )
    transitions = run.state_transitions or {}
    executions = int(transitions.get("executions") or 0)
    violations = run.invariants
    lost = len(violations.get("photos_without_outcome", [])) + len(
        violations.get("photos_not_terminal", [])
    )
    return {
        "photos": run.workload.photos,
        "seconds": round(run.finished - run.started, 1),
        "index_rate_vs_quota": round(sustained / quota, 3) if quota else None,
        "faces_per_associate_call": _mean(run.associate_face_ids),
        "status_checks_per_activation": _ratio(transitions.get("status_checks"), executions),
        "state_transitions_per_activation": _ratio(transitions.get("transitions"), executions),
        "upload_to_active_p50_s": _percentile(latencies, 50),
        "upload_to_active_p99_s": _percentile(latencies, 99),
        "throttled_calls": sum(run.throttled.values()),
        "lost": lost,
        "orphan_faces": len(violations.get("faces_without_user", [])),
        "users_over_cap": len(violations.get("users_over_cap", [])),
        "duplicate_faces": len(violations.get("duplicate_faces", [])),
        "detail": {
            "options": vars(run.options),
            "users": len(run.workload.users),
            "users_over_100_photos": run.workload.users_over(100),
            "backfill_photos": len(run.workload.backfill_photos()),
            "live_photos": sum(len(u.photos) for u in run.workload.live_users()),
            "index_quota_tps": quota,
            "index_sustained_tps": round(sustained, 2),
            "index_calls": len(index_calls),
            "throttled_by_operation": dict(sorted(run.throttled.items())),
            "calls_by_operation": {op: len(t) for op, t in sorted(run.served.items())},
            "associate_calls": len(run.associate_face_ids),
            "outcomes": dict(sorted(run.outcomes.items())),
            "activations": executions,
            "active_photos_timed": len(latencies),
            "idle": run.idle,
            "invariant_violations": {k: v[:20] for k, v in violations.items()},
            "backfill": run.backfill,
        },
        "counted_calls": run.counted_calls,
        "timeline": _timeline(run),
    }


def _sustained_rate(calls: list[float]) -> float:
    """Calls per second between the 5th and 95th percentile call (the steady state)."""
    if len(calls) < 20:
        return 0.0
    low, high = SUSTAINED_WINDOW
    first, last = int(low * len(calls)), int(high * len(calls)) - 1
    span = calls[last] - calls[first]
    return (last - first) / span if span > 0 else 0.0


def _timeline(run: LoadRun) -> dict[str, Any]:
    """Per-second IndexFaces / AssociateFaces calls and the queue depths, for the plot."""
    seconds = max(1, math.ceil(run.finished - run.started))
    series: dict[str, list[int]] = {}
    for operation in (INDEX_OPERATION, "AssociateFaces"):
        counts = [0] * seconds
        for at in run.served.get(operation, []):
            slot = int(at - run.started)
            if 0 <= slot < seconds:
                counts[slot] += 1
        series[operation] = counts
    queues = [
        {"t": round(at - run.started, 1), **depths}
        for at, depths in run.queue_samples
        if at >= run.started
    ]
    return {"calls_per_second": series, "queues": queues, "quota_tps": run.quota_tps}


def _mean(values: list[int]) -> float | None:
    return round(statistics.fmean(values), 2) if values else None


def _ratio(numerator: Any, denominator: int) -> float | None:
    return (
        round(float(numerator) / denominator, 2) if numerator is not None and denominator else None
    )


def _percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    rank = max(0, math.ceil(pct / 100 * len(values)) - 1)  # nearest-rank
    return round(values[rank], 2)


def write_json(report: dict[str, Any], path: str) -> None:
    """The figures indented for reading; the per-second timeline compact (it is for the plot)."""
    head = {key: value for key, value in report.items() if key != "timeline"}
    text = json.dumps(head, indent=2)
    if "timeline" in report:
        timeline = json.dumps(report["timeline"], separators=(",", ":"))
        text = text[: text.rindex("}")].rstrip() + f',\n  "timeline": {timeline}\n}}'
    with open(path, "w") as out:
        out.write(text + "\n")


__all__ = ["LoadOptions", "LoadRun", "replace", "run_load", "summarise", "write_json"]
