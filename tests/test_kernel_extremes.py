"""The kernels at the extremes of float32: a seeded fuzz of `mobpose.ops` against `mobpose.functional`.

Every call draws an op (soft_argmax_3d in its three modes, mqa_prior without a prior, 'mul' or 'add',
causal or not), a kernel variant of this CPU (reference, avx2, avx512), shapes around the vector widths
(tails), magnitudes 1, 1e10, 1e20, 1e30 and 3e38 (mixed signs, one-sided, one huge bin), and sometimes
NaN / +Inf / -Inf sprinkled into one joint's volume, one query, key or value row, a whole volume of
-Inf, or a prior that overflows float32. It runs

- the kernel variant through `mobpose.ops` (float32),
- the PyTorch reference `mobpose.functional` (backend='torch') on float32 tensors, and
- the same reference on float64 tensors: what the others are compared with,

and checks that all three reject the same inputs (ValueError), give NaN and +-Inf at exactly the same
places, and agree on finite values within tests/tolerances.py (for attention, plus the float32 logit
rounding term of kernels/tests/test_kernels.cc on rows whose top two logits are within it: no float32
implementation can resolve a near-tie of logits of 1e20). The semantics the three follow at the
extremes are written in README.md ("Kernels at the extremes of float32").

Run by pytest (2000 calls, a few seconds), or as a script for a longer run that prints the counts:

    python tests/test_kernel_extremes.py --calls 16000 --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tolerances.py when run as a script

import mobpose.functional as F  # noqa: E402
from mobpose import _core, ops  # noqa: E402
from tolerances import TOLERANCES  # noqa: E402

FLT_MAX = float(np.finfo(np.float32).max)
EPS32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff 2^-24
MAGNITUDES = (1.0, 1e10, 1e20, 1e30, 3e38)
VARIANTS = tuple(ops.available_kernel_variants())


@dataclasses.dataclass
class Stats:
    """Counts of one fuzz run (module-level SUMMARY keeps the last one)."""

    calls: int = 0
    checks: int = 0  # implementation results compared with the float64 reference
    rejected: int = 0  # calls every implementation rejected with ValueError, as it should
    crashes: int = 0  # an exception other than the expected ValueError
    rejection_mismatches: int = 0  # one implementation rejected, another did not
    pattern_mismatches: int = 0  # NaN / +Inf / -Inf at other places than the reference
    value_mismatches: int = 0  # finite values beyond the tolerance
    by_magnitude: dict = dataclasses.field(default_factory=dict)
    by_impl: dict = dataclasses.field(default_factory=dict)  # checks / mismatches per implementation
    examples: list = dataclasses.field(default_factory=list)

    @property
    def mismatches(self) -> int:
        return self.rejection_mismatches + self.pattern_mismatches + self.value_mismatches

    def line(self) -> str:
        return (f"{self.calls} calls ({self.checks} results checked, {self.rejected} rejected by all), "
                f"{self.crashes} crashes, {self.mismatches} mismatches ({self.rejection_mismatches} rejection, "
                f"{self.pattern_mismatches} NaN/Inf pattern, {self.value_mismatches} value)")


SUMMARY: dict = {}


# ---- inputs ---------------------------------------------------------------------------------------------


def _values(rng: np.random.Generator, shape, mag: float) -> np.ndarray:
    """float32 values of magnitude `mag`: normal, one-sided, or one huge entry over small ones."""
    kind = rng.integers(4)
    with np.errstate(over="ignore", invalid="ignore"):
        x = rng.standard_normal(shape) * mag
        if kind == 1:
            x = np.abs(x)
        elif kind == 2:
            x = -np.abs(x)
        elif kind == 3:
            x = rng.standard_normal(shape)
            x.reshape(-1)[rng.integers(x.size)] = mag * rng.choice([-1.0, 1.0])
        return np.clip(x, -FLT_MAX, FLT_MAX).astype(np.float32)


def _sprinkle(rng: np.random.Generator, x: np.ndarray, block: int, count: int | None = None) -> None:
    """NaN / +Inf / -Inf at a few places of one block of `block` consecutive values (a joint, a row)."""
    flat = x.reshape(-1)
    start = rng.integers(flat.size // block) * block
    for _ in range(count or rng.integers(1, 4)):
        flat[start + rng.integers(block)] = rng.choice([np.nan, np.inf, -np.inf])


def _heatmaps(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.choice([1, 2, 3, 5])),
             int(rng.choice([1, 2, 4, 5])), int(rng.choice([1, 3, 4, 7, 8, 9, 15, 16, 17, 33])))
    mag = float(rng.choice(MAGNITUDES))
    x = _values(rng, shape, mag)
    volume = int(np.prod(shape[2:]))
    r = rng.random()
    if r < 0.3:
        _sprinkle(rng, x, volume)
    elif r < 0.36:  # a whole volume of -Inf
        x.reshape(-1, volume)[rng.integers(shape[0] * shape[1])] = -np.inf
    elif r < 0.42:  # -Inf everywhere but a few bins
        v = x.reshape(-1, volume)[rng.integers(shape[0] * shape[1])]
        keep = rng.random(volume) < 0.2
        v[~keep] = -np.inf
    return x, mag


def _mqa_inputs(rng: np.random.Generator) -> tuple[dict, float]:
    b, h = int(rng.integers(1, 3)), int(rng.choice([1, 2, 3, 8]))
    n, d = int(rng.choice([1, 2, 3, 5, 8, 9, 16, 17, 18])), int(rng.choice([1, 3, 4, 8, 16, 17]))
    mags = [float(rng.choice(MAGNITUDES)) for _ in range(3)]
    if rng.random() < 0.4:  # moderate keys and values: the logits' magnitude comes from q alone
        mags[1] = mags[2] = 1.0
    q = _values(rng, (b, h, n, d), mags[0])
    k = _values(rng, (b, n, d), mags[1])
    v = _values(rng, (b, n, d), mags[2])
    r = rng.random()
    if r < 0.12:
        _sprinkle(rng, q, d)
    elif r < 0.24:
        _sprinkle(rng, k, d)
    elif r < 0.4:
        _sprinkle(rng, v, d)
    elif r < 0.45:
        _sprinkle(rng, v, n * d, count=int(rng.integers(1, 6)))
    prior_mode = str(rng.choice(["none", "mul", "add"]))
    adj, scale = None, 1.0
    if prior_mode != "none":
        adj = (rng.random((n, n)) < 0.3).astype(np.float32) + 0.1 * rng.standard_normal((n, n)).astype(np.float32)
        scale = float(rng.choice([0.0, 0.5, -2.0, 1e10, 1e30]))
        if rng.random() < 0.1:  # a prior whose factor overflows float32 (or is NaN): must be rejected
            adj.reshape(-1)[rng.integers(n * n)] = rng.choice([np.nan, np.inf, 3e38])
            scale = 1e10 if scale == 0.0 else scale
    args = dict(q=q, k=k, v=v, adj=adj, scale=scale, prior="mul" if prior_mode == "none" else prior_mode,
                causal=bool(rng.random() < 0.5))
    return args, max(mags)


# ---- the implementations ----------------------------------------------------------------------------------


def _run(fn):
    try:
        return "ok", fn()
    except ValueError as exc:
        return "ValueError", exc
    except Exception as exc:  # noqa: BLE001 - counted as a crash
        return "crash", exc


def _softargmax_impls(x: np.ndarray, mode: str, variant: str) -> dict:
    def native():
        ops.set_kernel_variant(variant)
        return ops.soft_argmax_3d(x, mode)

    def torch_ref(dtype):
        xyz, peak = F.soft_argmax_3d(torch.from_numpy(x).to(dtype), mode, backend="torch", return_peak=True)
        return xyz.double().numpy(), peak.double().numpy()

    return {"want": _run(lambda: torch_ref(torch.float64)), variant: _run(native),
            "torch_f32": _run(lambda: torch_ref(torch.float32))}


def _mqa_impls(a: dict, variant: str) -> dict:
    def native():
        ops.set_kernel_variant(variant)
        return (ops.mqa_prior(a["q"], a["k"], a["v"], a["adj"], prior_scale=a["scale"], prior_mode=a["prior"],
                              causal=a["causal"]),)

    def torch_ref(dtype):
        t = [None if x is None else torch.from_numpy(x).to(dtype) for x in (a["q"], a["k"], a["v"], a["adj"])]
        return (F.mqa_prior(*t, scale=a["scale"], prior=a["prior"], causal=a["causal"], backend="torch")
                .double().numpy(),)

    return {"want": _run(lambda: torch_ref(torch.float64)), variant: _run(native),
            "torch_f32": _run(lambda: torch_ref(torch.float32))}


# ---- comparison -------------------------------------------------------------------------------------------


def _pattern_equal(got: np.ndarray, want: np.ndarray) -> bool:
    if not np.array_equal(np.isnan(got), np.isnan(want)):
        return False
    gi, wi = np.isinf(got), np.isinf(want)
    return np.array_equal(gi, wi) and np.array_equal(got[gi], want[wi])


def _softargmax_tol(want: tuple) -> tuple:
    xyz_t, peak_t = TOLERANCES["soft_argmax_3d"], TOLERANCES["soft_argmax_3d_peak"]
    return (xyz_t.atol + xyz_t.rtol * np.abs(want[0]), peak_t.atol + peak_t.rtol * np.abs(want[1]))


def _mqa_tol(a: dict) -> tuple:
    """Per-row tolerance (B, H, N, 1) of a float32 implementation against the float64 reference.

    TOLERANCES['mqa_prior'] (2e-5 for max|v| ~ 4, so 5e-6 of max|v|), plus, as in test_kernels.cc, the
    float32 rounding of the logits: dl = (d + 4) * 2^-24 * (sum_c |q_c k_c| / sqrt(d) * |F| + |F| for
    'add') moves the output by up to 2 dl max|v|. On rows whose top two logits are further apart than
    4 dl + 40 the softmax is one-hot in every precision, and only the first term applies.
    """
    q, k, v = (a[n].astype(np.float64) for n in ("q", "k", "v"))
    b, h, n, d = q.shape
    with np.errstate(all="ignore"):
        s = np.einsum("bhic,bjc->bhij", np.abs(q), np.abs(k)) / math.sqrt(d)
        logits = np.einsum("bhic,bjc->bhij", q, k) / math.sqrt(d)
        if a["adj"] is not None:
            fac = np.float32(a["scale"]) * a["adj"]
            fac = (1 + fac if a["prior"] == "mul" else fac).astype(np.float64)
            if a["prior"] == "mul":
                s, logits = s * np.abs(fac), logits * fac
            else:
                s, logits = s + 2 * np.abs(fac), logits + fac
        mask = np.triu(np.ones((n, n), bool), 1) if a["causal"] else np.zeros((n, n), bool)
        s = np.where(mask, 0.0, s)
        dl = 2 * (d + 4) * EPS32 * np.nan_to_num(s, nan=np.inf).max(-1, keepdims=True)
        ranked = np.sort(np.where(mask | ~np.isfinite(logits), -np.inf, logits), axis=-1)
        gap = ranked[..., -1:] - ranked[..., -2:-1] if n > 1 else np.full(ranked[..., :1].shape, np.inf)
        vfin = np.where(np.isfinite(v), np.abs(v), 0.0).max(axis=(1, 2)).reshape(b, 1, 1, 1)
        vmax = np.maximum(vfin, 1e-30)
        rel = TOLERANCES["mqa_prior"].atol / 4
        decisive = gap > 4 * dl + 40
        return (vmax * np.where(decisive, rel, rel + np.minimum(2.0, 4 * dl)),)


def _check_one(status: str, got, want: tuple, tol_fn, tol: list) -> str | None:
    """The failure kind of one implementation's result, or None."""
    if status == "crash":
        return "crash"
    if status == "ValueError":
        return "rejection"
    if not all(_pattern_equal(g.astype(np.float64), w) for g, w in zip(got, want, strict=True)):
        return "pattern"
    if not tol:
        tol.extend(tol_fn(want))
    for g, w, t in zip(got, want, tol, strict=True):
        fin = np.isfinite(w)
        err = np.where(fin, np.abs(g.astype(np.float64) - np.where(fin, w, 0.0)), 0.0)
        if np.any(err > t):
            return "value"
    return None


