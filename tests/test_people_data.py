"""Composed multi-person images of LSPET people (mobpose.data.people): labels follow the people, items are
repeatable, the validation sets draw val rows only."""

from __future__ import annotations

import numpy as np
import pytest

from mobpose import lspet

try:
    lspet.load()
except FileNotFoundError as exc:  # pragma: no cover - the data are beside the repository here
    pytest.skip(str(exc), allow_module_level=True)

from mobpose.data.people import PeopleConfig, PeopleDataset, collate_people, val_set  # noqa: E402
from mobpose.skeleton import H36M_17  # noqa: E402


@pytest.mark.parametrize("kind", ["mosaic", "paste"])
def test_items_hold_people_with_boxes_around_their_joints(kind):
    ds = PeopleDataset(6, seed=2, config=PeopleConfig(size=128, kinds=(kind,), weights=(1.0,)))
    total = 0
    for i in range(len(ds)):
        it = ds[i]
        p = len(it["boxes"])
        total += p
        assert it["image"].shape == (128, 128, 3) and it["image"].dtype == np.uint8
        assert it["keypoints"].shape == (p, 17, 2) and it["labelled"].shape == (p, 17) == it["defined"].shape
        b = it["boxes"]
        assert ((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all() and (b >= 0).all() and (b <= 128).all()
        for kp, lab, box in zip(it["keypoints"], it["labelled"], b, strict=True):
            inside = kp[lab]
            assert (inside >= 0).all() and (inside <= 127).all()
            # labelled joints lie in their person's box (the box is the joints' box x1.15, clipped to a cell)
            assert (inside[:, 0] >= box[0] - 1).all() and (inside[:, 0] <= box[2] + 1).all()
        names = H36M_17.joint_names
        assert not it["labelled"][:, [names.index("pelvis"), names.index("spine"), names.index("neck_nose")]].any()
    assert total >= 6
    again = ds[3]
    np.testing.assert_array_equal(again["image"], ds[3]["image"])  # a pure function of (seed, epoch, index)


def test_mirrored_people_swap_left_and_right():
    from mobpose.data.people import _mirror

    names = H36M_17.joint_names
    le, re = names.index("left_elbow"), names.index("right_elbow")
    xy = np.zeros((17, 2), np.float32)
    xy[le], xy[re] = (10, 5), (30, 7)
    lab = np.zeros(17, bool)
    lab[le] = True
    m, mlab = _mirror(xy, lab, 100)
    # the person's own left elbow of the mirrored image is where the right one was, mirrored
    np.testing.assert_allclose(m[le], (100 - 1 - 30, 7))
    np.testing.assert_allclose(m[re], (100 - 1 - 10, 5))
    assert mlab[re] and not mlab[le]


def test_val_sets_are_fixed_and_from_val_rows():
    a, b = val_set("mosaic", count=3, size=128), val_set("mosaic", count=3, size=128)
    np.testing.assert_array_equal(a[2]["image"], b[2]["image"])
    assert min(a.rows) >= 9000 and min(val_set("paste", count=2, size=128).rows) >= 9000
    with pytest.raises(ValueError, match="mosaic"):
        val_set("render")
    batch = collate_people([a[0], a[1]])
    assert batch["image"].shape == (2, 3, 128, 128) and len(batch["boxes"]) == 2


def test_config_and_dataset_errors():
    with pytest.raises(ValueError, match="multiple of 32"):
        PeopleConfig(size=100)
    with pytest.raises(ValueError, match="kinds"):
        PeopleConfig(kinds=("crowd",), weights=(1.0,))
    with pytest.raises(ValueError, match="CMU poses"):
        PeopleDataset(4, config=PeopleConfig(size=128))  # render has a weight, no poses given
    with pytest.raises(IndexError):
        PeopleDataset(2, config=PeopleConfig(size=128, kinds=("paste",), weights=(1.0,)))[2]
