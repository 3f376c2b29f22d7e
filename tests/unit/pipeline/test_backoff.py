"""ConflictBackoff: which records are re-sent, with what delay, and what if SQS says no."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from botocore.exceptions import ClientError

from enrollment.backoff import (
    CONFLICT_RETRY_BASE_DELAY_SECONDS,
    CONFLICT_RETRY_MAX_DELAY_SECONDS,
    MAX_CONFLICT_RETRIES,
    ConflictBackoff,
    is_conflict,
)
from enrollment.messages import AssociationMessage

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/association"


class FakeSqs:
    """Accepts every entry except the ids in ``refuse``; keeps each SendMessageBatch call."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.refuse = refuse or set()

    def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        entries = kwargs["Entries"]
        return {
            "Successful": [{"Id": e["Id"]} for e in entries if e["Id"] not in self.refuse],
            "Failed": [
                {"Id": e["Id"], "Code": "InternalError", "SenderFault": False}
                for e in entries
                if e["Id"] in self.refuse
            ],
        }


def _error(code: str, operation: str = "AssociateFaces") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)


def _message(n: int, *, user: str = "alice", retries: int = 0) -> AssociationMessage:
    return AssociationMessage(
        user_id=user,
        face_id=f"face-{n}",
        photo_id=f"photo-{n}",
        bucket="b",
        key=f"enroll/{user}/{n}.jpg",
        quality=90.0,
        indexed_at="2026-11-30T00:00:00Z",
        conflict_retries=retries,
    )


def test_only_a_conflict_is_retried_later():
    sqs = FakeSqs()
    backoff = ConflictBackoff(sqs, QUEUE)
    messages = {"m-1": _message(1)}

    for code in (
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "InternalServerError",
    ):
        assert backoff.retry_later(_error(code), messages) == set()
    assert backoff.retry_later(RuntimeError("bug"), messages) == set()
    assert sqs.calls == []
    assert is_conflict(_error("ConflictException", "DisassociateFaces"))


def test_a_users_records_come_back_together_with_one_more_conflict_counted():
    sqs = FakeSqs()
    backoff = ConflictBackoff(sqs, QUEUE, rng=random.Random(7))
    messages = {f"m-{n}": _message(n, retries=n % 2) for n in range(12)}

    sent = backoff.retry_later(_error("ConflictException"), messages)

    assert sent == set(messages)
    # SendMessageBatch takes 10 entries at most; every copy waits the same few seconds.
    assert [len(call["Entries"]) for call in sqs.calls] == [10, 2]
    entries = [entry for call in sqs.calls for entry in call["Entries"]]
    assert {call["QueueUrl"] for call in sqs.calls} == {QUEUE}
    assert len({entry["DelaySeconds"] for entry in entries}) == 1
    # The most-retried record sets the pace: its second retry waits 2-4 s.
    assert 2 <= entries[0]["DelaySeconds"] <= 2 * CONFLICT_RETRY_BASE_DELAY_SECONDS
    copies = sorted(
        (AssociationMessage.from_json(entry["MessageBody"]) for entry in entries),
        key=lambda m: int(m.face_id.split("-")[1]),
    )
    assert [c.conflict_retries for c in copies] == [n % 2 + 1 for n in range(12)]
    assert all(json.loads(e["MessageBody"])["user_id"] == "alice" for e in entries)


def test_delays_double_from_seconds_up_to_a_ceiling_far_below_the_visibility_timeout():
    backoff = ConflictBackoff(FakeSqs(), QUEUE, rng=random.Random(1))
    for retries in range(MAX_CONFLICT_RETRIES + 5):
        ceiling = min(
            CONFLICT_RETRY_MAX_DELAY_SECONDS, CONFLICT_RETRY_BASE_DELAY_SECONDS << retries
        )
        delays = {backoff.delay_seconds(retries) for _ in range(50)}
        assert min(delays) >= max(1, (ceiling + 1) // 2) and max(delays) <= ceiling, retries
    assert backoff.delay_seconds(0) <= CONFLICT_RETRY_BASE_DELAY_SECONDS
    assert CONFLICT_RETRY_MAX_DELAY_SECONDS <= 900  # SQS's DelaySeconds limit


def test_records_at_the_cap_are_left_to_fail():
    sqs = FakeSqs()
    backoff = ConflictBackoff(sqs, QUEUE, max_retries=3)
    messages = {"fresh": _message(1, retries=2), "spent": _message(2, retries=3)}

    assert backoff.retry_later(_error("ConflictException"), messages) == {"fresh"}
    [entry] = sqs.calls[0]["Entries"]
    assert AssociationMessage.from_json(entry["MessageBody"]).face_id == "face-1"


def test_copies_sqs_refuses_are_left_to_fail():
    backoff = ConflictBackoff(FakeSqs(refuse={"1"}), QUEUE)
    messages = {"m-a": _message(1), "m-b": _message(2)}

    assert backoff.retry_later(_error("ConflictException"), messages) == {"m-a"}

    class Down:
        def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
            raise _error("ServiceUnavailable", "SendMessageBatch")

    assert (
        ConflictBackoff(Down(), QUEUE).retry_later(_error("ConflictException"), messages) == set()
    )


@pytest.mark.parametrize(("base", "ceiling"), [(0, 60), (10, 5), (2, 901)])
def test_delays_outside_what_sqs_accepts_are_refused(base, ceiling):
    with pytest.raises(ValueError, match="conflict retry delays"):
        ConflictBackoff(FakeSqs(), QUEUE, base_delay_seconds=base, max_delay_seconds=ceiling)
