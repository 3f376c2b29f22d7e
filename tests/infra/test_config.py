"""PipelineConfig and the activation definition: the settings the stack and the runner share."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra.activation_definition import (
    SUBSTITUTIONS,
    activation_template,
    render_activation_definition,
)
from infra.config import PipelineConfig

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_valid_and_match_the_contract() -> None:
    config = PipelineConfig()

    assert config.problems() == []
    assert (config.index_batch_size, config.associate_batch_size) == (10, 100)
    assert config.associate_batching_window_s == 5
    assert config.max_receive_count == 5
    assert config.activation_wait_schedule_s == (1, 2, 4, 8, 16, 32, 60, 60, 60, 60)
    assert config.upload_dlq_name == "face-enrollment-upload-dlq"
    assert config.association_dlq_name == "face-enrollment-association-dlq"


def test_index_concurrency_follows_the_rekognition_quota() -> None:
    # 50 TPS x 1 s per call in us-east-1; 5 TPS elsewhere; never under Lambda's minimum of 2.
    assert PipelineConfig.for_region("us-east-1").index_max_concurrency == 50
    assert PipelineConfig.for_region("ap-south-1").index_max_concurrency == 5
    slow_quota = PipelineConfig(rekognition_index_faces_tps=1, index_faces_latency_s=0.2)
    assert slow_quota.index_max_concurrency == 2


def test_lambda_environment_carries_every_setting_of_the_contract() -> None:
    env = PipelineConfig().lambda_environment(
        service_name="index-photo",
        association_queue_url="http://localhost/queue",
        activation_state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:x",
    )

    assert env["BUCKET_NAME"] == "face-enrollment-photos"
    assert env["LEDGER_TABLE"] == "face-enrollment-ledger"
    assert env["COLLECTION_ID"] == "face-enrollment"
    assert env["ASSOCIATION_QUEUE_URL"] == "http://localhost/queue"
    assert env["ACTIVATION_WAIT_SCHEDULE"] == "1,2,4,8,16,32,60,60,60,60"
    assert env["MAX_RECEIVE_COUNT"] == "5"
    assert env["INDEX_MAX_FACES"] == "1"
    assert env["POWERTOOLS_SERVICE_NAME"] == "index-photo"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "FaceEnrollment"
    assert all(isinstance(value, str) for value in env.values())


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"associate_batching_window_s": 0}, "batching window"),
        ({"index_visibility_timeout_s": 60}, "index_visibility_timeout_s"),
        ({"activation_wait_schedule_s": (1, 2.5)}, "whole seconds"),
        ({"activation_execution_timeout_s": 100}, "exceed the wait schedule"),
        ({"face_cap_policy": "drop"}, "face_cap_policy"),
        ({"max_faces_per_user": 101}, "max_faces_per_user"),
        ({"index_max_faces": 0}, "index_max_faces"),
        ({"enroll_prefix": "enroll"}, "enroll_prefix"),
    ],
)
def test_invalid_settings_fail_at_construction_with_the_reason(
    overrides: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        PipelineConfig(**overrides)  # type: ignore[arg-type]


def test_config_and_definition_import_without_the_cdk() -> None:
    # The local runner imports both and does not ship aws_cdk: block it and import them afresh.
    code = (
        "import sys; sys.modules['aws_cdk'] = None; sys.modules['constructs'] = None; "
        "import infra.config, infra.activation_definition as d; "
        "d.render_activation_definition('c', 't', 'n')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_rendered_definition_fills_every_placeholder() -> None:
    rendered = render_activation_definition("people", "ledger", 'Face"Ns')
    definition = json.loads(rendered)

    assert "${" not in rendered
    check = definition["States"]["CheckUserStatus"]
    assert check["Resource"] == "arn:aws:states:::aws-sdk:rekognition:searchUsers"
    assert check["Parameters"]["CollectionId"] == "people"
    assert definition["States"]["RecordUserActive"]["Parameters"]["TableName"] == "ledger"
    publish = definition["States"]["PublishActivationSeconds"]["Parameters"]
    assert publish["Namespace"] == 'Face"Ns'  # escaped, the document stays valid JSON


def test_template_uses_only_the_contract_placeholders() -> None:
    template = activation_template()
    for name in SUBSTITUTIONS:
        assert "${" + name + "}" in template
    with pytest.raises(ValueError, match="non-empty"):
        render_activation_definition("", "ledger", "ns")


def _task_resources(states: dict) -> list[str]:
    found = []
    for state in states.values():
        if "Resource" in state:
            found.append(state["Resource"])
        if "ItemProcessor" in state:
            found += _task_resources(state["ItemProcessor"]["States"])
    return found


def test_status_check_is_search_users_and_never_list_users() -> None:
    resources = _task_resources(json.loads(render_activation_definition("c", "t", "n"))["States"])

    rekognition = [r for r in resources if ":rekognition:" in r]
    assert rekognition == ["arn:aws:states:::aws-sdk:rekognition:searchUsers"]
    assert not any("listUsers" in r for r in resources)


def test_execution_timeout_matches_the_config() -> None:
    definition = json.loads(render_activation_definition("c", "t", "n"))
    assert definition["TimeoutSeconds"] == PipelineConfig().activation_execution_timeout_s


def test_function_defaults_name_the_same_collection_as_the_stack() -> None:
    # A function started without COLLECTION_ID must not drift to another collection.
    from enrollment.settings import Settings

    assert Settings.from_env({}).collection_id == PipelineConfig().collection_id
