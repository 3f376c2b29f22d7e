"""``enroll eval`` end to end on synthetic photos: every figure of the JSON checked by hand.

The synthetic engine's descriptors and similarity are public formulas
(``synthetic_descriptor``, ``SyntheticEngine.similarity``), so the expected scores are computed
here from them, independently of the emulator: a user vector is the plain mean of its
faces' descriptors, a face-vector score the best of the user's faces. The folder (K = 2):

    alice/1, 2      enrolled (variants 1, 2)
    alice/3         genuine probe                      -> top-1
    alice/4         genuine probe, no face             -> miss, NO_FACE
    bob/1           enrolled (variant 1)
    bob/2           two faces: MULTIPLE_FACES, so bob's vector holds one face
    bob/3           genuine probe                      -> top-1
    bob/10          genuine probe showing alice         -> miss, and a false match at 80
                    (natural order: 10 comes after 3); alice's variant 1441 scores 99.497
                    against alice's user vector, under every genuine user score (99.511 /
                    99.515 / 99.528), and 99.521 against her best face, between the genuine
                    face scores (99.511 / 99.531 / 99.537): so at FAR <= 1 % the user vectors
                    accept 3 of 5 genuine probes and the face vectors 2 of 5
    carol/1         only photo: skipped
    dave/1, 2       enrolled
    dave/3          genuine probe, brightness 5: LOW_BRIGHTNESS for the photo policy, yet
                    searchable (the searches use no QualityFilter) -> top-1
    distractors: eve/1 (a face), eve/2 (no face), eve/notes.txt (not an image)
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from enroll_cli.main import main
from enroll_local.rekognition.engines.synthetic import (
    SyntheticEngine,
    make_synthetic_photo,
    synthetic_descriptor,
)

PHOTOS = {
    "alice/1.jpg": [{"identity": "alice", "variant": 1}],
    "alice/2.jpg": [{"identity": "alice", "variant": 2}],
    "alice/3.jpg": [{"identity": "alice", "variant": 3}],
    "alice/4.jpg": [],
    "bob/1.jpg": [{"identity": "bob", "variant": 1}],
    "bob/2.jpg": [
        {"identity": "bob", "variant": 2, "box": [0.05, 0.1, 0.4, 0.5]},
        {"identity": "zed", "box": [0.55, 0.1, 0.4, 0.5]},
    ],
    "bob/3.jpg": [{"identity": "bob", "variant": 3}],
    "bob/10.jpg": [{"identity": "alice", "variant": 1441}],
    "carol/1.jpg": [{"identity": "carol", "variant": 1}],
    "dave/1.jpg": [{"identity": "dave", "variant": 1}],
    "dave/2.jpg": [{"identity": "dave", "variant": 2}],
    "dave/3.jpg": [{"identity": "dave", "variant": 3, "brightness": 5}],
}
DISTRACTORS = {"eve/1.jpg": [{"identity": "eve", "variant": 1}], "eve/2.jpg": []}
ENROLLED = {"alice": [1, 2], "bob": [1], "dave": [1, 2]}  # variants in each user vector
# Genuine probes: (label, identity, the face it shows or None).
GENUINE = [
    ("alice/3.jpg", "alice", ("alice", 3)),
    ("alice/4.jpg", "alice", None),
    ("bob/3.jpg", "bob", ("bob", 3)),
    ("bob/10.jpg", "bob", ("alice", 1441)),
    ("dave/3.jpg", "dave", ("dave", 3)),
]


def _write(root, photos):
    for seed, (rel, faces) in enumerate(photos.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make_synthetic_photo(faces, seed=seed))


@pytest.fixture
def folders(tmp_path):
    _write(tmp_path / "photos", PHOTOS)
    _write(tmp_path / "distractors", DISTRACTORS)
    (tmp_path / "distractors" / "eve" / "notes.txt").write_text("not a photo")
    return tmp_path


def _sim(cosine: float) -> float:
    return round(float(SyntheticEngine().similarity(np.array([cosine]))[0]), 3)


def _expected_scores(face):
    """identity -> (user-vector score, face-vector score) for a probe showing ``face``."""
    probe = synthetic_descriptor(*face).astype(np.float64)
    out = {}
    for identity, variants in ENROLLED.items():
        faces = [synthetic_descriptor(identity, v).astype(np.float64) for v in variants]
        user = np.mean(faces, axis=0)  # the plain mean (vectors.user_search_vector)
        out[identity] = (_sim(float(probe @ user)), max(_sim(float(probe @ f)) for f in faces))
    return out


def _expected(which: int):
    genuine, impostor = [], []
    for _, identity, face in GENUINE:
        if face is None:
            genuine.append(None)
            continue
        scores = {who: pair[which] for who, pair in _expected_scores(face).items()}
        genuine.append(scores[identity])
        impostor += [s for who, s in scores.items() if who != identity]
    impostor.append(max(pair[which] for pair in _expected_scores(("eve", 1)).values()))
    return genuine, impostor


def test_eval_json_matches_hand_computed_figures(folders, capsys):
    out_json, out_png = folders / "eval.json", folders / "roc.png"
    status = main(
        [
            "eval",
            "--photos", str(folders / "photos"),
            "--distractors", str(folders / "distractors"),
            "--enroll", "2",
            "--engine", "synthetic",
            "--json", str(out_json),
            "--plot", str(out_png),
        ]
    )  # fmt: skip
    assert status == 0
    report = json.loads(out_json.read_text())
    assert report["enrolled_identities"] == 3
    assert report["enrolled_faces"] == 5
    assert report["faces_per_identity"] == {"alice": 2, "bob": 1, "dave": 2}
    assert report["skipped_identities"] == {"carol": 1}
    assert report["genuine_probes"] == 5
    assert report["impostor_probes"] == 3
    assert report["detection"] == {
        **report["detection"],
        "photos": 12,
        "accepted": 9,
        "no_face": 1,
        "multiple_faces": 1,
        "quality_rejected": 1,
        "unreadable": 0,
        "reasons": {"LOW_BRIGHTNESS": 1, "MULTIPLE_FACES": 1, "NO_FACE": 1},
    }
    rejected = {r["photo"]: r["reason"] for r in report["detection"]["rejected"]}
    assert rejected == {"bob/2.jpg": "MULTIPLE_FACES", "alice/4.jpg": "NO_FACE",
                        "dave/3.jpg": "LOW_BRIGHTNESS"}  # fmt: skip
    distractor = report["distractor_detection"]
    assert (distractor["photos"], distractor["no_face"], distractor["unreadable"]) == (3, 1, 1)

    for which, name in enumerate(("user_vectors", "face_vectors")):
        genuine, impostor = _expected(which)
        figures = report[name]
        n = len(impostor)
        assert n == 4 * 2 + 1  # 4 searchable genuine probes x 2 wrong identities + eve/1
        assert figures["impostor_scores"] == n
        # 3 of 5: alice/4 found no face, bob/10 shows alice.
        assert figures["top1"] == pytest.approx(3 / 5)
        # bob/10 (alice's face) scores > 99 against alice: the only false match at 80.
        assert figures["false_matches_at_80"] == 1
        assert sum(1 for s in impostor if s >= 80) == 1
        assert figures["probes_with_false_match_at_80"] == ["bob/10.jpg"]
        # N = 9 impostor scores: floor(0.01 * 9) = floor(0.001 * 9) = 0 false accepts allowed,
        # so both thresholds are the highest impostor score (bob/10 against alice).
        highest = max(impostor)
        assert figures["threshold_at_far_0_1pct"] == pytest.approx(highest, abs=2e-3)
        assert figures["threshold_at_far_1pct"] == pytest.approx(highest, abs=2e-3)
        above = sum(1 for s in genuine if s is not None and s > highest) / len(genuine)
        # Hand-computed scores are within rounding of the emulator's: keep off the boundary.
        assert all(s is None or abs(s - highest) > 2e-3 for s in genuine)
        assert figures["tar_at_far_1pct"] == pytest.approx(above)
        assert figures["tar_at_far_0_1pct"] == pytest.approx(above)
        assert above == pytest.approx((3 / 5, 2 / 5)[which])
        assert figures["tar_at_80"] == pytest.approx(3 / 5)
        assert figures["genuine_without_score"] == 1
    # Both representations really were searched with their own vectors.
    assert report["user_vectors"]["threshold_at_far_1pct"] != pytest.approx(
        report["face_vectors"]["threshold_at_far_1pct"], abs=1e-6
    )
    own = {row["photo"]: row for row in report["probes"]}
    for label, _identity, face in GENUINE:
        if face is None:
            assert own[label]["user_vectors"]["own"] is None
            assert own[label]["failure"].startswith("NO_FACE")
            continue
        users, faces = _expected_scores(face)[_identity]
        assert own[label]["user_vectors"]["own"] == pytest.approx(users, abs=2e-3)
        assert own[label]["face_vectors"]["own"] == pytest.approx(faces, abs=2e-3)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "top-1 identification" in text and "60.0 %" in text
    assert "bob/2.jpg" in text and "MULTIPLE_FACES" in text


def test_threshold_math_sanity():
    # The calibration the expected values rely on: same identity > 99, others < 15.
    assert _sim(float(synthetic_descriptor("a", 1) @ synthetic_descriptor("a", 2))) > 99
    assert _sim(float(synthetic_descriptor("a", 1) @ synthetic_descriptor("b", 1))) < 15
    assert not math.isnan(_sim(0.0))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--photos", "{root}/nope"], "not a folder"),
        (["--photos", "{root}/photos", "--enroll", "20"], "no identity has more than 20"),
        (["--photos", "{root}/photos", "--distractors", "{root}/photos"], "also in --photos"),
        (["--photos", "{root}/photos", "--json", "{root}/missing/out.json"], "does not exist"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(folders, capsys, args, message):
    argv = ["eval", "--engine", "synthetic", *(a.format(root=folders) for a in args)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