def _compare(stats: Stats, results: dict, tol_fn, mag: float, what: str) -> None:
    status, want = results.pop("want")
    per = stats.by_magnitude.setdefault(f"{mag:g}", {"checks": 0, "mismatches": 0})
    if status == "crash":
        stats.crashes += 1
        stats.examples.append(f"{what}: the reference crashed: {want!r}")
        return
    if status == "ValueError":
        others = {impl: s for impl, (s, _) in results.items()}
        if all(s == "ValueError" for s in others.values()):
            stats.rejected += 1
        else:
            stats.rejection_mismatches += 1
            per["mismatches"] += 1
            stats.examples.append(f"{what}: the reference rejected it ({want}), got {others}")
        return
    tol: list = []
    for impl, (s, got) in results.items():
        stats.checks += 1
        per["checks"] += 1
        mine = stats.by_impl.setdefault(impl, {"checks": 0, "mismatches": 0})
        mine["checks"] += 1
        kind = _check_one(s, got, want, tol_fn, tol)
        if kind is None:
            continue
        if kind == "crash":
            stats.crashes += 1
        else:
            setattr(stats, f"{kind}_mismatches", getattr(stats, f"{kind}_mismatches") + 1)
            per["mismatches"] += 1
        mine["mismatches"] += 1
        detail = f": {got!r}" if kind in ("crash", "rejection") else ""
        stats.examples.append(f"{what} [{impl}]: {kind}{detail}")


