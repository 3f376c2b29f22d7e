"""The real activation ASL, executed by moto's Step Functions against the Rekognition emulator.

The definition is rendered exactly as the stack deploys it (``render_activation_definition``);
the emulator runs on a manual clock, so a user stays UPDATING until a test lets time pass. Wait
schedules are 0-1 s so every execution finishes in about a second.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from enroll_local.rekognition.errors import RekognitionError
from enroll_local.testing import ManualClock
from enrollment.ledger import table_definition
from infra.activation_definition import render_activation_definition
from infra.config import PipelineConfig

REGION = "us-east-1"
CONFIG = PipelineConfig()
ROLE_ARN = "arn:aws:iam::123456789012:role/activation"
EXECUTION_TIMEOUT_S = 20.0
POLL_S = 0.05
USER = "alice"


@dataclass
class Activation:
    """One local AWS with the ledger, the collection and the activation state machine."""

    emulator: Any
    clock: ManualClock
    photo: Callable[..., bytes]
    sfn: Any = field(default_factory=lambda: boto3.client("stepfunctions", region_name=REGION))
    ddb: Any = field(default_factory=lambda: boto3.client("dynamodb", region_name=REGION))
    rekognition: Any = field(
        default_factory=lambda: boto3.client("rekognition", region_name=REGION)
    )
    cloudwatch: Any = field(default_factory=lambda: boto3.client("cloudwatch", region_name=REGION))
    machine_arn: str = ""
    calls: Counter[str] = field(default_factory=Counter)
    inject: dict[str, list[RekognitionError]] = field(default_factory=dict)

    # --- Rekognition ----------------------------------------------------------------------

    def index_face(self, identity: str, variant: int = 0) -> str:
        response = self.rekognition.index_faces(
            CollectionId=CONFIG.collection_id,
            Image={"Bytes": self.photo(identity, variant)},
            ExternalImageId=f"{identity}-{variant}",
            MaxFaces=1,
        )
        return str(response["FaceRecords"][0]["Face"]["FaceId"])

    def enroll(self, user_id: str, variants: int = 1) -> list[str]:
        """CreateUser + AssociateFaces: the user is UPDATING until the clock moves."""
        face_ids = [self.index_face(user_id, v) for v in range(variants)]
        self.rekognition.create_user(CollectionId=CONFIG.collection_id, UserId=user_id)
        self.rekognition.associate_faces(
            CollectionId=CONFIG.collection_id, UserId=user_id, FaceIds=face_ids
        )
        return face_ids

    def let_updates_finish(self) -> None:
        self.clock.advance(3600)

    # --- ledger ---------------------------------------------------------------------------

    def put_user(self, user_id: str, status: str = "UPDATING") -> None:
        self.ddb.put_item(
            TableName=CONFIG.ledger_table_name,
            Item={
                "pk": {"S": f"USER#{user_id}"},
                "sk": {"S": "USER"},
                "user_id": {"S": user_id},
                "status": {"S": status},
            },
        )

    def put_photo(self, user_id: str, photo_id: str, status: str = "ASSOCIATED") -> None:
        self.ddb.put_item(
            TableName=CONFIG.ledger_table_name,
            Item={
                "pk": {"S": f"USER#{user_id}"},
                "sk": {"S": f"PHOTO#{photo_id}"},
                "photo_id": {"S": photo_id},
                "user_id": {"S": user_id},
                "status": {"S": status},
            },
        )

    def item(self, user_id: str, sk: str) -> dict[str, str]:
        raw = self.ddb.get_item(
            TableName=CONFIG.ledger_table_name,
            Key={"pk": {"S": f"USER#{user_id}"}, "sk": {"S": sk}},
            ConsistentRead=True,
        )["Item"]
        return {name: next(iter(value.values())) for name, value in raw.items()}

    # --- executions -----------------------------------------------------------------------

    def start(
        self,
        user_id: str,
        face_ids: list[str],
        photo_ids: list[str],
        schedule: list[int],
        name: str = "run-1",
        upload_lag_s: int = 0,
    ) -> str:
        execution_input = {
            "userId": user_id,
            "probeFaceId": face_ids[0],
            "faceIds": face_ids,
            "photoIds": photo_ids,
            "waitSchedule": schedule,
            "attempt": 0,
            "waited": 0,
            "uploadLagSeconds": upload_lag_s,
        }
        return str(
            self.sfn.start_execution(
                stateMachineArn=self.machine_arn, name=name, input=json.dumps(execution_input)
            )["executionArn"]
        )

    def wait(self, execution_arn: str) -> dict[str, Any]:
        deadline = time.monotonic() + EXECUTION_TIMEOUT_S
        while time.monotonic() < deadline:
            described: dict[str, Any] = self.sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return described
            time.sleep(POLL_S)
        raise AssertionError(f"{execution_arn} still RUNNING after {EXECUTION_TIMEOUT_S} s")

    def entered(self, execution_arn: str, state: str) -> int:
        events = self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)
        return sum(
            1
            for e in events["events"]
            if e.get("stateEnteredEventDetails", {}).get("name") == state
        )

    def metric_sum(self, name: str) -> float:
        now = time.time()
        stats = self.cloudwatch.get_metric_statistics(
            Namespace=CONFIG.metrics_namespace,
            MetricName=name,
            StartTime=now - 3600,
            EndTime=now + 3600,
            Period=3600,
            Statistics=["Sum"],
        )
        return float(sum(point["Sum"] for point in stats["Datapoints"]))


@pytest.fixture
def activation(
    local_aws: Any, clock: ManualClock, synthetic_photo: Callable[..., bytes]
) -> Iterator[Activation]:
    env = Activation(emulator=local_aws, clock=clock, photo=synthetic_photo)
    env.ddb.create_table(**table_definition(CONFIG.ledger_table_name))
    env.rekognition.create_collection(CollectionId=CONFIG.collection_id)
    env.machine_arn = env.sfn.create_state_machine(
        name=CONFIG.state_machine_name,
        definition=render_activation_definition(
            CONFIG.collection_id, CONFIG.ledger_table_name, CONFIG.metrics_namespace
        ),
        roleArn=ROLE_ARN,
    )["stateMachineArn"]

    # Count every Rekognition call the state machine makes (and inject faults on demand).
    real_dispatch = local_aws.dispatch
    lock = threading.Lock()

    def counting_dispatch(operation: str, params: dict[str, Any], **kwargs: Any) -> Any:
        with lock:
            env.calls[operation] += 1
            pending = env.inject.get(operation)
            fault = pending.pop(0) if pending else None
        if fault is not None:
            raise fault
        return real_dispatch(operation, params, **kwargs)

    local_aws.dispatch = counting_dispatch
    yield env
    del local_aws.dispatch


def test_user_becoming_active_marks_user_and_photos_active_and_publishes_latency(
    activation: Activation,
) -> None:
    # Given a user whose association is still UPDATING, and two photos of the batch
    face_ids = activation.enroll(USER, variants=2)
    activation.put_user(USER)
    for photo_id in ("p-1", "p-2"):
        activation.put_photo(USER, photo_id)
    # When the activation runs and the update completes after its first check
    # (the batch's oldest photo reached S3 7 s before the execution started)
    execution = activation.start(USER, face_ids, ["p-1", "p-2"], schedule=[1, 1, 1], upload_lag_s=7)
    deadline = time.monotonic() + EXECUTION_TIMEOUT_S
    while activation.entered(execution, "WaitBeforeNextCheck") == 0:
        assert time.monotonic() < deadline, "the first check never saw UPDATING"
        time.sleep(POLL_S)
    activation.let_updates_finish()
    result = activation.wait(execution)

    # Then the user and both photos are ACTIVE, with the waited time as the latency
    assert result["status"] == "SUCCEEDED", result
    user = activation.item(USER, "USER")
    assert user["status"] == "ACTIVE"
    assert user["activation_seconds"] == "1"
    assert user["activated_at"].startswith(time.strftime("%Y-", time.gmtime()))
    assert "reason" not in user
    for photo_id in ("p-1", "p-2"):
        assert activation.item(USER, f"PHOTO#{photo_id}")["status"] == "ACTIVE"
    assert activation.metric_sum("ActivationSeconds") == 1.0
    # Upload to ACTIVE = the lag before the execution + the time it waited
    assert activation.metric_sum("UploadToActiveSeconds") == 8.0
    assert activation.calls["SearchUsers"] == 2  # UPDATING, then ACTIVE


def test_user_never_active_fails_with_activation_timeout(activation: Activation) -> None:
    # Given a user that stays UPDATING (the clock never moves)
    face_ids = activation.enroll(USER)
    activation.put_user(USER)
    activation.put_photo(USER, "p-1")
    activation.put_photo(USER, "p-gone", status="DELETED")

    # When the schedule [0, 0] runs out
    result = activation.wait(activation.start(USER, face_ids, ["p-1", "p-gone"], schedule=[0, 0]))

    # Then user and photo are FAILED(ACTIVATION_TIMEOUT); a deleted photo stays deleted
    assert result["status"] == "FAILED"
    assert result["error"] == "ACTIVATION_TIMEOUT"
    assert "3 status checks" in result["cause"]
    user = activation.item(USER, "USER")
    assert (user["status"], user["reason"]) == ("FAILED", "ACTIVATION_TIMEOUT")
    photo = activation.item(USER, "PHOTO#p-1")
    assert (photo["status"], photo["reason"]) == ("FAILED", "ACTIVATION_TIMEOUT")
    assert "not ACTIVE" in photo["detail"]
    assert activation.item(USER, "PHOTO#p-gone")["status"] == "DELETED"
    assert activation.metric_sum("ActivationFailed") == 1.0
    assert activation.calls["SearchUsers"] == 3  # one check before each wait and one after


def test_rekognition_error_fails_with_activation_error_and_the_cause(
    activation: Activation,
) -> None:
    # Given a batch whose collection was deleted before the activation ran
    face_ids = activation.enroll(USER)
    activation.put_user(USER)
    activation.put_photo(USER, "p-1")
    activation.rekognition.delete_collection(CollectionId=CONFIG.collection_id)

    result = activation.wait(activation.start(USER, face_ids, ["p-1"], schedule=[0]))

    assert result["status"] == "FAILED"
    assert result["error"] == "ACTIVATION_ERROR"
    assert "Rekognition.ResourceNotFoundException" in result["cause"]
    # (the missing collection looks like a missing probe face: one check per face of the batch)
    assert activation.calls["SearchUsers"] == len(face_ids)
    user = activation.item(USER, "USER")
    assert (user["status"], user["reason"]) == ("FAILED", "ACTIVATION_ERROR")
    photo = activation.item(USER, "PHOTO#p-1")
    assert (photo["status"], photo["reason"]) == ("FAILED", "ACTIVATION_ERROR")
    assert "ResourceNotFoundException" in photo["detail"]
    assert activation.metric_sum("ActivationFailed") == 1.0


def test_probe_face_evicted_meanwhile_is_replaced_by_another_face_of_the_batch(
    activation: Activation,
) -> None:
    # Given a batch of three faces whose probe face (the first) is evicted by keep-best while
    # the execution waits: disassociated, deleted, its photo REJECTED
    face_ids = activation.enroll(USER, variants=3)
    activation.put_user(USER)
    activation.put_photo(USER, "p-0", status="REJECTED")
    for photo_id in ("p-1", "p-2"):
        activation.put_photo(USER, photo_id)
    execution = activation.start(USER, face_ids, ["p-0", "p-1", "p-2"], schedule=[1, 1, 1])
    deadline = time.monotonic() + EXECUTION_TIMEOUT_S
    while activation.entered(execution, "WaitBeforeNextCheck") == 0:
        assert time.monotonic() < deadline, "the first check never saw UPDATING"
        time.sleep(POLL_S)
    activation.rekognition.disassociate_faces(
        CollectionId=CONFIG.collection_id, UserId=USER, FaceIds=[face_ids[0]]
    )
    activation.rekognition.delete_faces(CollectionId=CONFIG.collection_id, FaceIds=[face_ids[0]])
    activation.let_updates_finish()

    # When the next check finds its probe face gone
    result = activation.wait(execution)

    # Then it asks with the batch's next face: the user and the remaining photos are ACTIVE,
    # the evicted photo stays REJECTED
    assert result["status"] == "SUCCEEDED", result
    assert activation.item(USER, "USER")["status"] == "ACTIVE"
    assert [activation.item(USER, f"PHOTO#p-{i}")["status"] for i in range(3)] == [
        "REJECTED",
        "ACTIVE",
        "ACTIVE",
    ]
    assert activation.entered(execution, "UseProbe") == 1
    assert activation.calls["SearchUsers"] == 3  # UPDATING, probe gone, ACTIVE


def test_throttled_check_is_retried_not_failed(activation: Activation) -> None:
    face_ids = activation.enroll(USER)
    activation.let_updates_finish()
    activation.put_user(USER)
    activation.put_photo(USER, "p-1")
    activation.inject["SearchUsers"] = [
        RekognitionError("ProvisionedThroughputExceededException", "Provisioned Rate exceeded."),
        RekognitionError("ThrottlingException", "Slow down.", status=500),
    ]

    result = activation.wait(activation.start(USER, face_ids, ["p-1"], schedule=[0]))

    assert result["status"] == "SUCCEEDED", result
    assert activation.item(USER, "USER")["status"] == "ACTIVE"
    assert activation.calls["SearchUsers"] == 3  # two throttled attempts, then the answer


def test_status_check_costs_one_search_users_call_whatever_the_collection_size(
    activation: Activation,
) -> None:
    # Given far more users than one ListUsers page (500) would hold
    other_users = 520
    for n in range(other_users):
        face_id = activation.index_face(f"other-{n}")
        activation.emulator.dispatch(
            "CreateUser", {"CollectionId": CONFIG.collection_id, "UserId": f"other-{n}"}
        )
        activation.emulator.dispatch(
            "AssociateFaces",
            {"CollectionId": CONFIG.collection_id, "UserId": f"other-{n}", "FaceIds": [face_id]},
        )
    face_ids = activation.enroll(USER)
    activation.let_updates_finish()
    activation.put_user(USER)
    activation.put_photo(USER, "p-1")
    activation.calls.clear()

    result = activation.wait(activation.start(USER, face_ids, ["p-1"], schedule=[0, 0]))

    # Then the one check that saw ACTIVE was exactly one SearchUsers call, and nothing else
    assert result["status"] == "SUCCEEDED", result
    assert activation.calls == Counter({"SearchUsers": 1})


def test_running_twice_is_harmless_and_keeps_settled_photos(activation: Activation) -> None:
    face_ids = activation.enroll(USER)
    activation.let_updates_finish()
    activation.put_user(USER)
    activation.put_photo(USER, "p-1")
    first = activation.wait(activation.start(USER, face_ids, ["p-1"], schedule=[0]))
    activated_at = activation.item(USER, "USER")["activated_at"]
    # A photo of the batch deleted between the two runs (right to be forgotten)
    activation.put_photo(USER, "p-1", status="DELETED")

    second = activation.wait(activation.start(USER, face_ids, ["p-1"], schedule=[0], name="run-2"))

    assert (first["status"], second["status"]) == ("SUCCEEDED", "SUCCEEDED")
    assert activation.item(USER, "USER")["status"] == "ACTIVE"
    assert activation.item(USER, "USER")["activated_at"] >= activated_at
    assert activation.item(USER, "PHOTO#p-1")["status"] == "DELETED"


@pytest.mark.parametrize("erased", ["DELETED", "ERASING"])
def test_user_deleted_meanwhile_is_not_resurrected(activation: Activation, erased: str) -> None:
    # An erasure (DELETE /users/{id}) that finished, or is still running, owns the user item
    face_ids = activation.enroll(USER)
    activation.let_updates_finish()
    activation.put_user(USER, status=erased)
    activation.put_photo(USER, "p-1", status="DELETED")

    result = activation.wait(activation.start(USER, face_ids, ["p-1"], schedule=[0]))

    assert result["status"] == "SUCCEEDED"
    assert activation.entered(result["executionArn"], "UserGoneMeanwhile") == 1
    assert activation.item(USER, "USER")["status"] == erased
    assert activation.item(USER, "PHOTO#p-1")["status"] == "DELETED"


def test_failure_never_demotes_a_user_already_active(activation: Activation) -> None:
    # A newer batch activated the user; this older batch's execution then times out
    face_ids = activation.enroll(USER)
    activation.put_user(USER, status="ACTIVE")
    activation.put_photo(USER, "p-old")

    result = activation.wait(activation.start(USER, face_ids, ["p-old"], schedule=[0]))

    assert result["error"] == "ACTIVATION_TIMEOUT"
    assert activation.item(USER, "USER")["status"] == "ACTIVE"
    assert activation.item(USER, "PHOTO#p-old")["status"] == "FAILED"


def test_a_status_check_costs_five_transitions_whatever_the_matches(
    activation: Activation,
) -> None:
    from enroll_local.runner.call_counter import transitions_of

    # Given as many users as SearchUsers returns (MaxUsers 10): every check sees 10 matches
    for n in range(10):
        activation.enroll(f"other-{n}")
    face_ids = activation.enroll(USER)
    activation.put_user(USER)
    activation.put_photo(USER, "p-1")

    # When the first check sees UPDATING and the second ACTIVE
    execution = activation.start(USER, face_ids, ["p-1"], schedule=[1, 1, 1])
    deadline = time.monotonic() + EXECUTION_TIMEOUT_S
    while activation.entered(execution, "WaitBeforeNextCheck") == 0:
        assert time.monotonic() < deadline, "the first check never saw UPDATING"
        time.sleep(POLL_S)
    activation.let_updates_finish()
    result = activation.wait(execution)

    # Then: check 1 = CheckUserStatus, SummariseCheck, IsUserActive, CountCheck, Wait (5);
    # check 2 = CheckUserStatus, SummariseCheck, IsUserActive (3); then RecordUserActive,
    # MarkPhotosActive + 1 iteration, PublishActivationSeconds, Activated (5). The Map over the
    # matches it replaces cost 2 more per match: 56 transitions for this same activation.
    assert result["status"] == "SUCCEEDED", result
    events = activation.sfn.get_execution_history(executionArn=execution, maxResults=1000)
    searched = activation.rekognition.search_users(
        CollectionId=CONFIG.collection_id, FaceId=face_ids[0], UserMatchThreshold=0, MaxUsers=10
    )
    assert len(searched["UserMatches"]) == 10
    assert transitions_of(events["events"]) == {
        "transitions": 13,
        "status_checks": 2,
        "retries": 0,
    }
    assert activation.item(USER, "USER")["status"] == "ACTIVE"
