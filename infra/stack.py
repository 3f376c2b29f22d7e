"""The pipeline's one stack: ledger, collection, activation, association, ingest, alarms.

Constructs are created in dependency order; each takes what it needs as arguments, so a later
API, dashboard or bulk-backfill construct plugs in the same way (read ``self.ledger.table``,
``self.ingest.bucket``, ``self.activation.state_machine`` ...).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from constructs import Construct

from .activation import Activation
from .api import QueryApi
from .association import Association
from .backfill import Backfill
from .collection import FaceCollection
from .config import PipelineConfig
from .dashboard import targets_from_config
from .erasure import Erasure
from .ingest import Ingest
from .ledger import Ledger
from .nag import suppress_known_findings
from .observability import Observability, dashboard_name
from .reconciler import Reconciler


def stage_config(config: PipelineConfig, *, collection_id: str) -> PipelineConfig:
    """The settings the stack deploys: ``config`` with the stage's own names.

    Two stages share an account, so whatever CloudFormation does not name by itself carries the
    stage: the collection id (derived by FaceCollection), the metrics namespace
    (``FaceEnrollment/<stage>``: one stage's failures never trip the other's alarms or dashboard)
    and the REST API's name (the ApiName dimension of its metrics).
    """
    return replace(
        config,
        collection_id=collection_id,
        metrics_namespace=f"{config.metrics_namespace}/{config.stage}",
        api_name=f"{config.api_name}-{config.stage}",
    )


class FaceEnrollmentStack(Stack):
    """S3 -> SQS -> index -> SQS -> associate -> Step Functions, with the ledger and alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        base = config or PipelineConfig()
        self.collection = FaceCollection(self, "FaceCollection", config=base)
        self.config = stage_config(base, collection_id=self.collection.collection_id)
        self.ledger = Ledger(self, "Ledger", config=self.config)
        self.activation = Activation(
            self,
            "Activation",
            config=self.config,
            table=self.ledger.table,
            collection_arn=self.collection.collection_arn,
        )
        self.association = Association(
            self,
            "Association",
            config=self.config,
            table=self.ledger.table,
            collection_arn=self.collection.collection_arn,
            state_machine=self.activation.state_machine,
            # Replaced below by the bucket's generated name (the bucket needs this construct's
            # queue first); PipelineConfig.bucket_name is the local runner's.
            bucket_name=self.config.bucket_name,
        )
        self.ingest = Ingest(
            self,
            "Ingest",
            config=self.config,
            table=self.ledger.table,
            collection_arn=self.collection.collection_arn,
            association_queue=self.association.queues.queue,
        )
        self.association.function.add_environment("BUCKET_NAME", self.ingest.bucket.bucket_name)
        self.association.send_failed_photos_to(self.ingest.queues.queue)
        self.erasure = Erasure(
            self,
            "Erasure",
            config=self.config,
            table=self.ledger.table,
            collection_arn=self.collection.collection_arn,
            bucket=self.ingest.bucket,
        )
        self.api = QueryApi(
            self,
            "Api",
            config=self.config,
            table=self.ledger.table,
            users_index_arn=self.ledger.users_index_arn,
            collection_arn=self.collection.collection_arn,
            bucket=self.ingest.bucket,
            erasure_queue=self.erasure.queues.queue,
        )
        self.reconciler = Reconciler(
            self,
            "Reconciler",
            config=self.config,
            table=self.ledger.table,
            collection_arn=self.collection.collection_arn,
            bucket_name=self.ingest.bucket.bucket_name,
            upload_queues=self.ingest.queues,
            association_queues=self.association.queues,
            state_machine=self.activation.state_machine,
        )
        self.backfill = Backfill(
            self,
            "Backfill",
            config=self.config,
            table=self.ledger.table,
            photo_bucket=self.ingest.bucket,
            access_logs=self.ingest.access_logs,
            upload_queue=self.ingest.queues.queue,
        )
        for output_id, description, value in (
            (
                "BackfillStateMachineArn",
                "Backfill over an S3 Inventory manifest: start it with "
                '{"manifest": {"key": "<manifest.json key in InventoryBucketName>"}}',
                self.backfill.state_machine.state_machine_arn,
            ),
            (
                "InventoryBucketName",
                "The photo bucket's daily S3 Inventory (CSV), read by the backfill state machine",
                self.backfill.inventory.bucket_name,
            ),
            (
                "UploadQueueUrl",
                "Upload queue (enroll backfill sends the photos already in the bucket here)",
                self.ingest.queues.queue.queue_url,
            ),
        ):
            CfnOutput(self, output_id, description=description, value=value)
        # Nothing may run against a collection that does not exist yet.
        for dependent in (
            self.activation,
            self.association,
            self.ingest,
            self.erasure,
            self.api,
            self.reconciler,
        ):
            dependent.node.add_dependency(self.collection.resource)
        CfnOutput(
            self,
            "ApiUrl",
            description="Query API base URL (the stage); every route but /health needs SigV4",
            value=self.api.rest_api.url,
        )
        CfnOutput(
            self,
            "ApiExecuteArn",
            description="Allow execute-api:Invoke on this (or narrower) to call the query API",
            value=self.api.execute_api_arn,
        )
        CfnOutput(
            self,
            "ErasureQueueUrl",
            description="Erasure queue (one message per DELETE /users/{userId})",
            value=self.erasure.queues.queue.queue_url,
        )
        self._observe()
        self._outputs()
        for key, value in (*self.config.tags, ("stage", self.config.stage)):
            Tags.of(self).add(key, value)
        suppress_known_findings(self)

    def _observe(self) -> None:
        """Alarms to one SNS topic and the dashboard, over every queue and function above."""
        config = self.config
        functions = {
            config.index_service_name: self.ingest.function,
            config.associate_service_name: self.association.function,
            config.api_service_name: self.api.function,
            config.erasure_service_name: self.erasure.function,
            config.reconcile_service_name: self.reconciler.function,
        }
        queues = {
            "Upload": self.ingest.queues,
            "Association": self.association.queues,
            "Erasure": self.erasure.queues,
        }
        # The dashboard definition speaks in PipelineConfig's (local) queue names: map them to
        # the names CloudFormation generates.
        configured = {
            "Upload": (config.upload_queue_name, config.upload_dlq_name),
            "Association": (config.association_queue_name, config.association_dlq_name),
            "Erasure": (config.erasure_queue_name, config.erasure_dlq_name),
        }
        queue_names: dict[str, str] = {}
        for title, pair in queues.items():
            name, dlq_name = configured[title]
            queue_names[name] = pair.queue.queue_name
            queue_names[dlq_name] = pair.dlq.queue_name
        self.observability = Observability(
            self,
            "Observability",
            config=config,
            dead_letter_queues={title: pair.dlq for title, pair in queues.items()},
            # The erasure queue is not watched for age: an erasure may wait on retries for long.
            queues={title: queues[title].queue for title in ("Upload", "Association")},
            functions={
                "IndexPhoto": self.ingest.function,
                "AssociateFaces": self.association.function,
                "QueryApi": self.api.function,
                "EraseUser": self.erasure.function,
                "Reconcile": self.reconciler.function,
            },
            # One run per interval: its error rate is judged run by run.
            function_error_periods_s={"Reconcile": config.reconcile_interval_s},
            state_machine=self.activation.state_machine,
            rest_api=self.api.rest_api,
            dashboard_targets=targets_from_config(
                config,
                region=self.region,
                function_names={
                    service: function.function_name for service, function in functions.items()
                },
                state_machine_arn=self.activation.state_machine.state_machine_arn,
                queue_names=queue_names,
                api_name=self.api.rest_api.rest_api_name,
                dashboard_name=dashboard_name(self),
            ),
        )

    def _outputs(self) -> None:
        """What an operator needs after `cdk deploy` (README "Deploy")."""
        region = self.region
        outputs = {
            "PhotoBucketName": (
                "Drop photos here under <prefix><UserId>/ (retained on destroy)",
                self.ingest.bucket.bucket_name,
            ),
            "EnrollPrefix": ("Key prefix that enrolls a photo", self.config.enroll_prefix),
            "CollectionId": (
                "Rekognition collection (retained on destroy)",
                self.collection.collection_id,
            ),
            "LedgerTableName": (
                "DynamoDB ledger (retained on destroy)",
                self.ledger.table.table_name,
            ),
            "AccessLogsBucketName": (
                "S3 server access logs of the photo bucket (retained on destroy)",
                self.ingest.access_logs.bucket_name,
            ),
            "ActivationStateMachineArn": (
                "Activation state machine",
                self.activation.state_machine.state_machine_arn,
            ),
            "AlarmTopicArn": (
                "SNS topic of every alarm (subscribe with -c alarm_email=... or the console)",
                self.observability.topic.topic_arn,
            ),
            "DashboardUrl": (
                "CloudWatch dashboard",
                f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
                f"#dashboards:name={self.observability.dashboard.dashboard_name}",
            ),
        }
        for output_id, (description, value) in outputs.items():
            CfnOutput(self, output_id, description=description, value=value)