def fuzz(calls: int, seed: int = 0) -> Stats:
    """Runs `calls` seeded calls and returns the counts (the kernel variant is 'auto' afterwards)."""
    rng = np.random.default_rng(seed)
    stats = Stats()
    try:
        for i in range(calls):
            variant = VARIANTS[i % len(VARIANTS)]
            stats.calls += 1
            if rng.random() < 0.45:
                x, mag = _heatmaps(rng)
                mode = str(rng.choice(F.SOFT_ARGMAX_MODES))
                what = f"call {i}: soft_argmax_3d {mode} {x.shape} |x|~{mag:g}"
                _compare(stats, _softargmax_impls(x, mode, variant), _softargmax_tol, mag, what)
            else:
                a, mag = _mqa_inputs(rng)
                what = (f"call {i}: mqa_prior {a['prior'] if a['adj'] is not None else 'none'} "
                        f"causal={a['causal']} {a['q'].shape} |.|~{mag:g}")
                _compare(stats, _mqa_impls(a, variant), lambda want, a=a: _mqa_tol(a), mag, what)
    finally:
        ops.set_kernel_variant("auto")
    return stats


# ---- pytest -------------------------------------------------------------------------------------------------

FUZZ_CALLS = 2000


def test_fuzz_ops_against_functional() -> None:
    """2000 seeded calls over every variant, magnitudes 1..3e38 and non-finite sprinkles: 0 of anything."""
    stats = fuzz(FUZZ_CALLS, seed=14)
    SUMMARY.update(dataclasses.asdict(stats), line=stats.line())
    print(f"\nkernel extremes fuzz: {stats.line()}")
    assert stats.calls == FUZZ_CALLS and stats.checks > FUZZ_CALLS and stats.rejected > 0
    assert stats.crashes == 0 and stats.mismatches == 0, stats.line() + "\n" + "\n".join(stats.examples[:10])
    assert set(stats.by_magnitude) == {f"{m:g}" for m in MAGNITUDES}


