"""IndexFaces, DetectFaces and image intake (reference §3.1, §5.1, §5.2)."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from enroll_local.rekognition.errors import RekognitionError
from enroll_local.rekognition.images import MAX_BYTES_INLINE, MAX_BYTES_S3

from .conftest import COLLECTION, photo

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _index(em, data, **extra):
    return em.dispatch(
        "IndexFaces", {"CollectionId": COLLECTION, "Image": {"Bytes": data}, **extra}
    )


def _count(em):
    return em.dispatch("DescribeCollection", {"CollectionId": COLLECTION})["FaceCount"]


def test_index_returns_face_records_with_lowercase_uuids(emulator):
    out = _index(emulator, photo({"identity": "alice"}), ExternalImageId="img:1")
    (record,) = out["FaceRecords"]
    face = record["Face"]
    assert UUID.fullmatch(face["FaceId"]) and UUID.fullmatch(face["ImageId"])
    assert face["ExternalImageId"] == "img:1"
    assert face["IndexFacesModelVersion"] == out["FaceModelVersion"] == "7.0"
    assert set(record["FaceDetail"]) == {
        "BoundingBox",
        "Landmarks",
        "Pose",
        "Quality",
        "Confidence",
    }
    assert out["UnindexedFaces"] == []
    assert "OrientationCorrection" not in out  # null for face models >= 4


def test_same_image_and_external_id_stores_nothing_new(emulator):
    data = photo({"identity": "alice"}, {"identity": "bob", "box": [0.0, 0.0, 0.25, 0.25]})
    first = _index(emulator, data, ExternalImageId="p1")
    again = _index(emulator, data, ExternalImageId="p1")
    assert again["FaceRecords"] == first["FaceRecords"]
    assert _count(emulator) == 2


def test_same_image_with_another_external_id_is_a_new_image(emulator):
    data = photo({"identity": "alice"})
    a = _index(emulator, data, ExternalImageId="p1")["FaceRecords"][0]["Face"]["FaceId"]
    b = _index(emulator, data, ExternalImageId="p2")["FaceRecords"][0]["Face"]["FaceId"]
    assert a != b
    assert _count(emulator) == 2


def test_faces_are_sorted_largest_first(emulator):
    data = photo(
        {"identity": "small", "box": [0.0, 0.0, 0.2, 0.2]},
        {"identity": "big", "box": [0.3, 0.3, 0.6, 0.6]},
    )
    boxes = [r["Face"]["BoundingBox"]["Width"] for r in _index(emulator, data)["FaceRecords"]]
    assert boxes == [0.6, 0.2]


def test_max_faces_leaves_the_smallest_as_exceeds_max_faces(emulator):
    faces = [
        {"identity": f"p{i}", "box": [0.05 * i, 0.05 * i, 0.3 - 0.02 * i, 0.3 - 0.02 * i]}
        for i in range(4)
    ]
    out = _index(emulator, photo(*faces), MaxFaces=2)
    widths = [r["Face"]["BoundingBox"]["Width"] for r in out["FaceRecords"]]
    assert widths == pytest.approx([0.3, 0.28])
    assert [u["Reasons"] for u in out["UnindexedFaces"]] == [["EXCEEDS_MAX_FACES"]] * 2


def test_at_most_100_faces_are_indexed(emulator):
    faces = [{"identity": f"p{i}", "box": [0.0, 0.0, 0.3, 0.3]} for i in range(105)]
    out = _index(emulator, photo(*faces, size=(800, 800)), MaxFaces=500)
    assert len(out["FaceRecords"]) == 100
    assert len(out["UnindexedFaces"]) == 5


@pytest.mark.parametrize(
    ("face", "reason"),
    [
        ({"sharpness": 5}, "LOW_SHARPNESS"),
        ({"brightness": 5}, "LOW_BRIGHTNESS"),
        ({"box": [0.1, 0.1, 0.1, 0.1]}, "SMALL_BOUNDING_BOX"),
        ({"yaw": 70}, "EXTREME_POSE"),
        ({"confidence": 60}, "LOW_CONFIDENCE"),
        ({"brightness": 30, "sharpness": 30}, "LOW_FACE_QUALITY"),
    ],
)
def test_quality_filter_auto_refuses_with_the_reason(emulator, face, reason):
    out = _index(emulator, photo({"identity": "alice", **face}))
    assert out["FaceRecords"] == []
    assert out["UnindexedFaces"][0]["Reasons"] == [reason]
    assert _count(emulator) == 0


def test_quality_filter_none_indexes_poor_faces(emulator):
    out = _index(emulator, photo({"identity": "alice", "sharpness": 5}), QualityFilter="NONE")
    assert len(out["FaceRecords"]) == 1


def test_quality_filter_levels_are_ordered(emulator):
    face = {"identity": "alice", "yaw": 40}  # passes LOW and MEDIUM, not HIGH
    assert _index(emulator, photo(face), QualityFilter="LOW")["FaceRecords"]
    assert _index(emulator, photo(face), QualityFilter="MEDIUM")["FaceRecords"]
    assert not _index(emulator, photo(face), QualityFilter="HIGH")["FaceRecords"]


def test_image_without_faces_indexes_nothing(emulator):
    buf = io.BytesIO()
    Image.new("RGB", (200, 200), (90, 90, 90)).save(buf, "PNG")
    assert _index(emulator, buf.getvalue())["FaceRecords"] == []


def test_detection_attributes_all_adds_attributes(emulator):
    smile = {"Value": True, "Confidence": 97.0}
    data = photo({"identity": "alice", "attributes": {"Smile": smile}})
    detail = _index(emulator, data, DetectionAttributes=["ALL"])["FaceRecords"][0]["FaceDetail"]
    assert detail["Smile"] == smile  # from the engine
    assert detail["Gender"]["Confidence"] == 50.0  # neutral, low confidence
    assert {"AgeRange", "Emotions", "EyeDirection", "FaceOccluded"} <= set(detail)


def test_detection_attributes_subset(emulator):
    data = photo({"identity": "alice"})
    detail = _index(emulator, data, DetectionAttributes=["SMILE"])["FaceRecords"][0]["FaceDetail"]
    assert "Smile" in detail and "Gender" not in detail and "BoundingBox" in detail


def test_detect_faces_is_stateless(emulator):
    out = emulator.dispatch("DetectFaces", {"Image": {"Bytes": photo({"identity": "a"})}})
    assert len(out["FaceDetails"]) == 1
    assert _count(emulator) == 0


def test_not_jpeg_or_png_is_invalid_image_format(emulator):
    buf = io.BytesIO()
    Image.new("RGB", (200, 200)).save(buf, "GIF")
    with pytest.raises(RekognitionError) as err:
        _index(emulator, buf.getvalue())
    assert err.value.code == "InvalidImageFormatException"


def test_bytes_over_5_mb_are_image_too_large(emulator):
    with pytest.raises(RekognitionError) as err:
        _index(emulator, b"\xff\xd8\xff" + b"0" * MAX_BYTES_INLINE)
    assert err.value.code == "ImageTooLargeException"


def test_image_under_80_pixels_is_invalid_parameter(emulator):
    with pytest.raises(RekognitionError) as err:
        _index(emulator, photo({"identity": "a"}, size=(79, 200)))
    assert err.value.code == "InvalidParameterException"


def test_s3_image_is_read_through_the_reader(make_emulator):
    data = photo({"identity": "alice"})
    calls = []

    def reader(bucket, key, version):
        calls.append((bucket, key, version))
        if key != "enroll/alice/1.jpg":
            raise RekognitionError("InvalidS3ObjectException", "missing")
        return data

    em = make_emulator(s3_reader=reader)
    em.dispatch("CreateCollection", {"CollectionId": COLLECTION})
    s3 = {"Bucket": "photos", "Name": "enroll/alice/1.jpg", "Version": "v1"}
    out = em.dispatch("IndexFaces", {"CollectionId": COLLECTION, "Image": {"S3Object": s3}})
    assert len(out["FaceRecords"]) == 1
    assert calls == [("photos", "enroll/alice/1.jpg", "v1")]
    with pytest.raises(RekognitionError) as err:
        em.dispatch(
            "IndexFaces",
            {"CollectionId": COLLECTION, "Image": {"S3Object": {"Bucket": "photos", "Name": "x"}}},
        )
    assert err.value.code == "InvalidS3ObjectException"


def test_s3_images_may_be_up_to_15_mb_where_bytes_stop_at_5(make_emulator):
    # A real 6 MB PNG: too large as Image.Bytes, fine as an S3 object.
    big = photo({"identity": "alice"}, fmt="PNG", size=(1700, 1700))
    assert MAX_BYTES_INLINE < len(big) <= MAX_BYTES_S3
    huge = b"\xff\xd8\xff" + b"0" * MAX_BYTES_S3
    objects = {"big.png": big, "huge.jpg": huge}
    em = make_emulator(s3_reader=lambda bucket, key, version: objects[key])
    em.dispatch("CreateCollection", {"CollectionId": COLLECTION})

    def s3(key):
        return {"S3Object": {"Bucket": "photos", "Name": key}}

    out = em.dispatch("IndexFaces", {"CollectionId": COLLECTION, "Image": s3("big.png")})
    assert len(out["FaceRecords"]) == 1
    for image in ({"Bytes": big}, s3("huge.jpg")):
        with pytest.raises(RekognitionError) as err:
            em.dispatch("DetectFaces", {"Image": image})
        assert err.value.code == "ImageTooLargeException"


def test_s3_image_without_reader_is_invalid_s3_object(emulator):
    s3 = {"Bucket": "photos", "Name": "a.jpg"}
    with pytest.raises(RekognitionError) as err:
        emulator.dispatch("IndexFaces", {"CollectionId": COLLECTION, "Image": {"S3Object": s3}})
    assert err.value.code == "InvalidS3ObjectException"


def test_image_needs_exactly_one_source(emulator):
    with pytest.raises(RekognitionError) as err:
        emulator.dispatch("DetectFaces", {"Image": {}})
    assert err.value.code == "InvalidParameterException"
