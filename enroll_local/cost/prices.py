"""List prices (us-east-1, no free tier) with their source grade, as data.

Grades as in the project's performance anchors (performance-anchors.md §2.1): [P] a primary AWS
source, [S] a secondary one (a third-party copy of the pricing page), [U] unverified. The
search corpora are stored copies: re-check every price against the live pricing pages before a
decision rests on it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    """One list price: ``usd`` per ``unit``."""

    usd: float
    unit: str
    grade: str
    source: str


#: Rekognition Image Group 1 (IndexFaces, SearchFacesByImage, SearchFaces, CompareFaces), first
#: tier (1 M images a month); later tiers are lower ($0.0008, $0.0006, $0.0004).
REKOGNITION_GROUP_1 = Price(0.001, "call", "[P]+[S]", "aws.amazon.com/rekognition/pricing")
REKOGNITION_FACE_MONTH = Price(0.00001, "face-month", "[P]", "aws.amazon.com/rekognition/pricing")
#: The user-vector APIs are not on the stored copy of the pricing page: whether they are billed
#: like Group 1 is [U]. The report gives both figures; the headline assumes they are billed
#: (the conservative reading, as performance-anchors.md §2.2 leads with it).
REKOGNITION_USER_VECTOR = Price(
    0.001, "call (if billed as Group 1)", "[U]", "not on the stored pricing page"
)
LAMBDA_REQUEST = Price(0.20 / 1e6, "invocation", "[P]", "aws.amazon.com/lambda/pricing")
LAMBDA_GB_SECOND = {
    "arm64": Price(0.0000133334, "GB-s", "[P]", "aws.amazon.com/lambda/pricing (Arm)"),
    "x86_64": Price(0.0000166667, "GB-s", "[P]", "aws.amazon.com/lambda/pricing (x86)"),
}
SQS_REQUEST = Price(0.40 / 1e6, "64 KB request", "[P]", "aws.amazon.com/sqs/pricing")
SFN_STANDARD_TRANSITION = Price(
    0.025 / 1000, "state transition", "[P]", "aws.amazon.com/step-functions/pricing"
)
SFN_EXPRESS_REQUEST = Price(1.00 / 1e6, "execution", "[P]+[S]", "step-functions/pricing")
#: Express duration: rounded up to 100 ms, memory in 64 MB chunks (first tier).
SFN_EXPRESS_GB_SECOND = Price(0.00001667, "GB-s", "[S]", "wring.co step-functions pricing guide")
#: DynamoDB on-demand after the November 2024 reduction (us-east-1). Not in the anchors file;
#: from a third-party transcription of aws.amazon.com/dynamodb/pricing/on-demand.
DYNAMODB_WRITE_UNIT = Price(0.625 / 1e6, "WRU", "[S]", "airbyte.com dynamodb-pricing (2025)")
DYNAMODB_READ_UNIT = Price(0.125 / 1e6, "RRU", "[S]", "airbyte.com dynamodb-pricing (2025)")
#: S3 Standard: PUT, COPY, POST, LIST at one price; GET and every other request at another;
#: DELETE is free.
S3_PUT_CLASS = Price(0.005 / 1000, "PUT/COPY/POST/LIST", "[S]", "aws.amazon.com/s3/pricing")
S3_GET_CLASS = Price(0.0004 / 1000, "GET/other", "[S]", "aws.amazon.com/s3/pricing")
CLOUDWATCH_PUT_METRIC_DATA = Price(0.01 / 1000, "request", "[S]", "aws.amazon.com/cloudwatch")

#: Rekognition operations billed as Group 1 ([P]).
GROUP_1_OPERATIONS = frozenset({"IndexFaces", "SearchFacesByImage", "SearchFaces", "CompareFaces"})
#: User-vector operations: billed or not is [U] (both figures are reported).
USER_VECTOR_OPERATIONS = frozenset(
    {
        "AssociateFaces",
        "CreateUser",
        "DeleteUser",
        "DisassociateFaces",
        "ListUsers",
        "SearchUsers",
        "SearchUsersByImage",
    }
)
#: Collection housekeeping (ListFaces, DeleteFaces, DescribeCollection, ...): assumed unbilled
#: [U]; face storage is what the collection costs.
S3_PUT_CLASS_OPERATIONS = frozenset(
    {
        "PutObject",
        "CopyObject",
        "PostObject",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "CompleteMultipartUpload",
        "ListObjects",
        "ListObjectsV2",
        "ListObjectVersions",
        "ListMultipartUploads",
        "CreateBucket",
    }
)
S3_FREE_OPERATIONS = frozenset({"DeleteObject", "DeleteObjects", "AbortMultipartUpload"})
#: DynamoDB request units per request, approximated from request counts: items assumed within
#: 1 KB (writes) and 4 KB (reads), one item per request, reads strongly consistent (an upper
#: bound: eventually consistent reads cost half), a transactional request counted as 2 units.
DYNAMODB_WRITE_UNITS = {
    "PutItem": 1,
    "UpdateItem": 1,
    "DeleteItem": 1,
    "BatchWriteItem": 1,
    "TransactWriteItems": 2,
}
DYNAMODB_READ_UNITS = {
    "GetItem": 1,
    "Query": 1,
    "Scan": 1,
    "BatchGetItem": 1,
    "TransactGetItems": 2,
}
