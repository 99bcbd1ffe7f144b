"""PyTorch module -> .tflite with litert-torch (DESIGN.md section 7), one named signature, fixed shapes."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch

from .runtime import native_output

__all__ = ["convert_module"]

logger = logging.getLogger(__name__)


def convert_module(module: torch.nn.Module, sample_inputs: dict[str, torch.Tensor], path: str | os.PathLike,
                   signature: str, fp16: bool = False) -> Path:
    """Converts `module` (in eval mode) for the shapes of `sample_inputs` and writes `path`.

    Inputs are named after the dict keys; a module returning a dict names its outputs after its keys.
    `fp16` stores the weights as float16 (dequantised on load; the GPU runs them natively).
    """
    import litert_torch

    path = Path(path)
    module = module.eval()
    kwargs = {}
    if fp16:
        from litert_torch.generative.quantize import quant_recipes

        kwargs["quant_config"] = quant_recipes.full_fp16_recipe()
    litert_torch.config.show_progress = False
    with warnings.catch_warnings(), native_output():
        warnings.simplefilter("ignore")  # deprecation noise of torch.export / litert-torch internals
        edge = litert_torch.signature(signature, module, sample_kwargs=sample_inputs).convert(**kwargs)
        edge.export(str(path))
    logger.info("wrote %s (%d bytes)", path, path.stat().st_size)
    return path
