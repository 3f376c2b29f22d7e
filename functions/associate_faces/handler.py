"""Associate function: association messages -> per user CreateUser/AssociateFaces -> activation.

The batch is handled as a whole (faces are grouped per user so one AssociateFaces carries up to
100 of them); BatchProcessor then reports, record by record, the ones whose user failed. The
records of a user that was UPDATING (ConflictException) are re-sent with a short delay instead
and reported as processed (enrollment/backoff.py).
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

from enrollment.association import AssociateStage
from enrollment.backoff import ConflictBackoff
from enrollment.clients import client
from enrollment.ledger import Ledger
from enrollment.messages import AssociationMessage, MessageError
from enrollment.observability import bind_service, logger, metrics, tracer
from enrollment.settings import Settings, environment_fingerprint

# Report a batch that failed entirely as batchItemFailures too, instead of raising: same retry
# for SQS, but the invocation is not counted as a Lambda error and the logs stay readable.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class AssociationRetry(Exception):
    """This record's user hit a transient error; SQS will deliver it again."""


def stage() -> AssociateStage:
    """The stage with settings read once and the default clients (per container)."""
    return _stage(environment_fingerprint())


@cache
def _stage(_: tuple[str, ...]) -> AssociateStage:
    settings = Settings.from_env()
    # The upload queue: a FAILED photo's message (a DLQ redrive) sends it back to indexing.
    settings.require(
        "ledger_table", "activation_state_machine_arn", "association_queue_url", "upload_queue_url"
    )
    return AssociateStage(
        settings=settings,
        rekognition=client("rekognition"),
        ledger=Ledger(client("dynamodb"), settings.ledger_table),
        sfn=client("stepfunctions"),
        sqs=client("sqs"),
    )


def conflicts() -> ConflictBackoff:
    """Where conflicted records are re-sent: this function's own queue (per container)."""
    return _conflicts(environment_fingerprint())


@cache
def _conflicts(_: tuple[str, ...]) -> ConflictBackoff:
    return ConflictBackoff(sqs=client("sqs"), queue_url=stage().settings.association_queue_url)


def associate(event: dict[str, Any]) -> dict[str, BaseException]:
    """Run the whole batch; return the failure of each record that must be retried."""
    messages: dict[str, AssociationMessage] = {}
    receive_counts: dict[str, int] = {}
    failures: dict[str, BaseException] = {}
    for raw in event.get("Records") or []:
        record = SQSRecord(raw)
        try:
            messages[record.message_id] = AssociationMessage.from_json(record.body)
        except MessageError as error:
            # Retrying cannot fix it, but failing keeps it: after MAX_RECEIVE_COUNT deliveries
            # it lands in the DLQ for a human instead of vanishing.
            logger.error("malformed association message", extra={"error": str(error)})
            failures[record.message_id] = error
            continue
        receive_counts[record.message_id] = int(record.attributes.approximate_receive_count or 1)
    _, stage_failures = stage().handle_batch(messages, receive_counts, conflicts())
    failures.update(stage_failures)
    return failures


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Lambda entry point: ``{"batchItemFailures": [...]}`` for the SQS event source."""
    # Before the work: the logs and per-reason metrics it emits carry this function's name.
    bind_service()
    failures = associate(event)

    def record_handler(record: SQSRecord) -> None:
        failure = failures.get(record.message_id)
        if failure is not None:
            raise AssociationRetry(str(failure)) from failure

    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
