"""PipelineConfig and the activation definition: the settings the stack and the runner share."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import MISSING, fields, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enrollment.settings import SETTING_VARIABLES, Settings, settings_problems
from infra.activation_definition import (
    SUBSTITUTIONS,
    activation_template,
    render_activation_definition,
)
from infra.config import _FIELD_OF_SETTING, PipelineConfig

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
        upload_queue_url="http://localhost/upload",
        activation_state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:x",
    )

    assert env["BUCKET_NAME"] == "face-enrollment-photos"
    assert env["UPLOAD_QUEUE_URL"] == "http://localhost/upload"
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
        ({"reconcile_interval_s": 90}, "reconcile_interval_s"),
        ({"reconcile_interval_s": 0}, "reconcile_interval_s"),
        ({"reconcile_function_timeout_s": 1000}, "reconcile_function_timeout_s"),
        ({"reconcile_interval_s": 120, "reconcile_function_timeout_s": 300}, "at most the"),
        ({"reconcile_function_memory_mb": 64}, "reconcile_function_memory_mb"),
        ({"index_visibility_timeout_s": 60}, "index_visibility_timeout_s"),
        ({"activation_wait_schedule_s": (1, 2.5)}, "whole seconds"),
        ({"activation_execution_timeout_s": 100}, "exceed the wait schedule"),
        ({"face_cap_policy": "drop"}, "face_cap_policy"),
        ({"max_faces_per_user": 101}, "max_faces_per_user"),
        ({"index_max_faces": 0}, "index_max_faces"),
        ({"enroll_prefix": "enroll"}, "enroll_prefix"),
        # A 0 s wait passed here once and broke both functions at cold start.
        ({"activation_wait_schedule_s": (1, 0, 2)}, "activation_wait_schedule_s: .*whole seconds"),
        ({"activation_wait_schedule_s": ()}, "activation_wait_schedule_s must not be empty"),
        ({"max_receive_count": 1001}, "max_receive_count: MAX_RECEIVE_COUNT must be 1..1000"),
        ({"collection_id": "has:colon"}, "collection_id: COLLECTION_ID must match"),
        ({"collection_id": "c" * 230}, "collection_id must be at most 229"),
        ({"metrics_namespace": ":ns"}, "metrics_namespace: POWERTOOLS_METRICS_NAMESPACE"),
        ({"user_match_threshold": math.nan}, "user_match_threshold: .*percentage"),
        ({"max_faces_per_user": True}, "max_faces_per_user: MAX_FACES_PER_USER must be an"),
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


# --- one validation of the function settings, shared with enrollment.settings ---


def _environment(config: PipelineConfig) -> dict[str, str]:
    return config.lambda_environment(service_name=config.index_service_name)


def _unchecked(**overrides: Any) -> PipelineConfig:
    """A PipelineConfig holding these values without running its checks (to read its env)."""
    config = object.__new__(PipelineConfig)
    for f in fields(PipelineConfig):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        object.__setattr__(config, f.name, overrides.get(f.name, default))
    return config


EDGE_CONFIGS = [
    {},
    {"max_faces_per_user": 1, "index_max_faces": 100, "associate_max_face_ids": 1},
    {"max_faces_per_user": 100, "associate_max_face_ids": 100, "max_receive_count": 1000},
    {"user_match_threshold": 0, "search_match_threshold_percent": 100, "search_max_users": 500},
    {"user_match_threshold": 99.5, "search_match_threshold_percent": 0, "search_max_users": 1},
    {"face_cap_policy": "keep-best", "multi_face_policy": "largest", "quality_filter": "NONE"},
    {"activation_wait_schedule_s": (1,), "max_receive_count": 1},
    {"activation_wait_schedule_s": (60,) * 14, "activation_execution_timeout_s": 900},
    {"enroll_prefix": "in/photos/", "collection_id": "c" * 229, "metrics_namespace": "A/b"},
]


@pytest.mark.parametrize("overrides", EDGE_CONFIGS)
def test_a_config_that_synthesizes_gives_settings_the_functions_load(
    overrides: dict[str, Any],
) -> None:
    config = PipelineConfig(**overrides)

    settings = Settings.from_env(_environment(config))

    assert settings.max_faces_per_user == config.max_faces_per_user
    assert settings.activation_wait_schedule == config.activation_wait_schedule_s
    assert settings.user_match_threshold == config.user_match_threshold


def test_the_stacks_deploy_time_collection_id_is_left_to_deploy_time() -> None:
    # The stack swaps in a CloudFormation token (stack.stage_config); the rest is still checked.
    token = "${Token[TOKEN.123]}"
    config = replace(PipelineConfig(), collection_id=token)

    assert config.problems() == []
    with pytest.raises(ValueError, match="max_faces_per_user"):
        replace(config, max_faces_per_user=0)


def test_every_function_setting_is_in_the_environment_and_named_after_its_field() -> None:
    env = _environment(PipelineConfig())

    assert set(_FIELD_OF_SETTING) == set(SETTING_VARIABLES)
    assert all(env[variable].strip() for variable in SETTING_VARIABLES)
    assert all(hasattr(PipelineConfig(), name) for name in _FIELD_OF_SETTING.values())


_PERCENT = st.one_of(
    st.integers(-1, 101), st.floats(-1, 101, allow_nan=False), st.just(math.nan), st.booleans()
)
FUNCTION_SETTINGS = {
    "enroll_prefix": st.sampled_from(["enroll/", "in/photos/", "enroll", "/enroll/", "", " "]),
    "collection_id": st.sampled_from(["face-enrollment", "my.coll_1", "has:colon", "", "c" * 256]),
    "max_faces_per_user": st.one_of(st.integers(-1, 102), st.booleans()),
    "index_max_faces": st.integers(-1, 101),
    "associate_max_face_ids": st.integers(-1, 101),
    "face_cap_policy": st.sampled_from(["reject", "keep-best", "Keep-Best", "drop", ""]),
    "multi_face_policy": st.sampled_from(["reject", "largest", "all", ""]),
    "quality_filter": st.sampled_from(["NONE", "AUTO", "high", "ULTRA", ""]),
    "user_match_threshold": _PERCENT,
    "search_match_threshold_percent": _PERCENT,
    "search_max_users": st.integers(-1, 501),
    "max_receive_count": st.integers(-1, 1001),
    "activation_wait_schedule_s": st.lists(
        st.one_of(st.integers(-1, 60), st.just(2.5)), max_size=12
    ).map(tuple),
    "metrics_namespace": st.sampled_from(["FaceEnrollment", "Face/Dev", ":x", "", "n" * 256]),
}


@settings(max_examples=300, deadline=None, database=None)
@given(overrides=st.fixed_dictionaries({}, optional=FUNCTION_SETTINGS))
def test_config_and_functions_agree_on_every_setting(overrides: dict[str, Any]) -> None:
    config = _unchecked(**overrides)
    env = _environment(config)
    config_problems = config.problems()
    function_problems = settings_problems(env)

    if not config_problems:
        Settings.from_env(env)  # what synthesizes also runs
    # What a function refuses, the config refuses too, with the function's own words.
    assert {str(p) for p in function_problems} <= {m.split(": ", 1)[-1] for m in config_problems}
