"""A pipeline on moto (in-process ``mock_aws``) + the synthetic Rekognition emulator.

``pipeline`` creates the bucket, the ledger table, the association queue, the collection and a
stand-in state machine (these tests check that executions are *started*; running the real
activation definition is the integration tests' job), and builds both stages with those
resources. ``pipeline.upload(key, photo)`` puts an object and returns the S3 notification body
S3 would send (URL-encoded key, eTag, versionId).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest

from enroll_local.testing import aws_test_environment
from enrollment.association import AssociateStage
from enrollment.indexing import IndexStage
from enrollment.ledger import Ledger, table_definition
from enrollment.messages import AssociationMessage
from enrollment.settings import Settings

REGION = "us-east-1"
BUCKET = "face-enrollment-photos"
TABLE = "face-enrollment-ledger"
COLLECTION = "face-enrollment"


@pytest.fixture(autouse=True)
def aws_env() -> Iterator[dict[str, str]]:
    with aws_test_environment() as env:
        yield env


@pytest.fixture(autouse=True)
def _reset_metrics() -> Iterator[None]:
    from enrollment.observability import metrics

    yield
    metrics.clear_metrics()


@dataclass
class Pipeline:
    settings: Settings
    s3: Any
    sqs: Any
    ddb: Any
    rekognition: Any
    sfn: Any
    queue_url: str
    emulator: Any
    ledger: Ledger
    versioned: bool = True
    sent: list[str] = field(default_factory=list)

    def index_stage(self, **overrides: Any) -> IndexStage:
        settings = _replace(self.settings, overrides)
        return IndexStage(settings, self.rekognition, self.ledger, self.sqs)

    def associate_stage(self, **overrides: Any) -> AssociateStage:
        settings = _replace(self.settings, overrides)
        return AssociateStage(settings, self.rekognition, self.ledger, self.sfn, self.sqs)

    def upload(self, key: str, body: bytes) -> str:
        """Put ``body`` at ``key``; the S3 notification body for it (as S3 encodes it)."""
        response = self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return notification(key, response["ETag"].strip('"'), response.get("VersionId"))

    def association_messages(self) -> list[tuple[str, AssociationMessage]]:
        """Drain the association queue: (message id, message)."""
        out = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                return out
            for m in batch:
                out.append((m["MessageId"], AssociationMessage.from_json(m["Body"])))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])

    def upload_messages(self) -> list[str]:
        """Drain the upload queue: the notification bodies sent to the index stage."""
        out = []
        url = self.settings.upload_queue_url
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                return out
            for m in batch:
                out.append(m["Body"])
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    def photo(self, user_id: str | None, key: str, version: str | None = None) -> dict[str, Any]:
        from enrollment.keys import photo_id

        if version is None and self.versioned:
            version = self.s3.head_object(Bucket=BUCKET, Key=key).get("VersionId")
        item = self.ledger.get_photo(user_id, photo_id(BUCKET, key, version))
        assert item is not None, f"no ledger item for {key}"
        return item

    def collection_face_ids(self) -> set[str]:
        faces = self.rekognition.list_faces(CollectionId=COLLECTION, MaxResults=4096)["Faces"]
        return {f["FaceId"] for f in faces}

    def user_face_ids(self, user_id: str) -> set[str]:
        faces = self.rekognition.list_faces(
            CollectionId=COLLECTION, UserId=user_id, MaxResults=4096
        )["Faces"]
        return {f["FaceId"] for f in faces}

    def executions(self) -> list[dict[str, Any]]:
        arn = self.settings.activation_state_machine_arn
        return self.sfn.list_executions(stateMachineArn=arn)["executions"]

    def environment(self) -> dict[str, str]:
        s = self.settings
        return {
            "BUCKET_NAME": BUCKET,
            "COLLECTION_ID": s.collection_id,
            "LEDGER_TABLE": s.ledger_table,
            "ASSOCIATION_QUEUE_URL": s.association_queue_url,
            "UPLOAD_QUEUE_URL": s.upload_queue_url,
            "ACTIVATION_STATE_MACHINE_ARN": s.activation_state_machine_arn,
            "MAX_RECEIVE_COUNT": str(s.max_receive_count),
            "POWERTOOLS_SERVICE_NAME": "enrollment-test",
            "POWERTOOLS_METRICS_NAMESPACE": "FaceEnrollment",
        }


def _replace(settings: Settings, overrides: dict[str, Any]) -> Settings:
    from dataclasses import replace

    return replace(settings, **overrides) if overrides else settings


def notification(key: str, etag: str, version_id: str | None) -> str:
    obj: dict[str, Any] = {"key": quote_plus(key), "size": 1, "eTag": etag, "sequencer": "0A1"}
    if version_id:
        obj["versionId"] = version_id
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": REGION,
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": BUCKET}, "object": obj},
                }
            ]
        }
    )


def sqs_event(bodies: list[str], *, receive_count: int = 1, ids: list[str] | None = None) -> dict:
    """An SQS event for the given bodies, shaped like Lambda delivers it."""
    records = []
    for i, body in enumerate(bodies):
        message_id = ids[i] if ids else f"msg-{i}"
        records.append(
            {
                "messageId": message_id,
                "receiptHandle": f"rh-{message_id}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": str(receive_count)},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:queue",
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


@pytest.fixture
def photo() -> Callable[..., bytes]:
    """``photo("alice", variant=0, faces=None, seed=None, fmt="JPEG")``: a synthetic photo."""
    from enroll_local.rekognition.engines.synthetic import make_synthetic_photo

    def make(
        identity: str = "alice",
        variant: int = 0,
        *,
        faces: list[dict[str, Any]] | None = None,
        seed: int | None = None,
        fmt: str = "JPEG",
        **face: Any,
    ) -> bytes:
        spec = faces if faces is not None else [{"identity": identity, "variant": variant, **face}]
        return make_synthetic_photo(spec, fmt=fmt, seed=seed if seed is not None else variant)

    return make


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    from moto import mock_aws

    from enroll_local.rekognition.moto_plugin import local_rekognition

    with mock_aws(), local_rekognition("synthetic", update_delay_seconds=0.0) as emulator:
        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        ddb = boto3.client("dynamodb", region_name=REGION)
        rekognition = boto3.client("rekognition", region_name=REGION)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        ddb.create_table(**table_definition(TABLE))
        queue_url = sqs.create_queue(QueueName="face-enrollment-association")["QueueUrl"]
        upload_queue_url = sqs.create_queue(QueueName="face-enrollment-upload")["QueueUrl"]
        rekognition.create_collection(CollectionId=COLLECTION)
        role = iam.create_role(
            RoleName="activation",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        machine = sfn.create_state_machine(
            name="face-enrollment-activation",
            definition=json.dumps(
                {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
            ),
            roleArn=role,
        )["stateMachineArn"]
        settings = Settings(
            bucket_name=BUCKET,
            collection_id=COLLECTION,
            ledger_table=TABLE,
            association_queue_url=queue_url,
            upload_queue_url=upload_queue_url,
            activation_state_machine_arn=machine,
        )
        yield Pipeline(
            settings=settings,
            s3=s3,
            sqs=sqs,
            ddb=ddb,
            rekognition=rekognition,
            sfn=sfn,
            queue_url=queue_url,
            emulator=emulator,
            ledger=Ledger(ddb, TABLE),
        )
