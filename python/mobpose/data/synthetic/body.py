"""A body made of spheres along the Human3.6M-17 skeleton, with randomised proportions and clothing.

Every body part is a chain of overlapping spheres whose radii taper linearly along the bone (a capsule
with a varying radius); the torso is a grid of spheres between the hips and the shoulders, the head a
cranium, jaw, nose, eyes and hair. The union of spheres is what `mobpose._core.render_spheres` rasterises
(nearest surface per pixel), so self-occlusion is handled by depth. Each sphere carries a material
(skin, hair, top, bottom, shoes, eyes) that the appearance model colours and textures.

Joints are Human3.6M-17 in any right-handed metric frame (mm): 0 pelvis, 1-3 right hip/knee/ankle,
4-6 left, 7 spine, 8 thorax, 9 neck, 10 head top, 11-13 left shoulder/elbow/wrist, 14-16 right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MATERIALS", "BodyShape", "body_spheres", "random_body_shape"]

MATERIALS = ("skin", "hair", "top", "bottom", "shoes", "eyes", "front")
SKIN, HAIR, TOP, BOTTOM, SHOES, EYES, FRONT = range(7)

_STEP = 0.3  # sphere spacing along a chain, as a fraction of the smaller radius


@dataclass(frozen=True)
class BodyShape:
    """Proportions and clothing cut of one synthetic person (radii in mm before `thickness`).

    sleeves: 0 sleeveless, 1 short, 2 long. legs: 0 shorts, 1 long trousers. hair: 0 bald, 1 short,
    2 long. skirt: a cone from the hips to below the knees. front: what only the front of the top shows
    (0 nothing, 1 a print on the chest, 2 an open jacket's or a shirt's front strip, 3 a bib or apron
    over the whole front): with the face, the cue that tells a person seen from the front from one seen
    from behind, so which limb is the left one.
    """

    thickness: float = 1.0
    torso_depth: float = 105.0
    torso_width: float = 0.7
    belly: float = 0.0
    head: float = 1.0
    upper_arm: float = 48.0
    forearm: float = 38.0
    thigh: float = 78.0
    shin: float = 52.0
    sleeves: int = 2
    legs: int = 1
    hair: int = 1
    skirt: bool = False
    front: int = 0


def random_body_shape(rng: np.random.Generator) -> BodyShape:
    """Draws proportions (thin to heavy, small to large heads) and a clothing cut."""
    thick = float(np.exp(rng.normal(0.0, 0.15)))

    def jitter(v: float, s: float = 0.12) -> float:
        return float(v * np.exp(rng.normal(0.0, s)))

    return BodyShape(
        thickness=float(np.clip(thick, 0.7, 1.5)),
        torso_depth=jitter(105.0),
        torso_width=float(rng.uniform(0.55, 0.85)),
        belly=float(max(rng.normal(0.0, 0.25), 0.0)),
        head=float(rng.uniform(0.88, 1.12)),
        upper_arm=jitter(48.0),
        forearm=jitter(38.0),
        thigh=jitter(78.0),
        shin=jitter(52.0),
        sleeves=int(rng.choice(3, p=[0.15, 0.35, 0.5])),
        legs=int(rng.choice(2, p=[0.25, 0.75])),
        hair=int(rng.choice(3, p=[0.1, 0.55, 0.35])),
        skirt=bool(rng.random() < 0.12),
        front=int(rng.choice(4, p=[0.15, 0.35, 0.3, 0.2])),
    )


def _unit(v: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-6 else fallback


class _Builder:
    def __init__(self) -> None:
        self.centres: list[np.ndarray] = []
        self.radii: list[np.ndarray] = []
        self.materials: list[np.ndarray] = []

    def chain(self, a: np.ndarray, b: np.ndarray, ra: float, rb: float, material: int) -> None:
        length = float(np.linalg.norm(b - a))
        n = max(2, int(np.ceil(length / (_STEP * min(ra, rb)))) + 1)
        t = np.linspace(0.0, 1.0, n)[:, None]
        self.add(a + t * (b - a), ra + t[:, 0] * (rb - ra), material)

    def add(self, centres: np.ndarray, radii, material: int) -> None:
        centres = np.atleast_2d(centres)
        self.centres.append(centres)
        self.radii.append(np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(centres),)))
        self.materials.append(np.full(len(centres), material, dtype=np.int32))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        spheres = np.concatenate([np.concatenate(self.centres), np.concatenate(self.radii)[:, None]], axis=1)
        return spheres.astype(np.float32), np.concatenate(self.materials)


def body_axes(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit (up, across, forward) of a body in the frame of `joints` (17 or 18, 3): up = pelvis -> thorax,
    across = right hip -> left hip, forward = across x up (where the face, the toes and the front of the
    top point; fallbacks for degenerate poses)."""
    up = _unit(joints[8] - joints[0], np.array([0.0, 0.0, 1.0]))
    across = _unit(joints[4] - joints[1], np.array([1.0, 0.0, 0.0]))
    return up, across, _unit(np.cross(across, up), np.array([0.0, 1.0, 0.0]))


