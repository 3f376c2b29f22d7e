"""cdk-nag acknowledgments: every finding we accept, each with the reason it is acceptable.

cdk-nag 3 uses CDK's native ``Validations.of(construct).acknowledge(...)``; a finding with
parameters (IAM5 wildcards) is acknowledged one exact resource or action at a time, so a new
wildcard added later fails the synth until someone writes down why it is fine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct

if TYPE_CHECKING:
    from .stack import FaceEnrollmentStack

_PACK = "AwsSolutions::"

XRAY_WILDCARD = (
    f"{_PACK}AwsSolutions-IAM5[Resource::*]",
    "X-Ray's PutTraceSegments/PutTelemetryRecords and CloudWatch PutMetricData have no resource "
    "type (the only possible resource is *); PutMetricData is scoped by a cloudwatch:namespace "
    "condition, and the state machine's log delivery actions are account-level by design.",
)
PINNED_RUNTIME = (
    f"{_PACK}AwsSolutions-L1",
    "Python 3.12 is the runtime the team targets (a PipelineConfig setting) and the one the "
    "bundled dependencies are built for (make lambda-deps); moving to a newer runtime is a "
    "config change and a rebuild of the bundle, not a code change.",
)
NOTIFICATIONS_HANDLER_ROLE = (
    f"{_PACK}AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
    "AWSLambdaBasicExecutionRole]",
    "CDK's own BucketNotificationsHandler custom resource (it writes the bucket's notification "
    "configuration at deploy time); its role only needs the basic logging policy.",
)


def _acknowledge(construct: IConstruct, *findings: tuple[str, str]) -> None:
    Validations.of(construct).acknowledge(
        *(Acknowledgment(id=rule, reason=reason) for rule, reason in findings)
    )


def suppress_known_findings(stack: FaceEnrollmentStack) -> None:
    """Acknowledge the stack's accepted cdk-nag findings, each on the narrowest construct."""
    index_photo = stack.ingest.node.find_child("IndexPhoto")  # the function, its role, its logs
    associate_faces = stack.association.node.find_child("AssociateFaces")
    for function in (index_photo, associate_faces):
        _acknowledge(function, XRAY_WILDCARD, PINNED_RUNTIME)
    _acknowledge(stack.activation.role, XRAY_WILDCARD)
    _acknowledge(
        index_photo,
        (
            f"{_PACK}AwsSolutions-IAM5[Resource::<{_logical_id(stack.ingest.bucket)}.Arn>/"
            f"{stack.config.enroll_prefix}*]",
            "The index function reads any photo under the enrollment prefix (Rekognition fetches "
            "the S3Object with the function's credentials); keys are per user, not known upfront.",
        ),
    )
    state_machine_ref = _logical_id(stack.activation.state_machine)
    _acknowledge(
        associate_faces,
        (
            f"{_PACK}AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
            f"<AWS::AccountId>:execution:"
            f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{state_machine_ref}"}}]}}]}}:*]',
            "DescribeExecution on the activation state machine's executions only: their names "
            "are derived per (user, batch) at run time, so they cannot be listed upfront.",
        ),
    )
    _acknowledge_query_api_and_erasure(stack)
    # The reconciler's role has no wildcard of its own (its resources are the table, the
    # collection, the two DLQs, the association queue and the state machine, each by ARN).
    _acknowledge(stack.reconciler.worker, XRAY_WILDCARD, PINNED_RUNTIME)
    _acknowledge_backfill(stack)
    handler = stack.node.try_find_child(
        "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"
    )
    if handler is not None:
        _acknowledge(handler, NOTIFICATIONS_HANDLER_ROLE)


