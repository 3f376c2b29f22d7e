"""One helper that builds every pipeline function the same way.

Every function ships the whole ``functions/`` folder (its thin handler plus the shared
``enrollment`` package), runs on arm64 Python with X-Ray tracing and Powertools configured by
environment variables, and gets its runtime dependencies from the public Powertools layer.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from .config import PipelineConfig

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"

# Never bundle caches, tests or local state into the Lambda asset.
_ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/.mypy_cache", "*.egg-info"]

# What the shared ledger module does (conditional puts/updates, point reads, per-user queries);
# narrower than grant_read_write_data, which would also allow Scan, DeleteItem and batch writes.
LEDGER_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
)

_RUNTIMES = {"python3.12": lambda_.Runtime.PYTHON_3_12, "python3.13": lambda_.Runtime.PYTHON_3_13}
_ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}

_RETENTION_DAYS = {
    1: logs.RetentionDays.ONE_DAY,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


def log_retention(config: PipelineConfig) -> logs.RetentionDays:
    """CloudWatch Logs retention for the configured number of days (a value Logs accepts)."""
    try:
        return _RETENTION_DAYS[config.log_retention_days]
    except KeyError:
        raise ValueError(
            f"log_retention_days must be one of {sorted(_RETENTION_DAYS)}, "
            f"got {config.log_retention_days}"
        ) from None


class PipelineFunction(Construct):
    """A pipeline Lambda function (``function``), its ``role`` and its ``log_group``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        handler: str,
        service_name: str,
        description: str,
        timeout_s: int,
        memory_mb: int,
        environment: dict[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        # An explicit log group (not the implicit /aws/lambda one) so retention is ours and the
        # group disappears with the stack instead of outliving it.
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=log_retention(config),
            removal_policy=RemovalPolicy.DESTROY,
        )
        # An explicit role instead of AWSLambdaBasicExecutionRole: logging is granted on this
        # function's own log group only; each construct adds exactly what its code calls.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{service_name} function",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        powertools = lambda_.LayerVersion.from_layer_version_arn(
            self, "Powertools", config.powertools_layer_arn(Stack.of(self).region)
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=_RUNTIMES[config.lambda_runtime],
            architecture=_ARCHITECTURES[config.lambda_architecture],
            handler=handler,
            role=self.role,
            code=lambda_.Code.from_asset(str(FUNCTIONS_DIR), exclude=_ASSET_EXCLUDES),
            layers=[powertools],
            timeout=Duration.seconds(timeout_s),
            memory_size=memory_mb,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            environment={**environment, "POWERTOOLS_SERVICE_NAME": service_name},
        )
