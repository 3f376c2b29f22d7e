"""A stack that deploys, and deploys again (issue 7 point 3), asserted on the template.

One app with two stages (dev, prod) is synthesized once: no physical name may be the same in
both, none may be hard-coded, the functions' asset must carry exactly requirements.txt's pins,
the bucket's lifecycle rules must exist, each role must hold exactly what its code calls,
cdk-nag must be clean and cfn-lint must report no error.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from infra import lambda_deps
from infra.config import PipelineConfig
from tests.infra.cdk_helpers import policy_actions, resources, synthesize, token_text

CONFIG = PipelineConfig()
STAGES = ("dev", "prod")

# The property holding the physical name of each type that has one (the CloudFormation
# generates it when absent). A "FunctionName" on a permission or a mapping is a reference.
_PHYSICAL_NAME = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Rekognition::Collection": "CollectionId",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::ApiGateway::RestApi": "Name",
}


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, dict[str, Any]], Path]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    return synthesize(outdir, STAGES), outdir


@pytest.fixture(scope="module")
def templates(assembly: tuple[dict[str, dict[str, Any]], Path]) -> dict[str, dict[str, Any]]:
    return assembly[0]


@pytest.fixture(scope="module")
def template(templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return templates["dev"]


def _physical_names(template: dict[str, Any]) -> dict[str, Any]:
    """``{"<logical id>.<property>": value}`` of every physical-name property."""
    found = {}
    for lid, resource in template["Resources"].items():
        prop = _PHYSICAL_NAME.get(resource["Type"])
        if prop in resource.get("Properties", {}):
            found[f"{lid}.{prop}"] = resource["Properties"][prop]
    return found


def _resolve(value: Any, stack_name: str) -> str:
    """A name as it would be deployed: pseudo parameters filled in for this stack, a reference
    to a resource standing for that resource's (per-stack, generated) name."""
    pseudo = {
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:aws:cloudformation:us-east-1:123456789012:stack/{stack_name}/"
        f"{hashlib.sha256(stack_name.encode()).hexdigest()[:8]}-0000-0000-0000-000000000000",
        "AWS::Region": "us-east-1",
        "AWS::AccountId": "123456789012",
        "AWS::Partition": "aws",
    }
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return pseudo.get(value["Ref"], f"{stack_name}-{value['Ref']}")
    if "Fn::GetAtt" in value:
        return f"{stack_name}-" + ".".join(value["Fn::GetAtt"])
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_resolve(p, stack_name) for p in parts)
    if "Fn::Split" in value:
        raise AssertionError("Fn::Split only inside Fn::Select")
    if "Fn::Select" in value:
        index, inner = value["Fn::Select"]
        separator, source = inner["Fn::Split"]
        return _resolve(source, stack_name).split(separator)[index]
    raise AssertionError(f"cannot resolve {value}")


# --- names ---------------------------------------------------------------------------------


def test_two_stages_synthesize_in_one_app_without_a_name_clash(
    templates: dict[str, dict[str, Any]],
) -> None:
    deployed = {
        stage: {
            key: _resolve(value, f"FaceEnrollment-{stage}")
            for key, value in _physical_names(template).items()
        }
        for stage, template in templates.items()
    }
    dev, prod = deployed["dev"], deployed["prod"]
    assert dev.keys() == prod.keys()  # same resources, names differ
    assert "CollectionId" in " ".join(dev)  # the one name CloudFormation cannot generate
    clashes = {key: dev[key] for key in dev if dev[key] == prod[key]}
    assert clashes == {}
    assert not set(dev.values()) & set(prod.values())


def test_no_resource_has_a_hard_coded_global_name(template: dict[str, Any]) -> None:
    for type_name, prop in _PHYSICAL_NAME.items():
        if type_name in (
            "AWS::Rekognition::Collection",  # required: derived, below
            "AWS::CloudWatch::Dashboard",  # <stack name>-<region>
            "AWS::ApiGateway::RestApi",  # not unique in AWS; carries the stage (below)
        ):
            continue
        named = [
            lid for lid, r in resources(template, type_name).items() if prop in r["Properties"]
        ]
        assert named == [], (prop, named)  # CloudFormation generates them, unique per stack
    (collection,) = resources(template, "AWS::Rekognition::Collection").values()
    collection_id = token_text(collection["Properties"]["CollectionId"])
    # Unique per stack creation: the stack id's UUID, so a redeploy after destroy never meets
    # the retained collection of the previous one.
    assert collection_id.startswith(f"{CONFIG.collection_id}-dev-")
    assert '"AWS::StackId"' in collection_id
    # Any name written out in full carries the stage (the REST API's; API names need not be
    # unique, but its metrics' ApiName dimension must not mix stages).
    literal = {k: v for k, v in _physical_names(template).items() if isinstance(v, str)}
    assert all(value.endswith("-dev") for value in literal.values()), literal


