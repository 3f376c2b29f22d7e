"""One helper that builds every pipeline function the same way.

Every function ships one asset: the runtime dependencies pinned in requirements.txt (built for
Lambda's platform into build/lambda-deps by ``make lambda-deps``, see ``lambda_deps``) plus the
whole ``functions/`` folder (its thin handler and the shared ``enrollment`` package). It runs on
arm64 Python with X-Ray tracing and Powertools configured by environment variables. Bundling is a
local copy (no Docker, no download at synth), and synth fails when the dependency folder is
missing or was built from other pins.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, Duration, ILocalBundling, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from .config import PipelineConfig
from .lambda_deps import DEPS_DIR, STAMP_NAME, check

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"

# Never bundle caches, tests or local state into the Lambda asset.
_IGNORED = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", "*.egg-info", STAMP_NAME
)

# The ledger calls each function's code makes (enrollment.ledger.Ledger), nothing more:
# index: get_photo / claim_content / get_user (GetItem), record_photo / claim_content (PutItem).
INDEX_LEDGER_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem")
# associate: user_photos (Query), ensure_user (PutItem, GetItem), transition_photo and
# mark_user_updating (UpdateItem).
ASSOCIATE_LEDGER_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
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
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=_RUNTIMES[config.lambda_runtime],
            architecture=_ARCHITECTURES[config.lambda_architecture],
            handler=handler,
            role=self.role,
            code=function_code(config),
            timeout=Duration.seconds(timeout_s),
            memory_size=memory_mb,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            environment={**environment, "POWERTOOLS_SERVICE_NAME": service_name},
        )


@jsii.implements(ILocalBundling)
class _CopyBundle:
    """Local bundling: copy the dependency folder, then ``functions/``, into the asset folder."""

    def __init__(self, deps_dir: Path, functions_dir: Path) -> None:
        self._deps_dir = deps_dir
        self._functions_dir = functions_dir

    def try_bundle(self, output_dir: str, *_options: Any, **_keywords: Any) -> bool:
        """Fill ``output_dir``; True tells the CDK that Docker is not needed."""
        shutil.copytree(self._deps_dir, output_dir, dirs_exist_ok=True, ignore=_IGNORED)
        shutil.copytree(self._functions_dir, output_dir, dirs_exist_ok=True, ignore=_IGNORED)
        return True


def _tree_digest(root: Path, digest: Any) -> None:
    """Feed every file the bundle copies from ``root`` (path and content) into ``digest``."""
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        # The same names _IGNORED skips, applied to every level of the path.
        skipped = any(_IGNORED(str(root), [part]) for part in relative.parts)
        if path.is_file() and not skipped:
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")


def function_code(
    config: PipelineConfig, deps_dir: Path = DEPS_DIR, functions_dir: Path = FUNCTIONS_DIR
) -> lambda_.Code:
    """The asset every function runs: requirements.txt's pinned packages + ``functions/``.

    Raises ``lambda_deps.LambdaDepsError`` (the synth fails with what to run) when the
    dependency folder is missing or stale. The asset hash is the dependency stamp plus the
    content of ``functions/``, so a code or pin change makes a new asset and nothing else does.
    """
    target = check(config, deps_dir)
    digest = hashlib.sha256(json.dumps(target.as_stamp(), sort_keys=True).encode())
    _tree_digest(functions_dir, digest)
    return lambda_.Code.from_asset(
        str(functions_dir),
        asset_hash=digest.hexdigest(),
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(
            # Never pulled: local bundling always succeeds (or the synth has already failed).
            image=_RUNTIMES[config.lambda_runtime].bundling_image,
            local=_CopyBundle(deps_dir, functions_dir),
        ),
    )
