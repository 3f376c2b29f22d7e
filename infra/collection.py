"""The Rekognition face collection every function and the state machine work on."""

from __future__ import annotations

from aws_cdk import Aws, Fn, RemovalPolicy, Stack
from aws_cdk import aws_rekognition as rekognition
from constructs import Construct

from .config import PipelineConfig


def deployed_collection_id(config: PipelineConfig) -> str:
    """``<collection_id>-<stage>-<8 hex digits of this stack's id>`` (a CloudFormation token).

    The collection is retained when the stack is destroyed, and collection ids are unique per
    account and region: a fixed id would make the next deploy fail with "already exists". The
    stack id's UUID changes with every stack creation (and never with an update), so a redeploy
    after `cdk destroy` gets a new collection and an update keeps the same one.
    """
    # arn:aws:cloudformation:<region>:<account>:stack/<name>/<uuid> -> first group of <uuid>.
    stack_uuid = Fn.select(2, Fn.split("/", Aws.STACK_ID))
    return Fn.join(
        "", [f"{config.collection_id}-{config.stage}-", Fn.select(0, Fn.split("-", stack_uuid))]
    )


class FaceCollection(Construct):
    """``AWS::Rekognition::Collection`` (``collection_id``, ``collection_arn``)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig) -> None:
        super().__init__(scope, construct_id)
        self.collection_id = deployed_collection_id(config)
        self.resource = rekognition.CfnCollection(
            self, "Collection", collection_id=self.collection_id
        )
        # Face vectors cannot be rebuilt without the original photos: keep them with the stack
        # gone (README "Tear down" says how to delete a retained collection).
        self.resource.apply_removal_policy(RemovalPolicy.RETAIN)
        # Built from the id (not Fn::GetAtt) so IAM statements read as the ARN they grant.
        self.collection_arn = Stack.of(self).format_arn(
            service="rekognition", resource="collection", resource_name=self.collection_id
        )
