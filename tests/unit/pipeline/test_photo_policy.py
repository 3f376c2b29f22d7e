"""Photo policy decisions from IndexFaces-shaped responses."""

from __future__ import annotations

from enrollment.photo_policy import decide, face_quality


def _record(face_id, width, height, brightness=80.0, sharpness=80.0):
    return {
        "Face": {
            "FaceId": face_id,
            "BoundingBox": {"Width": width, "Height": height, "Left": 0.1, "Top": 0.1},
        },
        "FaceDetail": {"Quality": {"Brightness": brightness, "Sharpness": sharpness}},
    }


def _unindexed(*reasons):
    return {"Reasons": list(reasons), "FaceDetail": {}}


def test_one_face_is_accepted_with_its_quality():
    d = decide({"FaceRecords": [_record("f1", 0.4, 0.5, 90.0, 60.0)]}, "reject")
    assert d.accepted is not None and d.accepted.face_id == "f1"
    assert d.accepted.quality == 60.0
    assert d.faces_to_delete == [] and d.reason is None


def test_several_indexed_faces_reject_and_delete_all():
    response = {"FaceRecords": [_record("small", 0.1, 0.1), _record("big", 0.5, 0.5)]}
    d = decide(response, "reject")
    assert d.accepted is None and d.reason == "MULTIPLE_FACES"
    assert sorted(d.faces_to_delete) == ["big", "small"]
    assert "2 faces" in (d.detail or "")


def test_faces_cut_by_max_faces_count_as_multiple():
    response = {
        "FaceRecords": [_record("f1", 0.4, 0.5)],
        "UnindexedFaces": [_unindexed("EXCEEDS_MAX_FACES"), _unindexed("LOW_SHARPNESS")],
    }
    d = decide(response, "reject")
    assert d.reason == "MULTIPLE_FACES" and d.faces_to_delete == ["f1"]
    assert "2 faces" in (d.detail or "")  # the blurry background face does not count


def test_filtered_background_faces_do_not_make_a_group():
    response = {
        "FaceRecords": [_record("f1", 0.4, 0.5)],
        "UnindexedFaces": [_unindexed("SMALL_BOUNDING_BOX")],
    }
    assert decide(response, "reject").accepted is not None


def test_largest_policy_keeps_the_largest_and_deletes_the_rest():
    response = {"FaceRecords": [_record("small", 0.1, 0.1), _record("big", 0.5, 0.5)]}
    d = decide(response, "largest")
    assert d.accepted is not None and d.accepted.face_id == "big"
    assert d.faces_to_delete == ["small"]


def test_no_face_and_filtered_faces():
    assert decide({"FaceRecords": [], "UnindexedFaces": []}, "reject").reason == "NO_FACE"
    d = decide(
        {
            "UnindexedFaces": [
                _unindexed("LOW_SHARPNESS", "LOW_BRIGHTNESS"),
                _unindexed("EXTREME_POSE"),
            ]
        },
        "reject",
    )
    assert d.reason == "LOW_SHARPNESS"
    assert "LOW_BRIGHTNESS" in (d.detail or "") and "EXTREME_POSE" in (d.detail or "")
    assert d.faces_to_delete == []


def test_quality_is_the_weaker_attribute_clamped():
    assert face_quality({"Quality": {"Brightness": 30.0, "Sharpness": 160.0}}) == 30.0
    assert face_quality({"Quality": {"Brightness": 100.0, "Sharpness": 160.0}}) == 100.0
    assert face_quality({}) == 0.0


def _sized(width, height, *reasons):
    return {
        "Reasons": list(reasons),
        "FaceDetail": {"BoundingBox": {"Width": width, "Height": height, "Left": 0, "Top": 0}},
    }


def test_a_crowd_of_faces_all_too_small_is_a_group_photo():
    # Given a group photo whose seven faces were all filtered out for their size
    response = {"UnindexedFaces": [_sized(0.05, 0.07, "SMALL_BOUNDING_BOX") for _ in range(7)]}

    # Then the owner hears "several people", with the filter reasons kept in the detail
    d = decide(response, "reject")
    assert d.accepted is None and d.reason == "MULTIPLE_FACES"
    assert "7 faces" in (d.detail or "") and "SMALL_BOUNDING_BOX" in (d.detail or "")


def test_a_tiny_background_face_does_not_hide_the_real_reason():
    # Given a dark portrait and a far smaller face in the background, both filtered out
    response = {
        "UnindexedFaces": [
            _sized(0.4, 0.5, "LOW_BRIGHTNESS"),
            _sized(0.04, 0.05, "SMALL_BOUNDING_BOX"),
        ]
    }

    # Then the reason is the portrait's own
    assert decide(response, "reject").reason == "LOW_BRIGHTNESS"


# ---- which rejections are final for the bytes --------------------------------------------


def _reason_constants():
    from enrollment.photo_policy import Reason

    return {v for k, v in vars(Reason).items() if k.isupper() and isinstance(v, str)}


def test_every_reason_is_final_retryable_or_a_failure_and_only_one():
    from enrollment.photo_policy import FAILURE_REASONS, FINAL_REASONS, RETRYABLE_REASONS

    assert not FINAL_REASONS & RETRYABLE_REASONS
    assert not FINAL_REASONS & FAILURE_REASONS
    assert not RETRYABLE_REASONS & FAILURE_REASONS
    # A reason added to Reason must be classified here (an unclassified one is not final).
    assert _reason_constants() <= FINAL_REASONS | RETRYABLE_REASONS | FAILURE_REASONS


def test_the_photo_is_the_problem_in_final_reasons_only():
    from enrollment.photo_policy import FINAL_REASONS, is_final

    for reason in ("NO_FACE", "MULTIPLE_FACES", "INVALID_IMAGE_FORMAT", "IMAGE_TOO_LARGE"):
        assert is_final(reason)
    assert {"LOW_SHARPNESS", "LOW_BRIGHTNESS", "SMALL_BOUNDING_BOX"} <= FINAL_REASONS
    for reason in (
        "USER_FACE_LIMIT",
        "REPLACED_BY_BETTER_PHOTO",
        "LOW_MATCH_CONFIDENCE",
        "USER_BEING_ERASED",
        "OBJECT_NOT_FOUND",
        "DUPLICATE_PHOTO",
        "CONFIGURATION_ERROR",
        "SOME_REASON_ADDED_LATER",
        None,
    ):
        assert not is_final(reason), reason


def test_index_quality_reasons_are_rekognitions_own():
    import botocore.session

    from enrollment.photo_policy import INDEX_QUALITY_REASONS

    model = botocore.session.get_session().get_service_model("rekognition")
    assert set(model.shape_for("Reason").enum) == INDEX_QUALITY_REASONS


def test_index_policy_changes_with_each_setting_a_final_answer_depends_on():
    from enrollment.photo_policy import index_policy

    base = index_policy("AUTO", 1, "reject")
    assert base == index_policy("AUTO", 1, "reject")
    assert len({base, index_policy("NONE", 1, "reject"), index_policy("AUTO", 2, "reject")}) == 3
    assert base != index_policy("AUTO", 1, "largest")
