"""collect_counted_calls on a tiny run of the local stack: the counts match what happened."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from enroll_local.rekognition.engines.synthetic import make_synthetic_photo
from enroll_local.rekognition.service import EmulatorConfig
from enroll_local.runner.call_counter import collect_counted_calls, tag_runner_client
from enroll_local.runner.demo import wait_for_terminal_states
from enroll_local.runner.stack import LocalSettings, LocalStack

SETTLE_SECONDS = 90


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    from enroll_local.testing import aws_test_environment

    settings = LocalSettings(
        engine="synthetic",
        retry_delay_seconds=1,
        emulator_config=EmulatorConfig(update_delay_seconds=0.3),
        extra_environment={
            "ACTIVATION_WAIT_SCHEDULE": "1,1,1,2,2,2,4,4",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        },
    )
    with aws_test_environment(), LocalStack(settings) as local:
        yield local


def test_counts_of_a_tiny_run(stack: LocalStack) -> None:
    # moto's backends are process-wide: another stack of this test process (the pipeline tests')
    # may have left resources behind. reset() forgets them and starts a new counting window.
    stack.reset(engine="synthetic", emulator_config=EmulatorConfig(update_delay_seconds=0.3))
    assert stack.endpoints is not None
    uploader = boto3.client("s3", endpoint_url=stack.endpoints.endpoint_url)
    # A harness's bookkeeping client: its calls stay out of "requests".
    harness_sqs = tag_runner_client(boto3.client("sqs", endpoint_url=stack.endpoints.endpoint_url))
    keys = [f"enroll/User{u}/{i}.jpg" for u in range(2) for i in range(2)]
    for key in keys:
        identity, variant = key.split("/")[1], int(key[-5])
        body = make_synthetic_photo([{"identity": identity, "variant": variant}], seed=variant)
        uploader.put_object(Bucket=stack.endpoints.bucket, Key=key, Body=body)
    harness_sqs.get_queue_attributes(
        QueueUrl=stack.endpoints.upload_queue_url, AttributeNames=["All"]
    )
    _, pending = wait_for_terminal_states(stack, keys, SETTLE_SECONDS)
    assert not pending
    assert stack.wait_until_idle(SETTLE_SECONDS)

    counted: dict[str, Any] = collect_counted_calls(stack)

    requests = counted["requests"]
    assert counted["photos"] == 4 and counted["users"] == 2 and counted["faces_stored"] == 4
    assert requests["s3"]["PutObject"] == 4
    assert requests["rekognition"]["IndexFaces"] == 4
    assert requests["rekognition"]["CreateUser"] == 2
    assert 2 <= requests["rekognition"]["AssociateFaces"] <= 4
    transitions = counted["state_transitions"]
    # One execution per AssociateFaces batch, one SearchUsers per status check (the state
    # machine's aws-sdk task reaches the endpoint over HTTP, so it is counted there too).
    assert transitions["executions"] == requests["stepfunctions"]["StartExecution"]
    assert transitions["status_checks"] == requests["rekognition"]["SearchUsers"]
    assert transitions["transitions"] > transitions["status_checks"] * 2
    # Pollers' and harness's own calls are apart from the pipeline's.
    assert "ReceiveMessage" not in requests["sqs"]
    assert "GetQueueAttributes" not in requests["sqs"]
    assert counted["runner_requests"]["sqs"]["ReceiveMessage"] > 0
    index = counted["lambda"]["index-photo"]
    assert index["invocations"] >= 1 and index["duration_ms_sum"] > 0
    assert index["memory_mb"] == stack.config.index_function_memory_mb
    # The snapshot is taken before collect's own reads; reset starts a new window.
    assert "DescribeCollection" not in requests["rekognition"]
    stack.reset(engine="synthetic")
    assert stack.counted_calls()["requests"] == {}
