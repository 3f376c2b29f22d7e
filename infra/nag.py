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
    "Python 3.12 is the runtime the team targets (a PipelineConfig setting) and matches the "
    "Powertools layer build; moving to a newer runtime is a config change, not a code change.",
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
    handler = stack.node.try_find_child(
        "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"
    )
    if handler is not None:
        _acknowledge(handler, NOTIFICATIONS_HANDLER_ROLE)


def _logical_id(construct: IConstruct) -> str:
    """The CloudFormation logical id of an L2 construct's resource, as cdk-nag prints it."""
    return Stack.of(construct).get_logical_id(construct.node.default_child)  # type: ignore[arg-type]
