"""Tests for mobpose.metrics."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from mobpose.metrics import (
    METRICS,
    PROTOCOLS,
    evaluate,
    mpjpe,
    mpjve,
    n_mpjpe,
    p_mpjpe,
    pa_mpjpe,
    root_relative,
)

ALL = [mpjpe, p_mpjpe, pa_mpjpe, n_mpjpe, mpjve]


def rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation matrix (3, 3) about ``axis``."""
    k = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


@pytest.fixture
def pose() -> np.ndarray:
    """Random root-relative 17-joint pose in mm, shape (J, 3)."""
    p = np.random.default_rng(42).normal(scale=200.0, size=(17, 3))
    return p - p[0]


R = rotation(np.array([1.0, -2.0, 0.5]), 1.1)
T = np.array([120.0, -40.0, 300.0])


def test_rotation_helper_is_proper() -> None:
    assert np.linalg.det(R) == pytest.approx(1.0)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)


def test_identical_poses_give_zero(pose: np.ndarray) -> None:
    seq = np.stack([pose, pose + 5.0, pose * 0.9])  # (T=3, J, 3)
    for fn in ALL:
        assert fn(seq, seq.copy()) == pytest.approx(0.0, abs=1e-9), fn.__name__


def test_constant_offset_mpjpe(pose: np.ndarray) -> None:
    offset = np.array([6.0, 0.0, 8.0])  # |offset| = 10 mm
    assert mpjpe(pose + offset, pose) == pytest.approx(10.0)
    assert mpjpe([[0, 0, 0]], [[3, 4, 0]]) == pytest.approx(5.0)
    assert mpjpe(np.zeros((4, 2)), np.full((4, 2), 1.0)) == pytest.approx(np.sqrt(2))


def test_similarity_transform(pose: np.ndarray) -> None:
    pred = 1.3 * pose @ R.T + T
    assert p_mpjpe(pred, pose) < 1e-9
    assert pa_mpjpe(pred, pose) > 10.0
    assert mpjpe(pred, pose) > 10.0


def test_rigid_transform(pose: np.ndarray) -> None:
    pred = pose @ R.T + T
    assert pa_mpjpe(pred, pose) < 1e-9
    assert p_mpjpe(pred, pose) < 1e-9
    assert mpjpe(pred, pose) > 10.0


def test_pure_scale_known_values() -> None:
    target = np.array(
        [[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, -3.0, 4.0], [0.0, 0.0, -4.0]]
    )
    target = target - target.mean(axis=0)
    pred = 2.0 * target
    # Rigid alignment keeps R = I and the centroid, leaving the scale error |target_j|.
    expected = np.linalg.norm(target, axis=1).mean()
    assert pa_mpjpe(pred, target) == pytest.approx(expected, rel=1e-9)
    assert mpjpe(pred, target) == pytest.approx(expected, rel=1e-9)
    assert p_mpjpe(pred, target) < 1e-9
    assert n_mpjpe(pred, target) < 1e-9


def test_reflection_is_not_aligned(pose: np.ndarray) -> None:
    mirrored = pose * np.array([-1.0, 1.0, 1.0])
    assert p_mpjpe(mirrored, pose) > 10.0
    assert pa_mpjpe(mirrored, pose) > 10.0
    assert p_mpjpe(mirrored @ R.T, pose) > 10.0


def test_reflection_known_values() -> None:
    # Axis-aligned points with extents 1 < 2 < 3, mirrored in x. The best proper
    # rotation is the identity (the smallest singular direction is flipped), so
    # the similarity scale is (4 + 9 - 1) / 14 = 6/7 and the errors are known.
    target = np.array([[1.0, 0, 0], [-1, 0, 0], [0, 2, 0], [0, -2, 0], [0, 0, 3], [0, 0, -3]])
    mirrored = target * np.array([-1.0, 1.0, 1.0])
    assert p_mpjpe(mirrored, target) == pytest.approx(6.0 / 7.0, rel=1e-9)
    assert pa_mpjpe(mirrored, target) == pytest.approx(2.0 / 3.0, rel=1e-9)


def test_n_mpjpe_known_value() -> None:
    target = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    pred = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # orthogonal: optimal scale 0
    assert n_mpjpe(pred, target) == pytest.approx(1.0)
    assert n_mpjpe(0.5 * target, target) < 1e-12


def test_mpjve_constant_offset(pose: np.ndarray) -> None:
    seq = np.stack([pose + 3.0 * t for t in range(4)])  # (T=4, J, 3)
    pred = seq + np.array([0.0, 30.0, 40.0])
    assert mpjve(pred, seq) == pytest.approx(0.0, abs=1e-12)
    assert mpjpe(pred, seq) == pytest.approx(50.0)


def test_mpjve_known_value() -> None:
    target = np.zeros((3, 2, 3))  # (T, J, 3), static
    pred = np.zeros((3, 2, 3))
    pred[1:, 0] = [3.0, 4.0, 0.0]  # joint 0 jumps by 5 between frames 0 and 1
    pred[2, 1] = [0.0, 0.0, 2.0]  # joint 1 jumps by 2 between frames 1 and 2
    assert mpjve(pred, target) == pytest.approx(7.0 / 4.0)
    np.testing.assert_allclose(mpjve(pred, target, reduce=False), [2.5, 1.0])
    # Frame axis first with an extra batch dim: (T, B, J, 3).
    pred_tb = np.stack([pred, np.zeros_like(pred)], axis=1)
    assert mpjve(pred_tb, np.zeros_like(pred_tb), axis=0) == pytest.approx(7.0 / 8.0)


