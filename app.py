#!/usr/bin/env python3
"""CDK app: the face-enrollment pipeline, checked by cdk-nag's AWS Solutions rules.

`cdk synth` (cdk.json) and `python app.py` (make synth) both write the cloud assembly to
cdk.out/ (or $CDK_OUTDIR when the CDK CLI sets it). cdk-nag errors fail the synth.
"""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import PipelineConfig
from infra.stack import FaceEnrollmentStack

STACK_NAME = "FaceEnrollment"

# Feature flags set here rather than in cdk.json so that `python app.py` and the tests (which do
# not go through the CDK CLI) synthesize exactly what `cdk synth` does.
FEATURE_FLAGS = {
    # Access-log delivery through a bucket policy, not the legacy LogDeliveryWrite ACL.
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/aws-lambda:recognizeLayerVersion": True,
}


def build_app(outdir: str | None = None) -> tuple[cdk.App, FaceEnrollmentStack]:
    """The app with the pipeline stack and cdk-nag attached (not yet synthesized)."""
    # A plain `cdk.App()` run as a script has no outdir and writes nothing: default to cdk.out.
    app = cdk.App(outdir=outdir or os.environ.get("CDK_OUTDIR") or "cdk.out", context=FEATURE_FLAGS)
    region = os.environ.get("CDK_DEFAULT_REGION")
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    env = cdk.Environment(account=account, region=region) if account and region else None
    config = PipelineConfig.for_region(region) if region else PipelineConfig()
    stack = FaceEnrollmentStack(app, STACK_NAME, config=config, env=env)
    # cdk-nag 3: a validation plugin (the Aspects way of cdk-nag 2 no longer reports).
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


if __name__ == "__main__":
    build_app()[0].synth()