def test_the_fuzz_comparison_sees_a_mismatch() -> None:
    want = (np.array([1.0, np.nan, np.inf]),)
    ok = (np.array([1.0, np.nan, np.inf], np.float32),)
    tol = (np.array([1e-6, 1e-6, 1e-6]),)
    assert _check_one("ok", ok, want, lambda w: tol, []) is None
    assert _check_one("ok", (np.array([1.0, 0.0, np.inf]),), want, lambda w: tol, []) == "pattern"
    assert _check_one("ok", (np.array([1.0, np.nan, -np.inf]),), want, lambda w: tol, []) == "pattern"
    assert _check_one("ok", (np.array([1.1, np.nan, np.inf]),), want, lambda w: tol, []) == "value"
    assert _check_one("ValueError", None, want, lambda w: tol, []) == "rejection"


def _both(x: np.ndarray, mode: str):
    got = ops.soft_argmax_3d(x, mode)
    want = F.soft_argmax_3d(torch.from_numpy(x), mode, backend="torch", return_peak=True)
    return got, tuple(t.numpy() for t in want)


@pytest.mark.parametrize("mode", F.SOFT_ARGMAX_MODES)
@pytest.mark.parametrize("big", [1e20, 3e38, -3e38])
def test_soft_argmax_huge_finite_logits_give_the_right_expectation(variant, mode, big) -> None:
    """One bin at +-3e38 (or 1e20) over unit logits: every implementation finds the same finite answer."""
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 4, 17)).astype(np.float32)
    x[0, 0, 2, 1, 9] = big
    x[0, 1] = big  # a flat volume of huge logits: the centre
    (xyz, peak), (want_xyz, want_peak) = _both(x, mode)
    want64 = F.soft_argmax_3d(torch.from_numpy(x).double(), mode, backend="torch", return_peak=True)
    for got in (xyz, want_xyz):
        np.testing.assert_allclose(got, want64[0].numpy(), atol=2e-4, rtol=0)
    assert np.isfinite(xyz).all() and np.isfinite(peak).all() and np.isfinite(want_peak).all()
    np.testing.assert_allclose(xyz[0, 1], [8.0, 1.5, 1.0], atol=1e-4)
    if big > 0 or mode == "taylor":  # the huge bin takes (almost) all the mass
        np.testing.assert_allclose(xyz[0, 0], [9.0, 1.0, 2.0], atol=1e-4)