def _acknowledge_query_api_and_erasure(stack: FaceEnrollmentStack) -> None:
    """The query API's and the erasure worker's accepted findings."""
    for function in (stack.api.handler, stack.erasure.worker):
        _acknowledge(function, XRAY_WILDCARD, PINNED_RUNTIME)
    photos = _logical_id(stack.ingest.bucket)
    _acknowledge(
        stack.api.handler,
        (
            f"{_PACK}AwsSolutions-IAM5[Resource::<{photos}.Arn>/*]",
            "POST /search and /verify accept a probe as an S3 key anywhere in the pipeline's own "
            "bucket (a probe must not sit under the enrollment prefix, where it would be "
            "enrolled), and Rekognition reads it with the function's credentials; the bucket is "
            "fixed by the function, never the caller's choice. Read only (GetObject/Version).",
        ),
    )
    _acknowledge(
        stack.erasure.worker,
        (
            f"{_PACK}AwsSolutions-IAM5[Resource::<{photos}.Arn>/{stack.config.enroll_prefix}*]",
            "The erasure worker deletes every version and delete marker under one user's prefix; "
            "the user ids (and so the keys) are only known at run time. Scoped to the enrollment "
            "prefix, the only place photos of users live.",
        ),
    )
    rest_api = stack.api.rest_api
    _acknowledge(
        rest_api,
        (
            f"{_PACK}AwsSolutions-COG4",
            "IAM (SigV4) is the chosen authorizer: callers are operators' scripts, the enroll CLI "
            "and backend services holding IAM credentials, not end users of a Cognito user pool. "
            "/health has no authorizer at all (see APIG4).",
        ),
        (
            f"{_PACK}AwsSolutions-APIG3",
            "Every route but /health needs a SigV4 signature of an IAM principal, checked by API "
            "Gateway before the function runs, and the stage throttles per second; a WAFv2 web "
            "ACL (rate rules, IP sets) is an account-level choice, to attach when the API is "
            "exposed beyond the account's own callers.",
        ),
        (
            f"{_PACK}AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "The account's API Gateway CloudWatch role (needed for access and execution logs) "
            "uses AWS's managed policy made for exactly this; no API data passes through it. "
            "PipelineConfig.api_manage_cloudwatch_role=False leaves it to another stack.",
        ),
    )
    _acknowledge(
        stack.api.methods[("/health", "GET")],
        (
            f"{_PACK}AwsSolutions-APIG4",
            "GET /health is deliberately open: a liveness check for monitors that answers "
            '{"status": "ok"} from the function alone, reading no user data and calling no AWS '
            "service.",
        ),
    )


def _acknowledge_backfill(stack: FaceEnrollmentStack) -> None:
    """The bulk backfill's accepted findings (infra/backfill.py)."""
    backfill = stack.backfill
    _acknowledge(backfill.worker, XRAY_WILDCARD, PINNED_RUNTIME)
    machine = _logical_id(backfill.state_machine)
    executions = (
        "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
        f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{machine}"}}]}}]}}'
    )
    _acknowledge(
        backfill.state_machine,
        XRAY_WILDCARD,
        (
            f"{_PACK}AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::"
            f"<{_logical_id(backfill.inventory)}>/*]",
            "The map reads whichever inventory manifest and data files the operator names, in "
            "the stack's own inventory bucket only (GetObject); their keys carry the report's "
            "date, so they cannot be listed upfront.",
        ),
        (
            f"{_PACK}AwsSolutions-IAM5[Resource::<{_logical_id(backfill.function)}.Arn>:*]",
            "lambda:InvokeFunction on the backfill function's versions and aliases (CDK's "
            "LambdaInvoke grant): one function, nothing else.",
        ),
        (
            f"{_PACK}AwsSolutions-IAM5[Resource::{executions}:*]",
            "The distributed map describes and stops its own child executions, named at run "
            "time (CDK's DistributedMap grant), on this state machine only.",
        ),
        (
            f"{_PACK}AwsSolutions-IAM5[Resource::{executions}/Backfill:*]",
            "The same for the map run labelled Backfill: its executions are named at run time.",
        ),
    )


def _logical_id(construct: IConstruct) -> str:
    """The CloudFormation logical id of an L2 construct's resource, as cdk-nag prints it."""
    return Stack.of(construct).get_logical_id(construct.node.default_child)  # type: ignore[arg-type]
