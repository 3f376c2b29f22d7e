"""The Rekognition face collection every function and the state machine work on."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_rekognition as rekognition
from constructs import Construct

from .config import PipelineConfig


class FaceCollection(Construct):
    """``AWS::Rekognition::Collection`` (``collection_id``, ``collection_arn``)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig) -> None:
        super().__init__(scope, construct_id)
        self.resource = rekognition.CfnCollection(
            self, "Collection", collection_id=config.collection_id
        )
        # Face vectors cannot be rebuilt without the original photos: keep them with the stack gone.
        self.resource.apply_removal_policy(RemovalPolicy.RETAIN)
        self.collection_id = config.collection_id
        # Built from the id (not Fn::GetAtt) so IAM statements read as the ARN they grant.
        self.collection_arn = Stack.of(self).format_arn(
            service="rekognition", resource="collection", resource_name=config.collection_id
        )
