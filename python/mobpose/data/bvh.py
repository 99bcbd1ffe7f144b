"""A BVH (Biovision hierarchy) reader with forward kinematics, and a map to the H36M-17 joints.

Conventions (the usual BVH ones):

- Each joint's local transform is a translation ``OFFSET + (Xposition, Yposition, Zposition)``
  (position channels that are absent count as 0; in most files only the root has them, with a zero
  OFFSET) followed by a rotation ``R = R_first @ R_second @ R_third`` of its rotation channels in
  the order listed by CHANNELS, Euler angles in degrees (intrinsic rotations). A joint's world
  position is ``parent_rotation @ local_translation + parent_position``; its world rotation is
  ``parent_rotation @ R``.
- "End Site" blocks become joints named ``<parent>_end`` (no channels).
- Positions are in the file's units and axes (usually Y up); :func:`bvh_to_h36m17` converts to the
  mobpose world (mm, Z up).

H36M-17 from common CMU BVH names (matching ignores case and a ``prefix:`` namespace, e.g. Mixamo's
``mixamorig:``); exact = the joint is the same anatomical point, approximated = documented choice:

======================  ===========================================  ==============
H36M joint              BVH joint                                    note
======================  ===========================================  ==============
0 pelvis                Hips (Pelvis, Root, Hip)                     exact-ish
1/4 right/left hip      RightUpLeg / LeftUpLeg (…Hip, …Thigh)        exact
2/5 knee                RightLeg / LeftLeg (…Knee, …Shin, …LowLeg)   exact
3/6 ankle               RightFoot / LeftFoot (…Ankle)                exact
8 thorax                Neck (neck base; else Neck1, Chest…)         approximated
7 spine                 midpoint of pelvis and thorax                approximated
9 neck/nose             Head (the skull base in CMU files)           approximated
10 head top             Head's End Site; else Head + 180 mm along     approximated
                        thorax -> Head
11/14 shoulder          LeftArm / RightArm (…UpArm, …Shoulder*)      exact
12/15 elbow             LeftForeArm / RightForeArm (…Elbow)          exact
13/16 wrist             LeftHand / RightHand (…Wrist)                exact
======================  ===========================================  ==============

(*) "LeftShoulder" in CMU files is the clavicle, so it is only a last resort after LeftArm.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .motion import MotionSequence, y_up_to_z_up

__all__ = [
    "BVH_UNITS_MM",
    "BvhError",
    "BvhMotion",
    "H36M_FROM_BVH",
    "bvh_to_h36m17",
    "map_to_h36m17",
    "parse_bvh",
    "read_bvh",
]

logger = logging.getLogger(__name__)

BVH_UNITS_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "inch": 25.4, "cmu": 25.4 / 0.45}
"""Millimetres per BVH unit. ``"cmu"``: the CMU ASF/AMC-derived BVH files (1 unit = 1/0.45 inch)."""

# Plausible rest-pose extent (largest side of the T-pose box) of an adult, for units="auto".
_EXTENT_MM = (1200.0, 2200.0)

H36M_FROM_BVH: dict[str, tuple[str, ...]] = {
    "pelvis": ("hips", "pelvis", "root", "hip"),
    "right_hip": ("rightupleg", "rightthigh", "rthigh", "righthip", "rhip", "rightupperleg"),
    "right_knee": ("rightleg", "rightknee", "rightshin", "rshin", "rightlowleg", "rightlowerleg", "rknee"),
    "right_ankle": ("rightfoot", "rightankle", "rfoot", "rankle"),
    "left_hip": ("leftupleg", "leftthigh", "lthigh", "lefthip", "lhip", "leftupperleg"),
    "left_knee": ("leftleg", "leftknee", "leftshin", "lshin", "leftlowleg", "leftlowerleg", "lknee"),
    "left_ankle": ("leftfoot", "leftankle", "lfoot", "lankle"),
    "thorax": ("neck", "neck1", "neckbase", "chest", "spine2", "upperchest"),
    "neck_nose": ("head",),
    "left_shoulder": ("leftarm", "leftuparm", "leftupperarm", "lshldr", "lshoulder", "leftshoulder"),
    "left_elbow": ("leftforearm", "leftelbow", "leftlowarm", "leftlowerarm", "lforearm", "lelbow"),
    "left_wrist": ("lefthand", "leftwrist", "lhand", "lwrist"),
    "right_shoulder": ("rightarm", "rightuparm", "rightupperarm", "rshldr", "rshoulder", "rightshoulder"),
    "right_elbow": ("rightforearm", "rightelbow", "rightlowarm", "rightlowerarm", "rforearm", "relbow"),
    "right_wrist": ("righthand", "rightwrist", "rhand", "rwrist"),
}
"""For each H36M-17 joint taken directly from a BVH joint: accepted BVH names (normalised: lower
case, namespace and ``_``/``-``/spaces removed), in order of preference."""

_HEAD_TOP_MM = 180.0


class BvhError(ValueError):
    """A malformed BVH file; the message names the source and line number."""


@dataclass
class BvhMotion:
    """A parsed BVH file with world positions.

    Attributes:
        names: N joint names (End Sites as ``<parent>_end``).
        parents: N parent indices (-1 for the root); parents come before children.
        offsets: (N, 3) OFFSETs in file units.
        channels: N tuples of channel names (empty for End Sites).
        is_end_site: N flags.
        frame_time: Seconds per frame.
        positions: (T, N, 3) float64 world positions in file units and axes.
        source: File path or ``"<string>"``.
    """

    names: list[str]
    parents: list[int]
    offsets: np.ndarray
    channels: list[tuple[str, ...]]
    is_end_site: list[bool]
    frame_time: float
    positions: np.ndarray
    source: str = "<string>"

    @property
    def fps(self) -> float:
        """1 / frame_time, rounded to 3 decimals when within 0.1% of that (0.008333 s -> 120.0)."""
        fps = 1.0 / self.frame_time
        r = round(fps, 3) if abs(fps - round(fps)) > 1e-3 * fps else float(round(fps))
        return float(r)

    def index(self, name: str) -> int:
        """Index of a joint by exact name. Raises ValueError if absent."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"no joint named {name!r} in {self.source}") from None