@pytest.mark.parametrize(("value", "mode", "nan"), [
    (np.nan, "exact", True), (np.nan, "taylor", True), (np.nan, "taylor_clamped", True),
    (np.inf, "exact", True), (np.inf, "taylor", True), (np.inf, "taylor_clamped", True),
    (-np.inf, "exact", False), (-np.inf, "taylor", True), (-np.inf, "taylor_clamped", False),
])
def test_soft_argmax_non_finite_logit_in_one_joint(variant, value, mode, nan) -> None:
    x = np.random.default_rng(1).standard_normal((2, 3, 2, 3, 9)).astype(np.float32) * 1e30
    x[1, 2, 1, 0, 4] = value
    (xyz, peak), (want_xyz, want_peak) = _both(x, mode)
    bad = np.zeros((2, 3), bool)
    bad[1, 2] = nan
    for got_xyz, got_peak in ((xyz, peak), (want_xyz, want_peak)):
        assert np.array_equal(np.isnan(got_xyz).all(-1), bad) and np.array_equal(np.isnan(got_peak), bad)
        assert np.isfinite(got_xyz[~bad]).all() and np.isfinite(got_peak[~bad]).all()


def test_soft_argmax_all_minus_inf_exact_is_nan(variant) -> None:
    x = np.full((1, 2, 2, 2, 5), -np.inf, np.float32)
    x[0, 1, 0, 0, 3] = 0.0  # the second joint has one finite bin: it is the answer
    (xyz, _), (want_xyz, _) = _both(x, "exact")
    for got in (xyz, want_xyz):
        assert np.isnan(got[0, 0]).all()
        np.testing.assert_array_equal(got[0, 1], [3.0, 0.0, 0.0])


def _mqa_both(q, k, v, adj=None, **kw):
    got = ops.mqa_prior(q, k, v, adj, **{("prior_scale" if a == "scale" else "prior_mode" if a == "prior" else a): b
                                         for a, b in kw.items()})
    t = [None if a is None else torch.from_numpy(a) for a in (q, k, v, adj)]
    return got, F.mqa_prior(*t, backend="torch", **kw).numpy(), F.mqa_prior(
        *[None if a is None else a.double() for a in t], backend="torch", **kw).numpy()


def test_mqa_huge_queries_give_the_right_finite_output(variant) -> None:
    """|q| ~ 1e38 (issue 14: finite but wrong by ~1.8 max|v|): the softmax is one-hot at the largest logit."""
    rng = np.random.default_rng(2)
    q = np.clip(rng.standard_normal((1, 2, 7, 5)) * 1e38, -3e38, 3e38).astype(np.float32)
    k, v = rng.standard_normal((1, 7, 5)).astype(np.float32), rng.standard_normal((1, 7, 5)).astype(np.float32)
    logits = np.einsum("bhic,bjc->bhij", q.astype(np.float64), k.astype(np.float64))
    want = v[0][logits.argmax(-1)][None]  # (1, 2, 7, 5)
    for out in _mqa_both(q, k, v):
        np.testing.assert_allclose(out, want[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("prior", ["mul", "add"])
def test_mqa_huge_prior_factor_is_finite(variant, prior) -> None:
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in ((1, 3, 6, 4), (1, 6, 4), (1, 6, 4)))
    adj = (rng.random((6, 6)) < 0.4).astype(np.float32)
    for out in _mqa_both(q, k, v, adj, scale=1e37, prior=prior, causal=True):
        assert np.isfinite(out).all()


def test_mqa_non_finite_values_and_logits(variant) -> None:
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in ((1, 2, 5, 3), (1, 5, 3), (1, 5, 3)))
    v[0, 3, 0] = np.inf  # attended by rows >= 3 (causal): +Inf in channel 0 there, whatever its weight
    v[0, 3, 1] = np.nan
    k[0, 1] = [np.inf, 0.0, 0.0]  # logit +-Inf for key 1: +Inf makes a row NaN, -Inf drops the key
    q[0, 1, 2] = [-1.0, 0.0, 0.0]  # head 1, token 2: logit -Inf to key 1, finite to keys 0 and 2
    q[0, 0, 4] = [1e-30, 0.0, 0.0]  # head 0, token 4: logit +Inf to key 1
    outs = _mqa_both(q, k, v, causal=True)
    for out in outs:
        for o in (out, outs[-1]):
            assert np.array_equal(np.isnan(out), np.isnan(o)) and np.array_equal(np.isinf(out), np.isinf(o))
        assert np.isnan(out[0, 0, 4]).all()  # a +Inf logit
        assert np.isfinite(out[0, 1, 2]).all()  # -Inf logit: key 1 not attended; future NaN/Inf unseen
        assert (out[0, :, 3:, 0][np.isfinite(out[0, :, 3:, 0]) | np.isinf(out[0, :, 3:, 0])] == np.inf).all()
        assert np.isnan(out[0, 1, 3:, 1]).all()


