"""The shipped IPEMs on held-out synthetic renders of the CMU test split (the protocol of docs/MODELS.md, on
fewer renders), each on the kind of body it was trained on: the error is well below that of predicting the
mean pose, and the network tells left limbs from right ones (a network that cannot hedges each pair onto its
midpoint: lr_separation near 0)."""

from __future__ import annotations

import pytest

import mobpose

RENDERS = 128
# Measured on these 128 renders (docs/MODELS.md has the 1024-render figures): the shipped ipem-xs on sphere
# bodies 121.4 mm against the mean pose's 180.4 (ratio 0.67), lr_separation 0.70; the ipem-xs shipped before
# the facing head 147.2 mm (ratio 0.82), lr_separation 0.49: it fails both bounds. On the other kind of body a
# network is no better than the mean pose (ipem-xs on mesh bodies: 236 mm against 208), as each kind of render
# is learned only by training on it (docs/MODELS.md, "Mesh bodies").
MAX_RATIO = 0.75
MIN_LR_SEPARATION = 0.58


@pytest.mark.parametrize("name, bodies", [("ipem-xs", "spheres"), ("ipem-mnv2", "mesh")])
def test_shipped_ipem_is_well_below_the_mean_pose(name: str, bodies: str) -> None:
    from mobpose.train.ipem_stage import evaluate_ipem, ipem_eval_set

    if name not in mobpose.list_pretrained():
        pytest.skip(f"{name} is not shipped in this tree")
    model = mobpose.load_model(name)
    report = evaluate_ipem(model, ipem_eval_set(model, RENDERS, bodies=bodies))
    assert report["samples"] == RENDERS
    assert report["mpjpe"] < MAX_RATIO * report["mean_pose_mpjpe"], report
    assert report["lr_separation"] > MIN_LR_SEPARATION, report
