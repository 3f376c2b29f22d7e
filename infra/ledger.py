"""The ledger: one DynamoDB table holding one item per user and one per photo (contracts.md)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from .config import PipelineConfig

# The sparse GSI over user items (contracts: `kind` = "USER" on every user item).
USERS_INDEX_NAME = "users"


class Ledger(Construct):
    """The ledger table (``table``): keys ``pk``/``sk`` (strings), on-demand, PITR on."""

    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            # No table name: CloudFormation names it after the stack, so a redeploy after
            # `cdk destroy` creates a new table beside the retained one instead of failing.
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
        # Sparse: only user items carry `kind` ("USER"), so the index holds exactly the users,
        # in UserId order, for GET /users paging without a Scan over every photo item.
        self.table.add_global_secondary_index(
            index_name=USERS_INDEX_NAME,
            partition_key=dynamodb.Attribute(name="kind", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="user_id", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        self.users_index_name = USERS_INDEX_NAME
        self.users_index_arn = f"{self.table.table_arn}/index/{USERS_INDEX_NAME}"
