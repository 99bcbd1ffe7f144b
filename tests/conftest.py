"""Shared fixtures: the seeded test-size IPEM and PRMs written to safetensors files (with a temporary
TFLite export cache) and a short rendered clip, for the runtime tests; `variant`, each kernel variant in turn."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mobpose import checkpoint as ck
from mobpose import ops
from mobpose.export.golden import seeded_test_model
from mobpose.models.prm import config_dict

FRAMES = 12


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """(ipem path, causal prm path, centred prm path) of the seeded test models, and the export cache."""
    folder = tmp_path_factory.mktemp("models")
    ipem = seeded_test_model("ipem_test")
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(ipem.config).items()}
    paths = [ck.save(folder / "ipem.safetensors", ipem.state_dict(), model="convnextpose_test", config=cfg)]
    for case in ("prm_test_causal", "prm_test_centred"):
        prm = seeded_test_model(case)
        paths.append(ck.save(folder / f"{case}.safetensors", prm.state_dict(), model="prm_test",
                             config=config_dict(prm.config)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOBPOSE_CACHE_DIR", str(folder / "cache"))
        yield tuple(str(p) for p in paths)


@pytest.fixture(scope="session")
def clip():
    """(FRAMES, 160, 160, 3) uint8 renders of one person walking through a CMU test clip, and the
    first frame's person box."""
    from mobpose.data import load_cmu, random_camera
    from mobpose.data.motion import resample
    from mobpose.data.synthetic import EngineConfig, sequence_frames
    from mobpose.data.synthetic_cameras import fit_camera

    pos = resample(load_cmu(split="test")[0], 30.0).positions[:FRAMES]
    cam = fit_camera(random_camera(np.random.default_rng(3), image_size=(160, 160)), pos)
    frames = list(sequence_frames(np.random.default_rng(4), pos, cam, EngineConfig(augment=False), full_image=True))
    return np.stack([f["image"] for f in frames]), frames[0]["bbox"]


@pytest.fixture(params=tuple(ops.available_kernel_variants()))
def variant(request):
    """Activates each kernel variant this machine has in turn; 'auto' again afterwards."""
    try:
        ops.set_kernel_variant(request.param)
        yield request.param
    finally:
        ops.set_kernel_variant("auto")