_VALID_CHANNELS = {f"{a}{k}" for a in "XYZ" for k in ("position", "rotation")}


def _axis_rotation(axis: str, deg: np.ndarray) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    one, zero = np.ones_like(a), np.zeros_like(a)
    if axis == "X":
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    elif axis == "Y":
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    else:
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def _tokens(lines: list[str], start: int):
    """Yields (token, line number) of the hierarchy part (braces split off)."""
    for n in range(start, len(lines)):
        for tok in lines[n].replace("{", " { ").replace("}", " } ").split():
            yield tok, n + 1


def parse_bvh(text: str, source: str = "<string>") -> BvhMotion:
    """Parses BVH text and computes world positions of every joint and End Site.

    Args:
        text: The whole BVH file.
        source: Name used in error messages.

    Returns:
        BvhMotion with positions (T, N, 3).

    Raises:
        BvhError: (a ValueError) for malformed input, naming the line number.
    """
    lines = text.splitlines()

    def fail(line: int, msg: str):
        raise BvhError(f"{source}:{line}: {msg}")

    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None or lines[first].strip().upper() != "HIERARCHY":
        fail((first or 0) + 1, "expected 'HIERARCHY' as the first line")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    end_site: list[bool] = []
    stack: list[int] = []
    toks = _tokens(lines, first + 1)
    motion_line = None
    last_line = first + 1

    def take(kind: str):
        try:
            return next(toks)
        except StopIteration:
            fail(last_line, f"unexpected end of file, expected {kind}")

    while True:
        try:
            tok, ln = next(toks)
        except StopIteration:
            fail(last_line, "unexpected end of file in HIERARCHY (no MOTION section)")
        last_line = ln
        key = tok.upper()
        if key in ("ROOT", "JOINT"):
            if key == "ROOT" and (names or stack):
                fail(ln, "only one ROOT is supported" if names else "ROOT inside a joint")
            if key == "JOINT" and not stack:
                fail(ln, "JOINT outside of ROOT")
            name, _ = take("a joint name")
            if name in ("{", "}"):
                fail(ln, f"{key} needs a name")
            if name in names:
                fail(ln, f"duplicate joint name {name!r}")
            names.append(name)
            parents.append(stack[-1] if stack else -1)
            offsets.append([])
            channels.append(())
            end_site.append(False)
            new = len(names) - 1
            b, bl = take("'{'")
            if b != "{":
                fail(bl, f"expected '{{' after {key} {name}, got {b!r}")
            stack.append(new)
        elif key == "END":
            site, _ = take("'Site'")
            if site.upper() != "SITE" or not stack:
                fail(ln, "expected 'End Site' inside a joint")
            names.append(f"{names[stack[-1]]}_end")
            parents.append(stack[-1])
            offsets.append([])
            channels.append(())
            end_site.append(True)
            b, bl = take("'{'")
            if b != "{":
                fail(bl, f"expected '{{' after End Site, got {b!r}")
            stack.append(len(names) - 1)
        elif key == "OFFSET":
            if not stack:
                fail(ln, "OFFSET outside of a joint")
            if offsets[stack[-1]]:
                fail(ln, "second OFFSET in one joint")
            vals = []
            for _ in range(3):
                v, vl = take("an OFFSET value")
                try:
                    vals.append(float(v))
                except ValueError:
                    fail(vl, f"OFFSET value {v!r} is not a number")
            offsets[stack[-1]] = vals
        elif key == "CHANNELS":
            if not stack or end_site[stack[-1]]:
                fail(ln, "CHANNELS outside of a joint (or inside an End Site)")
            cnt, cl = take("a channel count")
            if not cnt.isdigit():
                fail(cl, f"CHANNELS count {cnt!r} is not a non-negative integer")
            chans = []
            for _ in range(int(cnt)):
                c, chl = take("a channel name")
                if c not in _VALID_CHANNELS:
                    fail(chl, f"unknown channel {c!r} (expected X/Y/Z + position/rotation)")
                chans.append(c)
            if len(set(chans)) != len(chans):
                fail(cl, f"repeated channel in {chans}")
            channels[stack[-1]] = tuple(chans)
        elif key == "}":
            if not stack:
                fail(ln, "unbalanced '}'")
            j = stack.pop()
            if not offsets[j]:
                fail(ln, f"joint {names[j]!r} has no OFFSET")
        elif key == "MOTION":
            if stack:
                fail(ln, f"MOTION before the hierarchy was closed ({len(stack)} open '{{')")
            if not names:
                fail(ln, "MOTION before any ROOT")
            motion_line = ln
            break
        else:
            fail(ln, f"unexpected token {tok!r} in HIERARCHY")

    # MOTION section: line-based.
    n = motion_line  # index of the line after MOTION (0-based)
    if lines[motion_line - 1].strip().upper() != "MOTION":
        fail(motion_line, "'MOTION' must be on its own line")

    def header(label: str) -> tuple[str, int]:
        nonlocal n
        while n < len(lines) and not lines[n].strip():
            n += 1
        if n >= len(lines):
            fail(n, f"missing '{label}' line")
        m = re.match(rf"^\s*{label}\s*:?\s*(\S+)\s*$", lines[n], flags=re.IGNORECASE)
        if not m:
            fail(n + 1, f"expected '{label}: <value>', got {lines[n].strip()!r}")
        n += 1
        return m.group(1), n

    frames_s, frames_line = header("Frames")
    if not frames_s.isdigit():
        fail(frames_line, f"Frames {frames_s!r} is not a non-negative integer")
    num_frames = int(frames_s)
    ft_s, ft_line = header("Frame Time")
    try:
        frame_time = float(ft_s)
    except ValueError:
        fail(ft_line, f"Frame Time {ft_s!r} is not a number")
    if not (np.isfinite(frame_time) and frame_time > 0):
        fail(ft_line, f"Frame Time must be positive, got {frame_time}")
    num_ch = sum(len(c) for c in channels)
    rows = []
    for i in range(n, len(lines)):
        s = lines[i].strip()
        if not s:
            continue
        parts = s.split()
        if len(parts) != num_ch:
            fail(i + 1, f"frame {len(rows)} has {len(parts)} values, the hierarchy declares {num_ch} channels")
        try:
            row = [float(v) for v in parts]
        except ValueError:
            fail(i + 1, f"frame {len(rows)} contains a value that is not a number")
        rows.append(row)
    if len(rows) != num_frames:
        fail(frames_line, f"Frames says {num_frames} but {len(rows)} frame lines follow")
    if num_frames == 0:
        fail(frames_line, "the file has no frames")
    data = np.asarray(rows, dtype=np.float64).reshape(num_frames, num_ch)
    if not np.isfinite(data).all():
        bad = int(np.argwhere(~np.isfinite(data))[0, 0])
        fail(n + 1 + bad, "non-finite value in MOTION data")
    off = np.asarray(offsets, dtype=np.float64)
    positions = _forward_kinematics(parents, off, channels, data)
    return BvhMotion(names, parents, off, channels, end_site, frame_time, positions, source)


