"""The query API's OpenAPI document, generated from the routes and models of ``handler``.

``python -m query_api.openapi`` (``make openapi``) rewrites ``openapi.json`` beside this file;
a unit test fails when the committed document differs from what the code generates. The output
is deterministic (sorted keys, two-space indent, final newline) so a diff shows only real change.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TITLE = "Face enrollment query API"
# The document's version: bump it when a route, field or status code changes.
VERSION = "1.0.0"
DESCRIPTION = (
    "Users, photo outcomes, search by image, 1:1 verify and erasure over the face enrollment "
    "pipeline (Amazon Rekognition user vectors). JSON in and out. Every error is "
    '`{"error": {"code", "message"}}`. Deployed behind API Gateway (REST), every route but '
    "`/health` requires IAM authorization (requests signed with AWS Signature Version 4); "
    "authorization is API Gateway's, so this document, which describes the function, declares "
    "no security scheme."
)
DOCUMENT = Path(__file__).with_name("openapi.json")
REGENERATE_COMMAND = "make openapi"


def document() -> dict[str, Any]:
    """The OpenAPI document as a dict."""
    from .handler import app

    schema: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(title=TITLE, version=VERSION, description=DESCRIPTION)
    )
    return schema


def render() -> str:
    """The document as committed: sorted keys, two-space indent, final newline."""
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the document to ``argv[0]`` (default ``openapi.json`` beside this module)."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else DOCUMENT
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
