"""Event source mappings: one thread per queue that plays the part of Lambda's SQS poller.

Each poller receives a batch (up to ``batch_size`` messages, waiting at most
``batching_window_seconds`` after the first one to fill it), invokes the very same handler the
cloud runs with a real-shaped SQS event and a Lambda-like context, deletes the messages that
succeeded and leaves the failed ones (``batchItemFailures``, or the whole batch when the handler
raises or answers nonsense) to come back. The queue's redrive policy, not the poller, moves a
message to its DLQ after ``maxReceiveCount`` receives, exactly as in AWS.

One deliberate local difference: AWS makes a failed message visible again when its visibility
timeout expires (minutes in the deployed stack). Locally the poller sets the failed messages'
visibility to ``retry_delay_seconds`` right away, so retries (and the DLQ path) take seconds.

Concurrency, as in Lambda: a mapping with ``concurrency`` N runs N poller threads, each gathering
its own batch and invoking the function in an execution environment of its own (a process,
``workers.py``), so up to N batches of one queue are handled at once, the way an event source
mapping's MaximumConcurrency lets them. Without execution environments (``environments=None``)
the handler is called in this process, and invocations are serialised behind the runner's invoke
lock because they would share os.environ and module state.

What a handler does to its own queue is left to SQS, as in AWS: the associate function re-sends
the records of a user that is UPDATING (ConflictException) with a DelaySeconds and reports them
processed (enrollment/backoff.py); its client reaches this endpoint (AWS_ENDPOINT_URL), moto
holds the copy back for that delay, and the poller deletes the original like any success. Such
a copy is counted in ApproximateNumberOfMessagesDelayed, not in the visible or in-flight counts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from enroll_local.runner.lambda_context import LocalLambdaContext, function_environment
from enroll_local.runner.metrics_bridge import MetricsBridge, call_handler
from enroll_local.runner.workers import ContextSpec, EnvironmentPool

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]

#: SQS returns at most this many messages per ReceiveMessage call.
SQS_MAX_MESSAGES_PER_RECEIVE = 10
#: SQS long polling is capped at 20 s per call.
SQS_MAX_WAIT_SECONDS = 20
#: How long an idle poller long-polls before checking whether it was asked to stop (seconds).
DEFAULT_IDLE_WAIT_SECONDS = 1
#: Pause after a failed ReceiveMessage (e.g. the endpoint is shutting down), in seconds.
RECEIVE_ERROR_BACKOFF_SECONDS = 0.5


@dataclass(frozen=True)
class EventSourceMapping:
    """What Lambda's event source mapping knows: queue, function, batching and timing."""

    function_name: str
    handler: Handler
    #: The function's environment variables, applied to os.environ for each invocation.
    environment: dict[str, str]
    queue_url: str
    queue_arn: str
    batch_size: int
    #: Maximum time to keep gathering records once the first one arrived (seconds).
    batching_window_seconds: float
    #: The function's timeout (seconds): the context's deadline.
    function_timeout_seconds: float
    #: Visibility given to received messages while the handler runs (seconds); must exceed
    #: the handler's run time or a message would be delivered twice concurrently.
    in_flight_visibility_seconds: int
    #: Visibility given to failed messages after the invocation (seconds): the local retry delay.
    retry_delay_seconds: int
    #: Batches handled at once (the mapping's MaximumConcurrency, capped locally).
    concurrency: int = 1


@dataclass
class BatchResult:
    """What one invocation did with its batch."""

    received: int = 0
    succeeded: int = 0
    failed: int = 0
    error: str | None = None


