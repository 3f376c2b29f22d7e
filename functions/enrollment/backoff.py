"""Conflicts back off in seconds: the records of a user that is UPDATING come back as a new,
delayed message instead of waiting out the visibility timeout.

AssociateFaces and DisassociateFaces raise ConflictException when "the update or deletion of the
User caused an inconsistent state" (the model's only text): in practice the user is still
UPDATING after an earlier association, a normal state that lasts seconds. Failing the record
like any transient error brings it back only after the queue's visibility timeout (900 s
deployed) and spends one of its MAX_RECEIVE_COUNT deliveries, the ones meant for real failures.

Two ways to come back sooner were weighed:

(a) ChangeMessageVisibility of the failed records to a few seconds. SQS counts every receive
    (ApproximateReceiveCount), so each conflict would still spend a delivery, and
    MAX_RECEIVE_COUNT conflicts in a row would send a healthy photo to the DLQ (FAILED).
(b) Re-send the message to the association queue with DelaySeconds and a conflict counter in
    its body (``AssociationMessage.conflict_retries``), and report the original record as
    processed. The copy starts with a fresh receive count; no delivery is spent.

We chose (b). It is bounded: once a message carries ``max_retries`` conflicts, the next one
fails the record like any other error (visibility timeout, receive count, FAILED and the DLQ on
the last delivery), so nothing retries forever. The copy is sent before the handler answers;
if SendMessageBatch refuses an entry, that record fails as before. If the function dies after
the send, SQS delivers the original again as well: a duplicate, harmless because the associate
stage is idempotent (association.py: photo transitions are conditional on the ledger state, a
face already associated to its user counts as associated, a replayed batch finds its activation
by its deterministic execution name, and every Rekognition call carries a deterministic
ClientRequestToken).

Throttling is not re-sent: botocore's adaptive retries already back off inside the call
(clients.py), so a throttle that reaches the stage means work over the quota for a while, for
which the visibility timeout is the right pause and a spent delivery is a real failure. Re-sending
every few seconds would only add calls to an exhausted quota. Server errors are real failures.

A user's re-sent records share one delay, so they come back together and make one AssociateFaces
call. The delay doubles with each conflict (base ``base_delay_seconds``, at most
``max_delay_seconds``), with jitter so two batches that collided do not collide again at the
same instant.

What this spends: nothing of the original's deliveries; the copy's receive count starts again.
A message can therefore get up to MAX_RECEIVE_COUNT deliveries for real failures between two
conflicts, (max_retries + 1) x MAX_RECEIVE_COUNT in all: still bounded.

SQS refuses a per-message DelaySeconds on a FIFO queue: the association queue is standard
(infra/queues.py); a FIFO one would need ChangeMessageVisibility, option (a), instead.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import rekognition as rk
from .messages import AssociationMessage
from .observability import count, logger

#: The error code that means "the user is UPDATING, try again shortly".
CONFLICT_ERRORS = frozenset({"ConflictException"})
#: Re-sends of one message for conflicts before a conflict fails it like any error (count).
#: With the delays below they span about 2 to 4 minutes; a user UPDATING for longer is not normal.
MAX_CONFLICT_RETRIES = 8
#: Delay before the first retry of a conflicted record (seconds); it doubles with each conflict.
CONFLICT_RETRY_BASE_DELAY_SECONDS = 2
#: Longest delay between two conflict retries (seconds). SQS allows DelaySeconds up to 900.
CONFLICT_RETRY_MAX_DELAY_SECONDS = 60
#: SQS's own limits: entries per SendMessageBatch, and the largest DelaySeconds (seconds).
SQS_MAX_BATCH_ENTRIES = 10
SQS_MAX_DELAY_SECONDS = 900


def is_conflict(error: BaseException) -> bool:
    """True when ``error`` says the user is being updated (ConflictException)."""
    return rk.error_code(error) in CONFLICT_ERRORS


@dataclass
class ConflictBackoff:
    """Re-sends a conflicted user's records to ``queue_url`` with a short, growing delay."""

    sqs: Any
    queue_url: str
    max_retries: int = MAX_CONFLICT_RETRIES
    base_delay_seconds: int = CONFLICT_RETRY_BASE_DELAY_SECONDS
    max_delay_seconds: int = CONFLICT_RETRY_MAX_DELAY_SECONDS
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if not 1 <= self.base_delay_seconds <= self.max_delay_seconds <= SQS_MAX_DELAY_SECONDS:
            raise ValueError(
                "conflict retry delays must satisfy 1 <= base <= max <= "
                f"{SQS_MAX_DELAY_SECONDS} s, got {self.base_delay_seconds}, "
                f"{self.max_delay_seconds}"
            )
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")

    def delay_seconds(self, retries: int) -> int:
        """The delay before retry number ``retries + 1``: between half and all of
        ``base * 2**retries`` (capped at ``max_delay_seconds``), at least 1 s."""
        ceiling = min(self.max_delay_seconds, self.base_delay_seconds << min(retries, 30))
        return self.rng.randint(max(1, (ceiling + 1) // 2), ceiling)

    def retry_later(
        self, error: BaseException, messages: Mapping[str, AssociationMessage]
    ) -> set[str]:
        """Re-send the records of one user that ``error`` failed, if it is a conflict.

        ``messages`` is that user's share of the batch, keyed by SQS message id. Returns the
        ids re-sent: the caller reports them as processed (their copies carry the retry). Any
        other id, or any other error, must fail as usual.
        """
        if not is_conflict(error) or not messages:
            return set()
        due = {mid: m for mid, m in messages.items() if m.conflict_retries < self.max_retries}
        exhausted = len(messages) - len(due)
        if exhausted:
            count("AssociationConflictRetriesExhausted", exhausted)
            logger.warning(
                "user still UPDATING after the last conflict retry; failing the records",
                extra={"max_retries": self.max_retries, "records": exhausted},
            )
        if not due:
            return set()
        delay = self.delay_seconds(max(m.conflict_retries for m in due.values()))
        sent = self._send(due, delay)
        count("AssociationConflictRetries", len(sent))
        logger.info(
            "user is UPDATING: its records come back after a short delay",
            extra={
                "error": rk.describe_error(error),
                "delay_seconds": delay,
                "records": len(sent),
                "conflict_retries": max(m.conflict_retries for m in due.values()) + 1,
            },
        )
        return sent

    def _send(self, due: Mapping[str, AssociationMessage], delay: int) -> set[str]:
        """SendMessageBatch the copies (counter + 1); the ids whose copy SQS accepted."""
        sent: set[str] = set()
        items = list(due.items())
        for start in range(0, len(items), SQS_MAX_BATCH_ENTRIES):
            chunk = dict(enumerate(items[start : start + SQS_MAX_BATCH_ENTRIES]))
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": replace(
                        message, conflict_retries=message.conflict_retries + 1
                    ).to_json(),
                    "DelaySeconds": delay,
                }
                for i, (_, message) in chunk.items()
            ]
            try:
                response = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as send_error:
                # Not re-sent: these records fail as usual (one delivery spent, nothing lost).
                logger.warning(
                    "could not re-send conflicted records; they fail as usual",
                    extra={"error": rk.describe_error(send_error)},
                )
                continue
            for entry in response.get("Successful") or []:
                sent.add(chunk[int(entry["Id"])][0])
            if response.get("Failed"):
                logger.warning(
                    "SQS refused some conflicted records; they fail as usual",
                    extra={"failed": response["Failed"]},
                )
        return sent
