"""The CDK stack, synthesized once: behaviour asserted on the template, cdk-nag clean.

Needs node (jsii). Every assertion is about what the deployed pipeline does: who may call what,
how messages flow and fail, what the state machine runs.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from infra.activation_definition import activation_template
from infra.config import PipelineConfig

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

CONFIG = PipelineConfig()
# The stack's own metrics namespace (FaceEnrollment/<stage>): stages never share alarms.
NAMESPACE = f"{CONFIG.metrics_namespace}/{CONFIG.stage}"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The stack's template (assertions.Template) and the cloud assembly folder."""
    from aws_cdk.assertions import Template

    from app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    app, stack = build_app(str(outdir))
    # Raises if cdk-nag reports an unacknowledged error: the synth itself is the first check.
    assembly = app.synth()
    template = Template.from_json(assembly.get_stack_by_name(stack.stack_name).template)
    return template, outdir


@pytest.fixture(scope="module")
def template(synthesized: tuple[Any, Path]) -> Any:
    return synthesized[0]


def _resources(template: Any, type_name: str) -> dict[str, dict[str, Any]]:
    return template.find_resources(type_name)


def _statements(template: Any, role_fragment: str) -> list[dict[str, Any]]:
    """Policy statements of the inline policies attached to roles whose id has the fragment."""
    found = []
    for logical_id, policy in _resources(template, "AWS::IAM::Policy").items():
        if role_fragment in logical_id:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    assert found, f"no policy for {role_fragment}"
    return found


def _actions(statement: dict[str, Any]) -> set[str]:
    actions = statement["Action"]
    return {actions} if isinstance(actions, str) else set(actions)


def _statement_with(statements: list[dict[str, Any]], action: str) -> dict[str, Any]:
    matching = [s for s in statements if action in _actions(s)]
    assert len(matching) == 1, f"{action}: {matching}"
    return matching[0]


# --- cdk-nag -------------------------------------------------------------------------------


def test_cdk_nag_reports_no_unacknowledged_finding_and_every_acknowledgment_has_a_reason(
    synthesized: tuple[Any, Path],
) -> None:
    outdir = synthesized[1]
    assert (outdir / "FaceEnrollment-dev.template.json").is_file()  # build_app's outdir is honoured
    report = json.loads((outdir / "validation-report.json").read_text())
    (nag,) = [r for r in report["pluginReports"] if r["pluginName"] == "AwsSolutions"]

    assert nag["conclusion"] == "success"
    assert nag["violations"] == []
    for acknowledged in nag["suppressedViolations"]:
        assert len(acknowledged["reason"]) > 40, acknowledged["ruleName"]


# --- storage and ingest --------------------------------------------------------------------


def test_photo_bucket_is_private_versioned_encrypted_and_logged(template: Any) -> None:
    from aws_cdk.assertions import Match

    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketName": Match.absent(),  # CloudFormation names it (test_deploy.py)
            "VersioningConfiguration": {"Status": "Enabled"},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "LoggingConfiguration": Match.object_like({"LogFilePrefix": "photos/"}),
        },
    )
    # TLS only: every bucket policy denies aws:SecureTransport = false.
    for policy in _resources(template, "AWS::S3::BucketPolicy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


def test_only_the_enroll_prefix_notifies_the_upload_queue(template: Any) -> None:
    (notifications,) = _resources(template, "Custom::S3BucketNotifications").values()
    (queue_config,) = notifications["Properties"]["NotificationConfiguration"][
        "QueueConfigurations"
    ]

    assert queue_config["Events"] == ["s3:ObjectCreated:*"]
    assert queue_config["Filter"]["Key"]["FilterRules"] == [
        {"Name": "prefix", "Value": CONFIG.enroll_prefix}
    ]
    assert "IngestUploadQueue" in queue_config["QueueArn"]["Fn::GetAtt"][0]


@pytest.mark.parametrize(
    ("queue_id", "visibility_s"),
    [
        ("IngestUploadQueue", CONFIG.index_visibility_timeout_s),
        ("AssociationQueue", CONFIG.associate_visibility_timeout_s),
    ],
)
def test_queues_are_standard_encrypted_and_redrive_to_their_dlq(
    template: Any, queue_id: str, visibility_s: int
) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    queue = queues[_logical_id(template, queue_id)]
    dlq_id = _logical_id(template, queue_id + "Dlq")
    dlq = queues[dlq_id]

    props = queue["Properties"]
    assert "FifoQueue" not in props  # S3 cannot notify FIFO queues
    assert props["SqsManagedSseEnabled"] is True
    assert props["VisibilityTimeout"] == visibility_s
    assert props["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": CONFIG.max_receive_count,
    }
    assert dlq["Properties"]["MessageRetentionPeriod"] == CONFIG.dlq_retention_s


def test_queues_refuse_plain_http(template: Any) -> None:
    policies = _resources(template, "AWS::SQS::QueuePolicy").values()
    assert len(policies) == 6  # upload, association and erasure queues, each with its DLQ
    for policy in policies:
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


def test_index_function_consumes_uploads_in_batches_with_partial_failures(template: Any) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [_logical_id(template, "IngestUploadQueue"), "Arn"]},
            "BatchSize": CONFIG.index_batch_size,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            # IndexFaces TPS x latency (50 x 1 s in us-east-1): more would only be throttled.
            "ScalingConfig": {"MaximumConcurrency": CONFIG.index_max_concurrency},
        },
    )


