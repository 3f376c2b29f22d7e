"""Create the pipeline's resources on the local endpoint, with PipelineConfig's names and settings.

Idempotent: moto keeps its state in memory, so a restarted ``enroll local`` (whose emulator state
may survive in ``--data-dir``) simply creates everything again; running it twice against the
same endpoint changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from enrollment.ledger import table_definition
from infra.activation_definition import render_activation_definition
from infra.config import PipelineConfig

#: moto accepts any role; the deployed stack creates a scoped one.
LOCAL_STATE_MACHINE_ROLE = "arn:aws:iam::{account}:role/{name}-role"


@dataclass(frozen=True)
class Endpoints:
    """Where everything lives; printed by ``enroll local`` and written to endpoints.json."""

    endpoint_url: str
    region: str
    account_id: str
    bucket: str
    prefix: str
    collection_id: str
    table: str
    upload_queue_url: str
    upload_dlq_url: str
    association_queue_url: str
    association_dlq_url: str
    state_machine_arn: str
    #: The query API (``enroll local --api-port``); None when it is not served.
    api_url: str | None = None
    #: The erasure worker's queue and its DLQ (DELETE /users/{userId} sends to it).
    erasure_queue_url: str | None = None
    erasure_dlq_url: str | None = None

    def to_json(self) -> str:
        """The endpoints as pretty JSON (keys as in this dataclass)."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)


@dataclass(frozen=True)
class Clients:
    """boto3 clients bound to the local endpoint."""

    s3: Any
    sqs: Any
    dynamodb: Any
    rekognition: Any
    stepfunctions: Any


def _ensure_queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    # create_queue with other attributes than an existing queue's fails in AWS; set them
    # explicitly so a re-run converges on the configured values.
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def _queue_with_dlq(
    sqs: Any, config: PipelineConfig, name: str, dlq_name: str, visibility_timeout_s: int
) -> tuple[str, str, str]:
    """A queue and its DLQ, redriven after ``config.max_receive_count`` receives."""
    dlq_url, dlq_arn = _ensure_queue(
        sqs, dlq_name, {"MessageRetentionPeriod": str(config.dlq_retention_s)}
    )
    redrive = json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": config.max_receive_count}
    )
    url, arn = _ensure_queue(
        sqs,
        name,
        {
            "VisibilityTimeout": str(visibility_timeout_s),
            "MessageRetentionPeriod": str(config.queue_retention_s),
            "RedrivePolicy": redrive,
        },
    )
    return url, arn, dlq_url


def _ensure_bucket(s3: Any, bucket: str, region: str) -> None:
    try:
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region}
            )
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou",):
            raise
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def _ensure_table(dynamodb: Any, table: str) -> None:
    try:
        dynamodb.create_table(**table_definition(table))
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise


def _ensure_collection(rekognition: Any, collection_id: str) -> None:
    try:
        rekognition.create_collection(CollectionId=collection_id)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise


def _ensure_state_machine(stepfunctions: Any, name: str, definition: str, account_id: str) -> str:
    role = LOCAL_STATE_MACHINE_ROLE.format(account=account_id, name=name)
    for machine in stepfunctions.list_state_machines()["stateMachines"]:
        if machine["name"] == name:
            stepfunctions.update_state_machine(
                stateMachineArn=machine["stateMachineArn"], definition=definition
            )
            return str(machine["stateMachineArn"])
    created = stepfunctions.create_state_machine(name=name, definition=definition, roleArn=role)
    return str(created["stateMachineArn"])


def provision(
    clients: Clients, config: PipelineConfig, *, endpoint_url: str, region: str, account_id: str
) -> Endpoints:
    """Create (or converge) every resource of the pipeline; return where they are."""
    upload_url, upload_arn, upload_dlq = _queue_with_dlq(
        clients.sqs,
        config,
        config.upload_queue_name,
        config.upload_dlq_name,
        config.index_visibility_timeout_s,
    )
    association_url, _, association_dlq = _queue_with_dlq(
        clients.sqs,
        config,
        config.association_queue_name,
        config.association_dlq_name,
        config.associate_visibility_timeout_s,
    )
    erasure_url, _, erasure_dlq = _queue_with_dlq(
        clients.sqs,
        config,
        config.erasure_queue_name,
        config.erasure_dlq_name,
        config.erasure_visibility_timeout_s,
    )
    _ensure_bucket(clients.s3, config.bucket_name, region)
    # Configuring the notification makes S3 send an s3:TestEvent first, as in AWS.
    clients.s3.put_bucket_notification_configuration(
        Bucket=config.bucket_name,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "enroll-uploads",
                    "QueueArn": upload_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {"FilterRules": [{"Name": "prefix", "Value": config.enroll_prefix}]}
                    },
                }
            ]
        },
    )
    _ensure_table(clients.dynamodb, config.ledger_table_name)
    _ensure_collection(clients.rekognition, config.collection_id)
    definition = render_activation_definition(
        config.collection_id, config.ledger_table_name, config.metrics_namespace
    )
    state_machine_arn = _ensure_state_machine(
        clients.stepfunctions, config.state_machine_name, definition, account_id
    )
    return Endpoints(
        endpoint_url=endpoint_url,
        region=region,
        account_id=account_id,
        bucket=config.bucket_name,
        prefix=config.enroll_prefix,
        collection_id=config.collection_id,
        table=config.ledger_table_name,
        upload_queue_url=upload_url,
        upload_dlq_url=upload_dlq,
        association_queue_url=association_url,
        association_dlq_url=association_dlq,
        state_machine_arn=state_machine_arn,
        erasure_queue_url=erasure_url,
        erasure_dlq_url=erasure_dlq,
    )
