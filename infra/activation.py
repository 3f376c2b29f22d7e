"""The activation state machine: waits for a Rekognition user to be ACTIVE, records the outcome.

The definition is the reviewable ASL file ``statemachines/activation.asl.json``; the stack fills
its ``${...}`` placeholders with ``definition_substitutions`` (the very mechanism the local runner
mimics with ``render_activation_definition``). No Lambda: SDK integrations only.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .activation_definition import activation_template
from .config import PipelineConfig
from .lambda_function import log_retention


class Activation(Construct):
    """The state machine (``state_machine``), its role and its log group.

    The execution timeout is the ASL's own ``TimeoutSeconds`` (kept equal to
    ``PipelineConfig.activation_execution_timeout_s`` by a test), so the local runner's copy of
    the definition times out exactly like the deployed one.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        table: dynamodb.ITable,
        collection_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=log_retention(config),
            removal_policy=RemovalPolicy.DESTROY,
        )
        # An explicit role: SDK integrations get no auto-generated permissions, and writing
        # each one down keeps the grant exactly what the ASL calls.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="Activation state machine: SearchUsers, ledger updates, two metrics",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="CheckUserStatus",
                actions=["rekognition:SearchUsers"],
                resources=[collection_arn],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="RecordOutcome",
                actions=["dynamodb:UpdateItem"],
                resources=[table.table_arn],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="PublishActivationMetrics",
                actions=["cloudwatch:PutMetricData"],
                # PutMetricData has no resource type; the namespace condition is its scope.
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": config.metrics_namespace}},
            )
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            # No name: CloudFormation derives one from the stack (PipelineConfig's
            # state_machine_name is the local runner's), so stages never collide.
            # STANDARD: executions wait minutes (the schedule sums to ~5 min) and their
            # deterministic names must stay unique for 90 days so duplicates collapse.
            state_machine_type=sfn.StateMachineType.STANDARD,
            # The file's text inline (not from_file's S3 asset): the template then shows the
            # exact definition CloudFormation receives, placeholders and all.
            definition_body=sfn.DefinitionBody.from_string(activation_template()),
            definition_substitutions={
                "CollectionId": config.collection_id,
                "LedgerTable": table.table_name,
                "MetricsNamespace": config.metrics_namespace,
            },
            role=self.role,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ALL,
                # State data holds user ids and face ids (personal data): keep it out of logs;
                # the ledger and the execution history carry it under their own access control.
                include_execution_data=False,
            ),
        )
