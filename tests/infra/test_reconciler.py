"""The reconciler in the synthesized stack (issue 8 point 4), synthesized once per module.

What is asserted is what the deployed reconciler does: when it runs (the schedule and its
target), that two runs never overlap (reserved concurrency 1, a late tick dropped), what it is
told (the environment) and what its role may do (the exact actions and resources, pinned here by
hand, not read back from infra/), plus the alarm that says it keeps failing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from infra.config import PipelineConfig
from tests.infra.cdk_helpers import resources, synthesize

CONFIG = PipelineConfig()
HANDLER = "reconcile.handler.handler"
INTERVAL_S = CONFIG.reconcile_interval_s

# (action, resource) the reconciler's role allows, and nothing else. Resources are named by
# _name below: "own-logs", "*", "collection", "table", "upload-dlq", "association-dlq",
# "association-queue", "state-machine".
RECONCILER_PERMISSIONS = {
    ("logs:CreateLogStream", "own-logs"),
    ("logs:PutLogEvents", "own-logs"),
    ("xray:PutTraceSegments", "*"),
    ("xray:PutTelemetryRecords", "*"),
    # Every face with its UserId (ListFaces), a user's status (SearchUsers), an orphan past its
    # grace period deleted (DeleteFaces).
    ("rekognition:ListFaces", "collection"),
    ("rekognition:SearchUsers", "collection"),
    ("rekognition:DeleteFaces", "collection"),
    # Stuck photos and failed activations: the ledger is scanned, then repaired item by item.
    ("dynamodb:Scan", "table"),
    ("dynamodb:GetItem", "table"),
    ("dynamodb:PutItem", "table"),
    ("dynamodb:UpdateItem", "table"),
    ("dynamodb:DeleteItem", "table"),
    # DLQ messages get a ledger outcome; the messages stay for the operator's redrive (no
    # DeleteMessage), made visible again when the run ends.
    ("sqs:ReceiveMessage", "upload-dlq"),
    ("sqs:ChangeMessageVisibility", "upload-dlq"),
    ("sqs:ReceiveMessage", "association-dlq"),
    ("sqs:ChangeMessageVisibility", "association-dlq"),
    # An indexed photo whose association never happened is sent again.
    ("sqs:SendMessage", "association-queue"),
    # A user whose activation failed is activated again.
    ("states:StartExecution", "state-machine"),
}


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """The dev stack's template (cdk-nag attached: the synth fails on a finding) and outdir."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    return synthesize(outdir)["dev"], outdir


@pytest.fixture(scope="module")
def template(synthesized: tuple[dict[str, Any], Path]) -> dict[str, Any]:
    return synthesized[0]


def _logical_id(template: dict[str, Any], prefix: str) -> str:
    """The logical id ``prefix`` + CDK's 8-hex-digit hash (exactly one must exist)."""
    pattern = re.compile(re.escape(prefix) + "[0-9A-F]{8}")
    matches = [lid for lid in template["Resources"] if pattern.fullmatch(lid)]
    assert len(matches) == 1, (prefix, matches)
    return matches[0]


def _function(template: dict[str, Any]) -> dict[str, Any]:
    (function,) = [
        f["Properties"]
        for f in resources(template, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == HANDLER
    ]
    return function


def _function_id(template: dict[str, Any]) -> str:
    return _logical_id(template, "ReconcilerReconcileFunction")


# --- schedule and concurrency ------------------------------------------------------------------


def test_a_schedule_rule_invokes_the_reconciler_every_interval(template: dict[str, Any]) -> None:
    function_id = _function_id(template)
    (rule,) = [
        r["Properties"]
        for r in resources(template, "AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    ]
    minutes = INTERVAL_S // 60
    assert INTERVAL_S % 60 == 0
    assert rule["ScheduleExpression"] == f"rate({minutes} minute{'s' if minutes > 1 else ''})"
    assert rule["State"] == "ENABLED"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    # The event is EventBridge's own ("Scheduled Event"): nothing for the handler to trust.
    assert "Input" not in target and "InputTransformer" not in target


def test_only_the_schedule_may_invoke_the_reconciler(template: dict[str, Any]) -> None:
    function_id = _function_id(template)
    rule_id = _logical_id(template, "ReconcilerSchedule")
    permissions = [
        p["Properties"]
        for p in resources(template, "AWS::Lambda::Permission").values()
        if function_id in json.dumps(p["Properties"]["FunctionName"])
    ]
    assert permissions == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [function_id, "Arn"]},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]},
        }
    ]
    # No queue feeds it: the schedule is its only trigger.
    assert not [
        m
        for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_id}
    ]


