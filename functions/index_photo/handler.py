"""Index function: SQS records carrying S3 notifications -> IndexFaces -> ledger + association.

Thin by design: parse the record, call the index stage, let BatchProcessor report failures.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from enrollment.clients import client
from enrollment.indexing import IndexOutcome, IndexStage
from enrollment.ledger import Ledger
from enrollment.observability import bind_service, logger, metrics, tracer
from enrollment.settings import Settings, environment_fingerprint

# Report a batch that failed entirely as batchItemFailures too, instead of raising: same retry
# for SQS, but the invocation is not counted as a Lambda error and the logs stay readable.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def stage() -> IndexStage:
    """The stage with settings read once and the default clients (per container)."""
    return _stage(environment_fingerprint())


@cache
def _stage(_: tuple[str, ...]) -> IndexStage:
    settings = Settings.from_env()
    settings.require("ledger_table", "association_queue_url")
    return IndexStage(
        settings=settings,
        rekognition=client("rekognition"),
        ledger=Ledger(client("dynamodb"), settings.ledger_table),
        sqs=client("sqs"),
    )


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord) -> list[IndexOutcome]:
    """Index every photo of one notification; raising fails only this record."""
    receive_count = int(record.attributes.approximate_receive_count or 1)
    logger.append_keys(message_id=record.message_id)
    return stage().handle_notification(record.body, receive_count=receive_count)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Lambda entry point: ``{"batchItemFailures": [...]}`` for the SQS event source."""
    bind_service()
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
