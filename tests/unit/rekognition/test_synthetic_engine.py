"""The synthetic engine's contract: image spec in, calibrated descriptors out."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from enroll_local.rekognition.engines import make_engine
from enroll_local.rekognition.engines.synthetic import (
    SyntheticEngine,
    make_synthetic_photo,
    synthetic_descriptor,
)
from enroll_local.rekognition.errors import RekognitionError
from enroll_local.rekognition.images import decode_image


def test_same_identity_is_above_90_and_different_below_40():
    engine = SyntheticEngine()
    people = [f"person{i}" for i in range(60)]
    same = [synthetic_descriptor(p, 1) @ synthetic_descriptor(p, 2) for p in people]
    diff = [
        synthetic_descriptor(a, 1) @ synthetic_descriptor(b, 1)
        for a, b in itertools.pairwise(people)
    ]
    assert engine.similarity(np.array(same)).min() > 90
    assert engine.similarity(np.array(diff)).max() < 40


def test_descriptors_are_unit_float32_and_deterministic():
    d = synthetic_descriptor("alice", 3)
    assert d.dtype == np.float32 and d.shape == (128,)
    assert abs(float(np.linalg.norm(d)) - 1) < 1e-6
    np.testing.assert_array_equal(d, synthetic_descriptor("alice", 3))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_photo_round_trips_its_spec(fmt):
    faces = [
        {"identity": "alice", "variant": 2, "box": [0.1, 0.1, 0.5, 0.5], "yaw": 10},
        {"identity": "bob", "box": [0.7, 0.7, 0.2, 0.2], "brightness": 30},
    ]
    detected = SyntheticEngine().detect(decode_image(make_synthetic_photo(faces, fmt=fmt)))
    assert [f.bounding_box.width for f in detected] == [0.5, 0.2]
    assert detected[0].pose.yaw == 10 and detected[1].quality.brightness == 30
    np.testing.assert_array_equal(detected[0].descriptor, synthetic_descriptor("alice", 2))


def test_seed_changes_bytes_not_faces():
    a = make_synthetic_photo([{"identity": "a"}], seed=1)
    b = make_synthetic_photo([{"identity": "a"}], seed=2)
    assert a != b
    engine = SyntheticEngine()
    (face_a,) = engine.detect(decode_image(a))
    (face_b,) = engine.detect(decode_image(b))
    assert face_a.bounding_box == face_b.bounding_box
    np.testing.assert_array_equal(face_a.descriptor, face_b.descriptor)


def test_image_without_spec_has_no_faces():
    buf = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buf, "JPEG", comment=b"just a holiday photo")
    assert SyntheticEngine().detect(decode_image(buf.getvalue())) == []


def test_malformed_spec_is_a_clear_error():
    info = PngInfo()
    info.add_text("synthetic-faces", '{"faces": [{"variant": 1}]}')
    buf = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buf, "PNG", pnginfo=info)
    with pytest.raises(RekognitionError) as err:
        SyntheticEngine().detect(decode_image(buf.getvalue()))
    assert "identity" in err.value.message


def test_make_engine_names():
    assert make_engine("synthetic").name == "synthetic"
    assert make_engine("hybrid").name == "hybrid"
    with pytest.raises(ValueError, match="unknown face engine"):
        make_engine("magic")


def test_hybrid_routes_synthetic_images_without_loading_dlib():
    engine = make_engine("hybrid")
    faces = engine.detect(decode_image(make_synthetic_photo([{"identity": "a"}])))
    assert len(faces) == 1
    assert engine._real is None  # type: ignore[attr-defined]