def test_one_reconciler_at_a_time_and_a_late_tick_is_dropped_not_queued(
    template: dict[str, Any],
) -> None:
    function = _function(template)
    function_id = _function_id(template)
    (invoke_config,) = [
        c["Properties"]
        for c in resources(template, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": function_id}
    ]

    # Two runs would race on the same repairs.
    assert function["ReservedConcurrentExecutions"] == 1
    # A tick throttled by a run still going waits at most one interval; a failed run is not
    # retried (the next tick starts over from fresh state).
    assert invoke_config["MaximumEventAgeInSeconds"] == INTERVAL_S
    assert invoke_config["MaximumRetryAttempts"] == 0
    assert invoke_config["Qualifier"] == "$LATEST"


def test_the_reconciler_runs_with_its_timeout_memory_and_tracing(template: dict[str, Any]) -> None:
    function = _function(template)
    assert function["Timeout"] == CONFIG.reconcile_function_timeout_s
    assert function["MemorySize"] == CONFIG.reconcile_function_memory_mb
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["Runtime"] == CONFIG.lambda_runtime
    assert function["Architectures"] == [CONFIG.lambda_architecture]


def test_the_environment_names_the_resources_the_reconciler_repairs(
    template: dict[str, Any],
) -> None:
    env = _function(template)["Environment"]["Variables"]

    assert env["POWERTOOLS_SERVICE_NAME"] == CONFIG.reconcile_service_name
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == f"{CONFIG.metrics_namespace}/{CONFIG.stage}"
    assert env["LEDGER_TABLE"] == {"Ref": _logical_id(template, "LedgerTable")}
    assert env["BUCKET_NAME"] == {"Ref": _logical_id(template, "IngestPhotos")}
    assert env["ASSOCIATION_QUEUE_URL"] == {"Ref": _logical_id(template, "AssociationQueue")}
    assert env["UPLOAD_DLQ_URL"] == {"Ref": _logical_id(template, "IngestUploadQueueDlq")}
    assert env["ASSOCIATION_DLQ_URL"] == {"Ref": _logical_id(template, "AssociationQueueDlq")}
    assert env["ACTIVATION_STATE_MACHINE_ARN"] == {
        "Ref": _logical_id(template, "ActivationStateMachine")
    }
    (collection,) = resources(template, "AWS::Rekognition::Collection").values()
    assert env["COLLECTION_ID"] == collection["Properties"]["CollectionId"]
    assert env["RECONCILE_STUCK_AFTER_S"] == str(CONFIG.reconcile_stuck_after_s)
    assert env["RECONCILE_ORPHAN_GRACE_S"] == str(CONFIG.reconcile_orphan_grace_s)
    assert env["RECONCILE_MAX_REPAIRS"] == str(CONFIG.reconcile_max_repairs)
    # Every setting the functions read is there (the config validated exactly this set).
    from enrollment.settings import SETTING_VARIABLES

    assert set(SETTING_VARIABLES) <= set(env)


# --- the role ----------------------------------------------------------------------------------


def _name(resource: Any) -> str:
    """A readable name for a policy statement's resource (see RECONCILER_PERMISSIONS)."""
    if resource == "*":
        return "*"
    text = json.dumps(resource)
    if ":collection/" in text:
        return "collection"
    if "Ref" in resource and re.fullmatch(r"ActivationStateMachine[0-9A-F]{8}", resource["Ref"]):
        return "state-machine"
    if "Fn::GetAtt" in resource:
        logical_id = resource["Fn::GetAtt"][0]
        for prefix, name in (
            ("LedgerTable", "table"),
            ("IngestUploadQueueDlq", "upload-dlq"),
            ("AssociationQueueDlq", "association-dlq"),
            ("AssociationQueue", "association-queue"),
            ("ReconcilerReconcileLogs", "own-logs"),
        ):
            if re.fullmatch(prefix + "[0-9A-F]{8}", logical_id):
                return name
    raise AssertionError(f"unexpected resource {resource}")


def _permissions(template: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (action, resource) any policy attached to the reconciler's role allows."""
    role_id = _logical_id(template, "ReconcilerReconcileRole")
    role = template["Resources"][role_id]["Properties"]
    assert "ManagedPolicyArns" not in role and "Policies" not in role
    found: set[tuple[str, str]] = set()
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role_id} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            assert "Condition" not in statement
            actions = statement["Action"]
            targets = statement["Resource"]
            for action in [actions] if isinstance(actions, str) else actions:
                for resource in targets if isinstance(targets, list) else [targets]:
                    found.add((action, _name(resource)))
    return found


def test_the_role_allows_exactly_what_the_reconciler_calls(template: dict[str, Any]) -> None:
    assert _permissions(template) == RECONCILER_PERMISSIONS


def test_the_role_touches_no_object_and_no_index_and_reads_no_live_queue(
    template: dict[str, Any],
) -> None:
    permissions = _permissions(template)
    assert not any(action.startswith("s3:") for action, _ in permissions)
    # The live queues belong to their functions' pollers: the reconciler only reads the DLQs.
    assert {r for a, r in permissions if a == "sqs:ReceiveMessage"} <= {
        "upload-dlq",
        "association-dlq",
    }
    assert {a for a, resource in permissions if resource == "*"} == {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }


# --- alarm and cdk-nag -------------------------------------------------------------------------


def test_two_failed_runs_in_a_row_alarm(template: dict[str, Any]) -> None:
    function_id = _function_id(template)
    (alarm,) = [
        a["Properties"]
        for lid, a in resources(template, "AWS::CloudWatch::Alarm").items()
        if lid.startswith("ObservabilityReconcileErrorRate")
    ]
    inputs = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    for stat in inputs.values():
        (dimension,) = stat["Metric"]["Dimensions"]
        assert dimension["Value"] == {"Ref": function_id}
        # One period per scheduled run: with the shared 5-minute periods a run every
        # INTERVAL_S would never breach N periods in a row.
        assert stat["Period"] == INTERVAL_S
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"]
    assert alarm["EvaluationPeriods"] == CONFIG.alarm_function_error_periods
    assert alarm["Threshold"] == CONFIG.alarm_function_error_rate_percent
    # CloudWatch evaluates at most one day of periods.
    assert INTERVAL_S * alarm["EvaluationPeriods"] <= 24 * 3600


def test_cdk_nag_is_clean_and_the_reconciler_acknowledgments_are_the_reviewed_ones(
    synthesized: tuple[dict[str, Any], Path],
) -> None:
    _, outdir = synthesized
    report = json.loads((outdir / "validation-report.json").read_text())
    (nag,) = [r for r in report["pluginReports"] if r["pluginName"] == "AwsSolutions"]
    ours = [
        v
        for v in nag["suppressedViolations"]
        if v["acknowledgedAt"].startswith("FaceEnrollment-dev/Reconciler")
    ]

    assert nag["conclusion"] == "success"
    assert nag["violations"] == []
    assert all(len(v["reason"]) > 80 for v in ours)
    acknowledged = {v["acknowledgedId"].removeprefix("AwsSolutions::AwsSolutions-") for v in ours}
    # A new finding on this construct fails the synth until someone reviews it here.
    assert acknowledged == {
        "IAM5[Resource::*]",  # X-Ray (no resource type)
        "L1",  # the pinned runtime
    }
