"""The Rekognition emulator: 17 face-collection and user-vector operations behind one dispatch.

``RekognitionEmulator.dispatch(operation, params)`` takes and returns the JSON bodies exactly as
on the wire (PascalCase keys, ``Image.Bytes`` as raw bytes, timestamps as epoch seconds) and
raises :class:`RekognitionError` with the service's codes. It knows nothing of HTTP or moto; the
transport layers (``moto_plugin``, the local server) only translate.

Behaviour choices where AWS is silent are marked "Undocumented:" in comments, with the reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .engines.base import DetectedFace, FaceEngine
from .errors import RekognitionError, invalid_parameter, invalid_s3_object, not_found
from .idempotency import TokenCache
from .images import MAX_BYTES_INLINE, MAX_BYTES_S3, DecodedImage, decode_image
from .quality import quality_reasons
from .quotas import DEFAULT_QUOTA_TPS, FaultConfig, FaultInjector, TokenBuckets
from .store import Collection, FaceRecord, UserRecord
from .validation import operation_model, validate_request

# ---- limits and defaults (reference §2, §3, §4) ------------------------------------------
MAX_FACES_PER_USER = 100
MAX_FACES_PER_INDEX_CALL = 100  # IndexFaces and DetectFaces return the 100 largest faces
MAX_FACES_PER_COLLECTION = 20_000_000
MAX_USERS_PER_COLLECTION = 10_000_000
DEFAULT_USER_MATCH_THRESHOLD_ASSOCIATE = 75.0  # percent
DEFAULT_USER_MATCH_THRESHOLD_SEARCH = 80.0  # percent
DEFAULT_FACE_MATCH_THRESHOLD = 80.0  # percent
# Undocumented defaults for optional page/result sizes; the model's maxima are 4096 and 500.
DEFAULT_SEARCH_MAX_FACES = 4096
DEFAULT_SEARCH_MAX_USERS = 500
DEFAULT_LIST_PAGE_SIZE = 1000  # ListCollections, ListFaces
DEFAULT_LIST_USERS_PAGE_SIZE = 500
# Namespace of the name-based (v5) face and image ids, as the service's own ids are v5 UUIDs.
ID_NAMESPACE = uuid.UUID("6f1c2d8e-5a57-5c3e-9d1b-7e0a4b2f9c11")

S3Reader = Callable[[str, str, "str | None"], bytes]

# DetectionAttributes / Attributes enum value -> FaceDetail key, and the neutral answer given
# (with low confidence) when the engine has no opinion.
_ATTRIBUTE_KEYS = {
    "AGE_RANGE": "AgeRange",
    "BEARD": "Beard",
    "EMOTIONS": "Emotions",
    "EYE_DIRECTION": "EyeDirection",
    "EYEGLASSES": "Eyeglasses",
    "EYES_OPEN": "EyesOpen",
    "GENDER": "Gender",
    "MOUTH_OPEN": "MouthOpen",
    "MUSTACHE": "Mustache",
    "FACE_OCCLUDED": "FaceOccluded",
    "SMILE": "Smile",
    "SUNGLASSES": "Sunglasses",
}
NEUTRAL_ATTRIBUTE_CONFIDENCE = 50.0  # percent: "no idea", for attributes the engine lacks
_NEUTRAL_ATTRIBUTES: dict[str, Any] = {
    "AgeRange": {"Low": 25, "High": 45},
    "Beard": {"Value": False, "Confidence": NEUTRAL_ATTRIBUTE_CONFIDENCE},
    "Emotions": [{"Type": "CALM", "Confidence": NEUTRAL_ATTRIBUTE_CONFIDENCE}],
    "EyeDirection": {"Yaw": 0.0, "Pitch": 0.0, "Confidence": NEUTRAL_ATTRIBUTE_CONFIDENCE},
    "Eyeglasses": {"Value": False, "Confidence": NEUTRAL_ATTRIBUTE_CONFIDENCE},
    "EyesOpen": {"Value": True, "Confidence": NEUTRAL_ATTRIBUTE_CONFIDENCE},
    "Gender": {"Value": "Female", "Confidence": NEUTRAL_ATTRIBUTE_CONFIDENCE},
    "MouthOpen": {"Value": False, "Confidence": NEUTRAL_ATTRIBUTE_CONFIDENCE},
    "Mustache": {"Value": False, "Confidence": NEUTRAL_ATTRIBUTE_CONFIDENCE},
    "FaceOccluded": {"Value": False, "Confidence": NEUTRAL_ATTRIBUTE_CONFIDENCE},
    "Smile": {"Value": False, "Confidence": NEUTRAL_ATTRIBUTE_CONFIDENCE},
    "Sunglasses": {"Value": False, "Confidence": NEUTRAL_ATTRIBUTE_CONFIDENCE},
}

_MUTATING = frozenset(
    {
        "CreateCollection",
        "DeleteCollection",
        "IndexFaces",
        "DeleteFaces",
        "CreateUser",
        "DeleteUser",
        "AssociateFaces",
        "DisassociateFaces",
    }
)


@dataclass
class EmulatorConfig:
    """Knobs of the emulator; defaults behave like a quiet real account."""

    update_delay_seconds: float = 0.5  # UPDATING -> ACTIVE after an association change
    quotas_enabled: bool = False
    quota_tps: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_QUOTA_TPS))
    faults: FaultConfig = field(default_factory=FaultConfig)
    # Undocumented which code AWS uses for max/pattern/enum violations (reference §1).
    validation_error_code: str = "InvalidParameterException"
    # Undocumented which Reasons AWS gives a face AssociateFaces refuses because the user would
    # pass 100 faces (the enum has no value for it): none by default, see _op_AssociateFaces.
    # Tests set one of the documented values to prove a caller does not trust the reason.
    cap_refusal_reasons: tuple[str, ...] = ()
    persist_interval_seconds: float = 1.0  # debounce of state saves when data_dir is set


#: Operations taking an Image: decoded and run through the face engine before the lock.
_IMAGE_OPERATIONS = frozenset(
    {"IndexFaces", "SearchFacesByImage", "SearchUsersByImage", "DetectFaces"}
)


class RekognitionEmulator:
    """An in-memory Rekognition (optionally persisted to ``data_dir``), thread-safe."""

    def __init__(
        self,
        engine: FaceEngine,
        config: EmulatorConfig | None = None,
        *,
        s3_reader: S3Reader | None = None,
        data_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.config = config or EmulatorConfig()
        self.s3_reader = s3_reader
        self.clock = clock
        self._lock = threading.RLock()  # moto's server is threaded; one call at a time
        self._prepared = threading.local()  # this thread's image, decoded outside the lock
        #: Seconds during which the face engine was detecting or describing faces for at least
        #: one call (overlapping calls count once): ``enroll demo`` compares it with the
        #: pipeline's wall time. A sum over calls would count their waits for each other.
        self.engine_seconds = 0.0
        self._engine_time_lock = threading.Lock()
        self._engine_running = 0
        self._engine_busy_since = 0.0
        self._collections: dict[tuple[str, str, str], Collection] = {}
        self._tokens = TokenCache()
        self._buckets = TokenBuckets(self.config.quota_tps)
        self._faults = FaultInjector(self.config.faults)
        self._user_generation = 0  # makes a re-created user's internal id new
        self._store = None
        if data_dir is not None:
            from .persistence import StateStore

            self._store = StateStore(Path(data_dir), self.config.persist_interval_seconds)
            self._store.load_into(self)

    # ---- entry point -------------------------------------------------------------------

    def dispatch(
        self,
        operation: str,
        params: dict[str, Any],
        *,
        account_id: str = "123456789012",
        region: str = "us-east-1",
    ) -> dict[str, Any]:
        """Run one API call; returns the response body or raises RekognitionError."""
        with self._lock:
            operation_model(operation)  # UnknownOperationException first, as AWS answers
            now = self.clock()
            if self.config.quotas_enabled:
                self._buckets.take(account_id, region, operation, now)
            self._faults.before_call()
            params = params or {}
            validate_request(operation, params, error_code=self.config.validation_error_code)
            replay = self._tokens.replay(account_id, region, operation, params, now)
            if replay is not None:
                return replay
            if operation not in _IMAGE_OPERATIONS:
                return self._run(operation, params, _Ctx(account_id, region, now))
        # The face model runs outside the lock, so concurrent IndexFaces / searches use every
        # core (the engine locks its own stateful models); the operation itself then runs under
        # the lock like any other and meets the prepared image, or the error preparing it
        # raised, exactly where it reads the image: answers and error precedence are unchanged.
        self._prepare_image(params.get("Image"))
        try:
            with self._lock:
                return self._run(operation, params, _Ctx(account_id, region, now))
        finally:
            self._prepared.__dict__.clear()

    def _run(self, operation: str, params: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        """Run the operation's handler (under the lock), remember its token, save state."""
        handler = getattr(self, f"_op_{operation}")
        response: dict[str, Any] = handler(params, ctx)
        self._tokens.remember(ctx.account, ctx.region, operation, params, response, ctx.now)
        if operation in _MUTATING and self._store is not None:
            self._store.changed(self)
        return response

    def _prepare_image(self, image: Any) -> None:
        """Decode ``image`` and detect its faces for this thread's call (outside the lock)."""
        if not isinstance(image, dict):
            return
        memo = self._prepared
        try:
            decoded = self._image(image)
        except Exception as error:  # raised again where the operation reads the image
            memo.image = (image, error)
            return
        memo.image = (image, decoded)
        try:
            memo.faces = (decoded, self._detect(decoded))
        except Exception as error:
            memo.faces = (decoded, error)

    def set_faults(self, faults: FaultConfig) -> None:
        """Inject other faults from now on (a burst starts or ends while the stack runs)."""
        with self._lock:
            self.config = replace(self.config, faults=faults)
            self._faults = FaultInjector(faults)

    def flush(self) -> None:
        """Write pending state to ``data_dir`` now (no-op without one)."""
        with self._lock:
            if self._store is not None:
                self._store.save(self)

    # ---- shared helpers ----------------------------------------------------------------

    def _collection(self, ctx: _Ctx, collection_id: str) -> Collection:
        col = self._collections.get((ctx.account, ctx.region, collection_id))
        if col is None:
            raise not_found(f"The collection id: {collection_id} does not exist")
        col.settle(ctx.now)
        return col

    def _user(self, col: Collection, user_id: str) -> UserRecord:
        user = col.users.get(user_id)
        if user is None:
            raise not_found(f"The user id: {user_id} does not exist in the collection")
        return user

    def _image(self, image: dict[str, Any]) -> DecodedImage:
        prepared = getattr(self._prepared, "image", None)
        if prepared is not None and prepared[0] is image:
            if isinstance(prepared[1], BaseException):
                raise prepared[1]
            return prepared[1]  # type: ignore[no-any-return]
        has_bytes = image.get("Bytes") is not None
        s3: dict[str, Any] = image.get("S3Object") or {}
        if has_bytes == bool(s3):
            raise invalid_parameter("Image must have exactly one of Bytes or S3Object.")
        if has_bytes:
            return decode_image(bytes(image["Bytes"]), max_bytes=MAX_BYTES_INLINE)
        if self.s3_reader is None or not s3.get("Bucket") or not s3.get("Name"):
            raise invalid_s3_object()
        try:
            data = self.s3_reader(s3["Bucket"], s3["Name"], s3.get("Version"))
        except RekognitionError:
            raise
        except Exception:  # any storage failure reads as an unreadable object, as AWS reports
            raise invalid_s3_object() from None
        return decode_image(data, max_bytes=MAX_BYTES_S3)

    def _detect(self, image: DecodedImage) -> list[DetectedFace]:
        prepared = getattr(self._prepared, "faces", None)
        if prepared is not None and prepared[0] is image:
            if isinstance(prepared[1], BaseException):
                raise prepared[1]
            return list(prepared[1])
        with self._engine_time_lock:
            if self._engine_running == 0:
                self._engine_busy_since = time.perf_counter()
            self._engine_running += 1
        try:
            faces = self.engine.detect(image)
        finally:
            with self._engine_time_lock:
                self._engine_running -= 1
                if self._engine_running == 0:
                    self.engine_seconds += time.perf_counter() - self._engine_busy_since
        return sorted(faces, key=lambda f: -f.area)  # engines promise this; do not rely on it

    def _face_ids(self, col: Collection, sha256: str, external_id: str | None, index: int):
        # Name-based ids: the same image + ExternalImageId in a collection of the same model
        # version always yields the same ids (as DG-MODEL describes), which is also what makes a
        # repeated IndexFaces store nothing new.
        base = f"{col.face_model_version}|{sha256}|{external_id or ''}"
        image_id = str(uuid.uuid5(ID_NAMESPACE, "image|" + base))
        face_id = str(uuid.uuid5(ID_NAMESPACE, f"face|{base}|{index}"))
        return face_id, image_id

    def _similarities(self, cosines: list[float]) -> list[float]:
        if not cosines:
            return []
        sims = np.clip(self.engine.similarity(np.asarray(cosines, dtype=np.float64)), 0, 100)
        return [float(s) for s in sims]

    # ---- collections -------------------------------------------------------------------

    def _op_CreateCollection(self, p: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        key = (ctx.account, ctx.region, p["CollectionId"])
        if key in self._collections:
            raise RekognitionError(
                "ResourceAlreadyExistsException",
                f"The collection id: {p['CollectionId']} already exists.",
            )
        # The service answers CreateCollection's CollectionArn without the "arn:" prefix (see
        # the official examples) but DescribeCollection's CollectionARN with it.
        arn = f"arn:aws:rekognition:{ctx.region}:{ctx.account}:collection/{p['CollectionId']}"
        self._collections[key] = Collection(
            p["CollectionId"],
            arn=arn,
            created_at=ctx.now,
            face_model_version=self.engine.face_model_version,
            dimension=self.engine.dimension,
        )
        return {
            "StatusCode": 200,
            "CollectionArn": arn.removeprefix("arn:"),
            "FaceModelVersion": self.engine.face_model_version,
        }

    def _op_DeleteCollection(self, p: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        self._collection(ctx, p["CollectionId"])
        del self._collections[(ctx.account, ctx.region, p["CollectionId"])]
        return {"StatusCode": 200}

    def _op_DescribeCollection(self, p: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        col = self._collection(ctx, p["CollectionId"])
        return {
            "FaceCount": len(col.faces),
            "FaceModelVersion": col.face_model_version,
            "CollectionARN": col.arn,
            "CreationTimestamp": col.created_at,  # epoch seconds: milliseconds crash boto3
            "UserCount": len(col.users),
        }

    def _op_ListCollections(self, p: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        ids = sorted(cid for acct, reg, cid in self._collections if (acct, reg) == ctx.scope)
        # Offset tokens: collection ids can be 255 chars, too long to carry in a 255-char token.
        token = p.get("NextToken")
        start = int(_read_token(token, "ListCollections", ctx.scope_key, "")) if token else 0
        size = p.get("MaxResults") or DEFAULT_LIST_PAGE_SIZE
        page = ids[start : start + size]
        out: dict[str, Any] = {
            "CollectionIds": page,
            "FaceModelVersions": [
                self._collections[(ctx.account, ctx.region, cid)].face_model_version for cid in page
            ],
        }
        if start + size < len(ids):
            out["NextToken"] = _make_token("ListCollections", ctx.scope_key, "", start + size)
        return out

    # ---- faces -------------------------------------------------------------------------

    def _op_IndexFaces(self, p: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        col = self._collection(ctx, p["CollectionId"])
        image = self._image(p["Image"])
        detected = self._detect(image)
        attributes = _requested_attributes(p.get("DetectionAttributes"))
        level = p.get("QualityFilter", "AUTO")
        max_faces = min(p.get("MaxFaces", MAX_FACES_PER_INDEX_CALL), MAX_FACES_PER_INDEX_CALL)
        external_id = p.get("ExternalImageId")
        records: list[dict[str, Any]] = []
        unindexed: list[dict[str, Any]] = []
        kept = 0
        for index, face in enumerate(detected):
            reasons = quality_reasons(face, image.width, image.height, level)
            if not reasons and kept >= max_faces:
                # Faces come largest first, so the smallest ones are the ones left out.
                reasons = ["EXCEEDS_MAX_FACES"]
            detail = _face_detail(face, attributes)
            if reasons:
                unindexed.append({"Reasons": reasons, "FaceDetail": detail})
                continue
            kept += 1
            face_id, image_id = self._face_ids(col, image.sha256, external_id, index)
            record = col.faces.get(face_id)
            if record is None:
                if len(col.faces) >= MAX_FACES_PER_COLLECTION:
                    raise RekognitionError(
                        "ServiceQuotaExceededException",
                        f"The collection holds the maximum of {MAX_FACES_PER_COLLECTION} faces.",
                    )
                box = face.bounding_box
                record = col.add_face(
                    face_id,
                    image_id,
                    external_id,
                    (box.width, box.height, box.left, box.top),
                    face.confidence,
                    face.descriptor,
                )
            records.append({"Face": self._face_json(col, record), "FaceDetail": detail})
        return {
            "FaceRecords": records,
            "FaceModelVersion": col.face_model_version,
            "UnindexedFaces": unindexed,
        }

    def _face_json(self, col: Collection, rec: FaceRecord) -> dict[str, Any]:
        width, height, left, top = rec.bounding_box
        out: dict[str, Any] = {
            "FaceId": rec.face_id,
            "BoundingBox": {"Width": width, "Height": height, "Left": left, "Top": top},
            "ImageId": rec.image_id,
            "Confidence": rec.confidence,
            "IndexFacesModelVersion": col.face_model_version,
        }
        if rec.external_image_id is not None:
            out["ExternalImageId"] = rec.external_image_id
        if rec.user_id is not None:
            out["UserId"] = rec.user_id
        return out

    def _op_ListFaces(self, p: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        col = self._collection(ctx, p["CollectionId"])
        size = p.get("MaxResults") or DEFAULT_LIST_PAGE_SIZE
        user_id, face_ids = p.get("UserId"), p.get("FaceIds")
        filter_key = _digest(json.dumps([user_id, sorted(face_ids or [])]))
        after = (
            int(_read_token(p["NextToken"], "ListFaces", _digest(col.arn), filter_key))
            if p.get("NextToken")
            else -1
        )
        if user_id is None and face_ids is None:
            page = col.faces_after(after, size + 1)
        else:
            chosen = (
                col.faces.values()
                if face_ids is None
                else [col.faces[f] for f in dict.fromkeys(face_ids) if f in col.faces]
            )
            matching = sorted(
                (r for r in chosen if user_id is None or r.user_id == user_id),
                key=lambda r: r.seq,
            )
            page = [r for r in matching if r.seq > after][: size + 1]
        out: dict[str, Any] = {
            "Faces": [self._face_json(col, r) for r in page[:size]],
            "FaceModelVersion": col.face_model_version,
        }
        if len(page) > size:
            last = page[size - 1].seq
            out["NextToken"] = _make_token("ListFaces", _digest(col.arn), filter_key, last)
        return out

    def _op_DeleteFaces(self, p: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        col = self._collection(ctx, p["CollectionId"])
        deleted: list[str] = []
        failed: list[dict[str, Any]] = []
        for face_id in dict.fromkeys(p["FaceIds"]):
            rec = col.faces.get(face_id)
            if rec is None:
                failed.append({"FaceId": face_id, "Reasons": ["FACE_NOT_FOUND"]})
            elif rec.user_id is not None:
                failed.append(
                    {
                        "FaceId": face_id,
                        "UserId": rec.user_id,
                        "Reasons": ["ASSOCIATED_TO_AN_EXISTING_USER"],
                    }
                )
            else:
                col.delete_face(face_id)
                deleted.append(face_id)
        return {"DeletedFaces": deleted, "UnsuccessfulFaceDeletions": failed}

    def _op_SearchFaces(self, p: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        col = self._collection(ctx, p["CollectionId"])
        face_id = p["FaceId"]
        if face_id not in col.faces:
            # Undocumented which code; an unknown id is a bad parameter, the collection exists.
            raise invalid_parameter(f"The face id: {face_id} does not exist in the collection")
        matches = self._face_matches(
            col,
            col.face_vectors.get(face_id),
            p.get("MaxFaces", DEFAULT_SEARCH_MAX_FACES),
            p.get("FaceMatchThreshold", DEFAULT_FACE_MATCH_THRESHOLD),
            exclude=(face_id,),
        )
        return {
            "SearchedFaceId": face_id,
            "FaceMatches": matches,
            "FaceModelVersion": col.face_model_version,
        }

    def _face_matches(
        self,
        col: Collection,
        query: np.ndarray,
        max_faces: int,
        threshold: float,
        exclude: tuple[str, ...] = (),
    ) -> list[dict[str, Any]]:
        hits = col.face_vectors.search(query, max_faces, exclude=exclude)
        sims = self._similarities([cos for _, cos in hits])
        return [
            {"Similarity": sim, "Face": self._face_json(col, col.faces[fid])}
            for (fid, _), sim in zip(hits, sims, strict=True)
            if sim >= threshold
        ]

    def _op_SearchFacesByImage(self, p: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        col = self._collection(ctx, p["CollectionId"])
        image = self._image(p["Image"])
        detected = self._detect(image)
        if not detected:
            raise invalid_parameter("There are no faces in the image. Should be at least 1.")
        largest = detected[0]
        if quality_reasons(largest, image.width, image.height, p.get("QualityFilter", "NONE")):
            raise invalid_parameter(
                "The largest face in the image does not meet the requested QualityFilter."
            )
        box = largest.bounding_box
        return {
            "SearchedFaceBoundingBox": {
                "Width": box.width,
                "Height": box.height,
                "Left": box.left,
                "Top": box.top,
            },
            "SearchedFaceConfidence": largest.confidence,
            "FaceMatches": self._face_matches(
                col,
                largest.descriptor,
                p.get("MaxFaces", DEFAULT_SEARCH_MAX_FACES),
                p.get("FaceMatchThreshold", DEFAULT_FACE_MATCH_THRESHOLD),
            ),
            "FaceModelVersion": col.face_model_version,
        }

    def _op_DetectFaces(self, p: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        image = self._image(p["Image"])
        attributes = _requested_attributes(p.get("Attributes"))
        faces = self._detect(image)[:MAX_FACES_PER_INDEX_CALL]
        return {"FaceDetails": [_face_detail(f, attributes) for f in faces]}

    # ---- users -------------------------------------------------------------------------

    def _op_CreateUser(self, p: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        col = self._collection(ctx, p["CollectionId"])
        user_id = p["UserId"]
        if user_id in col.users:
            raise RekognitionError(
                "ConflictException", f"A user with the id: {user_id} already exists."
            )
        if len(col.users) >= MAX_USERS_PER_COLLECTION:
            raise RekognitionError(
                "ServiceQuotaExceededException",
                f"The collection holds the maximum of {MAX_USERS_PER_COLLECTION} users.",
            )
        self._user_generation += 1
        internal = uuid.uuid5(ID_NAMESPACE, f"user|{col.arn}|{user_id}|{self._user_generation}")
        col.add_user(user_id, str(internal))
        return {}

    def _op_DeleteUser(self, p: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        col = self._collection(ctx, p["CollectionId"])
        user = self._user(col, p["UserId"])
        self._faults.user_update(user.user_id, col.status(user) == "UPDATING")
        col.delete_user(user.user_id)
        return {}

    def _op_ListUsers(self, p: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        col = self._collection(ctx, p["CollectionId"])
        size = p.get("MaxResults") or DEFAULT_LIST_USERS_PAGE_SIZE
        after = (
            _read_token(p["NextToken"], "ListUsers", _digest(col.arn), "")
            if p.get("NextToken")
            else ""
        )
        page = col.users_after(str(after), size + 1)
        out: dict[str, Any] = {
            "Users": [{"UserId": u.user_id, "UserStatus": col.status(u)} for u in page[:size]]
        }
        if len(page) > size:
            out["NextToken"] = _make_token(
                "ListUsers", _digest(col.arn), "", page[size - 1].internal_id
            )
        return out

    def _op_AssociateFaces(self, p: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        col = self._collection(ctx, p["CollectionId"])
        user = self._user(col, p["UserId"])
        self._faults.user_update(user.user_id, col.status(user) == "UPDATING")
        requested = list(dict.fromkeys(p["FaceIds"]))
        held = len(user.face_ids)
        if held >= MAX_FACES_PER_USER and any(f not in user.face_ids for f in requested):
            # The documentation says both that faces past 100 come back in
            # UnsuccessfulFaceAssociations and that "if more API calls are made after the limit
            # is reached, a ServiceQuotaExceededException will result". Undocumented where one
            # ends and the other begins: we raise only for a user who already holds 100 faces
            # and a call naming a face it does not hold (its own faces are "ignored", so a
            # replayed association of them still succeeds). A call that crosses the cap is
            # answered face by face below.
            raise RekognitionError(
                "ServiceQuotaExceededException",
                f"User {user.user_id} already has the maximum of {MAX_FACES_PER_USER} faces "
                "associated; no additional faces can be added.",
            )
        threshold = p.get("UserMatchThreshold", DEFAULT_USER_MATCH_THRESHOLD_ASSOCIATE)
        failed: list[dict[str, Any]] = []
        candidates: list[str] = []
        for face_id in requested:
            rec = col.faces.get(face_id)
            if rec is None:
                failed.append({"FaceId": face_id, "Reasons": ["FACE_NOT_FOUND"]})
            elif rec.user_id == user.user_id:
                continue  # already this user's: silently omitted from both lists
            elif rec.user_id is not None:
                failed.append(
                    {
                        "FaceId": face_id,
                        "UserId": rec.user_id,
                        "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"],
                    }
                )
            else:
                candidates.append(face_id)
        accepted = candidates
        # The match check applies only once the user has a face (an empty user takes any face).
        reference = col.mean_vector(user.face_ids)
        if reference is not None and candidates:
            cosines = [float(col.face_vectors.get(f) @ reference) for f in candidates]
            accepted = []
            for face_id, confidence in zip(candidates, self._similarities(cosines), strict=True):
                if confidence >= threshold:
                    accepted.append(face_id)
                else:
                    failed.append(
                        {
                            "FaceId": face_id,
                            "Confidence": confidence,
                            "Reasons": ["LOW_MATCH_CONFIDENCE"],
                        }
                    )
        # Undocumented which faces of a call that crosses the cap are associated: we take them in
        # request order (FaceIds as given, duplicates dropped), which a caller can control.
        # Undocumented which Reasons a face refused for the cap carries: the enum has only
        # FACE_NOT_FOUND, ASSOCIATED_TO_A_DIFFERENT_USER and LOW_MATCH_CONFIDENCE, and each of them
        # would tell the caller something false (that the face is gone, owned, or a poor match).
        # So by default the entry carries the face id and an empty Reasons list (the model allows
        # 0 items): a caller must find out from the collection what became of the face, which is
        # what it must do against AWS anyway. No UserId (nobody holds the face), no Confidence
        # (it would read as a threshold failure).
        free = MAX_FACES_PER_USER - held
        for face_id in accepted[free:]:
            failed.append({"FaceId": face_id, "Reasons": list(self.config.cap_refusal_reasons)})
        accepted = accepted[:free]
        for face_id in accepted:
            col.faces[face_id].user_id = user.user_id
            user.face_ids.append(face_id)
        if accepted:
            col.begin_update(user, ctx.now, self.config.update_delay_seconds)
        return {
            "AssociatedFaces": [{"FaceId": f} for f in accepted],
            "UnsuccessfulFaceAssociations": failed,
            "UserStatus": col.status(user),
        }

    def _op_DisassociateFaces(self, p: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        col = self._collection(ctx, p["CollectionId"])
        user = self._user(col, p["UserId"])
        self._faults.user_update(user.user_id, col.status(user) == "UPDATING")
        removed: list[str] = []
        failed: list[dict[str, Any]] = []
        for face_id in dict.fromkeys(p["FaceIds"]):
            rec = col.faces.get(face_id)
            if rec is None:
                failed.append({"FaceId": face_id, "Reasons": ["FACE_NOT_FOUND"]})
            elif rec.user_id is None:
                continue  # not associated to anyone: nothing to undo, silently omitted
            elif rec.user_id != user.user_id:
                failed.append(
                    {
                        "FaceId": face_id,
                        "UserId": rec.user_id,
                        "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"],
                    }
                )
            else:
                rec.user_id = None
                removed.append(face_id)
        if removed:
            gone = set(removed)
            user.face_ids = [f for f in user.face_ids if f not in gone]
            # Undocumented: a user left with no face goes back to CREATED after the update.
            col.begin_update(user, ctx.now, self.config.update_delay_seconds)
        return {
            "DisassociatedFaces": [{"FaceId": f} for f in removed],
            "UnsuccessfulFaceDisassociations": failed,
            "UserStatus": col.status(user),
        }

    def _user_matches(
        self,
        col: Collection,
        query: np.ndarray | None,
        max_users: int,
        threshold: float,
        exclude: tuple[str, ...] = (),
    ) -> list[dict[str, Any]]:
        if query is None:
            return []
        hits = col.user_vectors.search(query, max_users, exclude=exclude)
        sims = self._similarities([cos for _, cos in hits])
        return [
            {
                "Similarity": sim,
                "User": {"UserId": uid, "UserStatus": col.status(col.users[uid])},
            }
            for (uid, _), sim in zip(hits, sims, strict=True)
            if sim >= threshold
        ]

    def _op_SearchUsers(self, p: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        col = self._collection(ctx, p["CollectionId"])
        face_id, user_id = p.get("FaceId"), p.get("UserId")
        if (face_id is None) == (user_id is None):
            raise invalid_parameter("Provide exactly one of FaceId or UserId.")
        max_users = p.get("MaxUsers", DEFAULT_SEARCH_MAX_USERS)
        threshold = p.get("UserMatchThreshold", DEFAULT_USER_MATCH_THRESHOLD_SEARCH)
        out: dict[str, Any]
        if face_id is not None:
            if face_id not in col.faces:
                raise invalid_parameter(f"The face id: {face_id} does not exist in the collection")
            matches = self._user_matches(col, col.face_vectors.get(face_id), max_users, threshold)
            out = {"UserMatches": matches, "SearchedFace": {"FaceId": face_id}}
        else:
            user = self._user(col, str(user_id))
            query = col.user_vectors.get(user.user_id) if user.has_vector else None
            matches = self._user_matches(col, query, max_users, threshold, exclude=(user.user_id,))
            out = {"UserMatches": matches, "SearchedUser": {"UserId": user.user_id}}
        out["FaceModelVersion"] = col.face_model_version
        return out

    def _op_SearchUsersByImage(self, p: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        col = self._collection(ctx, p["CollectionId"])
        image = self._image(p["Image"])
        detected = self._detect(image)
        level = p.get("QualityFilter", "NONE")
        out: dict[str, Any] = {"UserMatches": [], "FaceModelVersion": col.face_model_version}
        unsearched: list[dict[str, Any]] = []
        if detected:
            largest = detected[0]
            reasons = quality_reasons(largest, image.width, image.height, level)
            detail = _face_detail(largest, set())
            if reasons:
                unsearched.append({"FaceDetails": detail, "Reasons": reasons})
            else:
                out["UserMatches"] = self._user_matches(
                    col,
                    largest.descriptor,
                    p.get("MaxUsers", DEFAULT_SEARCH_MAX_USERS),
                    p.get("UserMatchThreshold", DEFAULT_USER_MATCH_THRESHOLD_SEARCH),
                )
                out["SearchedFace"] = {"FaceDetail": detail}
            for i, face in enumerate(detected[1:], start=1):
                why = ["FACE_NOT_LARGEST" if i < MAX_FACES_PER_INDEX_CALL else "EXCEEDS_MAX_FACES"]
                why += quality_reasons(face, image.width, image.height, level)
                unsearched.append({"FaceDetails": _face_detail(face, set()), "Reasons": why})
        # No face is not an error here (unlike SearchFacesByImage): empty matches, no SearchedFace.
        out["UnsearchedFaces"] = unsearched
        return out

    # ---- persistence hooks (used by persistence.StateStore) -----------------------------

    def export_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able state, named arrays) of every collection and the token cache."""
        collections = []
        arrays: dict[str, np.ndarray] = {}
        for i, ((account, region, _), col) in enumerate(sorted(self._collections.items())):
            state, col_arrays = col.export()
            collections.append({"account": account, "region": region, "state": state})
            for name, arr in col_arrays.items():
                arrays[f"c{i}_{name}"] = arr
        doc = {
            "collections": collections,
            "tokens": self._tokens.export(),
            "user_generation": self._user_generation,
        }
        return doc, arrays

    def import_state(self, doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Replace the in-memory state with :meth:`export_state` output."""
        self._collections = {}
        for i, entry in enumerate(doc["collections"]):
            col_arrays = {"faces": arrays[f"c{i}_faces"], "users": arrays[f"c{i}_users"]}
            col = Collection.restore(entry["state"], col_arrays)
            self._collections[(entry["account"], entry["region"], col.collection_id)] = col
        self._tokens.restore(doc.get("tokens", []))
        self._user_generation = doc.get("user_generation", 0)


@dataclass(frozen=True)
class _Ctx:
    account: str
    region: str
    now: float

    @property
    def scope(self) -> tuple[str, str]:
        return (self.account, self.region)

    @property
    def scope_key(self) -> str:
        return _digest(f"{self.account}|{self.region}")


# ---- FaceDetail ------------------------------------------------------------------------


def _requested_attributes(values: list[str] | None) -> set[str]:
    """FaceDetail keys beyond the DEFAULT set that the caller asked for."""
    wanted = set(values or ["DEFAULT"])
    if "ALL" in wanted:
        return set(_ATTRIBUTE_KEYS.values())
    return {_ATTRIBUTE_KEYS[v] for v in wanted if v in _ATTRIBUTE_KEYS}


def _face_detail(face: DetectedFace, attributes: set[str]) -> dict[str, Any]:
    """A FaceDetail: the DEFAULT members always, plus the requested attributes."""
    box = face.bounding_box
    detail: dict[str, Any] = {
        "BoundingBox": {"Width": box.width, "Height": box.height, "Left": box.left, "Top": box.top},
        "Landmarks": [{"Type": lm.type, "X": lm.x, "Y": lm.y} for lm in face.landmarks],
        "Pose": {"Roll": face.pose.roll, "Yaw": face.pose.yaw, "Pitch": face.pose.pitch},
        "Quality": {"Brightness": face.quality.brightness, "Sharpness": face.quality.sharpness},
        "Confidence": face.confidence,
    }
    for key in sorted(attributes):
        value = face.attributes.get(key, _NEUTRAL_ATTRIBUTES[key])
        detail[key] = json.loads(json.dumps(value))  # a private copy
    return detail


# ---- pagination tokens -----------------------------------------------------------------
# Stateless and tamper-evident: base64url(JSON) + a short checksum. A token names the
# operation, the collection (or account scope) and the filter it was issued for, so a token
# replayed elsewhere is refused with InvalidPaginationTokenException instead of skipping data.
_TOKEN_CHECK_CHARS = 12


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _make_token(operation: str, scope: str, filter_key: str, position: int | str) -> str:
    body = json.dumps([operation, scope, filter_key, position], separators=(",", ":"))
    payload = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
    return f"{payload}.{_digest(payload)[:_TOKEN_CHECK_CHARS]}"


def _read_token(token: str, operation: str, scope: str, filter_key: str) -> int | str:
    bad = RekognitionError("InvalidPaginationTokenException", "Invalid Pagination Token")
    payload, _, check = token.partition(".")
    if not payload or _digest(payload)[:_TOKEN_CHECK_CHARS] != check:
        raise bad
    try:
        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        raise bad from None
    if not isinstance(body, list) or len(body) != 4 or body[:3] != [operation, scope, filter_key]:
        raise bad
    position = body[3]
    if isinstance(position, bool) or not isinstance(position, int | str):
        raise bad
    return position