def _forward_kinematics(parents, offsets, channels, data) -> np.ndarray:
    t_len, n = data.shape[0], len(parents)
    pos = np.zeros((t_len, n, 3))
    rot = np.zeros((t_len, n, 3, 3))
    col = 0
    for j in range(n):
        trans = np.broadcast_to(offsets[j], (t_len, 3)).copy()
        local = np.broadcast_to(np.eye(3), (t_len, 3, 3)).copy()
        for c in channels[j]:
            v = data[:, col]
            col += 1
            axis = "XYZ".index(c[0])
            if c.endswith("position"):
                trans[:, axis] += v
            else:
                local = local @ _axis_rotation(c[0], v)
        p = parents[j]
        if p < 0:
            pos[:, j] = trans
            rot[:, j] = local
        else:
            pos[:, j] = pos[:, p] + np.einsum("tij,tj->ti", rot[:, p], trans)
            rot[:, j] = rot[:, p] @ local
    return pos


def read_bvh(path: str | os.PathLike[str]) -> BvhMotion:
    """Reads and parses a BVH file (see :func:`parse_bvh`).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        BvhError: For malformed files (with the line number).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"path={str(p)!r} does not exist or is not a file")
    return parse_bvh(p.read_text(encoding="utf-8", errors="replace"), source=str(p))


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.rsplit(":", 1)[-1]).lower()


def _guess_units(motion: BvhMotion) -> str:
    rest = _forward_kinematics(motion.parents, motion.offsets, [()] * len(motion.parents), np.zeros((1, 0)))[0]
    extent = float(np.max(rest.max(0) - rest.min(0)))
    fits = [u for u, mm in BVH_UNITS_MM.items() if _EXTENT_MM[0] <= extent * mm <= _EXTENT_MM[1]]
    if len(fits) != 1:
        raise ValueError(
            f"{motion.source}: cannot infer units from the rest-pose extent {extent:.4g} (candidates {fits}); "
            f"pass units= one of {sorted(BVH_UNITS_MM)} or a number of mm per unit"
        )
    logger.info("%s: rest-pose extent %.4g units -> units=%r", motion.source, extent, fits[0])
    return fits[0]


def map_to_h36m17(motion: BvhMotion, positions: np.ndarray | None = None) -> np.ndarray:
    """Picks / builds the 17 H36M joints from BVH joints (see the module docstring's table).

    Args:
        motion: Parsed BVH.
        positions: (T, N, 3) positions to map instead of ``motion.positions`` (e.g. already in mm,
            Z up); ``_HEAD_TOP_MM`` assumes mm when the head top must be extrapolated.

    Returns:
        (T, 17, 3) float64 positions in H36M-17 order.

    Raises:
        ValueError: If a required joint is not found (the message lists the names tried).
    """
    pos = motion.positions if positions is None else np.asarray(positions, dtype=np.float64)
    lookup: dict[str, int] = {}
    for i, nm in enumerate(motion.names):
        if not motion.is_end_site[i]:
            lookup.setdefault(_norm(nm), i)
    found: dict[str, int] = {}
    for joint, cands in H36M_FROM_BVH.items():
        idx = next((lookup[c] for c in cands if c in lookup), None)
        if idx is None:
            raise ValueError(f"{motion.source}: no BVH joint for H36M {joint!r}; tried names {list(cands)}")
        found[joint] = idx
    order = (
        "pelvis",
        "right_hip",
        "right_knee",
        "right_ankle",
        "left_hip",
        "left_knee",
        "left_ankle",
        None,
        "thorax",
        "neck_nose",
        None,
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "right_shoulder",
        "right_elbow",
        "right_wrist",
    )
    out = np.zeros(pos.shape[:1] + (17, 3))
    for k, joint in enumerate(order):
        if joint is not None:
            out[:, k] = pos[:, found[joint]]
    out[:, 7] = 0.5 * (out[:, 0] + out[:, 8])
    head = found["neck_nose"]
    head_end = [i for i, p in enumerate(motion.parents) if p == head and motion.is_end_site[i]]
    if head_end:
        out[:, 10] = pos[:, head_end[0]]
    else:
        d = out[:, 9] - out[:, 8]
        norm = np.linalg.norm(d, axis=-1, keepdims=True)
        out[:, 10] = out[:, 9] + _HEAD_TOP_MM * d / np.maximum(norm, 1e-9)
    return out


def bvh_to_h36m17(
    path: str | os.PathLike[str],
    units: str | float = "auto",
    up_axis: str = "y",
    name: str | None = None,
    split: str = "",
    action: str = "",
) -> MotionSequence:
    """Reads a BVH file as an H36M-17 MotionSequence in the mobpose world (mm, Z up).

    Args:
        path: The BVH file.
        units: Millimetres per file unit as a number, or a name in :data:`BVH_UNITS_MM`, or
            ``"auto"``: the unit for which the rest-pose extent is 1.2–2.2 m (an adult), else a
            ValueError asking for explicit units.
        up_axis: ``"y"`` (most BVH files; rotated to Z up) or ``"z"`` (kept).
        name: Sequence name (default: the file stem).
        split: Stored on the sequence.
        action: Stored on the sequence.

    Returns:
        MotionSequence with positions (T, 17, 3) float32 mm and fps from Frame Time.

    Raises:
        FileNotFoundError: If the file is missing.
        BvhError: If it is malformed.
        ValueError: For unknown ``units``/``up_axis`` or a missing joint.
    """
    motion = read_bvh(path)
    if isinstance(units, str):
        unit = _guess_units(motion) if units == "auto" else units
        if unit not in BVH_UNITS_MM:
            raise ValueError(f"units must be 'auto', a number or one of {sorted(BVH_UNITS_MM)}, got {units!r}")
        scale = BVH_UNITS_MM[unit]
    else:
        scale = float(units)
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"units must be a positive number of mm per unit, got {units!r}")
    if up_axis.lower() == "y":
        world = y_up_to_z_up(motion.positions, scale=scale)
    elif up_axis.lower() == "z":
        world = motion.positions * scale
    else:
        raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    h36m = map_to_h36m17(motion, world)
    return MotionSequence(name or Path(path).stem, split, action, motion.fps, h36m.astype(np.float32), source=str(path))
