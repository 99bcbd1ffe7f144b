"""Inference: from images to 3D poses with the shipped models (see :mod:`.image`)."""

from .image import crop_person, estimate_root_depth, load_image, predict_image

__all__ = ["crop_person", "estimate_root_depth", "load_image", "predict_image"]
