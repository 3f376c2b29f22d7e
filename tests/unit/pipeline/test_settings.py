"""Settings: defaults, parsing, and a clear error for every bad value."""

from __future__ import annotations

import pytest

from enrollment.settings import (
    Settings,
    SettingsError,
    environment_fingerprint,
    settings_problems,
)


def test_defaults_match_the_contract():
    s = Settings.from_env({})
    assert s.enroll_prefix == "enroll/"
    assert s.collection_id == "face-enrollment"
    assert s.max_faces_per_user == 100
    assert (s.face_cap_policy, s.multi_face_policy, s.quality_filter) == (
        "reject",
        "reject",
        "AUTO",
    )
    assert s.user_match_threshold == 75.0
    assert s.associate_max_face_ids == 100
    assert s.activation_wait_schedule == (1, 2, 4, 8, 16, 32, 60, 60, 60, 60)
    assert s.max_receive_count == 5
    assert s.index_max_faces == 1
    assert s.metrics_namespace == "FaceEnrollment"


def test_values_are_parsed_and_normalised():
    s = Settings.from_env(
        {
            "BUCKET_NAME": "b",
            "ENROLL_PREFIX": "in/",
            "COLLECTION_ID": "my.coll-1",
            "MAX_FACES_PER_USER": "20",
            "FACE_CAP_POLICY": "Keep-Best",
            "MULTI_FACE_POLICY": "LARGEST",
            "QUALITY_FILTER": "high",
            "USER_MATCH_THRESHOLD": "82.5",
            "ASSOCIATE_MAX_FACE_IDS": "50",
            "ACTIVATION_WAIT_SCHEDULE": "1, 1,2",
            "MAX_RECEIVE_COUNT": "3",
        }
    )
    assert (s.bucket_name, s.enroll_prefix, s.collection_id) == ("b", "in/", "my.coll-1")
    assert (s.face_cap_policy, s.multi_face_policy, s.quality_filter) == (
        "keep-best",
        "largest",
        "HIGH",
    )
    assert (s.user_match_threshold, s.associate_max_face_ids) == (82.5, 50)
    assert s.activation_wait_schedule == (1, 1, 2)
    assert s.max_receive_count == 3


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MAX_FACES_PER_USER", "101", "MAX_FACES_PER_USER must be 1..100"),
        ("MAX_FACES_PER_USER", "ten", "MAX_FACES_PER_USER must be an integer"),
        ("FACE_CAP_POLICY", "drop", "FACE_CAP_POLICY must be one of reject, keep-best"),
        ("MULTI_FACE_POLICY", "all", "MULTI_FACE_POLICY must be one of"),
        ("QUALITY_FILTER", "ULTRA", "QUALITY_FILTER must be one of"),
        ("USER_MATCH_THRESHOLD", "120", "percentage 0..100"),
        ("USER_MATCH_THRESHOLD", "high", "must be a number"),
        ("ASSOCIATE_MAX_FACE_IDS", "0", "ASSOCIATE_MAX_FACE_IDS must be 1..100"),
        ("ACTIVATION_WAIT_SCHEDULE", "1,x", "comma-separated whole seconds"),
        ("ACTIVATION_WAIT_SCHEDULE", "1,0", "positive whole seconds"),
        ("ACTIVATION_WAIT_SCHEDULE", "0", "positive whole seconds"),
        ("ACTIVATION_WAIT_SCHEDULE", "2,-1", "positive whole seconds"),
        ("MAX_RECEIVE_COUNT", "0", "MAX_RECEIVE_COUNT must be 1..1000"),
        ("MAX_RECEIVE_COUNT", "1001", "MAX_RECEIVE_COUNT must be 1..1000"),
        ("ENROLL_PREFIX", "enroll", "must end with '/'"),
        ("ENROLL_PREFIX", "/enroll/", "not start with one"),
        ("USER_MATCH_THRESHOLD", "nan", "percentage 0..100"),
        ("SEARCH_MATCH_THRESHOLD", "-1", "SEARCH_MATCH_THRESHOLD must be a percentage"),
        ("SEARCH_MAX_USERS", "501", "SEARCH_MAX_USERS must be 1..500"),
        ("POWERTOOLS_METRICS_NAMESPACE", ":Face", "CloudWatch's Namespace"),
        ("POWERTOOLS_METRICS_NAMESPACE", "n" * 256, "CloudWatch's Namespace"),
        ("COLLECTION_ID", "has:colon", "COLLECTION_ID must match"),
        ("INDEX_MAX_FACES", "0", "INDEX_MAX_FACES must be 1..100"),
    ],
)
def test_bad_values_are_refused_with_the_setting_name(name, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({name: value})


def test_require_names_every_missing_resource():
    s = Settings.from_env({"LEDGER_TABLE": "t"})
    s.require("ledger_table")
    with pytest.raises(SettingsError, match="ASSOCIATION_QUEUE_URL, ACTIVATION_STATE_MACHINE_ARN"):
        s.require("ledger_table", "association_queue_url", "activation_state_machine_arn")


def test_fingerprint_changes_with_any_setting_or_endpoint():
    base = environment_fingerprint({"LEDGER_TABLE": "t"})
    assert environment_fingerprint({"LEDGER_TABLE": "t"}) == base
    assert environment_fingerprint({"LEDGER_TABLE": "u"}) != base
    assert environment_fingerprint({"LEDGER_TABLE": "t", "AWS_ENDPOINT_URL": "http://x"}) != base
    assert environment_fingerprint({"LEDGER_TABLE": "t", "UPLOAD_QUEUE_URL": "http://q"}) != base


def test_upload_queue_url_is_read_and_can_be_required():
    assert Settings.from_env({"UPLOAD_QUEUE_URL": " http://q/upload "}).upload_queue_url == (
        "http://q/upload"
    )
    with pytest.raises(SettingsError, match="UPLOAD_QUEUE_URL"):
        Settings.from_env({}).require("upload_queue_url")


def test_every_bad_setting_is_named_at_once():
    env = {"MAX_FACES_PER_USER": "0", "QUALITY_FILTER": "ULTRA", "INDEX_MAX_FACES": "x"}

    problems = settings_problems(env)

    assert sorted(p.variable for p in problems) == [
        "INDEX_MAX_FACES",
        "MAX_FACES_PER_USER",
        "QUALITY_FILTER",
    ]
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)
    assert all(str(problem) in str(refused.value) for problem in problems)


