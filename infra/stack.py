"""The pipeline's one stack: ledger, collection, activation, association, ingest, alarms.

Constructs are created in dependency order; each takes what it needs as arguments, so a later
API, dashboard or bulk-backfill construct plugs in the same way (read ``self.ledger.table``,
``self.ingest.bucket``, ``self.activation.state_machine`` ...).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack, Tags
from constructs import Construct

from .activation import Activation
from .association import Association
from .collection import FaceCollection
from .config import PipelineConfig
from .ingest import Ingest
from .ledger import Ledger
from .nag import suppress_known_findings
from .observability import Observability


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
        self.config = config or PipelineConfig()
        self.ledger = Ledger(self, "Ledger", config=self.config)
        self.collection = FaceCollection(self, "FaceCollection", config=self.config)
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
        # Nothing may run against a collection that does not exist yet.
        for dependent in (self.activation, self.association, self.ingest):
            dependent.node.add_dependency(self.collection.resource)
        self.observability = Observability(
            self,
            "Observability",
            config=self.config,
            dead_letter_queues={
                "Upload": self.ingest.queues.dlq,
                "Association": self.association.queues.dlq,
            },
            state_machine=self.activation.state_machine,
        )
        for key, value in self.config.tags:
            Tags.of(self).add(key, value)
        suppress_known_findings(self)
