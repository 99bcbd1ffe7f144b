"""Tolerances of the C++ kernels (float32) against the PyTorch reference run in float64.

One table, `TOLERANCES`, each entry with the reason for its values; `assert_close` checks NaN/Inf
patterns first, then |got - want| <= atol + rtol * |want|, and reports the largest error.

The reference is computed in float64 (inputs cast to double), so a tolerance covers only the float
error of the kernel. Values are about 10x the largest error measured over every kernel variant of
this machine (reference, avx2, avx512) on the inputs of tests/test_parity.py. They are tighter than
kernels/tests/test_kernels.cc (2e-5 * extent + 1e-5 for coordinates, 2e-5 relative for the peak and
for attention), which compares kernels with each other and adds headroom for other CPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tol:
    """An absolute and a relative tolerance with the reason for them."""

    atol: float
    rtol: float
    why: str


TOLERANCES: dict[str, Tol] = {
    "soft_argmax_3d": Tol(
        atol=2e-4,
        rtol=0.0,
        why=(
            "xyz in heatmap units. Float sums of up to 64^3 weights; the error grows with the "
            "extent, not with the coordinate (a coordinate near 0 can carry the whole error), so it "
            "is absolute. Measured max 2.0e-5 (avx2, taylor, 64^3 with ~1% of bins at +1e4, rest "
            "-1e4); 1.1e-5 on the coin-flip +-1e4 volume; <= 2e-6 on random logits."
        ),
    ),
    "soft_argmax_3d_peak": Tol(
        atol=1e-12,
        rtol=6e-6,
        why=(
            "peak probability, relative to itself (it ranges from 1/V = 3.8e-6 to 1). Measured max "
            "relative error 6.4e-7 (taylor, 64^3, +-1e4); atol only guards an exact 0."
        ),
    ),
    "mqa_prior": Tol(
        atol=2e-5,
        rtol=0.0,
        why=(
            "outputs are convex combinations of v ~ N(0, 1) (max|v| ~ 4), so the error scales with "
            "max|v|, not with the output (which can be ~0): absolute. Float dot products of length "
            "<= 17 and softmax sums over <= 243 terms; measured max 1.7e-6 (avx2/avx512, all "
            "variants of the parity grid)."
        ),
    ),
}


def _as_f64(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def assert_close(got, want, key: str) -> None:
    """Asserts `got` matches `want` within `TOLERANCES[key]`.

    Args:
        got: numpy array or torch tensor (the kernel result).
        want: numpy array or torch tensor (the float64 reference).
        key: entry of `TOLERANCES`.

    Raises:
        AssertionError: on a shape mismatch, on differing NaN or +-Inf positions, or when an
            error exceeds atol + rtol * |want|; the message gives the largest error and where.
    """
    tol = TOLERANCES[key]
    g, w = _as_f64(got), _as_f64(want)
    assert g.shape == w.shape, f"{key}: shape {g.shape} != expected {w.shape}"
    g_nan, w_nan = np.isnan(g), np.isnan(w)
    assert np.array_equal(g_nan, w_nan), (
        f"{key}: NaN pattern differs: got NaN at {np.argwhere(g_nan & ~w_nan).tolist()[:5]}, "
        f"expected NaN at {np.argwhere(w_nan & ~g_nan).tolist()[:5]}"
    )
    g_inf, w_inf = np.isinf(g), np.isinf(w)
    assert np.array_equal(g_inf, w_inf) and np.array_equal(g[g_inf], w[w_inf]), (
        f"{key}: Inf pattern differs: got Inf at {np.argwhere(g_inf).tolist()[:5]}, "
        f"expected Inf at {np.argwhere(w_inf).tolist()[:5]}"
    )
    finite = np.isfinite(w)
    if not finite.any():
        return
    g0, w0 = np.where(finite, g, 0.0), np.where(finite, w, 0.0)
    err = np.abs(g0 - w0)
    bound = tol.atol + tol.rtol * np.abs(w0)
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert np.all(err <= bound), (
        f"{key}: max error {err.max():.3g} (atol={tol.atol:g}, rtol={tol.rtol:g}); worst excess at "
        f"{tuple(int(i) for i in worst)}: got {g[worst]!r}, want {w[worst]!r}"
    )


# The parity chain of the exported models (tests/test_parity_chain.py): each stage against the PyTorch
# training form run in float32, on the test-size models. Keys (family, stage). Units: IPEM joints in
# heatmap units (the test model has 8^3 bins), IPEM confidence a probability, PRM and lifter outputs mm.
# The values are about 10x the largest error measured here on every entry (printed by the test with -s;
# the PRM fp16 entries 5x: random 300 mm inputs, fp16 rounding alone is 0.25 mm there).
CHAIN: dict[tuple[str, str], Tol] = {
    ("ipem", "golden"): Tol(1e-4, 0.0, "PyTorch today vs when the fixture was written: the same float32 "
                                       "maths, op order may differ with the CPU's oneDNN/MKL code path"),
    ("ipem", "gpu_form"): Tol(2e-5, 0.0, "the GPU form in PyTorch: Taylor sums written per coordinate and "
                                          "prescaled for fp16; same float32 maths reordered"),
    ("ipem", "core"): Tol(2e-4, 0.0, "the C++ soft-argmax kernel on the PyTorch heatmaps (tolerance of "
                                     "'soft_argmax_3d' above)"),
    ("ipem", "tflite_cpu"): Tol(5e-5, 0.0, "XNNPACK float32: convolutions and the 512-bin sums reordered"),
    ("ipem", "gpu_f32"): Tol(5e-5, 0.0, "GPU engine with f32 enforced: reordered float32 sums"),
    ("ipem", "gpu_fp16"): Tol(0.06, 0.0, "GPU engine in its default fp16 (10-bit mantissa) over the whole "
                                         "network and the sums: ~1e-3 relative per op, accumulated"),
    ("ipem", "tflite_cpu_w16"): Tol(0.02, 0.0, "fp16-stored weights (rounded to 11 bits) run in float32"),
    ("ipem", "gpu_w16"): Tol(0.15, 0.0, "fp16 weights and fp16 arithmetic"),
    ("ipem_conf", "golden"): Tol(1e-6, 1e-4, "as ('ipem', 'golden'), relative to the peak"),
    # The shipped ipem-xs (tests/test_golden.py): 16x16x32 = 8192 bins per joint, trained Taylor logits
    # from -22 to 125 (scale 16 folded in), 12 ConvNeXt blocks. Measured: XNNPACK 6.9e-5 units.
    ("ipem_shipped", "golden"): Tol(2e-4, 0.0, "as ('ipem', 'golden') over a trained network's larger logits"),
    ("ipem_shipped", "tflite_cpu"): Tol(7e-4, 0.0, "XNNPACK float32: 12 blocks of convolutions and 8192-bin "
                                                   "Taylor sums of weights up to ~8e3, reordered"),
    ("ipem_shipped", "gpu_fp16"): Tol(0.06, 0.0, "as ('ipem', 'gpu_fp16'): the fp16 Taylor sums with the "
                                                 "export prescale"),
    ("ipem_shipped_conf", "golden"): Tol(1e-6, 1e-4, "as ('ipem_conf', 'golden')"),
    ("ipem_shipped_conf", "gpu_fp16"): Tol(4e-4, 0.0, "fp16 peak probability (~1e-2) after fp16 sums (4.2e-5 "
                                                      "measured)"),
    ("ipem_shipped_conf", "tflite_cpu"): Tol(4e-7, 0.0, "peak probability after the reordered sums (3.6e-8 "
                                                        "measured)"),

    ("ipem_conf", "gpu_form"): Tol(2e-7, 0.0, "peak probability: max over the prescaled Taylor weights"),
    ("ipem_conf", "core"): Tol(1e-12, 6e-6, "the C++ kernel's peak (tolerance of 'soft_argmax_3d_peak')"),
    ("ipem_conf", "tflite_cpu"): Tol(2e-7, 0.0, "reordered float32"),
    ("ipem_conf", "gpu_f32"): Tol(2e-7, 0.0, "reordered float32"),
    ("ipem_conf", "gpu_fp16"): Tol(1e-3, 0.0, "fp16 arithmetic"),
    ("ipem_conf", "tflite_cpu_w16"): Tol(5e-4, 0.0, "fp16-stored weights"),
    ("ipem_conf", "gpu_w16"): Tol(2e-3, 0.0, "fp16 weights and arithmetic"),
    ("prm", "golden"): Tol(2e-3, 0.0, "as ('ipem', 'golden'); outputs ~300 mm"),
    ("prm", "gpu_form"): Tol(1e-3, 0.0, "heads stacked on tokens, q.k as product+sum, LayerNorm written "
                                         "out: float32 reordered; outputs ~300 mm"),
    ("prm", "core"): Tol(1e-3, 1e-5, "the C++ PRM forward (float32, its own GEMM order)"),
    ("prm", "tflite_cpu"): Tol(2e-3, 0.0, "XNNPACK float32 (its GEMMs may use FMA in another order)"),
    ("prm", "gpu_f32"): Tol(2e-3, 0.0, "GPU engine float32"),
    ("prm", "gpu_fp16"): Tol(5.0, 0.0, "fp16 arithmetic on ~300 mm inputs: the residual input alone is "
                                       "rounded to 0.25 mm at 300 mm; attention logits and LayerNorm in fp16"),
    ("prm", "tflite_cpu_w16"): Tol(1.0, 0.0, "fp16-stored weights, float32 arithmetic"),
    ("prm", "gpu_w16"): Tol(5.0, 0.0, "fp16 weights and arithmetic"),
    ("lifter", "golden"): Tol(2e-3, 0.0, "as ('ipem', 'golden'); outputs ~500 mm"),
    ("lifter", "gpu_form"): Tol(5e-4, 0.0, "convolutions written as Linear layers with BatchNorm folded"),
    ("lifter", "tflite_cpu"): Tol(1e-3, 0.0, "XNNPACK float32"),
    ("lifter", "gpu_f32"): Tol(1e-3, 0.0, "GPU engine float32"),
    ("lifter", "gpu_fp16"): Tol(2.0, 0.0, "fp16 arithmetic; outputs ~500 mm are rounded to 0.25-0.5 mm"),
    ("lifter", "tflite_cpu_w16"): Tol(0.5, 0.0, "fp16-stored weights"),
    ("lifter", "gpu_w16"): Tol(2.0, 0.0, "fp16 weights and arithmetic"),
    # RTMO's dense output (both test backbones): raw logits, log distances and pose-vector channels of order 1.
    # Measured on this machine: 9.5e-7 (gpu_form, gpu_f32), 4.8e-7 (tflite_cpu), 6.5e-5 (tflite_cpu_w16),
    # 3.2e-3 (gpu_fp16, gpu_w16).
    ("rtmo", "gpu_form"): Tol(1e-5, 0.0, "the GPU form in PyTorch: the ImageNet normalisation as one multiply-add "
                                         "on the NHWC input, then the same convolutions"),
    ("rtmo", "tflite_cpu"): Tol(1e-5, 0.0, "XNNPACK float32: convolutions with BatchNorm folded, reordered"),
    ("rtmo", "gpu_f32"): Tol(1e-5, 0.0, "GPU engine float32: reordered convolution sums"),
    ("rtmo", "gpu_fp16"): Tol(0.03, 0.0, "GPU engine fp16 arithmetic through ~20 convolution layers, outputs ~1"),
    ("rtmo", "tflite_cpu_w16"): Tol(1e-3, 0.0, "fp16-stored weights, float32 arithmetic"),
    ("rtmo", "gpu_w16"): Tol(0.03, 0.0, "fp16 weights and arithmetic"),
    # PoseResNet's heatmaps (test variant, outputs of order 1). Measured: 1.5e-7 (gpu_form), 2.0e-7 (tflite_cpu),
    # 2.6e-7 (gpu_f32), 2.4e-4 (tflite_cpu_w16), 1.3e-3 (gpu_fp16, gpu_w16).
    ("poseresnet", "gpu_form"): Tol(2e-6, 0.0, "the GPU form in PyTorch: the ReLUs of the head written (y + |y|) / 2, "
                                               "the same float32 maths"),
    ("poseresnet", "tflite_cpu"): Tol(2e-6, 0.0, "XNNPACK float32: (transposed) convolutions reordered"),
    ("poseresnet", "gpu_f32"): Tol(3e-6, 0.0, "GPU engine float32"),
    ("poseresnet", "gpu_fp16"): Tol(0.015, 0.0, "GPU engine fp16 arithmetic"),
    ("poseresnet", "tflite_cpu_w16"): Tol(3e-3, 0.0, "fp16-stored weights, float32 arithmetic"),
    ("poseresnet", "gpu_w16"): Tol(0.015, 0.0, "fp16 weights and arithmetic"),
    ("rtmo_shipped", "golden"): Tol(1e-4, 0.0, "as ('ipem', 'golden'): the same float32 maths, op order may differ"),
    ("rtmo_shipped", "tflite_cpu"): Tol(1e-4, 0.0, "XNNPACK float32 on the float32 export, reordered"),
    ("rtmo_shipped", "gpu_fp16"): Tol(0.3, 0.0, "GPU engine fp16 through ~20 trained convolution layers (0.043 "
                                                "measured)"),
    ("step", "gpu_form"): Tol(2e-3, 0.0, "IPEM + decoding + PRM: heatmap-unit errors of the IPEM forms (1e-6) "
                                         "times ~1000 mm per unit at 4 m, then the PRM"),
    ("step", "tflite_cpu"): Tol(2e-2, 0.0, "as ('step', 'gpu_form') with XNNPACK's float32 order"),
    ("step", "gpu_f32"): Tol(2e-2, 0.0, "as ('step', 'gpu_form') on the GPU engine in float32"),
    ("step", "gpu_fp16"): Tol(25.0, 0.0, "fp16 heatmap coordinates (~0.006 units, 'ipem'/'gpu_fp16') times "
                                         "~100-1000 mm per unit, and fp16 depths near 4000 mm round to 2 mm"),
    ("step", "tflite_cpu_w16"): Tol(4.0, 0.0, "fp16-stored IPEM weights move joints by ~0.002 units"),
    ("step", "gpu_w16"): Tol(30.0, 0.0, "as ('step', 'gpu_fp16')"),
}

MEASURED: dict[tuple[str, str], float] = {}
"""Largest error seen per chain entry in this test session (printed at the end with -s)."""


def assert_chain(got, want, family: str, stage: str) -> None:
    """Asserts a chain stage's output is finite and within `CHAIN[(family, stage)]` of the reference."""
    tol = CHAIN[(family, stage)]
    g, w = _as_f64(got).reshape(-1), _as_f64(want).reshape(-1)
    assert g.shape == w.shape, f"{family}/{stage}: {g.size} values, expected {w.size}"
    assert np.isfinite(g).all(), f"{family}/{stage}: NaN or Inf in the output"
    assert np.isfinite(w).all(), f"{family}/{stage}: NaN or Inf in the reference"
    err = np.abs(g - w)
    MEASURED[(family, stage)] = max(MEASURED.get((family, stage), 0.0), float(err.max()))
    bound = tol.atol + tol.rtol * np.abs(w)
    i = int(np.argmax(err - bound))
    assert np.all(err <= bound), (
        f"{family}/{stage}: max error {err.max():.3g} (atol={tol.atol:g}, rtol={tol.rtol:g}; {tol.why}); "
        f"worst at {i}: got {g[i]!r}, want {w[i]!r}"
    )