def test_the_functions_and_the_state_machine_use_the_derived_collection(
    template: dict[str, Any],
) -> None:
    (collection,) = resources(template, "AWS::Rekognition::Collection").values()
    collection_id = collection["Properties"]["CollectionId"]
    # The activation (the backfill's distributed map calls no Rekognition API).
    (machine,) = [
        m
        for m in resources(template, "AWS::StepFunctions::StateMachine").values()
        if "DefinitionSubstitutions" in m["Properties"]
    ]
    assert machine["Properties"]["DefinitionSubstitutions"]["CollectionId"] == collection_id
    functions = resources(template, "AWS::Lambda::Function").values()
    ours = [
        f
        for f in functions
        if "COLLECTION_ID" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert len(ours) == 6  # index, associate, query API, erasure, reconciler, backfill
    for function in ours:
        assert function["Properties"]["Environment"]["Variables"]["COLLECTION_ID"] == collection_id


def test_retained_resources_are_exactly_the_data(template: dict[str, Any]) -> None:
    retained = sorted(
        r["Type"] for r in template["Resources"].values() if r.get("DeletionPolicy") == "Retain"
    )
    # Photos, access logs, inventories, the ledger and the face vectors outlive `cdk destroy`
    # (README says how to remove them); API Gateway's account-level CloudWatch role setting too.
    assert [
        t for t in retained if not t.startswith("AWS::ApiGateway") and t != "AWS::IAM::Role"
    ] == [
        "AWS::DynamoDB::Table",
        "AWS::Rekognition::Collection",
        "AWS::S3::Bucket",
        "AWS::S3::Bucket",
        "AWS::S3::Bucket",  # the backfill's inventory bucket (it lists every object key)
    ]


# --- lifecycle -----------------------------------------------------------------------------


def test_photo_bucket_expires_noncurrent_versions_and_aborts_multipart_uploads(
    template: dict[str, Any],
) -> None:
    (photos,) = [
        r
        for lid, r in resources(template, "AWS::S3::Bucket").items()
        if lid.startswith("IngestPhotos")
    ]
    rules = {r["Id"]: r for r in photos["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireNoncurrentPhotoVersions"]["Status"] == "Enabled"
    assert rules["ExpireNoncurrentPhotoVersions"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": CONFIG.photo_noncurrent_version_expiry_days
    }
    assert rules["AbortIncompleteMultipartUploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": CONFIG.multipart_upload_abort_days
    }
    assert "Prefix" not in json.dumps(rules)  # the whole bucket, not one prefix


# --- least privilege -----------------------------------------------------------------------

_LOGS_AND_TRACES = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}
# What the SQS event source mapping polls with (Lambda's service uses the function's role).
_SQS_POLLING = {
    "sqs:ReceiveMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueUrl",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
}


def test_index_role_holds_exactly_what_the_index_code_calls(template: dict[str, Any]) -> None:
    assert policy_actions(template, "IngestIndexPhotoRole") == _LOGS_AND_TRACES | _SQS_POLLING | {
        "rekognition:IndexFaces",
        "rekognition:DeleteFaces",
        "s3:GetObject",
        "s3:GetObjectVersion",
        # Ledger.get_photo / claim_content / get_user and record_photo / claim_content.
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "sqs:SendMessage",
    }


def test_associate_role_holds_exactly_what_the_associate_code_calls(
    template: dict[str, Any],
) -> None:
    assert policy_actions(template, "AssociationAssociateFacesRole") == (
        _LOGS_AND_TRACES
        | _SQS_POLLING
        | {
            "rekognition:CreateUser",
            "rekognition:AssociateFaces",
            "rekognition:DisassociateFaces",
            "rekognition:ListFaces",
            "rekognition:DeleteFaces",
            # user_photos (Query), ensure_user (PutItem, GetItem), transition_photo and
            # mark_user_updating (UpdateItem).
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
            "states:StartExecution",
            "states:DescribeExecution",
            # ConflictBackoff re-sends a conflicted user's records to the association queue; a
            # FAILED photo's redriven message sends the photo to the upload queue.
            "sqs:SendMessage",
        }
    )


def test_state_machine_role_holds_exactly_what_the_asl_calls(template: dict[str, Any]) -> None:
    assert policy_actions(template, "ActivationRole") == {
        "rekognition:SearchUsers",
        "dynamodb:UpdateItem",
        "cloudwatch:PutMetricData",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    }


def test_ledger_grants_cover_the_table_only_never_its_indexes(template: dict[str, Any]) -> None:
    for role in ("IngestIndexPhotoRole", "AssociationAssociateFacesRole"):
        (policy,) = [
            p for lid, p in resources(template, "AWS::IAM::Policy").items() if lid.startswith(role)
        ]
        (statement,) = [
            s
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if "dynamodb:GetItem" in s["Action"]
        ]
        assert statement["Resource"]["Fn::GetAtt"][0].startswith("LedgerTable"), role


# --- the functions' dependencies ------------------------------------------------------------


def _function_asset(template: dict[str, Any], outdir: Path, handler: str) -> Path:
    (function,) = [
        f
        for f in resources(template, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == handler
    ]
    key = function["Properties"]["Code"]["S3Key"]
    return outdir / f"asset.{key.removesuffix('.zip')}"


@pytest.mark.parametrize(
    "handler",
    [
        "index_photo.handler.handler",
        "associate_faces.handler.handler",
        "query_api.handler.handler",
        "erase_user.handler.handler",
        "reconcile.handler.handler",
    ],
)
def test_every_function_bundles_exactly_the_pinned_dependencies_and_its_code(
    assembly: tuple[dict[str, dict[str, Any]], Path], handler: str
) -> None:
    templates, outdir = assembly
    asset = _function_asset(templates["dev"], outdir, handler)
    pins = lambda_deps.pinned_requirements()
    assert {"boto3", "botocore", "aws-lambda-powertools", "aws-xray-sdk", "pydantic"} <= set(pins)
    installed = lambda_deps.installed_distributions(asset)
    assert {name: installed.get(name) for name in pins} == pins
    assert (asset / handler.split(".")[0] / "handler.py").is_file()
    assert (asset / "enrollment" / "ledger.py").is_file()
    # Built for Lambda (arm64, CPython 3.12), not for this machine.
    wheel = (next(asset.glob("pydantic_core-*.dist-info")) / "WHEEL").read_text()
    assert "cp312-cp312-manylinux2014_aarch64" in wheel
    assert not list(asset.rglob("__pycache__")) and not (asset / lambda_deps.STAMP_NAME).exists()
    assert not resources(templates["dev"], "AWS::Lambda::LayerVersion")
    (function,) = [
        f
        for f in resources(templates["dev"], "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == handler
    ]
    assert "Layers" not in function["Properties"]


def test_synth_refuses_a_missing_or_stale_dependency_bundle(tmp_path: Path) -> None:
    from infra.lambda_function import function_code

    with pytest.raises(lambda_deps.LambdaDepsError, match="missing: run `make lambda-deps`"):
        function_code(CONFIG, deps_dir=tmp_path / "lambda-deps")

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("boto3==1.0.0\n")
    deps = tmp_path / "deps"
    deps.mkdir()
    stamp = lambda_deps.bundle_target(CONFIG, requirements).as_stamp()
    (deps / lambda_deps.STAMP_NAME).write_text(json.dumps(stamp))
    lambda_deps.check(CONFIG, deps, requirements)  # up to date
    requirements.write_text("boto3==1.0.1\n")  # a pin moved: the bundle is stale
    with pytest.raises(lambda_deps.LambdaDepsError, match=r"stale.*make lambda-deps"):
        lambda_deps.check(CONFIG, deps, requirements)
    requirements.write_text("boto3==1.0.0\n")
    with pytest.raises(lambda_deps.LambdaDepsError, match="stale"):  # built for another CPU
        lambda_deps.check(PipelineConfig(lambda_architecture="x86_64"), deps, requirements)


def test_the_pip_step_targets_lambdas_platform_without_building_anything() -> None:
    command = lambda_deps.pip_command(CONFIG, Path("out"))
    joined = " ".join(command)
    assert "--platform manylinux2014_aarch64" in joined
    assert "--implementation cp --python-version 3.12" in joined
    assert "--only-binary=:all:" in command and "--no-compile" in command


# --- cdk-nag and cfn-lint -------------------------------------------------------------------


def test_cdk_nag_is_clean_for_both_stages(assembly: tuple[dict[str, dict[str, Any]], Path]) -> None:
    report = json.loads((assembly[1] / "validation-report.json").read_text())
    (nag,) = [r for r in report["pluginReports"] if r["pluginName"] == "AwsSolutions"]
    assert nag["conclusion"] == "success"
    assert nag["violations"] == []
    for acknowledged in nag["suppressedViolations"]:
        assert len(acknowledged["reason"]) > 40, acknowledged["ruleName"]


def test_cfn_lint_reports_no_error_on_the_template(template: dict[str, Any]) -> None:
    from cfnlint.api import ManualArgs, lint

    matches = lint(json.dumps(template), config=ManualArgs(regions=["us-east-1"]))
    errors = sorted({f"{m.rule.id}: {m.message}" for m in matches if m.rule.id.startswith("E")})
    warnings = sorted({m.rule.id for m in matches if not m.rule.id.startswith("E")})
    if warnings:
        print("cfn-lint warnings:", ", ".join(warnings))
    assert errors == []


# --- deployment settings --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"stage": "Prod"}, "stage must match"),
        ({"stage": "a-very-long-stage-name"}, "stage must match"),
        ({"alarm_email": "ops"}, "alarm_email must be an e-mail address"),
        ({"alarm_period_s": 90}, "alarm_period_s must be a whole number of minutes"),
        ({"alarm_rekognition_throttle_periods": 1}, "alarm_rekognition_throttle_periods"),
        ({"alarm_function_error_rate_percent": 0}, "alarm_function_error_rate_percent"),
        ({"photo_noncurrent_version_expiry_days": 0}, "photo_noncurrent_version_expiry_days"),
    ],
)
def test_deployment_settings_are_checked(overrides: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        PipelineConfig(**overrides)
    assert PipelineConfig(stage="prod-2", alarm_email="ops@example.com").problems() == []
