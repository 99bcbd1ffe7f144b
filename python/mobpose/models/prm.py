"""PRM: the pose refinement module, a small spatio-temporal transformer of multi-query attention.

The PRM takes the per-frame 3D poses of the last T frames (from the IPEM, or any per-frame estimator)
and returns refined poses: refined = input + correction. Its layout follows the spatio-temporal
lifters MixSTE / KTPFormer / MotionBERT, made small for a phone:

- each joint's 3D position is embedded to C channels; a learnable joint embedding (J, C) and frame
  embedding (T, C) are added once;
- blocks alternate a spatial attention over the J joints of each frame and a temporal attention over
  the T frames of each joint, each pre-LN with an MLP (ratio 2) and residuals;
- every attention is multi-query (H query heads share one key and one value head; Shazeer 2019) and
  carries a structural prior on its pre-softmax logits L (DESIGN.md section 4):
  multiplicative (the poster's form) L * (1 + lambda * a * (Adj1 + Adj2)) or additive
  L + lambda * a * (Adj1 + Adj2), with Adj1 the fixed skeleton (spatial) or neighbouring-frame
  (temporal) adjacency, Adj2 a learnable N x N matrix (starts at 1e-6, symmetrised every pass) and a a
  learnable scalar;
- the temporal attention is either centred (every frame sees the whole window) or causal (frame t
  sees frames <= t), the streaming mode;
- head: LayerNorm, Linear(C -> 3).

Dimensions: B batch, T frames, J joints, C channels, H heads, d = C / H head width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from .. import functional as F
from ..skeleton import H36M_17, temporal_adjacency
from .registry import register_model

__all__ = ["PRM", "MQAPrior", "PRMConfig", "config_dict", "count_prm_macs", "prm_from_config"]

PRIOR_FORMS = ("mul", "add", "none")


class MQAPrior(nn.Module):
    """Multi-query attention over N tokens with a structural prior on the logits.

    q = x Wq split into H heads of d; k = x Wk, v = x Wv (one head each, width d);
    out = concat_h softmax(prior(q_h k^T / sqrt(d))) v, then Wo.

    Args:
        dim: C, token width.
        heads: H query heads; C must be divisible by H.
        adjacency: (N, N) fixed prior Adj1 (a buffer).
        prior: 'mul', 'add' or 'none'.
        lam: the hyperparameter lambda.
        learn_adj: add the learnable Adj2 (N, N).
        causal: token i attends only to tokens j <= i.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        adjacency: torch.Tensor,
        prior: str = "mul",
        lam: float = 1.0,
        learn_adj: bool = True,
        causal: bool = False,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        if prior not in PRIOR_FORMS:
            raise ValueError(f"prior must be one of {PRIOR_FORMS}, got {prior!r}")
        n = adjacency.shape[0]
        self.heads, self.head_dim, self.prior, self.lam, self.causal = heads, dim // heads, prior, lam, causal
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * self.head_dim)
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("adj_fixed", adjacency.clone().float(), persistent=True)
        self.adj_learned = nn.Parameter(torch.full((n, n), 1e-6)) if learn_adj and prior != "none" else None
        self.a = nn.Parameter(torch.ones(())) if prior != "none" else None

    def prior_matrix(self) -> torch.Tensor | None:
        """Adj1 + sym(Adj2), (N, N), or None without a prior."""
        if self.prior == "none":
            return None
        adj = self.adj_fixed
        if self.adj_learned is not None:
            adj = adj + 0.5 * (self.adj_learned + self.adj_learned.t())
        return adj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B', N, C) -> (B', N, C)."""
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.heads, self.head_dim).transpose(1, 2)  # (B', H, N, d)
        k, v = self.kv(x).split(self.head_dim, dim=-1)  # (B', N, d) each
        adj = self.prior_matrix()
        scale = self.lam * self.a if adj is not None else 1.0
        backend = "torch" if torch.is_grad_enabled() else "auto"
        out = F.mqa_prior(
            q, k.contiguous(), v.contiguous(), adj,
            scale=scale, prior=self.prior if adj is not None else "mul",
            causal=self.causal, backend=backend,
        )
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """Linear(C -> rC) -> GELU -> Linear(rC -> C)."""

    def __init__(self, dim: int, ratio: float = 2.0, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-LN transformer block: x + MQA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, adjacency: torch.Tensor, mlp_ratio: float, dropout: float,
                 **attn_kw) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MQAPrior(dim, heads, adjacency, **attn_kw)
        self.mlp = Mlp(dim, mlp_ratio, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


@dataclass(frozen=True)
class PRMConfig:
    """PRM hyperparameters.

    `blocks` lists the attention blocks in order: 's' spatial, 't' temporal. The default alternates
    four pairs ('stststst'); the poster's ablations are 'ssssssss' (spatial only, 2x depth) and
    'tttttttt' (temporal only).
    """

    num_joints: int = 17
    num_frames: int = 27
    dim: int = 64
    heads: int = 4
    blocks: str = "stststst"
    mlp_ratio: float = 2.0
    dropout: float = 0.0
    prior: str = "mul"
    lam: float = 1.0
    learn_adj: bool = True
    causal: bool = True
    input_scale: float = 1e-3  # mm -> m inside the network
    parents: tuple[int, ...] = field(default=H36M_17.parents)

    def __post_init__(self) -> None:
        if not self.blocks or set(self.blocks) - {"s", "t"}:
            raise ValueError(f"blocks must be a non-empty string of 's' and 't', got {self.blocks!r}")
        if len(self.parents) != self.num_joints:
            raise ValueError(f"parents has {len(self.parents)} entries for num_joints={self.num_joints}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")


def _spatial_adjacency(parents: tuple[int, ...]) -> torch.Tensor:
    from ..skeleton import Skeleton

    names = tuple(f"j{i}" for i in range(len(parents)))
    return torch.from_numpy(Skeleton("prm", tuple(parents), names).spatial_adjacency())


class PRM(nn.Module):
    """Pose refinement: (B, T, J, 3) per-frame poses in mm -> (B, T, J, 3) refined poses.

    Poses are root-relative camera-space millimetres. In causal mode output frame t depends only on
    input frames <= t, so the last frame of a window is the streaming estimate for the newest frame.
    """

    def __init__(self, config: PRMConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Linear(3, c.dim)
        self.joint_pos = nn.Parameter(torch.zeros(c.num_joints, c.dim))
        self.frame_pos = nn.Parameter(torch.zeros(c.num_frames, c.dim))
        nn.init.trunc_normal_(self.joint_pos, std=0.02)
        nn.init.trunc_normal_(self.frame_pos, std=0.02)
        adj_s = _spatial_adjacency(c.parents)
        adj_t = torch.from_numpy(temporal_adjacency(c.num_frames))
        common = dict(prior=c.prior, lam=c.lam, learn_adj=c.learn_adj)
        self.blocks = nn.ModuleList(
            Block(c.dim, c.heads, adj_s, c.mlp_ratio, c.dropout, causal=False, **common)
            if kind == "s"
            else Block(c.dim, c.heads, adj_t, c.mlp_ratio, c.dropout, causal=c.causal, **common)
            for kind in c.blocks
        )
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, 3)
        nn.init.zeros_(self.head.weight)  # start as the identity refinement
        nn.init.zeros_(self.head.bias)

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        """poses: (B, T, J, 3) mm -> (B, T, J, 3) mm, refined = poses + correction."""
        c = self.config
        if not isinstance(poses, torch.Tensor) or not poses.is_floating_point():
            raise TypeError(f"poses must be a floating-point torch.Tensor, got {type(poses).__name__}")
        if poses.dim() != 4 or tuple(poses.shape[1:]) != (c.num_frames, c.num_joints, 3):
            raise ValueError(
                f"poses must have shape (B, T, J, 3) = (B, {c.num_frames}, {c.num_joints}, 3), "
                f"got {tuple(poses.shape)}"
            )
        if not bool(torch.isfinite(poses).all()):
            raise ValueError("poses has non-finite values (NaN or Inf)")
        b, t, j, _ = poses.shape
        x = self.embed(poses * c.input_scale) + self.joint_pos + self.frame_pos[:, None, :]
        for kind, block in zip(c.blocks, self.blocks, strict=True):
            if kind == "s":  # tokens = joints of one frame
                x = block(x.reshape(b * t, j, c.dim)).reshape(b, t, j, c.dim)
            else:  # tokens = frames of one joint
                x = block(x.transpose(1, 2).reshape(b * j, t, c.dim)).reshape(b, j, t, c.dim).transpose(1, 2)
        return poses + self.head(self.norm(x)) / c.input_scale


def count_prm_macs(config: PRMConfig) -> int:
    """Multiply-accumulates of one forward pass over a window, per output frame.

    Counts linear layers and the two attention matmuls (q k^T and p v); in centred mode every window
    position is computed, in causal streaming only the newest frame would need to be, but the count
    here is the whole-window cost divided by T (a window per frame).
    """
    c = config
    d = c.dim // c.heads
    tokens = c.num_frames * c.num_joints
    macs = tokens * 3 * c.dim + tokens * c.dim * 3  # embedding + head
    for kind in c.blocks:
        n = c.num_joints if kind == "s" else c.num_frames
        linear = c.dim * c.dim + c.dim * 2 * d + c.dim * c.dim + 2 * c.dim * int(c.dim * c.mlp_ratio)
        attn = 2 * c.heads * n * d  # per token: q k^T row and p v row
        macs += tokens * (linear + attn)
    return macs // c.num_frames


def _build(overrides: dict, **defaults) -> PRM:
    cfg = replace(PRMConfig(**defaults), **overrides) if overrides else PRMConfig(**defaults)
    return PRM(cfg)


@register_model
def prm_small(**kwargs) -> PRM:
    """The default PRM: C=64, 4 heads, 4 spatial/temporal pairs, T=27, causal, multiplicative prior."""
    return _build(kwargs)


@register_model
def prm_test(**kwargs) -> PRM:
    """A tiny PRM for tests: C=16, 2 heads, one pair, T=9."""
    return _build(kwargs, dim=16, heads=2, blocks="st", num_frames=9)


def prm_from_config(config: dict) -> PRM:
    """Rebuilds a PRM from `config_dict` output (checkpoint metadata)."""
    d = dict(config)
    d["parents"] = tuple(d.get("parents", H36M_17.parents))
    return PRM(PRMConfig(**d))


def config_dict(config: PRMConfig) -> dict:
    """The config as plain JSON-able data (for checkpoint metadata)."""
    d = asdict(config)
    d["parents"] = list(config.parents)
    return d
