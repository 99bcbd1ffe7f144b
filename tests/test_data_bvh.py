"""Tests for mobpose.data.bvh on small BVH files with known geometry."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from mobpose.data import BvhError, bvh_to_h36m17, parse_bvh, read_bvh
from mobpose.data.bvh import BVH_UNITS_MM
from mobpose.skeleton import H36M_17

CHAIN = """\
HIERARCHY
ROOT A
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT B
  {
    OFFSET 1 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 1 0 0
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.0333333
0 0 0 0 0 0 0 0 0
1 2 3 90 0 0 0 0 0
0 0 0 90 0 0 90 0 0
"""


def test_chain_rotated_about_z() -> None:
    m = parse_bvh(CHAIN)
    assert m.names == ["A", "B", "B_end"] and m.parents == [-1, 0, 1] and m.is_end_site == [False, False, True]
    assert m.positions.shape == (3, 3, 3) and m.fps == 30.0
    np.testing.assert_allclose(m.positions[0], [[0, 0, 0], [1, 0, 0], [2, 0, 0]], atol=1e-12)
    # Root moved to (1, 2, 3) and turned 90 deg about Z: +X becomes +Y.
    np.testing.assert_allclose(m.positions[1], [[1, 2, 3], [1, 3, 3], [1, 4, 3]], atol=1e-12)
    # Both joints turned 90 deg: the end bone points along -X.
    np.testing.assert_allclose(m.positions[2], [[0, 0, 0], [0, 1, 0], [-1, 1, 0]], atol=1e-12)


def _two_axis(order: str) -> str:
    return (
        CHAIN.replace("CHANNELS 3 Zrotation Xrotation Yrotation", f"CHANNELS 2 {order}")
        .replace("0 0 0 0 0 0 0 0 0\n1 2 3 90 0 0 0 0 0\n0 0 0 90 0 0 90 0 0\n", "0 0 0 0 0 0 90 90\n")
        .replace("Frames: 3", "Frames: 1")
    )


def test_channel_order_matters() -> None:
    # R = R_first @ R_second: Z then X maps the bone (1, 0, 0) to (0, 1, 0); X then Z maps it to (0, 0, 1).
    zx = parse_bvh(_two_axis("Zrotation Xrotation")).positions[0, 2]
    xz = parse_bvh(_two_axis("Xrotation Zrotation")).positions[0, 2]
    np.testing.assert_allclose(zx, [1, 1, 0], atol=1e-12)
    np.testing.assert_allclose(xz, [1, 0, 1], atol=1e-12)


def test_position_channel_order() -> None:
    text = CHAIN.replace("Xposition Yposition Zposition", "Yposition Zposition Xposition")
    m = parse_bvh(text)
    np.testing.assert_allclose(m.positions[1, 0], [3, 1, 2])  # values 1 2 3 go to Y, Z, X


@pytest.mark.parametrize(
    ("edit", "line", "match"),
    [
        (("0 0 0 90 0 0 90 0 0", "0 0 0 90 0 0 90 0"), 21, "8 values"),
        (("1 2 3 90 0 0 0 0 0", "1 2 3 90 0 zero 0 0 0"), 20, "not a number"),
        (("Frames: 3", "Frames: 4"), 17, "Frames says 4"),
        (("CHANNELS 3 Zrotation", "CHANNELS 3 Wrotation"), 9, "unknown channel"),
        (("    OFFSET 1 0 0\n    CHANNELS", "    OFFSET 1 x 0\n    CHANNELS"), 8, "not a number"),
        (("Frame Time: 0.0333333", "Frame Time: -1"), 18, "positive"),
        (("HIERARCHY", "HIERARCHIE"), 1, "HIERARCHY"),
        (("  }\n}\nMOTION", "  }\nMOTION"), 15, "MOTION before the hierarchy was closed"),
        (("JOINT B", "JOINT A"), 6, "duplicate"),
    ],
)
def test_malformed_files_name_the_line(edit, line, match) -> None:
    old, new = edit
    assert old in CHAIN
    with pytest.raises(BvhError, match=rf"<string>:{line}: .*{match}"):
        parse_bvh(CHAIN.replace(old, new, 1))


def test_truncated_file() -> None:
    with pytest.raises(BvhError, match="end of file"):
        parse_bvh(CHAIN.split("MOTION")[0])


def _side(prefix: str, sign: int) -> str:
    """One CMU-named leg and arm; x is multiplied by sign (left +1, right -1)."""
    s = f"{sign * 1.5:g}"
    a = f"{sign * 3:g}"
    return textwrap.dedent(f"""\
        JOINT {prefix[0]}HipJoint
        {{
          OFFSET 0 0 0
          CHANNELS 3 Zrotation Yrotation Xrotation
          JOINT {prefix}UpLeg
          {{
            OFFSET {s} -1.5 0
            CHANNELS 3 Zrotation Yrotation Xrotation
            JOINT {prefix}Leg
            {{
              OFFSET 0 -7.5 0
              CHANNELS 3 Zrotation Yrotation Xrotation
              JOINT {prefix}Foot
              {{
                OFFSET 0 -7.5 0
                CHANNELS 3 Zrotation Yrotation Xrotation
                End Site
                {{
                  OFFSET 0 -0.5 2
                }}
              }}
            }}
          }}
        }}
        """), textwrap.dedent(f"""\
        JOINT {prefix}Shoulder
        {{
          OFFSET 0 2 0
          CHANNELS 3 Zrotation Yrotation Xrotation
          JOINT {prefix}Arm
          {{
            OFFSET {a} 0 0
            CHANNELS 3 Zrotation Yrotation Xrotation
            JOINT {prefix}ForeArm
            {{
              OFFSET {sign * 5:g} 0 0
              CHANNELS 3 Zrotation Yrotation Xrotation
              JOINT {prefix}Hand
              {{
                OFFSET {sign * 4.5:g} 0 0
                CHANNELS 3 Zrotation Yrotation Xrotation
                End Site
                {{
                  OFFSET {sign * 2:g} 0 0
                }}
              }}
            }}
          }}
        }}
        """)


def _cmu_bvh(frames: list[list[float]]) -> str:
    lleg, larm = _side("Left", 1)
    rleg, rarm = _side("Right", -1)
    spine = (
        textwrap.dedent("""\
        JOINT LowerBack
        {
          OFFSET 0 0 0
          CHANNELS 3 Zrotation Yrotation Xrotation
          JOINT Spine
          {
            OFFSET 0 2 0
            CHANNELS 3 Zrotation Yrotation Xrotation
            JOINT Spine1
            {
              OFFSET 0 2 0
              CHANNELS 3 Zrotation Yrotation Xrotation
              JOINT Neck
              {
                OFFSET 0 2 0
                CHANNELS 3 Zrotation Yrotation Xrotation
                JOINT Neck1
                {
                  OFFSET 0 1.5 0
                  CHANNELS 3 Zrotation Yrotation Xrotation
                  JOINT Head
                  {
                    OFFSET 0 1.5 0
                    CHANNELS 3 Zrotation Yrotation Xrotation
                    End Site
                    {
                      OFFSET 0 3 0
                    }
                  }
                }
              }
        """)
        + textwrap.indent(larm + rarm, "      ")
        + "    }\n  }\n}\n"
    )
    body = "ROOT Hips\n{\n  OFFSET 0 0 0\n  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation\n"
    body += textwrap.indent(lleg + rleg + spine, "  ") + "}\n"
    motion = "\n".join(" ".join(f"{v:g}" for v in f) for f in frames)
    return f"HIERARCHY\n{body}MOTION\nFrames: {len(frames)}\nFrame Time: 0.008333\n{motion}\n"


NUM_CHANNELS = 6 + 3 * 22  # root + hip/up-leg/leg/foot x 2 + 6 spine-to-head + shoulder/arm/fore-arm/hand x 2


def _rest_frames() -> list[list[float]]:
    still = [0.0, 17.0, 0.0] + [0.0] * (NUM_CHANNELS - 3)
    turned = list(still)
    turned[4] = 90.0  # root Yrotation (channel order Z Y X): the body turns about the vertical axis
    return [still, turned]


def test_cmu_skeleton_maps_to_h36m17(tmp_path) -> None:
    text = _cmu_bvh(_rest_frames())
    path = tmp_path / "walk_07.bvh"
    path.write_text(text)
    motion = read_bvh(path)
    assert sum(len(c) for c in motion.channels) == NUM_CHANNELS
    seq = bvh_to_h36m17(path)  # units detected: rest-pose extent 29 units -> "cmu" (56.4 mm)
    assert seq.name == "walk_07" and seq.fps == 120.0
    assert seq.positions.shape == (2, 17, 3) and seq.positions.dtype == np.float32
    # Expected rest pose in file units (Y up, left = +X, facing +Z).
    file_units = {
        0: (0, 17, 0), 1: (-1.5, 15.5, 0), 2: (-1.5, 8, 0), 3: (-1.5, 0.5, 0),
        4: (1.5, 15.5, 0), 5: (1.5, 8, 0), 6: (1.5, 0.5, 0), 7: (0, 20, 0), 8: (0, 23, 0),
        9: (0, 26, 0), 10: (0, 29, 0), 11: (3, 23, 0), 12: (8, 23, 0), 13: (12.5, 23, 0),
        14: (-3, 23, 0), 15: (-8, 23, 0), 16: (-12.5, 23, 0),
    }  # fmt: skip
    mm = BVH_UNITS_MM["cmu"]
    for j, (x, y, z) in file_units.items():
        np.testing.assert_allclose(seq.positions[0, j], [x * mm, -z * mm, y * mm], atol=1e-2, err_msg=str(j))
    # Turning the body keeps bone lengths and heights.
    bones = H36M_17.bone_lengths(seq.positions)
    np.testing.assert_allclose(bones[1], bones[0], rtol=1e-5)
    np.testing.assert_allclose(seq.positions[1, :, 2], seq.positions[0, :, 2], atol=1e-2)
    assert not np.allclose(seq.positions[1], seq.positions[0], atol=1.0)
    explicit = bvh_to_h36m17(path, units="cm", up_axis="z", action="walking")
    np.testing.assert_allclose(explicit.positions[0, 10], [0, 290, 0], atol=1e-3)
    assert explicit.action == "walking"


def test_namespaced_names_and_missing_joint(tmp_path) -> None:
    text = _cmu_bvh(_rest_frames())
    prefixed = text.replace("ROOT ", "ROOT mixamorig:").replace("JOINT ", "JOINT mixamorig:")
    (tmp_path / "a.bvh").write_text(text)
    (tmp_path / "b.bvh").write_text(prefixed)
    np.testing.assert_array_equal(
        bvh_to_h36m17(tmp_path / "a.bvh").positions, bvh_to_h36m17(tmp_path / "b.bvh").positions
    )
    (tmp_path / "c.bvh").write_text(text.replace("JOINT LeftHand", "JOINT LeftPalm"))
    with pytest.raises(ValueError, match="left_wrist.*lefthand"):
        bvh_to_h36m17(tmp_path / "c.bvh")


def test_units_errors(tmp_path) -> None:
    big = tmp_path / "chain.bvh"
    big.write_text(CHAIN.replace("OFFSET 1 0 0", "OFFSET 2.5 0 0"))  # extent 5 units: no plausible unit
    with pytest.raises(ValueError, match="units="):
        bvh_to_h36m17(big)
    with pytest.raises(ValueError, match="units"):
        bvh_to_h36m17(big, units="furlong")
    with pytest.raises(FileNotFoundError, match="path="):
        read_bvh(tmp_path / "missing.bvh")
