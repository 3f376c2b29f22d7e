#!/usr/bin/env python3
"""CDK app: the face-enrollment pipeline, checked by cdk-nag's AWS Solutions rules.

`cdk synth` (cdk.json) and `python app.py` (make synth) both write the cloud assembly to
cdk.out/ (or $CDK_OUTDIR when the CDK CLI sets it). cdk-nag errors fail the synth.

Context values: ``-c stage=prod`` (default ``dev``) names the stack ``FaceEnrollment-<stage>``
and everything it cannot leave to CloudFormation; ``-c alarm_email=ops@example.com`` subscribes
an address to the alarm topic.
"""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import PipelineConfig
from infra.stack import FaceEnrollmentStack

STACK_NAME = "FaceEnrollment"
DEFAULT_STAGE = "dev"

# Feature flags set here rather than in cdk.json so that `python app.py` and the tests (which do
# not go through the CDK CLI) synthesize exactly what `cdk synth` does.
FEATURE_FLAGS = {
    # Access-log delivery through a bucket policy, not the legacy LogDeliveryWrite ACL.
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/aws-lambda:recognizeLayerVersion": True,
}


def build_app(
    outdir: str | None = None, context: dict[str, str] | None = None
) -> tuple[cdk.App, FaceEnrollmentStack]:
    """The app with the pipeline stack and cdk-nag attached (not yet synthesized).

    ``context`` stands in for ``-c key=value`` (tests); the CDK CLI passes its own.
    """
    # A plain `cdk.App()` run as a script has no outdir and writes nothing: default to cdk.out.
    app = cdk.App(
        outdir=outdir or os.environ.get("CDK_OUTDIR") or "cdk.out",
        context={**FEATURE_FLAGS, **(context or {})},
    )
    stack = add_stack(app)
    # cdk-nag 3: a validation plugin (the Aspects way of cdk-nag 2 no longer reports).
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def add_stack(app: cdk.App, stage: str | None = None) -> FaceEnrollmentStack:
    """The pipeline stack for ``stage`` (default: the ``stage`` context value, else dev)."""
    stage = stage or str(app.node.try_get_context("stage") or DEFAULT_STAGE)
    alarm_email = str(app.node.try_get_context("alarm_email") or "")
    region = os.environ.get("CDK_DEFAULT_REGION")
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    env = cdk.Environment(account=account, region=region) if account and region else None
    config = (
        PipelineConfig.for_region(region, stage=stage, alarm_email=alarm_email)
        if region
        else PipelineConfig(stage=stage, alarm_email=alarm_email)
    )
    # One stack per stage: its name carries the stage, so stages deploy side by side.
    return FaceEnrollmentStack(app, f"{STACK_NAME}-{stage}", config=config, env=env)


if __name__ == "__main__":
    build_app()[0].synth()
