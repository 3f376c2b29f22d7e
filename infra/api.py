"""Query API: an API Gateway REST API (IAM/SigV4 auth) in front of one Lambda function.

Every route is a Lambda proxy integration to ``query_api.handler.handler`` (Powertools'
resolver does the routing and the validation against the OpenAPI document); API Gateway adds
what only it can: SigV4 authorization, throttling, access logs, X-Ray, and a first structural
check of the request. Its own error responses (403, 429, 400 ...) use the handler's error shape,
``{"error": {"code", "message"}}``, so a client sees one shape whoever answered.
"""

from __future__ import annotations

import json

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .config import PipelineConfig
from .erasure import prefix_condition
from .lambda_function import PipelineFunction, log_retention

# What the API function calls (functions/query_api + enrollment's queries, probe and erasure
# request code), per service; tests/infra/test_api.py pins the same sets.
API_REKOGNITION_ACTIONS = (
    "rekognition:SearchUsersByImage",  # POST /search, POST /users/{userId}/verify
    "rekognition:SearchUsers",  # the user's Rekognition status (GET /users/{userId})
    "rekognition:ListFaces",  # the user's faces (GET /users/{userId})
)
# Rekognition reads a probe given as an S3 key with the caller's credentials; the key may be
# anywhere in the pipeline's own bucket (a probe must not live under the enrollment prefix,
# where it would be enrolled), a version may be named.
API_S3_READ_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")
# GET /users/{userId}/photos, and DELETE's "anything stored?" check, list the versions under
# the user's prefix (ListObjectVersions).
API_S3_LIST_ACTIONS = ("s3:ListBucketVersions",)
# get_user (GetItem); user_photos, has_user_items (Query); list_users (Query on the users index).
API_LEDGER_READ_ACTIONS = ("dynamodb:GetItem", "dynamodb:Query")
# DELETE /users/{userId}: Ledger.start_erasure turns the user item into the ERASING tombstone.
API_LEDGER_WRITE_ACTIONS = ("dynamodb:UpdateItem",)
API_SQS_ACTIONS = ("sqs:SendMessage",)  # the erasure message

# (path, method, authorization) of every route; only the health check is open.
ROUTES: tuple[tuple[str, str, apigw.AuthorizationType], ...] = (
    ("/health", "GET", apigw.AuthorizationType.NONE),
    ("/users", "GET", apigw.AuthorizationType.IAM),
    ("/users/{userId}", "GET", apigw.AuthorizationType.IAM),
    ("/users/{userId}", "DELETE", apigw.AuthorizationType.IAM),
    ("/users/{userId}/photos", "GET", apigw.AuthorizationType.IAM),
    ("/users/{userId}/verify", "POST", apigw.AuthorizationType.IAM),
    ("/search", "POST", apigw.AuthorizationType.IAM),
)
# The routes that call SearchUsersByImage: throttled to the Rekognition quota, not the stage's.
SEARCH_ROUTES = ("/search/POST", "/users/{userId}/verify/POST")

# One JSON line per request. No request or response bodies anywhere (probe images are biometric
# data); the caller's IAM ARN is the audit trail of who searched for or erased whom.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "caller": "$context.identity.userArn",
    "sourceIp": "$context.identity.sourceIp",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "path": "$context.path",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency",
    "integrationStatus": "$context.integrationStatus",
    "errorType": "$context.error.responseType",
    "errorMessage": "$context.error.message",
    "xrayTraceId": "$context.xrayTraceId",
}

# API Gateway's own error responses in the handler's shape. `responseType` is the gateway's name
# for the error (ACCESS_DENIED, THROTTLED, MISSING_AUTHENTICATION_TOKEN ...); `messageString` is
# its message already JSON-quoted.
GATEWAY_ERROR_TEMPLATE = (
    '{"error": {"code": "$context.error.responseType", "message": $context.error.messageString}}'
)
# The request model below checks only that a body is a JSON object; say so rather than
# API Gateway's bare "Invalid request body", with the handler's code for a malformed request.
BAD_BODY_TEMPLATE = (
    '{"error": {"code": "INVALID_REQUEST", "message": "the request body must be a JSON object"}}'
)
# Seconds a throttled client should wait: the token bucket refills every second.
THROTTLED_RETRY_AFTER_S = 1