def body_spheres(joints: np.ndarray, shape: BodyShape | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The spheres of one body in the pose `joints`.

    Args:
        joints: (17, 3) (or (18, 3); the 18th is ignored) Human3.6M joint positions in mm.
        shape: proportions and clothing (default: an average body in long clothes).

    Returns:
        (spheres (S, 4) float32 rows x, y, z, radius; materials (S,) int32 indices into MATERIALS).

    Raises:
        ValueError: on a wrong shape or non-finite joints.
    """
    j = np.asarray(joints, dtype=np.float64)
    if j.ndim != 2 or j.shape[0] not in (17, 18) or j.shape[1] != 3:
        raise ValueError(f"joints must have shape (17, 3) or (18, 3), got {j.shape}")
    if not np.isfinite(j).all():
        raise ValueError("joints must be finite")
    s = shape or BodyShape()
    k = s.thickness
    up, across, fwd = body_axes(j)
    b = _Builder()

    # torso: rows from the hips to the shoulders, columns across, each a front and a back sphere (so the
    # front of the top can differ from its back: s.front)
    r_t = s.torso_depth * k
    spine = [j[0], j[7], j[8]]
    front_cols = {0: (), 1: (1, 2), 2: (1, 2), 3: (0, 1, 2, 3)}[s.front]
    front_rows = {0: (), 1: (4, 5), 2: range(8), 3: range(1, 7)}[s.front]
    for row, t in enumerate(np.linspace(0.05, 0.92, 8)):
        lo, hi, u = (spine[0], spine[1], t / 0.5) if t < 0.5 else (spine[1], spine[2], (t - 0.5) / 0.5)
        centre = lo + (hi - lo) * u
        left = j[4] + t * (j[11] - j[4])
        right = j[1] + t * (j[14] - j[1])
        waist = 1.0 - 0.25 * np.sin(np.pi * t)  # narrower at the waist
        w = s.torso_width * waist
        belly = s.belly * r_t * np.sin(np.pi * min(t / 0.7, 1.0)) * 0.6
        cols = np.linspace(0.0, 1.0, 4)[:, None]
        lft, rgt = centre + w * (left - centre), centre + w * (right - centre)
        centres = rgt + cols * (lft - rgt) + fwd * belly
        r_row = r_t * (0.95 + 0.1 * np.sin(np.pi * t))
        b.add(centres - 0.2 * r_t * fwd, 0.8 * r_row, TOP)
        for c in range(4):
            b.add(centres[c] + 0.2 * r_t * fwd, 0.8 * r_row, FRONT if c in front_cols and row in front_rows else TOP)
    # hips and shoulders
    b.chain(j[1], j[4], s.thigh * k * 1.05, s.thigh * k * 1.05, BOTTOM)
    sleeve_mat = TOP if s.sleeves > 0 else SKIN
    for sh in (11, 14):
        b.chain(j[8] + 0.35 * (j[sh] - j[8]), j[sh], r_t * 0.75, s.upper_arm * k * 1.15, TOP)
    # neck and head
    b.chain(j[8], j[9] + 0.3 * (j[10] - j[9]), 48.0 * k, 45.0 * k, SKIN)
    head_len = float(np.linalg.norm(j[10] - j[9]))
    head_up = _unit(j[10] - j[9], up)
    head_fwd = _unit(fwd - np.dot(fwd, head_up) * head_up, fwd)
    r_h = 0.52 * head_len * s.head
    c_h = j[9] + 0.52 * (j[10] - j[9]) + 0.12 * r_h * head_fwd
    b.add(c_h, r_h, SKIN)
    b.add(c_h - 0.45 * r_h * head_up + 0.35 * r_h * head_fwd, 0.62 * r_h, SKIN)  # jaw
    b.add(c_h + 0.92 * r_h * head_fwd - 0.1 * r_h * head_up, 0.16 * r_h, SKIN)  # nose
    head_side = _unit(np.cross(head_up, head_fwd), across)
    for side in (-1.0, 1.0):  # eyes: a cue to which way the face looks
        b.add(c_h + 0.8 * r_h * head_fwd + 0.1 * r_h * head_up + side * 0.33 * r_h * head_side, 0.17 * r_h, EYES)
    b.add(c_h + 0.86 * r_h * head_fwd - 0.42 * r_h * head_up, 0.15 * r_h, EYES)  # mouth
    if s.hair >= 1:
        b.add(c_h - 0.14 * r_h * head_fwd + 0.12 * r_h * head_up, 1.02 * r_h, HAIR)
    if s.hair == 2:
        b.chain(c_h - 0.3 * r_h * head_fwd, j[8] - 0.6 * r_t * fwd + 0.15 * (j[10] - j[8]), 0.85 * r_h, 0.6 * r_h, HAIR)
    # arms and hands
    for sh, el, wr in ((11, 12, 13), (14, 15, 16)):
        b.chain(j[sh], j[el], s.upper_arm * k, s.upper_arm * k * 0.85, sleeve_mat)
        fore_mat = TOP if s.sleeves == 2 else SKIN
        b.chain(j[el], j[wr], s.forearm * k, s.forearm * k * 0.75, fore_mat)
        d = _unit(j[wr] - j[el], -up)
        hand = 80.0 * (0.9 + 0.1 * k)
        b.chain(j[wr] + 0.2 * hand * d, j[wr] + hand * d, 0.85 * s.forearm * k, 0.7 * s.forearm * k, SKIN)
    # legs and feet
    leg_mat = BOTTOM if s.legs == 1 else SKIN
    for hp, kn, an in ((1, 2, 3), (4, 5, 6)):
        b.chain(j[hp], j[kn], s.thigh * k, s.thigh * k * 0.7, BOTTOM)
        b.chain(j[kn], j[an], s.shin * k, s.shin * k * 0.72, leg_mat)
        shin = _unit(j[an] - j[kn], -up)
        foot = _unit(fwd - np.dot(fwd, shin) * shin, fwd)
        toe = j[an] + 150.0 * foot + 45.0 * shin
        b.chain(j[an] - 25.0 * foot + 35.0 * shin, toe, 42.0, 34.0, SHOES)
    if s.skirt:
        knees = 0.5 * (j[2] + j[5])
        b.chain(j[0] + 0.15 * (j[8] - j[0]), knees + 0.25 * (knees - j[0]), r_t * 1.0, r_t * 2.1, BOTTOM)
    return b.result()
