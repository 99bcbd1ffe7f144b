"""The synthetic image engine: people in real CMU poses, rendered with random bodies, looks and cameras.

See :mod:`.scene` (samples and scenes), :mod:`.body` (the sphere body), :mod:`.appearance`
(colours, textures, light, backgrounds), :mod:`.dataset` (the IPEM training and evaluation sets) and
:mod:`.sheet` (contact sheets).
"""

from .appearance import background, background_photos, random_appearance
from .body import MATERIALS, BodyShape, body_spheres, random_body_shape
from .scene import EngineConfig, Person, crop_affine, make_sample, make_scene, sample_person, sequence_frames

__all__ = [
    "MATERIALS",
    "BodyShape",
    "EngineConfig",
    "Person",
    "background",
    "background_photos",
    "body_spheres",
    "crop_affine",
    "make_sample",
    "make_scene",
    "random_appearance",
    "random_body_shape",
    "sample_person",
    "sequence_frames",
]
