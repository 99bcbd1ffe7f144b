"""PyTorch module -> .tflite with litert-torch (DESIGN.md section 7), one named signature, fixed shapes."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch

from .metadata import METADATA_NAME, read_metadata, write_metadata
from .runtime import native_output

__all__ = ["METADATA_NAME", "convert_module", "convert_signatures", "export_runtime_ipem", "export_tflite",
           "read_metadata", "write_metadata"]

logger = logging.getLogger(__name__)


def convert_module(module: torch.nn.Module, sample_inputs: dict[str, torch.Tensor], path: str | os.PathLike,
                   signature: str, fp16: bool = False) -> Path:
    """Converts `module` (in eval mode) for the shapes of `sample_inputs` and writes `path`.

    Inputs are named after the dict keys; a module returning a dict names its outputs after its keys.
    `fp16` stores the weights as float16 (dequantised on load; the GPU runs them natively).
    """
    return convert_signatures([(signature, module, sample_inputs)], path, fp16=fp16)


def convert_signatures(signatures: list[tuple[str, torch.nn.Module, dict[str, torch.Tensor]]],
                       path: str | os.PathLike, fp16: bool = False) -> Path:
    """Converts several (signature name, module, sample inputs) into one file; constants the modules
    share (the same weights) are stored once."""
    import litert_torch

    path = Path(path)
    kwargs = {}
    if fp16:
        from litert_torch.generative.quantize import quant_recipes

        kwargs["quant_config"] = quant_recipes.full_fp16_recipe()
    litert_torch.config.show_progress = False
    with warnings.catch_warnings(), native_output():
        warnings.simplefilter("ignore")  # deprecation noise of torch.export / litert-torch internals
        conv = litert_torch
        for name, module, sample in signatures:
            logger.info("converting signature %r (%s)", name, type(module).__name__)
            conv = conv.signature(name, module.eval(), sample_kwargs=sample)
        edge = conv.convert(**kwargs)
        edge.export(str(path))
    logger.info("wrote %s (%d bytes)", path, path.stat().st_size)
    return path


def _ipem_meta(model, form) -> dict:
    """The `mobpose` metadata of an exported IPEM (its ``ipem`` signature)."""
    from ..skeleton import H36M_18

    s = model.config.input_size
    d, h, w = model.heatmap_size
    return {
        "kind": "ipem", "model": "convnextpose", "config": {k: list(v) if isinstance(v, tuple) else v
                                                           for k, v in vars(model.config).items()},
        "inputs": {"image": f"(1, {s}, {s}, 3) float32 RGB crop, values 0-255 (ImageNet mean/std applied "
                            "inside); the crop of process_bbox(box) (square, x1.25)"},
        "outputs": {"joints": f"(1, {model.config.num_joints * 3}) float32: x, y, z per joint, row-major, in "
                              f"heatmap units (x in [0, {w - 1}], y in [0, {h - 1}], z in [0, {d - 1}])",
                    "confidence": f"(1, {model.config.num_joints}) float32: the largest bin probability"},
        "joint_names": list(H36M_18.joint_names[: model.config.num_joints]),
        "heatmap_size": [d, h, w], "depth_range_mm": 2000.0, "softargmax": form.mode,
        "taylor_prescale": float(form.prescale.flatten()[0]),
        "decode": "u = x / W * crop_w + crop_x, v likewise; Z = (z / D * 2 - 1) * 1000 + root_depth; "
                  "X = (u - cx) / fx * Z, Y = (v - cy) / fy * Z (mobpose.models.decode.decode_pose)",
    }


class IPEMHeatmaps(torch.nn.Module):
    """The IPEM's form that stops at the heatmap logits: (1, S, S, 3) 0-255 -> ``heatmaps`` (1, J, D*H*W)
    (bins in (d, h, w) order, the logit scale folded in): the input of the C++ soft-argmax kernel."""

    def __init__(self, form) -> None:
        super().__init__()
        self.form = form

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.form
        return {"heatmaps": f.logits(image).reshape(1, f.num_joints, f.depth * f.height * f.width)}


def export_runtime_ipem(model, out: str | os.PathLike, *, fp16: bool = True, max_logit: float = 1000.0,
                        min_logit: float = -1.0, check: bool = True) -> dict:
    """The IPEM file the inference runtime runs: one .tflite with two signatures sharing the weights,
    ``ipem`` (as :func:`export_tflite`: joints and confidence, soft-argmax in the graph; the tflite
    backend) and ``heatmaps`` (the logits for the C++ soft-argmax; the native backend).

    Args:
        model: a ConvNeXtPose, or a shipped name / checkpoint path.
        out: the .tflite file to write.
        fp16: float16 weights (the shipped weights are float16 already, so nothing is lost).
        max_logit, min_logit, check: as :func:`export_tflite`.

    Returns:
        {'path', 'bytes', 'signatures', 'metadata', 'check'}.
    """
    from ..models.convnextpose import ConvNeXtPose
    from .check import GpuCompatError, check_gpu_compat
    from .forms import IPEMGpu

    if isinstance(model, str | os.PathLike):
        from ..pretrained import load_model

        model = load_model(str(model))
    if not isinstance(model, ConvNeXtPose):
        raise ValueError(f"export_runtime_ipem takes an IPEM (ConvNeXtPose), got {type(model).__name__}")
    out = Path(out)
    form = IPEMGpu(model.eval(), max_logit=max_logit, min_logit=min_logit).eval()
    s = model.config.input_size
    d, h, w = model.heatmap_size
    sample = {"image": torch.rand(1, s, s, 3, generator=torch.Generator().manual_seed(0)) * 255}
    meta = _ipem_meta(model, form)
    meta["signatures"] = {
        "ipem": {"outputs": dict(meta["outputs"])},
        "heatmaps": {"outputs": {"heatmaps": f"(1, {model.config.num_joints}, {d * h * w}) float32 heatmap logits, "
                                             f"bins in (d, h, w) order of ({d}, {h}, {w}), logit scale applied: "
                                             f"soft-argmax them with mode {form.mode!r}"}}}
    meta.update(fp16_weights=fp16, exporter="mobpose.export.export_runtime_ipem")
    convert_signatures([("ipem", form, sample), ("heatmaps", IPEMHeatmaps(form), sample)], out, fp16=fp16)
    write_metadata(out, meta)
    report = check_gpu_compat(out)
    if check and not report.ok:
        raise GpuCompatError(report)
    return {"path": str(out), "bytes": out.stat().st_size, "signatures": ["ipem", "heatmaps"], "metadata": meta,
            "check": report.to_dict()}


def export_tflite(model, out: str | os.PathLike, *, fp16: bool = False, max_logit: float = 1000.0,
                  min_logit: float = -1.0, check: bool = True, input_size: int | None = None) -> dict:
    """Exports an IPEM (ConvNeXtPose), a PRM, a VideoPose3D lifter or RTMO's dense graph to a .tflite file that
    runs on the mobile GPU delegate.

    The model goes through its GPU-safe form (mobpose.export.forms), is converted with litert-torch,
    gets the `mobpose` JSON metadata (what the tensors mean, joint order, units, input normalisation,
    heatmap size or window) and is checked with :func:`mobpose.export.check.check_gpu_compat`.

    Args:
        model: a module, or a shipped name / checkpoint path for mobpose.load_model.
        out: the .tflite file to write.
        fp16: store the weights as float16 (half the size; the GPU computes in fp16 by default anyway).
        max_logit: the largest heatmap logit the IPEM produces (sets the fp16 prescale of the Taylor form).
        min_logit: the smallest heatmap logit the IPEM produces (matters for the prescale below -1).
        check: raise GpuCompatError when the written file breaks a GPU-delegate rule.
        input_size: RTMO only: the square input side (default the model's config).

    Returns:
        {'path', 'bytes', 'signature', 'metadata', 'check'} (check: the report as a dict).

    Raises:
        ValueError: an unsupported model; GpuCompatError (a ValueError) listing every violation.
    """
    from ..models.convnextpose import ConvNeXtPose
    from ..models.poseresnet import PoseResNet
    from ..models.prm import PRM
    from ..models.rtmo import RTMO, dense_layout
    from ..models.videopose3d import TemporalModel
    from ..skeleton import H36M_17
    from .check import GpuCompatError, check_gpu_compat
    from .forms import IPEMGpu, LifterGpu, PoseResNetGpu, PRMGpu, RTMOGpu

    if isinstance(model, str | os.PathLike):
        from ..pretrained import load_model

        logger.info("export: loading %s", model)
        model = load_model(str(model))
    out = Path(out)
    gen = torch.Generator().manual_seed(0)
    if isinstance(model, ConvNeXtPose):
        form = IPEMGpu(model, max_logit=max_logit, min_logit=min_logit)
        s = model.config.input_size
        inputs = {"image": torch.rand(1, s, s, 3, generator=gen) * 255}
        d, h, w = model.heatmap_size
        signature = "ipem"
        meta = _ipem_meta(model, form)
    elif isinstance(model, PRM):
        form = PRMGpu(model)
        c = model.config
        inputs = {"poses": torch.randn(1, c.num_frames, c.num_joints, 3, generator=gen) * 300}
        signature = "prm"
        meta = {
            "kind": "prm", "model": "prm", "window": c.num_frames, "causal": c.causal, "anchor": form.anchor,
            "inputs": {"poses": f"(1, {c.num_frames}, {c.num_joints}, 3) float32: root-relative camera-space "
                                "poses in mm of the last T frames, oldest first"},
            "outputs": {"output_0": f"(1, {c.num_joints * 3}) float32: the refined pose of frame "
                                    f"{form.anchor} of the window (mm, row-major x, y, z per joint)"},
            "joint_names": list(H36M_17.joint_names[: c.num_joints]),
        }
    elif isinstance(model, TemporalModel):
        form = LifterGpu(model)
        r = form.window
        inputs = {"keypoints": torch.randn(1, r, model.num_joints_in, 2, generator=gen) * 0.3}
        signature = "lifter"
        meta = {
            "kind": "lifter", "model": "videopose3d", "window": r, "causal": form.causal,
            "anchor": model.frame_offset, "config": {k: list(v) if isinstance(v, tuple) else v
                                                     for k, v in model.config.items()},
            "inputs": {"keypoints": f"(1, {r}, {model.num_joints_in}, 2) float32: 2D keypoints of the last {r} "
                                    "frames, oldest first, in normalised camera coordinates ((u - cx) / fx, "
                                    "(v - cy) / fy)"},
            "outputs": {"output_0": f"(1, {model.num_joints_out * 3}) float32: the 3D pose of frame "
                                    f"{model.frame_offset} of the window, root-relative camera-space mm, "
                                    "row-major x, y, z per joint"},
            "joint_names": list(H36M_17.joint_names[: model.num_joints_out]),
        }
    elif isinstance(model, PoseResNet):
        form = PoseResNetGpu(model)
        c = model.config
        hh, ww = c.input_height, c.input_width
        inputs = {"image": torch.rand(1, hh, ww, 3, generator=gen) * 255}
        signature = "poseresnet"
        h, w = c.heatmap_size
        meta = {
            "kind": "poseresnet", "model": "poseresnet", "input_size": [hh, ww], "heatmap_size": [h, w],
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(c).items()},
            "inputs": {"image": f"(1, {hh}, {ww}, 3) float32 RGB crop, values 0-255 (ImageNet mean/std applied "
                                "inside): the person box widened to W/H and x1.25 (mobpose.runtime.topdown)"},
            "outputs": {"output_0": f"(1, {c.num_joints}, {h}, {w}) float32 heatmaps (argmax + quarter offset, "
                                    "mobpose.runtime.topdown.decode_heatmaps)"},
            "joint_names": list(H36M_17.joint_names[: c.num_joints]),
        }
    elif isinstance(model, RTMO):
        form = RTMOGpu(model)
        s = input_size or model.config.input_size
        if s % 32 or s < 64:
            raise ValueError(f"input_size must be a multiple of 32, at least 64, got {s}")
        inputs = {"image": torch.rand(1, s, s, 3, generator=gen) * 255}
        signature = "rtmo"
        lay = dense_layout(model.config)
        cells = sum((s // st) ** 2 for st in (16, 32))
        meta = {
            "kind": "rtmo", "model": "rtmo", "input_size": s,
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(model.config).items()},
            "inputs": {"image": f"(1, {s}, {s}, 3) float32 RGB, values 0-255, the image letterboxed into the square "
                                "(scaled to fit, centred, grey 114 around it; mobpose.runtime.people.letterbox); "
                                "ImageNet mean/std applied inside"},
            "outputs": {"dense": f"(1, {cells}, {lay['pose'].stop}) float32: per cell (stride-16 cells row-major, "
                                 "then stride 32) " + ", ".join(f"{k} [{v.start}:{v.stop}]" for k, v in lay.items())
                                 + " (mobpose.runtime.people.postprocess decodes them; the DCC's weights are in "
                                   "the model's safetensors file)"},
            "joint_names": list(H36M_17.joint_names[: model.config.num_joints]),
        }
    else:
        raise ValueError("export supports ConvNeXtPose (IPEM), PRM, VideoPose3D lifter, RTMO and PoseResNet models, "
                         "got "
                         f"{type(model).__name__}")
    meta.update(fp16_weights=fp16, exporter="mobpose.export.export_tflite")
    logger.info("export: converting %s (%s form) to %s with litert-torch", type(model).__name__, signature, out)
    convert_module(form, inputs, out, signature, fp16=fp16)
    logger.info("export: writing the mobpose metadata into %s", out)
    write_metadata(out, meta)
    logger.info("export: checking %s against the GPU delegate's rules", out)
    report = check_gpu_compat(out)
    logger.info("export: %s, %d bytes, GPU check %s", out, out.stat().st_size, "passed" if report.ok else "FAILED")
    if check and not report.ok:
        raise GpuCompatError(report)
    return {"path": str(out), "bytes": out.stat().st_size, "signature": signature, "metadata": meta,
            "check": report.to_dict()}


def export_step(ipem, prm, out: str | os.PathLike, *, fp16: bool = False, max_logit: float = 1000.0,
                min_logit: float = -1.0, check: bool = True) -> dict:
    """Exports the streaming step, IPEM + decoding + causal PRM, as one graph (forms.StepGpu).

    Args:
        ipem, prm: modules or shipped names / checkpoint paths (the PRM must be causal).
        out, fp16, max_logit, min_logit, check: as :func:`export_tflite`.

    Returns:
        {'path', 'bytes', 'signature', 'metadata', 'check'}.
    """
    from ..skeleton import H36M_17, H36M_18
    from .check import GpuCompatError, check_gpu_compat
    from .forms import StepGpu

    if isinstance(ipem, str | os.PathLike) or isinstance(prm, str | os.PathLike):
        from ..pretrained import load_model

        logger.info("export: loading %s and %s", ipem, prm)
        ipem = load_model(str(ipem)) if isinstance(ipem, str | os.PathLike) else ipem
        prm = load_model(str(prm)) if isinstance(prm, str | os.PathLike) else prm
    form = StepGpu(ipem.eval(), prm.eval(), max_logit=max_logit, min_logit=min_logit)
    out = Path(out)
    s, t, j, jp = ipem.config.input_size, prm.config.num_frames, ipem.config.num_joints, prm.config.num_joints
    gen = torch.Generator().manual_seed(0)
    inputs = {"image": torch.rand(1, s, s, 3, generator=gen) * 255,
              "frame": torch.tensor([[0.0, 0.0, float(s), float(s), 1000.0, 1000.0, s / 2, s / 2, 4000.0]]),
              "past": torch.randn(1, t - 1, jp, 3, generator=gen) * 300}
    meta = {
        "kind": "step", "model": "convnextpose+prm", "window": t, "causal": True,
        "heatmap_size": list(ipem.config.heatmap_size), "depth_range_mm": 2000.0, "softargmax": form.ipem.mode,
        "taylor_prescale": float(form.ipem.prescale.flatten()[0]),
        "inputs": {"image": f"(1, {s}, {s}, 3) float32 RGB crop, 0-255, the crop of process_bbox(box)",
                   "frame": "(1, 9) float32: crop box x, y, w, h (px), fx, fy, cx, cy, root depth (mm)",
                   "past": f"(1, {t - 1}, {jp}, 3) float32: the previous frames' `pose` outputs, oldest first "
                           "(repeat the first frame's at the start of a stream)"},
        "outputs": {"refined": f"(1, {jp * 3}) float32: the PRM-refined pose of this frame, root-relative "
                               "camera-space mm",
                    "pose": f"(1, {jp * 3}) float32: the IPEM pose of this frame, root-relative mm",
                    "pixels": f"(1, {j * 2}) float32: u, v per joint in image pixels",
                    "confidence": f"(1, {j}) float32: the largest bin probability per joint"},
        "joint_names": list(H36M_18.joint_names[:j]), "prm_joint_names": list(H36M_17.joint_names[:jp]),
        "fp16_weights": fp16, "exporter": "mobpose.export.export_step",
    }
    logger.info("export: converting the streaming step (IPEM + decoding + PRM) to %s with litert-torch", out)
    convert_module(form, inputs, out, "step", fp16=fp16)
    logger.info("export: writing the mobpose metadata into %s", out)
    write_metadata(out, meta)
    logger.info("export: checking %s against the GPU delegate's rules", out)
    report = check_gpu_compat(out)
    logger.info("export: %s, %d bytes, GPU check %s", out, out.stat().st_size, "passed" if report.ok else "FAILED")
    if check and not report.ok:
        raise GpuCompatError(report)
    return {"path": str(out), "bytes": out.stat().st_size, "signature": "step", "metadata": meta,
            "check": report.to_dict()}
