"""Write an S3 Inventory report (manifest.json + data files) into S3, as S3 Inventory does.

The layout and the manifest's fields follow the S3 user guide ("Locating your inventory list"):
``<prefix>/<source bucket>/<config id>/<timestamp>/manifest.json`` naming gzip CSV (no header,
columns in ``fileSchema``'s order, keys URL-encoded) or Parquet data files under ``data/``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import datetime
from typing import Any
from urllib.parse import quote_plus

#: The columns of an inventory with IncludedObjectVersions=All and these optional fields.
CSV_SCHEMA = (
    "Bucket",
    "Key",
    "VersionId",
    "IsLatest",
    "IsDeleteMarker",
    "Size",
    "LastModifiedDate",
    "ETag",
)
PARQUET_SCHEMA = (
    "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); "
    "optional binary version_id (UTF8); optional boolean is_latest; "
    "optional boolean is_delete_marker; optional int64 size; "
    "optional int64 last_modified_date (TIMESTAMP_MILLIS); optional binary e_tag (UTF8);}"
)


def inventory_rows(s3: Any, bucket: str) -> list[dict[str, Any]]:
    """Every object version and delete marker of ``bucket``, as inventory rows."""
    rows: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            rows.append(
                {
                    "Bucket": bucket,
                    "Key": version["Key"],
                    "VersionId": version.get("VersionId") or "",
                    "IsLatest": version["IsLatest"],
                    "IsDeleteMarker": False,
                    "Size": version.get("Size"),
                    "LastModifiedDate": version["LastModified"],
                    "ETag": str(version.get("ETag", "")).strip('"'),
                }
            )
        for marker in page.get("DeleteMarkers", []):
            rows.append(
                {
                    "Bucket": bucket,
                    "Key": marker["Key"],
                    "VersionId": marker.get("VersionId") or "",
                    "IsLatest": marker["IsLatest"],
                    "IsDeleteMarker": True,
                    "Size": None,
                    "LastModifiedDate": marker["LastModified"],
                    "ETag": "",
                }
            )
    return rows


def write_inventory(
    s3: Any,
    *,
    source_bucket: str,
    destination_bucket: str,
    rows: list[dict[str, Any]],
    file_format: str = "CSV",
    rows_per_file: int = 7,
) -> str:
    """Write the report; its manifest's ``s3://`` location."""
    base = f"inventory/{source_bucket}/daily/2026-11-30T00-00Z"
    files = []
    for number, start in enumerate(range(0, len(rows), rows_per_file)):
        chunk = rows[start : start + rows_per_file]
        if file_format == "CSV":
            key = f"inventory/{source_bucket}/daily/data/part-{number}.csv.gz"
            body = _csv(chunk)
        else:
            key = f"inventory/{source_bucket}/daily/data/part-{number}.parquet"
            body = _parquet(chunk)
        s3.put_object(Bucket=destination_bucket, Key=key, Body=body)
        files.append({"key": key, "size": len(body), "MD5checksum": "0" * 32})
    manifest = {
        "sourceBucket": source_bucket,
        "destinationBucket": f"arn:aws:s3:::{destination_bucket}",
        "version": "2016-11-30",
        "creationTimestamp": "1764460800000",
        "fileFormat": file_format,
        "fileSchema": ", ".join(CSV_SCHEMA) if file_format == "CSV" else PARQUET_SCHEMA,
        "files": files,
    }
    manifest_key = f"{base}/manifest.json"
    s3.put_object(Bucket=destination_bucket, Key=manifest_key, Body=json.dumps(manifest))
    return f"s3://{destination_bucket}/{manifest_key}"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return str(value)


def _csv(rows: list[dict[str, Any]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for row in rows:
        values = {**row, "Key": quote_plus(row["Key"], safe="/")}
        writer.writerow([_text(values[column]) for column in CSV_SCHEMA])
    return gzip.compress(text.getvalue().encode("utf-8"))


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "bucket": [r["Bucket"] for r in rows],
            "key": [r["Key"] for r in rows],
            "version_id": [r["VersionId"] or None for r in rows],
            "is_latest": [bool(r["IsLatest"]) for r in rows],
            "is_delete_marker": [bool(r["IsDeleteMarker"]) for r in rows],
            "size": pa.array([r["Size"] for r in rows], type=pa.int64()),
            "last_modified_date": pa.array(
                [r["LastModifiedDate"] for r in rows], type=pa.timestamp("ms", tz="UTC")
            ),
            "e_tag": [r["ETag"] or None for r in rows],
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()