def test_associate_function_batches_100_with_a_5_s_window(template: Any) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [_logical_id(template, "AssociationQueue"), "Arn"]},
            "BatchSize": 100,
            "MaximumBatchingWindowInSeconds": 5,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": CONFIG.associate_max_concurrency},
        },
    )


@pytest.mark.parametrize(
    ("handler", "service", "timeout_s", "memory_mb"),
    [
        (
            "index_photo.handler.handler",
            CONFIG.index_service_name,
            CONFIG.index_function_timeout_s,
            CONFIG.index_function_memory_mb,
        ),
        (
            "associate_faces.handler.handler",
            CONFIG.associate_service_name,
            CONFIG.associate_function_timeout_s,
            CONFIG.associate_function_memory_mb,
        ),
    ],
)
def test_functions_run_arm64_python_with_tracing_and_the_contract_environment(
    template: Any, handler: str, service: str, timeout_s: int, memory_mb: int
) -> None:
    (function,) = [
        f
        for f in _resources(template, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == handler
    ]
    props = function["Properties"]

    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["Timeout"] == timeout_s
    assert props["MemorySize"] == memory_mb
    assert "Layers" not in props  # dependencies are bundled (test_deploy.py)
    env = props["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == service
    assert env["COLLECTION_ID"] == _collection_id(template)
    assert env["ENROLL_PREFIX"] == CONFIG.enroll_prefix
    assert env["MAX_RECEIVE_COUNT"] == str(CONFIG.max_receive_count)
    assert env["LEDGER_TABLE"] == {"Ref": _logical_id(template, "LedgerTable")}
    assert env["ASSOCIATION_QUEUE_URL"] == {"Ref": _logical_id(template, "AssociationQueue")}


# --- IAM: least privilege ------------------------------------------------------------------


def _is_collection_arn(resource: Any) -> bool:
    return ":collection/" + CONFIG.collection_id in json.dumps(resource)


def test_index_role_may_index_into_the_collection_and_read_only_enrollment_photos(
    template: Any,
) -> None:
    statements = _statements(template, "IngestIndexPhotoRole")

    rekognition = _statement_with(statements, "rekognition:IndexFaces")
    assert _actions(rekognition) == {"rekognition:IndexFaces", "rekognition:DeleteFaces"}
    assert _is_collection_arn(rekognition["Resource"])

    s3_read = _statement_with(statements, "s3:GetObject")
    assert _actions(s3_read) == {"s3:GetObject", "s3:GetObjectVersion"}
    assert s3_read["Resource"]["Fn::Join"][1][1] == "/" + CONFIG.enroll_prefix + "*"

    all_actions = set().union(*(_actions(s) for s in statements))
    assert "dynamodb:Scan" not in all_actions
    assert "sqs:SendMessage" in all_actions  # to the association queue
    assert not any(a.startswith("rekognition:") and "User" in a for a in all_actions)


def test_associate_role_manages_users_of_the_collection_and_starts_activation(
    template: Any,
) -> None:
    statements = _statements(template, "AssociationAssociateFacesRole")

    rekognition = _statement_with(statements, "rekognition:AssociateFaces")
    assert "rekognition:CreateUser" in _actions(rekognition)
    assert "rekognition:ListUsers" not in _actions(rekognition)
    assert _is_collection_arn(rekognition["Resource"])
    start = _statement_with(statements, "states:StartExecution")
    assert start["Resource"] == {"Ref": _logical_id(template, "ActivationStateMachine")}
    # A replay looks up its batch's execution before touching the user item.
    describe = _statement_with(statements, "states:DescribeExecution")
    assert "states:StartExecution" not in _actions(describe)
    # SendMessage to two queues only: its own (conflict backoff) and the upload queue (a FAILED
    # photo's redriven message sends the photo back to the index stage).
    sends = [s for s in statements if "sqs:SendMessage" in _actions(s)]
    assert all(_actions(s) == {"sqs:SendMessage"} for s in sends)
    assert sorted(json.dumps(s["Resource"]) for s in sends) == sorted(
        json.dumps({"Fn::GetAtt": [_logical_id(template, queue), "Arn"]})
        for queue in ("AssociationQueue", "IngestUploadQueue")
    )


def test_associate_function_knows_the_upload_queue_and_the_index_function_does_not_need_it(
    template: Any,
) -> None:
    def env(handler: str) -> dict[str, Any]:
        (function,) = [
            f
            for f in _resources(template, "AWS::Lambda::Function").values()
            if f["Properties"].get("Handler") == handler
        ]
        return dict(function["Properties"]["Environment"]["Variables"])

    upload_queue = {"Ref": _logical_id(template, "IngestUploadQueue")}
    assert env("associate_faces.handler.handler")["UPLOAD_QUEUE_URL"] == upload_queue
    assert env("index_photo.handler.handler")["UPLOAD_QUEUE_URL"] == ""


def test_state_machine_role_is_search_users_update_item_and_namespaced_metrics(
    template: Any,
) -> None:
    statements = _statements(template, "ActivationRole")

    search = _statement_with(statements, "rekognition:SearchUsers")
    assert _actions(search) == {"rekognition:SearchUsers"}
    assert _is_collection_arn(search["Resource"])
    update = _statement_with(statements, "dynamodb:UpdateItem")
    assert _actions(update) == {"dynamodb:UpdateItem"}
    assert update["Resource"] == {"Fn::GetAtt": [_logical_id(template, "LedgerTable"), "Arn"]}
    metrics = _statement_with(statements, "cloudwatch:PutMetricData")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}
    all_actions = set().union(*(_actions(s) for s in statements))
    assert not any(
        a.startswith("rekognition:") and a != "rekognition:SearchUsers" for a in all_actions
    )


# --- ledger, collection, state machine, alarms ---------------------------------------------


def test_ledger_table_is_on_demand_with_pitr_and_retained(template: Any) -> None:
    from aws_cdk.assertions import Match

    template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "Properties": {
                "TableName": Match.absent(),  # CloudFormation names it (test_deploy.py)
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "BillingMode": "PAY_PER_REQUEST",
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            },
            "DeletionPolicy": "Retain",
        },
    )


