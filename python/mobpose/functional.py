"""PyTorch reference of mobpose's two core operations, differentiable, with a dispatcher to the C++ kernels.

Dimensions: B batch, J joints, D x H x W heatmap volume (W fastest), heads H, N tokens, d head width.

- `soft_argmax_3d`: integral regression over a 3D heatmap (ConvNeXtPose), with the softmax or its
  2nd-order Taylor replacement f(x) = 1 + x + x^2/2 = ((x + 1)^2 + 1)/2 >= 1/2. f needs no max and no
  exp; it is not monotonic (minimum at x = -1), so 'taylor_clamped' uses f(max(x, -1)).
- `mqa_prior`: multi-query attention (H query heads, one key and one value head) whose pre-softmax
  logits carry a structural prior: multiplicative, L * (1 + s*A) (the poster's form), or additive,
  L + s*A, with s = lambda * a and A = Adj1 + Adj2.

`backend='torch'` runs the reference (autograd works); `'native'` runs the C++ kernel of
`mobpose._core` (inference only: CPU, float32, no gradient); `'auto'` takes the kernel when it can:
installed, CPU tensors, and no gradient needed. The C++ kernels agree with this reference within the
tolerances of tests/tolerances.py.
"""

from __future__ import annotations

import torch

from . import ops as _ops

__all__ = ["BACKENDS", "PRIOR_MODES", "SOFT_ARGMAX_MODES", "mqa_prior", "soft_argmax_3d", "taylor_weights"]

SOFT_ARGMAX_MODES = _ops.SOFT_ARGMAX_MODES
PRIOR_MODES = _ops.PRIOR_MODES
BACKENDS = ("torch", "native", "auto")


def _check_tensor(x, name: str, ndim: int, dims: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions {dims}, got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")


def _use_native(backend: str, *tensors: torch.Tensor | None) -> bool:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return False
    present = [t for t in tensors if t is not None]
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in present)
    cpu = all(t.device.type == "cpu" for t in present)
    if backend == "native":
        if not _ops.native_available():
            raise RuntimeError("backend='native' needs the compiled extension mobpose._core")
        if not cpu:
            raise ValueError("backend='native' needs CPU tensors")
        if grad:
            raise ValueError("backend='native' has no gradient: use backend='torch' for training")
        return True
    return _ops.native_available() and cpu and not grad


def _numpy_f32(t: torch.Tensor):
    return t.detach().to(torch.float32).contiguous().numpy()


def taylor_weights(x: torch.Tensor, clamp: bool = False) -> torch.Tensor:
    """Unnormalised 2nd-order Taylor weights f(x) = ((x + 1)^2 + 1) / 2 = 1 + x + x^2/2.

    Written this way f(-inf) = +inf rather than NaN. With clamp, f(max(x, -1)), monotonic in x.
    Truncation against exp: exp(x) - f(x) = x^3/6 + ..., so f is exp to 2nd order near 0 only; it is a
    different normaliser, not an approximation of the softmax values (DESIGN.md section 3).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if clamp:
        x = x.clamp_min(-1.0)
    return 0.5 * (x + 1.0).square() + 0.5


def soft_argmax_3d(
    heatmaps: torch.Tensor,
    mode: str = "exact",
    *,
    backend: str = "torch",
    return_peak: bool = False,
    num_threads: int = 1,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Integral regression: the expected (x, y, z) index of each joint's 3D heatmap.

    p = normalise(e(heatmap)) over the whole D*H*W volume, e = exp ('exact', softmax with max
    subtraction) or the Taylor weights; x = sum p * w, y = sum p * h, z = sum p * d (marginal sums,
    then expectation over 0..W-1, 0..H-1, 0..D-1).

    Args:
        heatmaps: (B, J, D, H, W) logits.
        mode: 'exact', 'taylor' or 'taylor_clamped'.
        backend: 'torch' (differentiable), 'native' (C++ kernel) or 'auto'.
        return_peak: also return the largest normalised probability per joint (a confidence).
        num_threads: threads of the native kernel (< 1: all cores).

    Returns:
        (B, J, 3) in heatmap units, and (B, J) peak if asked. A NaN in a joint's volume gives NaN for
        that joint.
    """
    _check_tensor(heatmaps, "heatmaps", 5, "(B, J, D, H, W)")
    if mode not in SOFT_ARGMAX_MODES:
        raise ValueError(f"mode must be one of {SOFT_ARGMAX_MODES}, got {mode!r}")
    if _use_native(backend, heatmaps):
        xyz, peak = _ops.soft_argmax_3d(_numpy_f32(heatmaps), mode, num_threads=num_threads)
        xyz_t = torch.from_numpy(xyz).to(heatmaps.dtype)
        return (xyz_t, torch.from_numpy(peak).to(heatmaps.dtype)) if return_peak else xyz_t

    b, j, d, h, w = heatmaps.shape
    flat = heatmaps.reshape(b, j, d * h * w)
    if mode == "exact":
        p = torch.softmax(flat, dim=-1)
    else:
        f = taylor_weights(flat, clamp=mode == "taylor_clamped")
        p = f / f.sum(dim=-1, keepdim=True)
    vol = p.reshape(b, j, d, h, w)
    dev, dt = heatmaps.device, p.dtype
    x = (vol.sum(dim=(2, 3)) * torch.arange(w, device=dev, dtype=dt)).sum(-1)
    y = (vol.sum(dim=(2, 4)) * torch.arange(h, device=dev, dtype=dt)).sum(-1)
    z = (vol.sum(dim=(3, 4)) * torch.arange(d, device=dev, dtype=dt)).sum(-1)
    xyz_t = torch.stack([x, y, z], dim=-1)
    if return_peak:
        return xyz_t, p.amax(dim=-1)
    return xyz_t


