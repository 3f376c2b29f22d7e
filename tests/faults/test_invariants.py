"""The invariant check itself: it must see each broken promise, or the suite proves nothing."""

from __future__ import annotations

from typing import Any

from enroll_local.rekognition.engines.synthetic import make_synthetic_photo
from enroll_local.runner.invariants import check_invariants
from enrollment import keys

from .conftest import Scenario


def _index(stack: Any, name: str, external_image_id: str, variant: int) -> str:
    endpoints = stack.endpoints
    stack.clients.s3.put_object(
        Bucket=endpoints.bucket,
        Key=name,  # outside the prefix: the pipeline does not see it
        Body=make_synthetic_photo([{"identity": "Zed", "variant": variant}], seed=variant),
    )
    response = stack.clients.rekognition.index_faces(
        CollectionId=endpoints.collection_id,
        Image={"S3Object": {"Bucket": endpoints.bucket, "Name": name}},
        ExternalImageId=external_image_id,
        MaxFaces=1,
    )
    return str(response["FaceRecords"][0]["Face"]["FaceId"])


def test_each_broken_promise_is_reported(scenario: Any) -> None:
    run: Scenario = scenario()
    stack, endpoints = run.stack, run.stack.endpoints
    first = run.upload("Uma", 1)
    run.upload("Uma", 2)
    run.wait_idle()
    assert check_invariants(stack).violations() == {}

    # A face nobody holds, and a second face for an enrolled photo
    orphan = _index(stack, "planted/orphan.jpg", "p-planted", 7)
    version = stack.clients.s3.head_object(Bucket=endpoints.bucket, Key=first)["VersionId"]
    photo_id = keys.photo_id(endpoints.bucket, first, version)
    _index(stack, "planted/duplicate.jpg", photo_id, 8)
    # A photo stuck half-way, a user no longer ACTIVE, and a photo with no outcome at all
    stack.clients.dynamodb.update_item(
        TableName=endpoints.table,
        Key={"pk": {"S": keys.user_pk("Uma")}, "sk": {"S": "USER"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "UPDATING"}},
    )
    stack.stop_pollers()
    unseen = run.upload("Uma", 3)
    photo_key = next(
        {"pk": item["pk"], "sk": item["sk"]}
        for item in stack.clients.dynamodb.scan(TableName=endpoints.table)["Items"]
        if item["sk"]["S"].startswith("PHOTO#") and item.get("key", {}).get("S") == first
    )
    stack.clients.dynamodb.update_item(
        TableName=endpoints.table,
        Key=photo_key,
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "ASSOCIATED"}},
    )

    violations = check_invariants(stack, max_faces_per_user=1).violations()

    assert set(violations) == {
        "photos_without_outcome",
        "photos_not_terminal",
        "faces_without_user",
        "users_over_cap",
        "duplicate_faces",
        "active_photo_users_not_active",
    }, violations
    assert [v.split("@")[0] for v in violations["photos_without_outcome"]] == [unseen]
    assert violations["photos_not_terminal"] == [f"{first}: ASSOCIATED"]
    assert orphan in violations["faces_without_user"]
    assert violations["users_over_cap"] == ["Uma: 2 faces"]
    assert violations["duplicate_faces"] == [f"photo {photo_id}: 2 faces"]
    assert violations["active_photo_users_not_active"] == [
        "Uma: ledger UPDATING, rekognition ACTIVE"
    ]
