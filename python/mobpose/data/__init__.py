"""Data layer: motion loaders, synthetic cameras, augmentations, estimator noise and windows.

World convention (all loaders): right-handed, millimetres, Z up, ground near z = 0 — the
Human3.6M world frame. Y-up sources (the CMU file, BVH) are rotated ``(x, y, z) -> (x, -z, y)``.
Camera space is that of :mod:`mobpose.camera` (X right, Y down, Z forward, mm).

Shared data is read in place from ``$MOBPOSE_DATA_DIR`` or ``<repo>/../shared/data``
(:mod:`mobpose.data.paths`). Importing this package needs only numpy; :class:`PoseWindowDataset`
(torch) is imported on first use.
"""

from __future__ import annotations

import importlib

from .augment import flip_intrinsics, flip_pose, random_bone_scale, random_global_scale, scale_bones
from .bvh import BvhError, BvhMotion, bvh_to_h36m17, map_to_h36m17, parse_bvh, read_bvh
from .cmu import CMU_FILE, CMU_FPS, cmu_path, load_cmu
from .h36m import (
    H36M_TEST_SUBJECTS,
    H36M_TRAIN_SUBJECTS,
    h36m_camera,
    h36m_cameras,
    h36m_sequences,
    h36m_views,
    load_h36m_2d,
    load_h36m_3d,
)
from .motion import WORLD_UNITS, WORLD_UP, MotionSequence, resample, summary, y_up_to_z_up
from .noise import DetectorNoise, EstimatorNoise, corrupt, corrupt_2d
from .paths import DATA_DIR_ENV, default_data_dir, resolve_data_file
from .synthetic_cameras import (
    Camera,
    PoseViews,
    camera_views,
    fit_camera,
    look_at,
    make_views,
    protocol_cameras,
    random_camera,
)

__all__ = [
    "CMU_FILE",
    "CMU_FPS",
    "DATA_DIR_ENV",
    "H36M_TEST_SUBJECTS",
    "H36M_TRAIN_SUBJECTS",
    "WORLD_UNITS",
    "WORLD_UP",
    "BvhError",
    "BvhMotion",
    "Camera",
    "DetectorNoise",
    "EstimatorNoise",
    "MotionSequence",
    "PoseViews",
    "PoseWindowDataset",
    "bvh_to_h36m17",
    "camera_views",
    "cmu_path",
    "corrupt",
    "corrupt_2d",
    "default_data_dir",
    "fit_camera",
    "flip_intrinsics",
    "flip_pose",
    "h36m_camera",
    "h36m_cameras",
    "h36m_sequences",
    "h36m_views",
    "load_cmu",
    "load_h36m_2d",
    "load_h36m_3d",
    "look_at",
    "make_views",
    "map_to_h36m17",
    "parse_bvh",
    "protocol_cameras",
    "random_bone_scale",
    "random_camera",
    "random_global_scale",
    "read_bvh",
    "resample",
    "resolve_data_file",
    "scale_bones",
    "summary",
    "y_up_to_z_up",
]


def __getattr__(name: str):
    if name == "PoseWindowDataset":
        return importlib.import_module(".sequences", __name__).PoseWindowDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
