"""GPU-safe forms of the models: the same weights, written the way the mobile GPU delegate runs them.

The rules (DESIGN.md section 7, checked on the written file by :mod:`.check`): no tensor above rank 4
(the 3D heatmap is laid out as [1, H*W*D, J]); soft-argmax as per-coordinate sums of p * grid; no
batch-broadcast BATCH_MATMUL and no adj_x/adj_y flags (key transposes are explicit); both operands of
every elementwise op of the same rank (constants are built at full rank; scalar factors are folded
into the weights of the layer before them); GELU in its tanh form; fixed shapes, float32 only.

Each form wraps a trained module and reads its parameters at construction (they are copied into the
form's own layers, so the form stays valid however the source is used afterwards) and is tested
against the training form in tests/test_export_forms.py.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..models.convnextpose import IMAGENET_MEAN, IMAGENET_STD, ConvNeXtPose

__all__ = ["IPEMGpu", "LifterGpu", "PRMGpu", "PoseResNetGpu", "RTMOGpu", "StepGpu", "bin_grid", "soft_argmax_gpu",
           "taylor_prescale"]


def taylor_prescale(max_logit: float, bins: int, min_logit: float = -1.0) -> float:
    """The factor s of the fp16-safe Taylor form: p is proportional to ((x + 1) s)^2 + s^2.

    Chosen so that the sum over `bins` bins stays below 2^14 (fp16 max is 65504) when the peak logit is
    `max_logit` and a few dozen bins sit near it while every other bin may sit at `min_logit` (the Taylor
    weight grows again below x = -1, so very negative logits weigh like large ones), and the floor s^2 of
    a bin stays a normal fp16 number.
    """
    if not (max_logit > 0 and math.isfinite(max_logit)) or bins < 1 or not math.isfinite(min_logit):
        raise ValueError(f"need a positive finite max_logit, a finite min_logit and bins >= 1, got {max_logit}, "
                         f"{min_logit}, {bins}")
    low = min(min_logit + 1.0, 0.0) ** 2  # ((x + 1))^2 of the lowest logit, 0 if it is above -1
    # 64 bins at the peak, every bin at the lowest logit, plus the floor of all bins
    peak_mass = 64.0 * (max_logit + 1.0) ** 2 + bins * (low + 2.0)
    s = math.sqrt(2.0**14 / peak_mass)
    return float(min(max(s, 2.0**-6), 1.0))


def bin_grid(depth: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(grid (3, V, 1): x, y, z index of every bin in (h, w, d) order divided by its largest value, so
    in [0, 1]; extent (3, 1, 1): those largest values W-1, H-1, D-1)."""
    hh, ww, dd = torch.meshgrid(torch.arange(height), torch.arange(width), torch.arange(depth), indexing="ij")
    extent = torch.tensor([max(width - 1, 1), max(height - 1, 1), max(depth - 1, 1)], dtype=torch.float32)
    grid = torch.stack([ww, hh, dd]).reshape(3, -1, 1).float() / extent.reshape(3, 1, 1)
    return grid, extent.reshape(3, 1, 1)


