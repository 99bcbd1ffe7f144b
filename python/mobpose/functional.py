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

At the extremes of float32 both backends follow the same rules (README.md, "Kernels at the extremes of
float32"), in float32 as in float64: finite inputs give finite, mathematically right results (the
Taylor weights are scaled by a power of two, attention falls back to float64 where float32 logits or
sums would overflow); NaN and Inf give NaN (or pass through) at the same places as in every kernel
variant, which tests/test_kernel_extremes.py fuzzes.
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


def _tracing() -> bool:
    """Whether torch.compile or torch.export is tracing (no data-dependent checks then)."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


def _numpy_f32(t: torch.Tensor, name: str):
    """The tensor as float32 numpy for the kernels; finite values beyond float32 are refused (as ops does)."""
    t = t.detach()
    if t.dtype.itemsize > 4:
        big = t.abs() > torch.finfo(torch.float32).max
        bad = big & torch.isfinite(t)
        if bool(bad.any()):
            where = torch.nonzero(bad)[0].tolist()
            raise ValueError(f"{name} has a finite value beyond the float32 range: {float(t[tuple(where)]):.6g} at "
                             f"{where} (the native kernels compute in float32; use backend='torch')")
    return t.to(torch.float32).contiguous().numpy()


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


def _taylor_weights_scaled(x: torch.Tensor, clamp: bool) -> torch.Tensor:
    """The Taylor weights of each row of x (..., V) divided by c^2, c a power of two per row (detached).

    f(x) / c^2 = ((x + 1) / c)^2 / 2 + 1 / (2 c^2) with c = 2^floor(log2 max|x + 1|) clamped to [1, 2^126]:
    (x + 1) / c is at most 4, so no weight or sum overflows float32 for any finite logit (f itself does
    from |x| ~ 2.6e19, and its sums earlier), and the normalised p = f / sum f is unchanged (c cancels;
    a power of two even changes no rounding below |x + 1| ~ 2^126). Past c ~ 2^64 the constant term
    underflows to 0 against weights of order 1: a relative change below 2^-100. A NaN or Inf logit
    still gives NaN through f / sum f.
    """
    u = (x.clamp_min(-1.0) if clamp else x) + 1.0
    with torch.no_grad():
        top = u.abs().amax(dim=-1, keepdim=True)
        inv = torch.exp2(-torch.floor(torch.log2(top)).clamp(0.0, 126.0))
    return 0.5 * (u * inv).square() + 0.5 * inv.square()


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
        num_threads: threads of the native kernel (0: all cores).

    Returns:
        (B, J, 3) in heatmap units, and (B, J) peak if asked. Any finite logits give finite results
        (the Taylor weights are computed scaled, see `_taylor_weights_scaled`); a NaN or +Inf logit in
        a joint's volume gives NaN for that joint only, and so does -Inf in 'taylor' or a volume of
        nothing but -Inf in 'exact' (-Inf has weight 0 in 'exact', f(-1) = 1/2 in 'taylor_clamped').
    """
    _check_tensor(heatmaps, "heatmaps", 5, "(B, J, D, H, W)")
    _ops._choice(mode, "mode", SOFT_ARGMAX_MODES)
    _ops._threads(num_threads)
    if _use_native(backend, heatmaps):
        xyz, peak = _ops.soft_argmax_3d(_numpy_f32(heatmaps, "heatmaps"), mode, num_threads=num_threads)
        xyz_t = torch.from_numpy(xyz).to(heatmaps.dtype)
        return (xyz_t, torch.from_numpy(peak).to(heatmaps.dtype)) if return_peak else xyz_t

    b, j, d, h, w = heatmaps.shape
    flat = heatmaps.reshape(b, j, d * h * w)
    if mode == "exact":
        p = torch.softmax(flat, dim=-1)
    else:
        f = _taylor_weights_scaled(flat, clamp=mode == "taylor_clamped")
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


def _mqa_logits(q, k, adj, scale, prior: str, causal: bool):
    """(B, H, N, N) logits before and after the causal mask."""
    bsz, heads, n, dh = q.shape
    # Heads folded into the query axis: one (H*N, d) x (d, N) product per batch element.
    logits = torch.bmm(q.reshape(bsz, heads * n, dh), k.transpose(1, 2)).reshape(bsz, heads, n, n)
    logits = logits * dh**-0.5
    if adj is not None:
        logits = logits * (1.0 + scale * adj) if prior == "mul" else logits + scale * adj
    masked = logits
    if causal:
        future = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
        masked = logits.masked_fill(future, float("-inf"))
    return logits, masked


