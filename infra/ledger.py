"""The ledger: one DynamoDB table holding one item per user and one per photo (contracts.md)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from .config import PipelineConfig


class Ledger(Construct):
    """The ledger table (``table``): keys ``pk``/``sk`` (strings), on-demand, PITR on."""

    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=config.ledger_table_name,
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            # Enrollment is bursty (a backfill, then quiet): pay per request, no capacity to tune.
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            # The ledger is the proof of what happened to every photo: never lose it with the
            # stack. Deleting a user's data is the API's job (right to be forgotten), not CFN's.
            removal_policy=RemovalPolicy.RETAIN,
        )