@dataclass
class PollerStats:
    """Running totals, read by tests and by the runner's status line."""

    invocations: int = 0
    received: int = 0
    succeeded: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def sqs_message_to_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One SQS ReceiveMessage entry in the shape Lambda gives the function (``Records[i]``)."""
    attributes = message.get("Attributes", {})
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType", "String"),
        }
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", ""),
            "SenderId": attributes.get("SenderId", ""),
            "ApproximateFirstReceiveTimestamp": attributes.get(
                "ApproximateFirstReceiveTimestamp", ""
            ),
        },
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_message_ids(response: Any, message_ids: list[str]) -> set[str]:
    """The messages Lambda would retry, given what the handler returned.

    Follows Lambda's partial-batch rules: None, {} or an empty/null ``batchItemFailures`` is full
    success; a malformed answer or an ``itemIdentifier`` that is not in the batch fails the whole
    batch.
    """
    everything = set(message_ids)
    if response is None:
        return set()
    if not isinstance(response, dict):
        return everything
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return everything
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in everything:
            return everything
        failed.add(identifier)
    return failed


class QueuePoller:
    """Lambda's SQS poller for one event source mapping, run on its own thread."""

    def __init__(
        self,
        mapping: EventSourceMapping,
        sqs: Any,
        *,
        region: str,
        account_id: str,
        idle_wait_seconds: int = DEFAULT_IDLE_WAIT_SECONDS,
        invoke_lock: threading.Lock | None = None,
        record_bodies: bool = False,
        metrics_bridge: MetricsBridge | None = None,
        environments: EnvironmentPool | None = None,
    ) -> None:
        self.mapping = mapping
        self._sqs = sqs
        self._region = region
        self._account_id = account_id
        self._idle_wait_seconds = idle_wait_seconds
        # Lambda runs each invocation in its own process; in-process, handlers share module
        # state (Powertools' metric set is class-level), so the runner serialises invocations.
        self._invoke_lock = invoke_lock or threading.Lock()
        #: Where invocations run: execution environments (processes), or None = in-process.
        self._environments = environments
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._busy_count = 0
        #: Invocations of this function running now (Lambda's ConcurrentExecutions).
        self._running = 0
        self._state_lock = threading.Lock()
        self.stats = PollerStats()
        #: Every body delivered, in order, when ``record_bodies`` (tests re-send them).
        self.delivered_bodies: list[str] | None = [] if record_bodies else None
        #: Turns the handler's EMF output into CloudWatch metrics (None: plain calls).
        self._metrics_bridge = metrics_bridge

    @property
    def busy(self) -> bool:
        """True while a batch is being gathered or the handler runs."""
        return self._busy_count > 0

    @property
    def concurrency(self) -> int:
        """Batches in flight at most: one per poller thread."""
        if self._environments is None:
            return 1
        return max(1, min(self.mapping.concurrency, self._environments.size))

    def start(self) -> None:
        """Start polling: one daemon thread per concurrent batch."""
        self._stop.clear()
        self._threads = [
            threading.Thread(
                target=self._run, name=f"esm-{self.mapping.function_name}-{slot}", daemon=True
            )
            for slot in range(self.concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the threads to stop after their current batch, and wait for them."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def _set_busy(self, busy: bool) -> None:
        with self._state_lock:
            self._busy_count += 1 if busy else -1

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as error:  # the loop must survive a bad batch or a hiccup
                log.exception("poller %s: %s", self.mapping.function_name, error)
                self.stats.errors.append(repr(error))
                time.sleep(RECEIVE_ERROR_BACKOFF_SECONDS)

    def poll_once(self, idle_wait_seconds: int | None = None) -> BatchResult:
        """Gather one batch, invoke the handler once, settle the messages."""
        wait = self._idle_wait_seconds if idle_wait_seconds is None else idle_wait_seconds
        busy = [False]
        try:
            messages = self._gather_batch(wait, busy)
            if not messages:
                return BatchResult()
            return self._invoke(messages)
        finally:
            if busy[0]:
                self._set_busy(False)

    def _receive(self, max_messages: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self.mapping.queue_url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=min(SQS_MAX_WAIT_SECONDS, max(0, wait_seconds)),
            VisibilityTimeout=self.mapping.in_flight_visibility_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def _gather_batch(self, idle_wait_seconds: int, busy: list[bool]) -> list[dict[str, Any]]:
        """Receive until the batch is full or the batching window (from the first record) ends.

        ``busy[0]`` becomes True (and the poller busy) once the first record is in hand."""
        mapping = self.mapping
        batch: list[dict[str, Any]] = []
        window_ends = 0.0
        while len(batch) < mapping.batch_size and not self._stop.is_set():
            wanted = min(SQS_MAX_MESSAGES_PER_RECEIVE, mapping.batch_size - len(batch))
            if batch:
                remaining = window_ends - time.monotonic()
                if remaining <= 0:
                    break
                # Short polls while the window is open: SQS long polling has a 1 s grain.
                try:
                    received = self._receive(wanted, 0)
                except Exception:
                    # Invoke with what was gathered rather than strand it in flight until
                    # its visibility timeout ends (and count a receive for nothing).
                    log.warning(
                        "poller %s: receive failed inside the batching window; invoking with "
                        "the %d record(s) gathered",
                        mapping.function_name,
                        len(batch),
                        exc_info=True,
                    )
                    break
                if not received:
                    time.sleep(min(remaining, 0.1))
                    continue
            else:
                received = self._receive(wanted, idle_wait_seconds)
                if not received:
                    return batch
                self._set_busy(True)
                busy[0] = True
                window_ends = time.monotonic() + mapping.batching_window_seconds
            batch.extend(received)
            if mapping.batching_window_seconds <= 0:
                break
        return batch

    def _invoke(self, messages: list[dict[str, Any]]) -> BatchResult:
        mapping = self.mapping
        event = {
            "Records": [sqs_message_to_record(m, mapping.queue_arn, self._region) for m in messages]
        }
        context = LocalLambdaContext(
            function_name=mapping.function_name,
            region=self._region,
            account_id=self._account_id,
            timeout_seconds=mapping.function_timeout_seconds,
        )
        ids = [m["MessageId"] for m in messages]
        result = BatchResult(received=len(messages))
        if self.delivered_bodies is not None:
            self.delivered_bodies.extend(m["Body"] for m in messages)
        try:
            response = self._call(event, context)
            failed = failed_message_ids(response, ids)
        except Exception as error:
            # A thrown error (or a timeout, or a runtime that exited) fails the whole batch, as
            # in Lambda; say it loudly locally.
            log.error("%s failed on a batch of %d: %s", mapping.function_name, len(ids), error)
            result.error = repr(error)
            failed = set(ids)

        succeeded = [m for m in messages if m["MessageId"] not in failed]
        retried = [m for m in messages if m["MessageId"] in failed]
        self._delete(succeeded)
        self._retry_soon(retried)
        result.succeeded, result.failed = len(succeeded), len(retried)
        with self._state_lock:
            self.stats.invocations += 1
            self.stats.received += result.received
            self.stats.succeeded += result.succeeded
            self.stats.failed += result.failed
            if result.error:
                self.stats.errors.append(result.error)
        return result

    def _call(self, event: dict[str, Any], context: LocalLambdaContext) -> Any:
        """Invoke the function once: in an execution environment, or in-process."""
        mapping = self.mapping
        if self._environments is None:
            with self._invoke_lock, function_environment(mapping.environment):
                # Invocations are serialised, so the process env can be the function's own.
                return call_handler(
                    self._metrics_bridge, mapping.function_name, mapping.handler, event, context
                )
        with self._state_lock:
            self._running += 1
            concurrent = self._running
        try:
            outcome = self._environments.invoke(
                event,
                ContextSpec(
                    function_name=context.function_name,
                    region=context.region,
                    account_id=context.account_id,
                    timeout_seconds=context.timeout_seconds,
                    aws_request_id=context.aws_request_id,
                ),
                mapping.environment,
            )
        finally:
            with self._state_lock:
                self._running -= 1
        if self._metrics_bridge is not None:
            self._metrics_bridge.record(
                mapping.function_name,
                outcome.stdout,
                outcome.duration_ms,
                outcome.error is not None,
                concurrent=concurrent,
            )
        elif outcome.stdout:
            print(outcome.stdout, end="", flush=True)
        if outcome.error is not None:
            raise outcome.error
        return outcome.response

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), SQS_MAX_MESSAGES_PER_RECEIVE):
            chunk = messages[start : start + SQS_MAX_MESSAGES_PER_RECEIVE]
            self._sqs.delete_message_batch(
                QueueUrl=self.mapping.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )

    def _retry_soon(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), SQS_MAX_MESSAGES_PER_RECEIVE):
            chunk = messages[start : start + SQS_MAX_MESSAGES_PER_RECEIVE]
            self._sqs.change_message_visibility_batch(
                QueueUrl=self.mapping.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": self.mapping.retry_delay_seconds,
                    }
                    for i, m in enumerate(chunk)
                ],
            )