def test_problems_are_empty_exactly_when_the_settings_load():
    good = {"ACTIVATION_WAIT_SCHEDULE": "1,2", "MAX_RECEIVE_COUNT": "1000"}
    assert settings_problems(good) == []
    Settings.from_env(good)

    bad = {"ACTIVATION_WAIT_SCHEDULE": "1,0"}
    assert [p.variable for p in settings_problems(bad)] == ["ACTIVATION_WAIT_SCHEDULE"]
    with pytest.raises(SettingsError):
        Settings.from_env(bad)


def test_blank_values_take_the_defaults():
    # The deployed stack sets every variable (PipelineConfig refuses an empty one); a function
    # started without them runs on these defaults.
    assert settings_problems({"MAX_FACES_PER_USER": " ", "ACTIVATION_WAIT_SCHEDULE": ""}) == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"activation_wait_schedule": (1, 0)},
        {"activation_wait_schedule": ()},
        {"max_receive_count": 0},
        {"face_cap_policy": "Keep-Best"},  # from_env lower-cases; the field itself must not
        {"enroll_prefix": "/enroll/"},
        {"collection_id": "a/b"},
    ],
)
def test_direct_construction_applies_the_same_rules(overrides):
    with pytest.raises(SettingsError):
        Settings(**overrides)