def _mqa_exact(q, k, v, adj, scale, prior: str, causal: bool) -> torch.Tensor:
    """The attention by the rules at the extremes, in float64 (the C++ reference's attention_row_ref).

    Logits in float64 never overflow from float32 inputs. A row with a NaN or +Inf logit, or with no
    logit above -Inf, is NaN. Keys whose logit is -Inf are not attended (their values never reach the
    row); an attended value of +-Inf passes through to its channel, NaN stays NaN (+Inf and -Inf in one
    channel give NaN), whatever the key's weight (it is positive, even where exp underflows).
    """
    dt = q.dtype
    q, k, v = q.double(), k.double(), v.double()
    adj = None if adj is None else adj.double()
    bsz, heads, n, dh = q.shape
    _, logits = _mqa_logits(q, k, adj, scale, prior, causal)
    inf = float("inf")
    row_nan = torch.isnan(logits).any(-1) | (logits == inf).any(-1) | (logits == -inf).all(-1)
    p = torch.softmax(logits.masked_fill(row_nan[..., None], 0.0), dim=-1).reshape(bsz, heads * n, n)
    finite_v = torch.isfinite(v)
    out = torch.bmm(p, torch.where(finite_v, v, 0.0))
    if not bool(finite_v.all()):
        attended = (logits > -inf).double().reshape(bsz, heads * n, n)
        pos = torch.bmm(attended, (v == inf).double()) > 0
        neg = torch.bmm(attended, (v == -inf).double()) > 0
        nan = (torch.bmm(attended, torch.isnan(v).double()) > 0) | (pos & neg)
        out = torch.where(pos, inf, torch.where(neg, -inf, out)).masked_fill(nan, float("nan"))
    out = out.reshape(bsz, heads, n, dh).masked_fill(row_nan[..., None], float("nan"))
    return out.to(dt)


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

    At the extremes (as every kernel variant): any finite inputs give the finite, mathematically right
    output (where the float32 logits or sums overflow, the call is recomputed in float64); a NaN or
    +Inf logit, or a row whose every logit is -Inf, gives a NaN row; a key with logit -Inf (or in the
    causal future) is not attended, even with a NaN value; an attended +-Inf value passes through to
    its channel (NaN for NaN or both signs).

    Args:
        q: (B, H, N, d) queries.
        k: (B, N, d) the shared key head.
        v: (B, N, d) the shared value head.
        adj: (N, N) prior Adj1 + Adj2, or None for plain attention.
        scale: lambda * a (a float or a 0-dim tensor, learnable in the PRM).
        prior: 'mul' (the poster's form) or 'add' (the ablation).
        causal: token i attends only to tokens j <= i (streaming).
        backend: 'torch', 'native' or 'auto'.
        num_threads: threads of the native kernel (0: all cores).

    Returns:
        (B, H, N, d).

    Raises:
        TypeError, ValueError: a bad argument, named in the message; ValueError also when the prior
            factor (1 + scale * adj, or scale * adj) is not finite in float32 (the kernels' precision).
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
    _ops._choice(prior, "prior", PRIOR_MODES)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    _ops._threads(num_threads)
    scale_t = scale if isinstance(scale, torch.Tensor) else None
    if scale_t is not None:
        if scale_t.numel() != 1:
            raise ValueError(f"scale must be a scalar, got shape {tuple(scale_t.shape)}")
        if not _tracing() and not bool(torch.isfinite(scale_t.detach().float()).all()):
            raise ValueError(f"scale must be finite, got {scale_t.item()}")
    else:
        scale = _ops._finite_f32(scale, "scale")
    if adj is not None and not _tracing():
        # The factor is float32 in the kernels: it must be finite there, on both backends.
        s32 = scale_t.detach().float() if scale_t is not None else torch.tensor(scale, dtype=torch.float32)
        factor = (1.0 if prior == "mul" else 0.0) + s32.to(adj.device) * adj.detach().float()
        if not bool(torch.isfinite(factor).all()):
            raise ValueError("adj and scale * adj must be finite in float32 (the prior factor "
                             f"{'1 + scale * adj' if prior == 'mul' else 'scale * adj'} is not)")

    if _use_native(backend, q, k, v, adj, scale_t):
        out = _ops.mqa_prior(
            _numpy_f32(q, "q"), _numpy_f32(k, "k"), _numpy_f32(v, "v"),
            None if adj is None else _numpy_f32(adj, "adj"),
            prior_scale=float(scale), prior_mode=prior, causal=causal, num_threads=num_threads,
        )
        return torch.from_numpy(out).to(q.dtype)

    # k, v and adj follow q's dtype (the native path computes everything in float32).
    k, v = k.to(q.dtype), v.to(q.dtype)
    adj = None if adj is None else adj.to(q.dtype)
    logits, masked = _mqa_logits(q, k, adj, scale, prior, causal)
    p = torch.softmax(masked, dim=-1)
    out = torch.bmm(p.reshape(bsz, heads * n, n), v).reshape(bsz, heads, n, dh)
    if _tracing():
        return out
    # The fast form stands when every logit and value is finite and so is every output (an overflowed
    # float32 dot product never comes back to a finite logit, an overflowed sum not to a finite output):
    # one check, one synchronisation. Otherwise (NaN / Inf inputs, or magnitudes beyond float32's
    # range in the logits or sums) the rules at the extremes decide, computed in float64.
    if bool(torch.isfinite(logits).all() & torch.isfinite(v).all() & torch.isfinite(out).all()):
        return out
    return _mqa_exact(q, k, v, adj, scale, prior, causal)