def soft_argmax_gpu(flat: torch.Tensor, grid: torch.Tensor, extent: torch.Tensor, mode: str,
                    prescale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft-argmax over heatmaps laid out as (1, V, J) (V = H*W*D bins in (h, w, d) order).

    Args:
        flat: (1, V, J) logits.
        grid, extent: from bin_grid (bin indices scaled into [0, 1], so no weighted sum can exceed the
            normaliser, and the factors that scale them back).
        mode: 'taylor' (weights 1 + x + x^2/2 = ((x + 1)^2 + 1) / 2, computed as y^2 + s^2 with
            y = (x + 1) s: the same p, with every sum inside fp16's range), 'taylor_clamped' (x clamped
            at -1 first) or 'exact' (SOFTMAX along the bins of (1, J, V)).
        prescale: the factor s (see taylor_prescale), a tensor that broadcasts against (1, V, J).

    Returns:
        ((1, 3, J) expected x, y, z bin index per joint, (1, J) largest bin probability). The sums are
        taken before dividing by the normaliser, so every division has operands of one rank.
    """
    j = flat.shape[2]
    if mode == "exact":
        p = torch.softmax(flat.permute(0, 2, 1), dim=-1)  # (1, J, V)
        coords = [(p * grid[i].reshape(1, 1, -1)).sum(dim=-1) * extent[i] for i in range(3)]
        conf = p.amax(dim=-1)
    else:
        y = flat * prescale + prescale  # (x + 1) s
        if mode == "taylor_clamped":
            y = torch.relu(y)  # x >= -1 exactly when y >= 0
        f = y * y + prescale * prescale  # (1, V, J)
        total = f.sum(dim=1)  # (1, J)
        coords = [(f * grid[i : i + 1]).sum(dim=1) / total * extent[i] for i in range(3)]
        conf = f.amax(dim=1) / total
    return torch.cat(coords, dim=1).reshape(1, 3, j), conf


class IPEMGpu(nn.Module):
    """The IPEM for TFLite: an RGB crop (1, S, S, 3) float32 with values 0-255 -> joints (1, J*3)
    (x, y, z heatmap units per joint, row-major) and per-joint confidence (1, J) (the largest bin
    probability). ImageNet normalisation happens inside; the logit scale is folded into the final conv.

    Args:
        model: a trained ConvNeXtPose (its soft-argmax mode is used unless `mode` is given).
        mode: 'taylor', 'taylor_clamped' or 'exact'.
        max_logit: the largest heatmap logit to expect (measured on the model's outputs); sets the
            fp16 prescale of the Taylor form.
        min_logit: the smallest heatmap logit to expect (only matters below -1: see taylor_prescale).
    """

    def __init__(self, model: ConvNeXtPose, mode: str | None = None, max_logit: float = 1000.0,
                 min_logit: float = -1.0) -> None:
        super().__init__()
        import copy

        cfg = model.config
        self.mode = mode or model.softargmax_mode
        self.num_joints, (self.depth, self.height, self.width) = cfg.num_joints, cfg.heatmap_size
        body = copy.deepcopy(model).eval()
        self.mobilenet = body.mobilenet  # the MobileNetV2 backbone, or None for ConvNeXt's
        if self.mobilenet is None:
            self.stem, self.downsamples, self.stages, self.norm = body.stem, body.downsamples, body.stages, body.norm
        self.head = body.head
        self.final = body.final
        with torch.no_grad():  # fold the logit scale into the final conv
            self.final.weight.mul_(cfg.logit_scale)
            self.final.bias.mul_(cfg.logit_scale)
        s = taylor_prescale(max_logit, self.depth * self.height * self.width, min_logit)
        self.register_buffer("prescale", torch.full((1, 1, 1), s))
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 1, 1, 3)
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 1, 1, 3)
        self.register_buffer("in_scale", 1.0 / (255.0 * std))
        self.register_buffer("in_shift", -mean / std)
        grid, extent = bin_grid(self.depth, self.height, self.width)
        self.register_buffer("grid", grid)
        self.register_buffer("extent", extent)

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """(1, S, S, 3) 0-255 -> the final conv's output (1, J*D, H, W), channel j*D + d (logit scale folded)."""
        x = (image * self.in_scale + self.in_shift).permute(0, 3, 1, 2)
        if self.mobilenet is not None:
            return self.final(self.head(self.mobilenet(x)))
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.downsamples[i - 1](x)
            x = stage(x)
        return self.final(self.head(self.norm(x)))

    def heatmaps_flat(self, image: torch.Tensor) -> torch.Tensor:
        """(1, S, S, 3) 0-255 -> logits (1, H*W*D, J) in bin order (h, w, d)."""
        x = self.logits(image)  # (1, J*D, H, W)
        j, d, h, w = self.num_joints, self.depth, self.height, self.width
        x = x.permute(0, 2, 3, 1).reshape(1, h * w, j, d).permute(0, 1, 3, 2)
        return x.reshape(1, h * w * d, j)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        xyz, conf = soft_argmax_gpu(self.heatmaps_flat(image), self.grid, self.extent, self.mode, self.prescale)
        return {"joints": xyz.permute(0, 2, 1).reshape(1, self.num_joints * 3), "confidence": conf}


def _linear(src: nn.Linear, rows: slice | None = None, scale: float = 1.0, in_scale: float = 1.0) -> nn.Linear:
    """A copy of `src` (optionally only output rows `rows`), outputs times `scale`, inputs times `in_scale`."""
    w = src.weight.detach()[rows] if rows is not None else src.weight.detach()
    b = src.bias.detach()[rows] if rows is not None else src.bias.detach()
    out = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        out.weight.copy_(w * scale * in_scale)
        out.bias.copy_(b * scale)
    return out


class _MQAGpu(nn.Module):
    """MQAPrior over (B', N, C) tokens without batch broadcasts, adj flags or low-rank constants.

    Heads are stacked along the token axis. The logits q k^T are an elementwise product and a sum over
    d, (B', H*N, 1, d) * (B', 1, N, d) summed on the last axis: the converter fuses any transpose of k
    into BATCH_MATMUL's adj_y flag, which the Android GPU delegate ignores. p v is a BATCH_MATMUL with
    equal batch dims and no flags. 1/sqrt(d) is folded into the query weights; the prior
    (1 + lambda a Adj) or lambda a Adj is a (1, H*N, N) constant; the causal mask adds -1e4 (finite in
    fp16) above the diagonal.
    """

    def __init__(self, attn, n: int) -> None:
        super().__init__()
        h, d = attn.heads, attn.head_dim
        self.heads, self.head_dim, self.n = h, d, n
        self.q = _linear(attn.q, scale=1.0 / math.sqrt(d))
        self.k = _linear(attn.kv, slice(0, d))
        self.v = _linear(attn.kv, slice(d, 2 * d))
        self.proj = _linear(attn.proj)
        self.mode = attn.prior
        with torch.no_grad():
            adj = attn.prior_matrix()
            prior = None
            if adj is not None:
                scaled = attn.lam * attn.a.detach() * adj.detach()
                prior = (1.0 + scaled) if attn.prior == "mul" else scaled
                prior = prior.float().repeat(h, 1).reshape(1, h * n, n)
            mask = torch.zeros(n, n)
            if attn.causal:
                mask = torch.triu(torch.full((n, n), -1e4), diagonal=1)
        self.register_buffer("prior", prior if prior is not None else torch.zeros(1, h * n, n))
        self.register_buffer("mask", mask.repeat(h, 1).reshape(1, h * n, n))
        self.causal = bool(attn.causal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h, d = self.heads, self.head_dim
        q = self.q(x).reshape(b, n, h, d).permute(0, 2, 1, 3).reshape(b, h * n, 1, d)
        k = self.k(x).reshape(b, 1, n, d)
        logits = (q * k).sum(dim=-1)  # (B', H*N, N)
        if self.mode == "mul":
            logits = logits * self.prior
        elif self.mode == "add":
            logits = logits + self.prior
        if self.causal:
            logits = logits + self.mask
        out = torch.bmm(torch.softmax(logits, dim=-1), self.v(x))  # (B', H*N, d)
        out = out.reshape(b, h, n, d).permute(0, 2, 1, 3).reshape(b, n, c)
        return self.proj(out)


class _LayerNormGpu(nn.Module):
    """LayerNorm over the last axis of a rank-`rank` tensor, written out: the converter's own lowering
    flattened the tokens and paired a rank-1 gain and bias with rank-3 activations."""

    def __init__(self, norm: nn.LayerNorm, rank: int) -> None:
        super().__init__()
        shape = (1,) * (rank - 1) + (-1,)
        self.register_buffer("weight", norm.weight.detach().float().reshape(shape).clone())
        self.register_buffer("bias", norm.bias.detach().float().reshape(shape).clone())
        self.eps = float(norm.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(dim=-1, keepdim=True)
        var = (centred * centred).mean(dim=-1, keepdim=True)
        return centred * torch.rsqrt(var + self.eps) * self.weight + self.bias


class _BlockGpu(nn.Module):
    def __init__(self, block, n: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = _LayerNormGpu(block.norm1, 3), _LayerNormGpu(block.norm2, 3)
        self.attn = _MQAGpu(block.attn, n)
        self.fc1, self.fc2 = _linear(block.mlp.fc1), _linear(block.mlp.fc2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


class PRMGpu(nn.Module):
    """The PRM for TFLite: the last T per-frame poses (1, T, J, 3) root-relative mm, oldest first ->
    the refined pose of the newest frame (causal PRM) or of the centre frame (centred PRM), (1, J*3) mm.
    The input scale is folded into the embedding, its inverse into the head."""

    def __init__(self, prm) -> None:
        super().__init__()
        c = prm.config
        self.t, self.j, self.dim, self.kinds = c.num_frames, c.num_joints, c.dim, c.blocks
        self.anchor = c.num_frames - 1 if c.causal else c.num_frames // 2
        self.embed = _linear(prm.embed, in_scale=c.input_scale)
        with torch.no_grad():
            pos = prm.joint_pos.detach()[None, None] + prm.frame_pos.detach()[None, :, None]  # (1, T, J, C)
        self.register_buffer("pos", pos.float().contiguous())
        self.blocks = nn.ModuleList(
            _BlockGpu(b, c.num_joints if kind == "s" else c.num_frames) for kind, b in zip(c.blocks, prm.blocks,
                                                                                           strict=True))
        self.norm = _LayerNormGpu(prm.norm, 4)
        self.head = _linear(prm.head, scale=1.0 / c.input_scale)

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        t, j, ch = self.t, self.j, self.dim
        x = self.embed(poses) + self.pos  # (1, T, J, C)
        for kind, block in zip(self.kinds, self.blocks, strict=True):
            if kind == "s":
                x = block(x.reshape(t, j, ch)).reshape(1, t, j, ch)
            else:
                x = block(x.permute(0, 2, 1, 3).reshape(j, t, ch)).reshape(1, j, t, ch).permute(0, 2, 1, 3)
        a = self.anchor
        out = poses[:, a : a + 1] + self.head(self.norm(x[:, a : a + 1]))  # (1, 1, J, 3)
        return out.reshape(1, j * 3)


def _fold_conv_bn(conv: nn.Conv1d, bn: nn.BatchNorm1d | None) -> nn.Linear:
    """A Conv1d of width w applied to one group of w frames, as a Linear over the group's frames
    concatenated frame-major ((w * C_in) inputs), with the eval-mode BatchNorm after it folded in."""
    w = conv.weight.detach()  # (C_out, C_in, w)
    weight = w.permute(0, 2, 1).reshape(w.shape[0], -1)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros(w.shape[0])
    if bn is not None:
        g = bn.weight.detach() / torch.sqrt(bn.running_var.detach() + bn.eps)
        weight = weight * g[:, None]
        bias = (bias - bn.running_mean.detach()) * g + bn.bias.detach()
    out = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        out.weight.copy_(weight)
        out.bias.copy_(bias)
    return out


class LifterGpu(nn.Module):
    """The VideoPose3D lifter for TFLite: one window of R frames of normalised 2D keypoints
    (1, R, J_in, 2) -> the 3D pose of its output frame (1, J_out * 3), root-relative millimetres.

    The strided path of VideoPose3D (one output per window) written without convolutions: a block of
    width w sees groups of w consecutive frames, so it is a reshape to (1, T/w, w*C) and a Linear
    (FULLY_CONNECTED on the GPU) with its BatchNorm folded in; the 1x1 convolution is a Linear; the
    residual takes the aligned frame of each group (its centre, or its last frame if causal). The
    x1000 (metres to mm) is folded into the last layer. Ranks stay at 2, shapes are fixed.
    """

    def __init__(self, model) -> None:
        super().__init__()
        self.widths = tuple(model.filter_widths)
        self.causal = bool(model.causal)
        self.channels = model.channels
        self.j_in, self.j_out = model.num_joints_in, model.num_joints_out
        self.window = math.prod(self.widths)
        self.expand = _fold_conv_bn(model.expand_conv, model.expand_bn)
        self.convs = nn.ModuleList(_fold_conv_bn(b.conv, b.bn) for b in model.blocks)
        self.pointwise = nn.ModuleList(_fold_conv_bn(b.conv_1x1, b.bn_1x1) for b in model.blocks)
        shrink = _fold_conv_bn(model.shrink, None)
        with torch.no_grad():
            shrink.weight.mul_(1000.0)
            shrink.bias.mul_(1000.0)
        self.shrink = shrink

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        # Rank 2 throughout, rows = frame groups: FULLY_CONNECTED returns rank 2, and the residual add
        # must see operands of the same rank.
        t, c = self.window, self.channels
        w0 = self.widths[0]
        frames = t // w0
        x = torch.relu(self.expand(keypoints.reshape(frames, w0 * self.j_in * 2)))  # (T/w0, C)
        for w, conv, pw in zip(self.widths[1:], self.convs, self.pointwise, strict=True):
            frames //= w
            groups = x.reshape(frames, w * c)
            y = torch.relu(pw(torch.relu(conv(groups))))
            k = w - 1 if self.causal else w // 2
            x = groups[:, k * c : (k + 1) * c] + y
        return self.shrink(x).reshape(1, self.j_out * 3)


class StepGpu(nn.Module):
    """One streaming step in one graph: the IPEM on this frame's crop, decoding to root-relative
    millimetres, and the causal PRM over the previous T-1 poses and this one.

    Inputs: ``image`` (1, S, S, 3) 0-255 crop; ``frame`` (1, 9): the crop box x, y, w, h (pixels),
    fx, fy, cx, cy and the root depth (mm); ``past`` (1, T-1, 17, 3): the previous frames' IPEM poses
    (root-relative mm, oldest first; the caller keeps them, e.g. from this graph's ``pose`` output).
    Outputs: ``refined`` (1, 51) and ``pose`` (1, 51) root-relative mm (17 joints), ``pixels`` (1, 2J)
    and ``confidence`` (1, J) of the IPEM's joints. Decoding as mobpose.models.decode.decode_pose, with
    every elementwise op on (1, J) operands.
    """

    def __init__(self, ipem: ConvNeXtPose, prm, max_logit: float = 1000.0, min_logit: float = -1.0) -> None:
        super().__init__()
        if not prm.config.causal:
            raise ValueError("the streaming step needs a causal PRM")
        self.ipem = IPEMGpu(ipem, max_logit=max_logit, min_logit=min_logit)
        self.prm = PRMGpu(prm)
        self.j = ipem.config.num_joints
        self.jp = prm.config.num_joints
        self.depth, self.height, self.width = ipem.config.heatmap_size

    def forward(self, image: torch.Tensor, frame: torch.Tensor, past: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.ipem(image)
        xyz = out["joints"].reshape(1, self.j, 3)
        x, y, z = xyz[:, :, 0], xyz[:, :, 1], xyz[:, :, 2]  # (1, J) each
        f = [frame[:, i : i + 1] for i in range(9)]  # (1, 1) each
        u = x * (1.0 / self.width) * f[2] + f[0]
        v = y * (1.0 / self.height) * f[3] + f[1]
        zz = z * (2.0 / self.depth) * 1000.0 - 1000.0 + f[8]
        cx = (u - f[6]) / f[4] * zz
        cy = (v - f[7]) / f[5] * zz
        jp = self.jp
        rel = [c[:, :jp] - c[:, 0:1] for c in (cx, cy, zz)]
        pose = torch.stack(rel, dim=-1)  # (1, 17, 3)
        window = torch.cat([past, pose.reshape(1, 1, jp, 3)], dim=1)
        refined = self.prm(window)
        return {"refined": refined, "pose": pose.reshape(1, jp * 3),
                "pixels": torch.stack([u, v], dim=-1).reshape(1, self.j * 2), "confidence": out["confidence"]}


class RTMOGpu(nn.Module):
    """RTMO's dense graph for TFLite: a letterboxed RGB image (1, S, S, 3) float32 0-255 -> ``dense`` (1, A, C),
    every cell's raw predictions (mobpose.models.rtmo.dense_layout; the DCC and NMS run outside, in numpy:
    mobpose.runtime.people). Convolutions, ReLU6/ReLU/SiLU, nearest x2 upsampling, adds and concatenations; the
    ImageNet normalisation happens inside (one multiply-add at rank 4)."""

    def __init__(self, model) -> None:
        super().__init__()
        import copy

        self.body = copy.deepcopy(model).eval()
        del self.body.dcc  # outside the graph
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 1, 1, 3)
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 1, 1, 3)
        self.register_buffer("in_scale", 1.0 / (255.0 * std))
        self.register_buffer("in_shift", -mean / std)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.body((image * self.in_scale + self.in_shift).permute(0, 3, 1, 2))


class PoseResNetGpu(nn.Module):
    """PoseResNet for TFLite: a person crop (1, H, W, 3) float32 0-255 -> ``heatmaps`` (1, J, h, w) (decoded outside,
    in numpy: mobpose.runtime.topdown). Convolutions, transposed convolutions, BatchNorm (folded), ReLU/ReLU6,
    max pooling; the ImageNet normalisation inside.

    The ReLU after each transposed convolution is written (y + |y|) / 2 (exactly ReLU in floating point): the
    converter fuses a plain ReLU into TRANSPOSE_CONV as its activation, which LiteRT's GPU engine does not run
    (measured: transposed conv + BatchNorm + ReLU is not accelerated, each pair of them is)."""

    def __init__(self, model) -> None:
        super().__init__()
        import copy

        self.body = copy.deepcopy(model).eval()
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 1, 1, 3)
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 1, 1, 3)
        self.register_buffer("in_scale", 1.0 / (255.0 * std))
        self.register_buffer("in_shift", -mean / std)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.body.backbone((image * self.in_scale + self.in_shift).permute(0, 3, 1, 2))
        for layer in self.body.deconv:
            x = (x + x.abs()) * 0.5 if isinstance(layer, nn.ReLU) else layer(x)
        return self.body.final(x)