class QueryApi(Construct):
    """The REST API (``rest_api``), its ``function`` and its access logs (``access_logs``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        table: dynamodb.ITable,
        users_index_arn: str,
        collection_arn: str,
        bucket: s3.IBucket,
        erasure_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = PipelineFunction(
            self,
            "Handler",
            config=config,
            handler="query_api.handler.handler",
            service_name=config.api_service_name,
            description="Query API: users, photo outcomes, search, verify, erasure requests",
            timeout_s=config.api_function_timeout_s,
            memory_mb=config.api_function_memory_mb,
            environment=config.lambda_environment(
                service_name=config.api_service_name,
                bucket_name=bucket.bucket_name,
                ledger_table=table.table_name,
                erasure_queue_url=erasure_queue.queue_url,
            ),
        )
        self.function = self.handler.function
        self._grant(config, table, users_index_arn, collection_arn, bucket, erasure_queue)

        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=log_retention(config),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=config.api_name,
            description="Face enrollment query API (SigV4 on every route but /health)",
            # Callers are scripts and services signing with SigV4, not browsers: no CloudFront.
            endpoint_configuration=apigw.EndpointConfiguration(types=[apigw.EndpointType.REGIONAL]),
            cloud_watch_role=config.api_manage_cloudwatch_role,
            # The account setting outlives this stack: other APIs of the account may log with it.
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=config.api_stage_name,
                tracing_enabled=True,
                metrics_enabled=True,
                # Execution logs on errors only, and never the data trace: it would log probe
                # images (biometric data) and full responses.
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                throttling_rate_limit=config.api_throttle_rate_rps,
                throttling_burst_limit=config.api_throttle_burst,
                method_options={
                    route: apigw.MethodDeploymentOptions(
                        throttling_rate_limit=config.api_search_throttle_rate_rps,
                        throttling_burst_limit=config.api_search_throttle_burst,
                    )
                    for route in SEARCH_ROUTES
                },
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
            ),
        )
        # The stack's ApiUrl output is the one URL output (not a second, hashed "Endpoint").
        self.rest_api.node.try_remove_child("Endpoint")
        # What a caller's IAM policy allows execute-api:Invoke on (narrow it per method/path,
        # e.g. .../GET/* for read-only callers, .../DELETE/users/* for erasure).
        self.execute_api_arn = self.rest_api.arn_for_execute_api(
            method="*", path="/*", stage=config.api_stage_name
        )
        self._gateway_responses()
        self.validator = self.rest_api.add_request_validator(
            "Validator",
            request_validator_name="body-and-parameters",
            validate_request_body=True,
            validate_request_parameters=True,
        )
        self.json_object_model = self.rest_api.add_model(
            "JsonObject",
            content_type="application/json",
            model_name="JsonObject",
            description="Any JSON object: the handler validates the fields",
            schema=apigw.JsonSchema(
                schema=apigw.JsonSchemaVersion.DRAFT4,
                title="JsonObject",
                type=apigw.JsonSchemaType.OBJECT,
            ),
        )
        # One invoke permission per method (only the routes below may call the function), and
        # none for the console's test-invoke, which bypasses IAM authorization.
        integration = apigw.LambdaIntegration(self.function, proxy=True, allow_test_invoke=False)
        self.methods: dict[tuple[str, str], apigw.Method] = {}
        for path, method, authorization in ROUTES:
            self.methods[(path, method)] = self._add_route(path, method, authorization, integration)

    def _add_route(
        self,
        path: str,
        method: str,
        authorization: apigw.AuthorizationType,
        integration: apigw.Integration,
    ) -> apigw.Method:
        resource = self.rest_api.root.resource_for_path(path)
        # The parameters of the OpenAPI document (a test keeps them equal): the path's userId
        # is required; GET /users pages with optional limit and next_token.
        parameters = {"method.request.path.userId": True} if "{userId}" in path else {}
        if path == "/users" and method == "GET":
            parameters |= {
                "method.request.querystring.limit": False,
                "method.request.querystring.next_token": False,
            }
        return resource.add_method(
            method,
            integration,
            authorization_type=authorization,
            request_validator=self.validator,
            request_parameters=parameters or None,
            request_models=(
                {"application/json": self.json_object_model} if method == "POST" else None
            ),
        )

    def _gateway_responses(self) -> None:
        json_template = {"application/json": GATEWAY_ERROR_TEMPLATE}
        for response_id, response_type in (
            ("Default4xx", apigw.ResponseType.DEFAULT_4_XX),
            ("Default5xx", apigw.ResponseType.DEFAULT_5_XX),
        ):
            self.rest_api.add_gateway_response(
                response_id, type=response_type, templates=json_template
            )
        self.rest_api.add_gateway_response(
            "Throttled",
            type=apigw.ResponseType.THROTTLED,
            templates=json_template,
            response_headers={"Retry-After": f"'{THROTTLED_RETRY_AFTER_S}'"},
        )
        self.rest_api.add_gateway_response(
            "BadRequestBody",
            type=apigw.ResponseType.BAD_REQUEST_BODY,
            templates={"application/json": BAD_BODY_TEMPLATE},
        )

    def _grant(
        self,
        config: PipelineConfig,
        table: dynamodb.ITable,
        users_index_arn: str,
        collection_arn: str,
        bucket: s3.IBucket,
        erasure_queue: sqs.IQueue,
    ) -> None:
        role = self.handler.role
        role.add_to_policy(
            iam.PolicyStatement(
                sid="SearchAndReadCollection",
                actions=list(API_REKOGNITION_ACTIONS),
                resources=[collection_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadProbePhotos",
                actions=list(API_S3_READ_ACTIONS),
                resources=[bucket.arn_for_objects("*")],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListUserPhotoVersions",
                actions=list(API_S3_LIST_ACTIONS),
                resources=[bucket.bucket_arn],
                conditions=prefix_condition(config),
            )
        )
        # The users index by its own name: no /index/* wildcard.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadLedger",
                actions=list(API_LEDGER_READ_ACTIONS),
                resources=[table.table_arn, users_index_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteErasureTombstone",
                actions=list(API_LEDGER_WRITE_ACTIONS),
                resources=[table.table_arn],
            )
        )
        # SendMessage only (grant_send_messages would add GetQueueAttributes and GetQueueUrl).
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RequestErasure",
                actions=list(API_SQS_ACTIONS),
                resources=[erasure_queue.queue_arn],
            )
        )
