"""Erase-user function: erasure queue messages -> ``Erasure.run`` (right to be forgotten).

Thin by design: parse the message, run the erasure, let BatchProcessor report the records that
failed. A failed run raises so that SQS delivers the message again and the erasure resumes at
its recorded step (it finishes by itself). After the last delivery the tombstone stays ERASING:
the next DELETE of the user sends a new message and the erasure resumes from there.
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

from enrollment import rekognition as rk
from enrollment.clients import client
from enrollment.erasure import Erasure, ErasureMessage
from enrollment.ledger import Ledger
from enrollment.observability import bind_service, count, logger, metrics, tracer
from enrollment.settings import Settings, environment_fingerprint

# Report a batch that failed entirely as batchItemFailures too, instead of raising: same retry
# for SQS, but the invocation is not counted as a Lambda error and the logs stay readable.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def erasure() -> Erasure:
    """The erasure with settings read once and the default clients (per container)."""
    return _erasure(environment_fingerprint())


@cache
def _erasure(_: tuple[str, ...]) -> Erasure:
    settings = Settings.from_env()
    settings.require("ledger_table", "bucket_name")
    return Erasure(
        settings=settings,
        rekognition=client("rekognition"),
        s3=client("s3"),
        ledger=Ledger(client("dynamodb"), settings.ledger_table),
        sqs=client("sqs"),
    )


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord) -> dict[str, Any]:
    """Run (or resume) one user's erasure; raising fails only this record."""
    receive_count = int(record.attributes.approximate_receive_count or 1)
    count("ErasureMessagesReceived")
    # A malformed message raises here too: kept, it reaches the DLQ for a human to see.
    message = ErasureMessage.from_json(record.body)
    logger.append_keys(message_id=record.message_id, user_id=message.user_id)
    worker = erasure()
    try:
        receipt = worker.run(message.user_id)
    except Exception as error:
        if receive_count >= worker.settings.max_receive_count:
            count("ErasuresIncomplete")
            logger.error(
                "erasure incomplete after its last delivery; the user stays ERASING and the "
                "next DELETE of the user resumes it",
                extra={"error": rk.describe_error(error), "receive_count": receive_count},
            )
        else:
            logger.warning(
                "erasure interrupted; it resumes on the next delivery",
                extra={"error": rk.describe_error(error), "receive_count": receive_count},
            )
        raise
    finally:
        logger.remove_keys(["message_id", "user_id"])
    return receipt


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Lambda entry point: ``{"batchItemFailures": [...]}`` for the SQS event source."""
    bind_service()
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
