"""Request and response models of the query API: the OpenAPI document is generated from them.

Request bodies are strict (no "50" for 50, no unknown fields): a client's typo is a 422 that
names the field, not a silently ignored option. Response models mirror what the domain
functions return; the resolver validates every response against them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from enrollment.keys import USER_ID_PATTERN
from enrollment.probe import MAX_S3_KEY_BYTES
from enrollment.settings import REKOGNITION_MAX_USERS_PER_SEARCH

USER_ID_REGEX = USER_ID_PATTERN.pattern
# Users per GET /users page (default, maximum).
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
# A next_token is base64url of a small JSON key (a UserId is at most 128 characters).
MAX_NEXT_TOKEN_CHARS = 1024


# ---- errors -------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. USER_NOT_FOUND, NO_FACE.")
    message: str = Field(description="What is wrong, for a human; never a stack trace.")


class ErrorResponse(BaseModel):
    """Every error the API returns has this shape."""

    error: ErrorDetail


# ---- requests -----------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


def _optional_text(description: str, max_length: int | None = None, *, base64: bool = False) -> Any:
    """A string field that may be left out but not sent as null (the document says string)."""
    schema: dict[str, Any] = {"type": "string", "minLength": 1, "description": description}
    if base64:
        schema["format"] = "byte"  # base64, as OpenAPI names it
    if max_length is not None:
        schema["maxLength"] = max_length
    return WithJsonSchema(schema)


class _ProbeFields(_Strict):
    image: Annotated[
        str | None,
        _optional_text(
            "The probe image, JPEG or PNG, base64-encoded; at most 5 MB decoded.", base64=True
        ),
    ] = Field(default=None, min_length=1)
    s3_key: Annotated[
        str | None,
        _optional_text(
            "Instead of image: the key of a JPEG/PNG object in the pipeline's bucket.",
            MAX_S3_KEY_BYTES,
        ),
    ] = Field(default=None, min_length=1, max_length=MAX_S3_KEY_BYTES)
    s3_version_id: Annotated[
        str | None,
        _optional_text("With s3_key: the object version to read (default: the latest).", 1024),
    ] = Field(default=None, min_length=1, max_length=1024)
    threshold: float | None = Field(
        default=None,
        ge=0,
        le=100,
        allow_inf_nan=False,
        description="Similarity (percent) a user must reach; default SEARCH_MATCH_THRESHOLD.",
    )

    @field_validator("image", "s3_key", "s3_version_id", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # A default (left out) is not validated; only an explicit null reaches this.
        if value is None:
            raise ValueError("must be a string; leave the field out instead of sending null")
        return value

    @model_validator(mode="after")
    def _one_image(self) -> _ProbeFields:
        if (self.image is None) == (self.s3_key is None):
            raise ValueError("give exactly one of 'image' (base64 JPEG/PNG) or 's3_key'")
        if self.s3_version_id is not None and self.s3_key is None:
            raise ValueError("'s3_version_id' goes with 's3_key'")
        return self


def _probe_schema(schema: dict[str, Any]) -> None:
    """Exactly one of image / s3_key (s3_version_id only with s3_key), stated in the document.

    The text fields lose their ``default: null``: null is refused, so it must not be offered
    as an example value.
    """
    for name in ("image", "s3_key", "s3_version_id"):
        schema.get("properties", {}).get(name, {}).pop("default", None)
    schema["oneOf"] = [
        {
            "required": ["image"],
            "not": {"anyOf": [{"required": ["s3_key"]}, {"required": ["s3_version_id"]}]},
        },
        {"required": ["s3_key"], "not": {"required": ["image"]}},
    ]


class SearchRequest(_ProbeFields):
    """POST /search: who is in this image?"""

    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra=_probe_schema)

    max_users: int | None = Field(
        default=None,
        ge=1,
        le=REKOGNITION_MAX_USERS_PER_SEARCH,
        description="Most users to return, best first; default SEARCH_MAX_USERS.",
    )


class VerifyRequest(_ProbeFields):
    """POST /users/{userId}/verify: is this image that user?"""

    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra=_probe_schema)


# ---- responses ----------------------------------------------------------------------------


class Health(BaseModel):
    status: str = Field(description='Always "ok" when the function answers.')


class UserSummary(BaseModel):
    user_id: str
    status: str | None = Field(
        description="Ledger status: CREATED, UPDATING, ACTIVE, FAILED, ERASING or DELETED."
    )
    face_count: int = Field(description="Faces the ledger last counted for the user vector.")
    updated_at: str | None = Field(description="Last change of the user item (ISO-8601 UTC).")


class UserPage(BaseModel):
    users: list[UserSummary]
    next_token: str | None = Field(
        description="Pass as next_token for the next page; null on the last page."
    )


class Face(BaseModel):
    face_id: str
    photo_id: str | None = Field(description="Ledger id of the photo the face was indexed from.")
    key: str | None = Field(description="S3 key of that photo (null if the ledger lacks it).")
    version_id: str | None
    quality: float | None = Field(description="0..100: the weaker of brightness and sharpness.")
    indexed_at: str | None


class ErasureReceipt(BaseModel):
    model_config = ConfigDict(extra="ignore")

    faces_deleted: int | None = None
    user_deleted: bool | None = None
    objects_deleted: int | None = None
    versions_deleted: int | None = None
    delete_markers_deleted: int | None = None
    ledger_items_deleted: int | None = None
    completed_at: str | None = None


class ErasureProgress(BaseModel):
    model_config = ConfigDict(extra="ignore")

    requested_at: str | None = None
    step: str | None = Field(
        default=None, description="collect, user, faces, objects, ledger, then done."
    )
    completed_at: str | None = None
    receipt: ErasureReceipt | None = Field(
        default=None, description="What was removed; set when the erasure is done."
    )


class UserDetail(BaseModel):
    user_id: str
    status: str | None = Field(
        description="Ledger status; null when the user has photos but no user item (all rejected)."
    )
    rekognition_status: str | None = Field(
        description="Rekognition's UserStatus (CREATED, UPDATING, ACTIVE); null when the "
        "collection holds no face of the user."
    )
    face_count: int = Field(description="Faces associated to the user vector in Rekognition now.")
    max_faces: int = Field(description="The cap on faces per user (MAX_FACES_PER_USER).")
    faces: list[Face]
    photo_count: int = Field(description="Photos the ledger recorded for the user.")
    created_at: str | None
    updated_at: str | None
    activated_at: str | None
    activation_seconds: float | None
    reason: str | None
    erasure: ErasureProgress | None = Field(description="Set once an erasure was requested.")


class Photo(BaseModel):
    key: str = Field(description="S3 key exactly as uploaded.")
    version_id: str | None = Field(description="S3 version id; null in an unversioned bucket.")
    photo_id: str
    status: str = Field(
        description="RECEIVED (no outcome yet), INDEXED, ASSOCIATED, ACTIVE, REJECTED, FAILED "
        "or DELETED."
    )
    reason: str | None = Field(description="Why REJECTED or FAILED, e.g. NO_FACE.")
    detail: str | None
    face_id: str | None
    quality: float | None
    updated_at: str | None = Field(description="Last change of the ledger item.")
    uploaded_at: str | None = Field(description="S3 LastModified of the version, if it exists.")


class UserPhotos(BaseModel):
    user_id: str
    photos: list[Photo]


class BoundingBox(BaseModel):
    width: float
    height: float
    left: float
    top: float


class SearchedFace(BaseModel):
    bounding_box: BoundingBox = Field(description="Ratios of the image's width and height.")
    confidence: float | None


class UserMatch(BaseModel):
    user_id: str
    similarity: float = Field(description="0..100")
    user_status: str | None


class SearchResponse(BaseModel):
    matches: list[UserMatch] = Field(description="Best first; empty when nobody matches.")
    searched_face: SearchedFace
    faces_in_image: int = Field(description="Faces detected: the searched one plus the others.")
    threshold: float
    max_users: int


class VerifyResponse(BaseModel):
    user_id: str
    similarity: float | None = Field(
        description="Similarity to the user's vector; null when the user has no vector or "
        "ranks below the 500 closest users."
    )
    threshold: float
    match: bool
    searched_face: SearchedFace
    faces_in_image: int


class ErasureAccepted(BaseModel):
    user_id: str
    status: str | None = Field(description="ERASING while it runs, DELETED once done.")
    erasure: ErasureProgress | None