def test_mqa_all_keys_minus_inf_is_nan(variant) -> None:
    q = np.full((1, 1, 3, 2), -np.inf, np.float32)
    k = np.ones((1, 3, 2), np.float32)
    v = np.ones((1, 3, 2), np.float32)
    for out in _mqa_both(q, k, v):
        assert np.isnan(out).all()


def test_ops_refuses_inputs_float32_cannot_hold() -> None:
    with pytest.raises(ValueError, match="heatmaps has a finite value beyond the float32 range"):
        ops.soft_argmax_3d(np.full((1, 1, 1, 1, 2), 1e39))
    ops.soft_argmax_3d(np.full((1, 1, 1, 1, 2), np.inf))  # Inf itself is an input like any other
    q = np.ones((1, 1, 2, 2))
    with pytest.raises(ValueError, match="v has a finite value beyond the float32 range"):
        ops.mqa_prior(q, q[0], q[0] * 1e300)
    with pytest.raises(ValueError, match="heatmaps has a finite value beyond the float32 range"):
        F.soft_argmax_3d(torch.full((1, 1, 1, 1, 2), 1e39, dtype=torch.float64), backend="native")
    adj = np.eye(2, dtype=np.float32)
    for bad_adj, scale in ((adj * 3e38, 2.0), (np.where(adj > 0, np.nan, 0), 1.0), (np.where(adj > 0, np.inf, 0), 1.0)):
        with pytest.raises(ValueError, match="prior and prior_scale . prior must be finite in float32"):
            ops.mqa_prior(q, q[0], q[0], bad_adj.astype(np.float32), prior_scale=scale)
        with pytest.raises(ValueError, match="prior and prior_scale . prior must be finite in float32"):
            _core.mqa_prior(q.astype(np.float32), q[0].astype(np.float32), q[0].astype(np.float32),
                            bad_adj.astype(np.float32),
                            scale, "add", False, 1)
        for backend in ("torch", "native"):
            with pytest.raises(ValueError, match="adj and scale . adj must be finite in float32"):
                F.mqa_prior(torch.ones(1, 1, 2, 2), torch.ones(1, 2, 2), torch.ones(1, 2, 2),
                            torch.from_numpy(bad_adj.astype(np.float32)), scale=scale, backend=backend)


HM = np.zeros((1, 2, 2, 2, 3), np.float32)
Q, K = np.zeros((1, 2, 3, 4), np.float32), np.zeros((1, 3, 4), np.float32)
BAD_THREADS = [(2**31, ValueError), (-5, ValueError), (-1, ValueError), (1.5, TypeError), (None, TypeError),
               (True, TypeError), ("2", TypeError), (np.int64(2**40), ValueError)]


@pytest.mark.parametrize(("threads", "exc"), BAD_THREADS)
def test_bad_num_threads_is_named(threads, exc) -> None:
    with pytest.raises(exc, match="num_threads"):
        ops.soft_argmax_3d(HM, num_threads=threads)
    with pytest.raises(exc, match="num_threads"):
        ops.mqa_prior(Q, K, K, num_threads=threads)
    with pytest.raises(exc, match="num_threads"):
        F.soft_argmax_3d(torch.from_numpy(HM), backend="native", num_threads=threads)
    with pytest.raises(exc, match="num_threads"):
        F.mqa_prior(*map(torch.from_numpy, (Q, K, K)), backend="native", num_threads=threads)