def mqa_prior(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    adj: torch.Tensor | None = None,
    *,
    scale: float | torch.Tensor = 1.0,
    prior: str = "mul",
    causal: bool = False,
    backend: str = "torch",
    num_threads: int = 1,
) -> torch.Tensor:
    """Multi-query attention with a structural prior on the pre-softmax logits.

    L = q k^T / sqrt(d) (the H query heads share k); 'mul': L * (1 + scale * adj); 'add':
    L + scale * adj; causal: L[i, j] = -inf for j > i; out = softmax_j(L) v.

    Args:
        q: (B, H, N, d) queries.
        k: (B, N, d) the shared key head.
        v: (B, N, d) the shared value head.
        adj: (N, N) prior Adj1 + Adj2, or None for plain attention.
        scale: lambda * a (a float or a 0-dim tensor, learnable in the PRM).
        prior: 'mul' (the poster's form) or 'add' (the ablation).
        causal: token i attends only to tokens j <= i (streaming).
        backend: 'torch', 'native' or 'auto'.
        num_threads: threads of the native kernel (< 1: all cores).

    Returns:
        (B, H, N, d).
    """
    _check_tensor(q, "q", 4, "(B, H, N, d)")
    _check_tensor(k, "k", 3, "(B, N, d)")
    _check_tensor(v, "v", 3, "(B, N, d)")
    bsz, heads, n, dh = q.shape
    for name, t in (("k", k), ("v", v)):
        if tuple(t.shape) != (bsz, n, dh):
            raise ValueError(
                f"{name} must have shape (B, N, d) = {(bsz, n, dh)} to match q {tuple(q.shape)}, "
                f"got {tuple(t.shape)}"
            )
    if adj is not None:
        _check_tensor(adj, "adj", 2, "(N, N)")
        if tuple(adj.shape) != (n, n):
            raise ValueError(f"adj must have shape (N, N) = {(n, n)}, got {tuple(adj.shape)}")
    if prior not in PRIOR_MODES:
        raise ValueError(f"prior must be one of {PRIOR_MODES}, got {prior!r}")
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    scale_t = scale if isinstance(scale, torch.Tensor) else None
    if scale_t is not None:
        if scale_t.numel() != 1:
            raise ValueError(f"scale must be a scalar, got shape {tuple(scale_t.shape)}")
        if not bool(torch.isfinite(scale_t.detach()).all()):
            raise ValueError(f"scale must be finite, got {scale_t.item()}")
    else:
        scale = _ops._finite_f32(scale, "scale")

    if _use_native(backend, q, k, v, adj, scale_t):
        out = _ops.mqa_prior(
            _numpy_f32(q), _numpy_f32(k), _numpy_f32(v),
            None if adj is None else _numpy_f32(adj),
            prior_scale=float(scale), prior_mode=prior, causal=causal, num_threads=num_threads,
        )
        return torch.from_numpy(out).to(q.dtype)

    # k, v and adj follow q's dtype (the native path computes everything in float32).
    k, v = k.to(q.dtype), v.to(q.dtype)
    adj = None if adj is None else adj.to(q.dtype)
    # Heads folded into the query axis: one (H*N, d) x (d, N) product per batch element.
    logits = torch.bmm(q.reshape(bsz, heads * n, dh), k.transpose(1, 2)).reshape(bsz, heads, n, n)
    logits = logits * dh**-0.5
    if adj is not None:
        logits = logits * (1.0 + scale * adj) if prior == "mul" else logits + scale * adj
    if causal:
        future = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
        logits = logits.masked_fill(future, float("-inf"))
    p = torch.softmax(logits, dim=-1)
    if causal and not bool(torch.isfinite(v).all()):
        # p @ v would give 0 * NaN = NaN for rows that never see a non-finite future value; sum
        # each row over its own past only, as the C++ kernel does (slow, only on non-finite input).
        rows = [p[:, :, i : i + 1, : i + 1] @ v[:, None, : i + 1, :] for i in range(n)]
        return torch.cat(rows, dim=2)
    return torch.bmm(p.reshape(bsz, heads * n, n), v).reshape(bsz, heads, n, dh)
