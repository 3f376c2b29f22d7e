"""Opt-in TPS quotas and seeded fault injection (reference §3.2, §7)."""

from __future__ import annotations

import pytest

from enroll_local.rekognition.errors import RekognitionError
from enroll_local.rekognition.quotas import FaultConfig

from .conftest import COLLECTION, index

C = {"CollectionId": COLLECTION}


def _codes(em, op, params, n):
    codes = []
    for _ in range(n):
        try:
            em.dispatch(op, params)
            codes.append("ok")
        except RekognitionError as err:
            codes.append(err.code)
    return codes


def test_quotas_off_by_default(emulator):
    assert set(_codes(emulator, "DescribeCollection", C, 50)) == {"ok"}


def test_control_plane_quota_is_5_tps_then_refills(make_emulator, clock):
    em = make_emulator(quotas_enabled=True)
    em.dispatch("CreateCollection", C)
    codes = _codes(em, "DescribeCollection", C, 6)
    assert codes == ["ok"] * 5 + ["ProvisionedThroughputExceededException"]
    clock.advance(0.2)  # one token back at 5 per second
    assert _codes(em, "DescribeCollection", C, 2) == [
        "ok",
        "ProvisionedThroughputExceededException",
    ]


def test_quotas_are_per_operation(make_emulator):
    em = make_emulator(quotas_enabled=True)
    em.dispatch("CreateCollection", C)
    _codes(em, "DescribeCollection", C, 10)
    assert _codes(em, "ListFaces", C, 50) == ["ok"] * 50  # 50 TPS group


def test_quota_overrides(make_emulator):
    em = make_emulator(quotas_enabled=True, quota_tps={"ListFaces": 1})
    em.dispatch("CreateCollection", C)
    assert _codes(em, "ListFaces", C, 2)[1] == "ProvisionedThroughputExceededException"


def test_throttling_faults_are_seeded_and_reproducible(make_emulator):
    runs = []
    for _ in range(2):
        em = make_emulator(faults=FaultConfig(throttle_rate=0.3, seed=7))
        runs.append(_codes(em, "ListCollections", {}, 40))
    assert runs[0] == runs[1]
    assert "ThrottlingException" in runs[0] and "ok" in runs[0]


def test_internal_error_is_status_500(make_emulator):
    em = make_emulator(faults=FaultConfig(internal_error_rate=1.0))
    with pytest.raises(RekognitionError) as err:
        em.dispatch("ListCollections", {})
    assert (err.value.code, err.value.status) == ("InternalServerError", 500)


def test_conflict_while_user_is_updating(make_emulator, clock):
    em = make_emulator(faults=FaultConfig(conflict_while_updating=1.0))
    em.dispatch("CreateCollection", C)
    em.dispatch("CreateUser", {**C, "UserId": "alice"})
    first, second = index(em, "alice", 1), index(em, "alice", 2)
    em.dispatch("AssociateFaces", {**C, "UserId": "alice", "FaceIds": [first]})
    for op in ("AssociateFaces", "DisassociateFaces", "DeleteUser"):
        with pytest.raises(RekognitionError) as err:
            em.dispatch(
                op,
                {**C, "UserId": "alice", "FaceIds": [second]}
                if op != "DeleteUser"
                else {**C, "UserId": "alice"},
            )
        assert err.value.code == "ConflictException", op
    clock.advance(1)
    out = em.dispatch("AssociateFaces", {**C, "UserId": "alice", "FaceIds": [second]})
    assert out["AssociatedFaces"] == [{"FaceId": second}]


def test_a_quota_under_one_tps_passes_one_call_per_period(make_emulator, clock):
    # The load benchmark scales quotas down (AssociateFaces 5 TPS x 0.1 = 0.5 TPS): a bucket of
    # rate x 1 s would hold half a token and refuse every call forever.
    em = make_emulator(quotas_enabled=True, quota_tps={"ListCollections": 0.5})
    em.dispatch("ListCollections", {})
    with pytest.raises(RekognitionError) as refused:
        em.dispatch("ListCollections", {})
    assert refused.value.code == "ProvisionedThroughputExceededException"
    clock.advance(1.9)
    with pytest.raises(RekognitionError):
        em.dispatch("ListCollections", {})
    clock.advance(0.1)  # 2 s = 1 / 0.5 TPS since the first call
    em.dispatch("ListCollections", {})