@pytest.mark.parametrize("threads", [0, 1, 2, 64, 2**31 - 1, np.int32(3)])
def test_valid_num_threads(threads) -> None:
    want = ops.soft_argmax_3d(HM)
    got = ops.soft_argmax_3d(HM, num_threads=threads)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert ops.mqa_prior(Q, K, K, num_threads=threads).shape == Q.shape


@pytest.mark.parametrize(("call", "exc", "match"), [
    (lambda: ops.soft_argmax_3d(HM, None), TypeError, "mode must be a str"),
    (lambda: ops.soft_argmax_3d(HM, ["exact"]), TypeError, "mode must be a str"),
    (lambda: ops.soft_argmax_3d(HM, np.array("exact")), TypeError, "mode must be a str"),
    (lambda: ops.soft_argmax_3d(HM, "Exact"), ValueError, "mode must be one of"),
    (lambda: ops.soft_argmax_3d(HM.astype(np.complex64)), TypeError, "heatmaps must hold real numbers"),
    (lambda: ops.soft_argmax_3d(HM.astype(object)), TypeError, "heatmaps must hold real numbers"),
    (lambda: ops.soft_argmax_3d(None), TypeError, "heatmaps must be a numpy array"),
    (lambda: ops.mqa_prior(Q, K, K, prior_mode=1), TypeError, "prior_mode must be a str"),
    (lambda: ops.mqa_prior(Q, K, K, prior_mode="both"), ValueError, "prior_mode must be one of"),
    (lambda: ops.mqa_prior(Q, K, K, prior_scale=None), TypeError, "prior_scale must be a real number"),
    (lambda: ops.mqa_prior(Q, K, K, prior_scale="1"), TypeError, "prior_scale must be a real number"),
    (lambda: ops.mqa_prior(Q, K, K, prior_scale=True), TypeError, "prior_scale must be a real number"),
    (lambda: ops.mqa_prior(Q, K, K, prior_scale=10**400), ValueError, "prior_scale must be finite"),
    (lambda: ops.mqa_prior(Q, K, K, prior_scale=float("nan")), ValueError, "prior_scale must be finite"),
    (lambda: ops.mqa_prior(Q, K, K, causal=1), TypeError, "causal must be a bool"),
    (lambda: ops.mqa_prior(Q, K.astype(np.float64), K[:, :2]), ValueError, r"v must have shape \(B, N, d\)"),
    (lambda: ops.mqa_prior(Q, K[..., :3], K), ValueError, r"k must have shape \(B, N, d\)"),
    (lambda: ops.mqa_prior(Q, K, K, np.eye(2)), ValueError, r"prior must have shape \(N, N\)"),
    (lambda: ops.mqa_prior(Q, K, K, "adj"), TypeError, "prior must hold real numbers"),
    (lambda: ops.mqa_prior(Q.astype(bool), K, K), TypeError, "q must hold real numbers"),
    (lambda: ops.set_kernel_variant(None), TypeError, "name must be a str"),
    (lambda: ops.set_kernel_variant(2), TypeError, "name must be a str"),
    (lambda: ops.set_kernel_variant("sse9"), ValueError, "unknown or unsupported kernel variant"),
    (lambda: F.soft_argmax_3d(torch.from_numpy(HM), None), TypeError, "mode must be a str"),
    (lambda: F.mqa_prior(*map(torch.from_numpy, (Q, K, K)), prior=None), TypeError, "prior must be a str"),
])
def test_bad_arguments_are_named(call, exc, match) -> None:
    """Never nanobind's generic 'incompatible function arguments': the argument is named."""
    with pytest.raises(exc, match=match) as info:
        call()
    assert "incompatible function arguments" not in str(info.value)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=16000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--examples", type=int, default=10, help="failing calls to print")
    args = p.parse_args(argv)
    stats = fuzz(args.calls, args.seed)
    print(stats.line())
    print(json.dumps({"by_magnitude": stats.by_magnitude, "by_impl": stats.by_impl}))
    for line in stats.examples[: args.examples]:
        print("  " + line)
    return 0 if stats.crashes == 0 and stats.mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