def test_collection_exists_in_the_stack(template: Any) -> None:
    template.has_resource("AWS::Rekognition::Collection", {"DeletionPolicy": "Retain"})
    # <collection_id>-<stage>-<piece of the stack id>: see test_deploy.py.
    assert CONFIG.collection_id + "-dev-" in json.dumps(_collection_id(template))


def _collection_id(template: Any) -> Any:
    (collection,) = _resources(template, "AWS::Rekognition::Collection").values()
    return collection["Properties"]["CollectionId"]


def test_state_machine_runs_the_reviewed_asl_with_substitutions(template: Any) -> None:
    # The activation; the backfill's distributed map is tests/infra/test_backfill.py's.
    (machine,) = [
        m
        for m in _resources(template, "AWS::StepFunctions::StateMachine").values()
        if "DefinitionSubstitutions" in m["Properties"]
    ]
    props = machine["Properties"]

    assert "StateMachineName" not in props  # CloudFormation names it (test_deploy.py)
    assert props["StateMachineType"] == "STANDARD"
    assert props["DefinitionString"] == activation_template()
    assert "aws-sdk:rekognition:searchUsers" in props["DefinitionString"]
    assert "listUsers" not in props["DefinitionString"]
    substitutions = props["DefinitionSubstitutions"]
    assert substitutions["CollectionId"] == _collection_id(template)
    assert substitutions["LedgerTable"] == {"Ref": _logical_id(template, "LedgerTable")}
    assert substitutions["MetricsNamespace"] == NAMESPACE
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"


def test_alarms_watch_both_dlqs_and_failed_activations(template: Any) -> None:
    alarms = _resources(template, "AWS::CloudWatch::Alarm").values()
    watched = {
        json.dumps(a["Properties"].get("Dimensions", [])) + a["Properties"].get("MetricName", "")
        for a in alarms
    }
    for dlq in ("IngestUploadQueueDlq", "AssociationQueueDlq"):
        assert any(dlq in w and "ApproximateNumberOfMessagesVisible" in w for w in watched), dlq
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": NAMESPACE,
            "MetricName": "ActivationFailed",
            "Statistic": "Sum",
            "Threshold": 1,
        },
    )


def _logical_id(template: Any, prefix: str) -> str:
    """The logical id ``prefix`` + CDK's 8-hex-digit hash (exactly one must exist)."""
    pattern = re.compile(re.escape(prefix) + "[0-9A-F]{8}")
    matches = [lid for lid in template.to_json()["Resources"] if pattern.fullmatch(lid)]
    assert len(matches) == 1, (prefix, matches)
    return matches[0]


def test_log_retention_must_be_a_value_cloudwatch_logs_accepts() -> None:
    from infra.lambda_function import log_retention

    with pytest.raises(ValueError, match="log_retention_days must be one of"):
        log_retention(PipelineConfig(log_retention_days=45))
