"""Start the activation state machine that waits for a user vector to become ACTIVE."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from .keys import activation_execution_name


def activation_input(
    user_id: str,
    face_ids: list[str],
    photo_ids: list[str],
    wait_schedule: tuple[int, ...],
    upload_lag_s: int = 0,
) -> dict[str, Any]:
    """The execution input fixed by the contract (see infra/statemachines/activation.asl.json).

    ``upload_lag_s`` is how long ago (whole seconds) the batch's oldest photo reached S3: the
    state machine adds the time it waits and publishes UploadToActiveSeconds.
    """
    faces = sorted(set(face_ids))
    return {
        "userId": user_id,
        # Any face of the batch finds its user with SearchUsers(FaceId): O(1) status check.
        "probeFaceId": faces[0],
        "faceIds": faces,
        "photoIds": sorted(set(photo_ids)),
        "waitSchedule": list(wait_schedule),
        "attempt": 0,
        "waited": 0,
        "uploadLagSeconds": max(0, int(upload_lag_s)),
    }


def upload_lag_seconds(uploaded_at: list[str], now: datetime | None = None) -> int:
    """Whole seconds since the earliest of ``uploaded_at`` (ISO-8601 times); 0 when none parse."""
    moments = []
    for text in uploaded_at:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            continue
        moments.append(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    if not moments:
        return 0
    elapsed = (now or datetime.now(UTC)) - min(moments)
    return max(0, int(elapsed.total_seconds()))


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN an execution named ``name`` of ``state_machine_arn`` has (standard workflows)."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name


def activation_exists(sfn: Any, state_machine_arn: str, user_id: str, face_ids: list[str]) -> bool:
    """Whether the execution for this user and batch was already started (running or done).

    Checked before the ledger user is set UPDATING: a replay must not flip a user that a
    finished execution already made ACTIVE back to UPDATING with nothing left to finish it.
    """
    name = activation_execution_name(user_id, face_ids)
    try:
        sfn.describe_execution(executionArn=execution_arn(state_machine_arn, name))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            return False
        raise
    return True


def start_activation(
    sfn: Any,
    state_machine_arn: str,
    user_id: str,
    face_ids: list[str],
    photo_ids: list[str],
    wait_schedule: tuple[int, ...],
    upload_lag_s: int = 0,
    name: str | None = None,
) -> tuple[str, bool]:
    """Start (at most once) the execution for this user and batch of faces.

    The name is derived from (user, face ids), so a replayed batch asks for the same execution
    and Step Functions refuses a second one: ExecutionAlreadyExists means it is already done or
    running. Returns (execution name, started now). ``name`` overrides the derived name.
    """
    if not face_ids:
        raise ValueError("an activation needs at least one face id")
    name = name or activation_execution_name(user_id, face_ids)
    try:
        sfn.start_execution(
            stateMachineArn=state_machine_arn,
            name=name,
            input=json.dumps(
                activation_input(user_id, face_ids, photo_ids, wait_schedule, upload_lag_s)
            ),
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
            return name, False
        raise
    return name, True
