"""Backfill function: one batch of S3 Inventory rows from the distributed map -> the upload queue.

The stack's backfill state machine (infra/backfill.py) reads an S3 Inventory manifest with a
distributed map and hands this function its rows in batches (``{"Items": [...], "BatchInput":
{...}}``). The work is ``enrollment.backfill.run_backfill``: the rows already enrolled are
skipped, the others sent to the upload queue as S3 notifications, paced at
``BACKFILL_RATE_PER_BATCH_TPS`` (the stack's rate divided by the map's concurrency). Safe to run
twice on the same batch: the ledger skips what the first run got indexed, and the index stage
absorbs a second message for a photo still in flight.
"""

from __future__ import annotations

import math
import os
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from enrollment.backfill import BackfillError, BackfillTarget, ItemsSource, run_backfill
from enrollment.clients import client
from enrollment.observability import bind_service, count, logger, metrics, tracer
from enrollment.settings import Settings, SettingsError, environment_fingerprint

#: Messages per second one invocation sends (set by the stack; see infra/backfill.py).
RATE_VARIABLE = "BACKFILL_RATE_PER_BATCH_TPS"


def batch_rate(env: dict[str, str] | None = None) -> float:
    """The pace of one invocation (messages/s); SettingsError when unset or not positive."""
    raw = (os.environ if env is None else env).get(RATE_VARIABLE, "").strip()
    try:
        rate = float(raw)
    except ValueError:
        raise SettingsError(f"{RATE_VARIABLE} must be a positive number, got {raw!r}") from None
    if not (math.isfinite(rate) and rate > 0):
        raise SettingsError(f"{RATE_VARIABLE} must be a positive number, got {raw!r}")
    return rate


def target() -> BackfillTarget:
    """The stack's bucket, prefix, upload queue and ledger (settings read once per container)."""
    return _target(environment_fingerprint())


@cache
def _target(_: tuple[str, ...]) -> BackfillTarget:
    settings = Settings.from_env()
    settings.require("bucket_name", "ledger_table", "upload_queue_url")
    return BackfillTarget(
        s3=client("s3"),
        sqs=client("sqs"),
        dynamodb=client("dynamodb"),
        bucket=settings.bucket_name,
        prefix=settings.enroll_prefix,
        queue_url=settings.upload_queue_url,
        table=settings.ledger_table,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point for one ItemBatcher batch; its counts (the map's result for it).

    Raises when a message could not be sent, so the map's retry runs the batch again.
    """
    bind_service()
    items = event.get("Items")
    if not isinstance(items, list):
        raise BackfillError("the event must be an ItemBatcher batch: {'Items': [...]}")
    # The map reads a CSV inventory (Step Functions reads no Parquet manifest): URL-encoded keys.
    source = ItemsSource(items, url_encoded_keys=True)
    result = run_backfill(source, target(), rate=batch_rate())
    count("BackfillPhotosEnqueued", result.enqueued)
    count("BackfillPhotosSkipped", result.skipped_enrolled)
    summary = result.as_dict()
    logger.info("backfill batch done", extra={"backfill": summary})
    if result.error:
        raise BackfillError(result.error)
    return summary
