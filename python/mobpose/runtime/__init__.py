"""Inference: 3D poses from videos, images, arrays and live sources (:func:`infer`, the streaming
:class:`Pipeline`), the engines of each backend (:mod:`.backends`), person tracking (:mod:`.tracker`),
frame sources (:mod:`.sources`), drawing results (:mod:`.render`), one image with known boxes
(:mod:`.image`) and the PRM on the C++ core (:mod:`.native_prm`)."""

from .image import crop_person, estimate_root_depth, load_image, predict_image
from .infer import PoseResult, infer
from .native_prm import NativePRM
from .pipeline import FramePose, Pipeline
from .tracker import PersonFinder, PoseTracker

__all__ = ["FramePose", "NativePRM", "PersonFinder", "Pipeline", "PoseResult", "PoseTracker", "crop_person",
           "estimate_root_depth", "infer", "load_image", "predict_image"]