def test_reduce_false_shapes(pose: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    target = pose + rng.normal(size=(2, 5, 17, 3))  # (B, T, J, 3)
    pred = target + rng.normal(size=target.shape)
    for fn in (mpjpe, p_mpjpe, pa_mpjpe, n_mpjpe):
        per = fn(pred, target, reduce=False)
        assert isinstance(per, np.ndarray) and per.shape == (2, 5), fn.__name__
        assert fn(pred, target) == pytest.approx(per.mean())
        assert isinstance(fn(pred, target), float)
    assert mpjve(pred, target, reduce=False).shape == (2, 4)
    assert mpjve(pred, target, axis=0, reduce=False).shape == (1, 5)
    assert mpjpe(pose, pose, reduce=False).shape == ()


def test_batched_alignment_is_per_sample(pose: np.ndarray) -> None:
    rng = np.random.default_rng(7)
    target = pose + rng.normal(scale=50.0, size=(2, 3, 17, 3))  # (B, T, J, 3)
    pred = np.empty_like(target)
    for b in range(2):
        for t in range(3):
            rot = rotation(rng.normal(size=3), rng.uniform(0.2, 3.0))
            pred[b, t] = rng.uniform(0.5, 2.0) * target[b, t] @ rot.T + rng.normal(scale=100, size=3)
    per = p_mpjpe(pred, target, reduce=False)
    assert per.shape == (2, 3)
    assert np.all(per < 1e-9)
    assert np.all(pa_mpjpe(pred, target, reduce=False) > 1e-3)
    assert np.all(mpjpe(pred, target, reduce=False) > 1.0)


def test_root_relative() -> None:
    poses = np.arange(2 * 3 * 3, dtype=float).reshape(2, 3, 3)  # (B, J, 3)
    out = root_relative(poses)
    np.testing.assert_array_equal(out[:, 0], 0.0)
    np.testing.assert_array_equal(out[0, 2], [6.0, 6.0, 6.0])
    np.testing.assert_array_equal(root_relative(poses, root=2)[0, 0], [-6.0, -6.0, -6.0])
    np.testing.assert_array_equal(root_relative(poses, root=-1), root_relative(poses, root=2))
    with pytest.raises(ValueError, match="root"):
        root_relative(poses, root=3)
    with pytest.raises(ValueError, match="poses.*rank"):
        root_relative(np.zeros(3))
    with pytest.raises(ValueError, match="poses.*non-finite"):
        root_relative(np.full((2, 3), np.inf))
    with pytest.raises(ValueError, match="poses.*empty"):
        root_relative(np.zeros((0, 3)))


def test_registry_and_evaluate(pose: np.ndarray) -> None:
    assert set(METRICS) == set(PROTOCOLS) == {"MPJPE", "P-MPJPE", "PA-MPJPE", "N-MPJPE", "MPJVE"}
    seq = np.stack([pose, pose + 1.0, pose + 2.0])
    res = evaluate(seq + np.array([0.0, 0.0, 10.0]), seq)
    assert set(res) == set(METRICS)
    assert res["MPJPE"] == pytest.approx(10.0)
    assert res["P-MPJPE"] < 1e-9 and res["MPJVE"] < 1e-12
    single = evaluate(pose, pose)
    assert "MPJVE" not in single and single["MPJPE"] == 0.0
    assert "MPJVE" not in evaluate(seq, seq, frame_axis=None)


def test_torch_input(pose: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    pred = torch.tensor(pose + np.array([6.0, 8.0, 0.0]), requires_grad=True)
    assert mpjpe(pred, torch.tensor(pose)) == pytest.approx(10.0)


BAD_CASES = [
    (np.zeros((17, 3)), np.zeros((16, 3)), "same shape"),
    (np.zeros((17, 4)), np.zeros((17, 4)), "predicted must have last dim"),
    (np.full((17, 3), np.nan), np.zeros((17, 3)), "predicted has non-finite"),
    (np.zeros((17, 3)), np.full((17, 3), np.inf), "target has non-finite"),
    (np.zeros((0, 3)), np.zeros((0, 3)), "predicted is empty"),
    (np.zeros(3), np.zeros(3), "predicted must have rank"),
    (np.zeros((17, 3)), np.zeros(3), "target must have rank"),
    (np.array([["a", "b", "c"]]), np.zeros((1, 3)), "predicted must be a real numeric"),
]


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("pred", "target", "match"), BAD_CASES)
def test_bad_input(fn: Callable, pred: np.ndarray, target: np.ndarray, match: str) -> None:
    if fn is mpjve and pred.ndim == 2 and target.ndim == 2 and pred.size:
        pred, target = pred[None].repeat(2, 0), target[None].repeat(2, 0)
    with pytest.raises(ValueError, match=match):
        fn(pred, target)


@pytest.mark.parametrize("fn", [p_mpjpe, pa_mpjpe, n_mpjpe, mpjve], ids=lambda f: f.__name__)
def test_2d_only_for_mpjpe(fn: Callable) -> None:
    with pytest.raises(ValueError, match="predicted must have last dim 3"):
        fn(np.zeros((2, 17, 2)), np.zeros((2, 17, 2)))


def test_mpjve_frame_errors(pose: np.ndarray) -> None:
    single = pose[None]  # (T=1, J, 3)
    with pytest.raises(ValueError, match="at least 2 frames"):
        mpjve(single, single)
    with pytest.raises(ValueError, match="predicted must have rank >= 3"):
        mpjve(pose, pose)
    seq = np.stack([pose, pose])
    with pytest.raises(ValueError, match="axis"):
        mpjve(seq, seq, axis=-2)
    with pytest.raises(ValueError, match="axis"):
        mpjve(seq, seq, axis=3)