PIPELINE: dict[str, dict] = {
    # tflite / native pipeline vs the torch pipeline on the same frames (test models, 64 px crops, 160 px
    # frames, ~4 m away). Each error feeds back through the tracked box, so it is bounded over a clip, not
    # per frame.
    # ~10x the largest measured (tflite: 4.6e-5 px, 2.6e-3 / 2.8e-3 / 3.2e-3 mm; native: half of that).
    "pixels": {"atol": 5e-4, "why": "XNNPACK / C++ soft-argmax float32 order: ~1e-6 heatmap units x ~20 px "
                                    "per unit, carried into the next box"},
    "pose": {"atol": 3e-2, "why": "heatmap-unit errors ~1e-6 x ~250 mm per depth bin at ~8 m"},
    "refined": {"atol": 3e-2, "why": "as 'pose', through the PRM (float32 order in XNNPACK / the C++ core)"},
    "camera": {"atol": 4e-2, "why": "as 'refined' plus the root position (depth from the tracked box)"},
}
"""Largest difference between backends' FramePose fields (mm or pixels) over a clip."""


PIPELINE_SHIPPED: dict[str, dict] = {
    # tflite / native vs torch with the shipped default IPEM (ipem-mnv2) + prm-causal on a 24-frame 320 px
    # clip (tests/test_shipped_infer.py), PoseResult fields, every backend posing the same boxes (torch's
    # tracked boxes replayed). The tflite and native backends run the shipped TFLite file, whose weights are
    # float16 after BatchNorm is folded into the convs (the safetensors hold float16 weights before
    # folding; folding and rounding again moves each weight by up to 2^-11 relative). Measured maxima
    # (tflite / native): joints_2d 0.056 / 0.056 px, joints_3d_ipem 0.63 / 0.64 mm, joints_3d 0.83 / 0.83 mm,
    # joints_3d_camera 0.84 / 0.85 mm, confidence 4.4e-6 / 4.8e-6; tolerances ~2.5x that.
    "joints_2d": {"atol": 0.15, "why": "fp16 folded weights: ~1e-3 heatmap bins x ~8 px per bin"},
    "joints_3d_ipem": {"atol": 1.5, "why": "as joints_2d; depth: ~0.01 bins x 62.5 mm per bin"},
    "joints_3d": {"atol": 2.0, "why": "the IPEM differences through the PRM's window (and its float32 order)"},
    "joints_3d_camera": {"atol": 2.0, "why": "as joints_3d plus the root pixel and the box-based root depth"},
    "confidence": {"atol": 2e-5, "why": "peak bin probability, ~5e-6 measured"},
}
