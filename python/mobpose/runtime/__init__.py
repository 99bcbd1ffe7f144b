"""Inference: from images to 3D poses with the shipped models (see :mod:`.image`), and the PRM on the C++
core (see :mod:`.native_prm`)."""

from .image import crop_person, estimate_root_depth, load_image, predict_image
from .native_prm import NativePRM

__all__ = ["NativePRM", "crop_person", "estimate_root_depth", "load_image", "predict_image"]
