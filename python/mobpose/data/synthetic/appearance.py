"""Appearance of the synthetic images: clothing and skin colours and textures, lighting, backgrounds.

Domain randomisation: every person gets random skin, hair and clothing colours, each material a random
texture (solid, stripes, checks, smooth noise, or a patch of a photograph), and each image a random
light; backgrounds are photographs without people (scikit-image's bundled images, when installed),
smooth noise, gradients, stripes and checks, a floor/wall split, mixed and cluttered with shapes.
All randomness comes from the numpy Generator passed in. Images are float32 RGB in [0, 1] here.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass

import cv2
import numpy as np

from .body import MATERIALS

__all__ = [
    "Appearance",
    "background",
    "background_photos",
    "random_appearance",
    "shade",
]

logger = logging.getLogger(__name__)

# scikit-image's bundled images that show no person (astronaut and camera do: they are test photos)
_SKIMAGE_BACKGROUNDS = (
    "brick.png", "chelsea.png", "coffee.png", "coins.png", "color.png", "grass.png", "gravel.png",
    "hubble_deep_field.jpg", "ihc.png", "motorcycle_left.png", "motorcycle_right.png", "page.png",
    "rocket.jpg", "text.png", "moon.png", "clock_motion.png", "chessboard_RGB.png", "retina.jpg",
    "microaneurysms.png", "cell.png", "logo.png",
)


@functools.lru_cache(maxsize=1)
def background_photos() -> tuple[np.ndarray, ...]:
    """Photographs without people, float32 RGB (H, W, 3) in [0, 1], from scikit-image's bundled data.

    Empty when scikit-image is not installed (the engine then uses procedural backgrounds only).
    Loaded once per process.
    """
    try:
        import skimage
    except ImportError:
        logger.warning("scikit-image is not installed: synthetic backgrounds are procedural only")
        return ()
    folder = os.path.join(os.path.dirname(skimage.__file__), "data")
    photos = []
    for name in _SKIMAGE_BACKGROUNDS:
        img = cv2.imread(os.path.join(folder, name), cv2.IMREAD_COLOR)
        if img is None:
            continue
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        photos.append(img)
    logger.debug("loaded %d background photos from %s", len(photos), folder)
    return tuple(photos)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    hsv = np.array([[[h * 180.0, s * 255.0, v * 255.0]]], dtype=np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return _hsv(rng.random(), rng.uniform(0.0, 1.0) ** 0.8, rng.uniform(0.08, 1.0))


@dataclass
class Material:
    """A colour pair and a texture: kind in solid, stripes, checks, noise, photo."""

    colour: np.ndarray
    colour2: np.ndarray
    kind: str
    period: float
    angle: float
    shininess: float
    photo: int = -1


@dataclass
class Appearance:
    """One person's materials, indexed like body.MATERIALS."""

    materials: list[Material]


def random_appearance(rng: np.random.Generator) -> Appearance:
    """Skin from a wide range of tones, hair dark to blond, clothes any colour and texture."""
    skin = _hsv(rng.uniform(0.02, 0.1), rng.uniform(0.2, 0.65), rng.uniform(0.25, 0.97))
    hair = _hsv(rng.uniform(0.0, 0.12), rng.uniform(0.1, 0.8), rng.uniform(0.05, 0.75))
    mats = []
    photos = len(background_photos())
    for name in MATERIALS:
        if name == "skin":
            base, kinds, p = skin, ("solid", "noise"), (0.8, 0.2)
        elif name == "eyes":
            base, kinds, p = _hsv(rng.uniform(0, 0.6), rng.uniform(0, 0.5), rng.uniform(0.02, 0.25)), ("solid",), (1.0,)
        elif name == "hair":
            base, kinds, p = hair, ("solid", "noise", "stripes"), (0.5, 0.3, 0.2)
        else:
            base = _random_colour(rng)
            kinds = ("solid", "stripes", "checks", "noise", "photo")
            p = (0.35, 0.2, 0.1, 0.2, 0.15) if photos else (0.4, 0.25, 0.1, 0.25, 0.0)
        kind = str(rng.choice(kinds, p=p))
        second = np.clip(base * rng.uniform(0.5, 1.3) + rng.normal(0, 0.08, 3), 0, 1).astype(np.float32)
        if kind in ("stripes", "checks") and rng.random() < 0.5:
            second = _random_colour(rng)
        mats.append(Material(
            colour=base, colour2=second, kind=kind, period=float(rng.uniform(3.0, 24.0)),
            angle=float(rng.uniform(0, np.pi)), shininess=float(rng.uniform(0.0, 0.35)),
            photo=int(rng.integers(photos)) if photos else -1,
        ))
    return Appearance(mats)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int = 3) -> np.ndarray:
    small = rng.random((cells, cells, channels)).astype(np.float32)
    out = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return out.reshape(h, w, channels)


def _pattern(kind: str, period: float, angle: float, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W) mixing weight in [0, 1] between a material's two colours."""
    if kind == "noise":
        return np.clip(_smooth_noise(rng, h, w, int(rng.integers(4, 24)), 1)[..., 0] * 1.4 - 0.2, 0, 1)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a = x * np.cos(angle) + y * np.sin(angle)
    if kind == "stripes":
        return (np.sin(a * (2 * np.pi / period)) > 0).astype(np.float32)
    b = -x * np.sin(angle) + y * np.cos(angle)
    return ((np.floor(a / period) + np.floor(b / period)) % 2).astype(np.float32)  # checks


def _photo_patch(rng: np.random.Generator, h: int, w: int, index: int = -1) -> np.ndarray:
    photos = background_photos()
    img = photos[index if index >= 0 else int(rng.integers(len(photos)))]
    ph, pw = img.shape[:2]
    scale = max(h / ph, w / pw) * rng.uniform(1.0, 2.5)
    tx = -rng.uniform(0, pw * scale - w + 1e-6)
    ty = -rng.uniform(0, ph * scale - h + 1e-6)
    m = np.array([[scale, 0, tx], [0, scale, ty]], dtype=np.float32)
    out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random (H, W, 3) float32 background in [0, 1]."""
    photos = background_photos()
    kinds = ["noise", "gradient", "stripes", "room", "photo"]
    p = [0.2, 0.1, 0.1, 0.15, 0.45] if photos else [0.35, 0.2, 0.15, 0.3, 0.0]
    kind = rng.choice(kinds, p=p)
    if kind == "photo":
        out = _photo_patch(rng, h, w)
        out = out * rng.uniform(0.6, 1.3, 3).astype(np.float32)
    elif kind == "noise":
        out = _smooth_noise(rng, h, w, int(rng.integers(2, 32)))
        out = _random_colour(rng) * 0.5 + out * rng.uniform(0.3, 1.0)
    elif kind == "gradient":
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None] * np.ones((1, w, 1), np.float32)
        if rng.random() < 0.5:
            t = np.ascontiguousarray(t.transpose(1, 0, 2)) if h == w else t[:, ::-1]
        out = _random_colour(rng) * (1 - t) + _random_colour(rng) * t
    elif kind == "stripes":
        m = _pattern(str(rng.choice(["stripes", "checks"])), rng.uniform(6, 60), rng.uniform(0, np.pi), h, w, rng)
        out = _random_colour(rng) * (1 - m[..., None]) + _random_colour(rng) * m[..., None]
    else:  # room: a wall and a floor split at a horizon, each textured
        horizon = int(rng.uniform(0.2, 0.8) * h)
        wall = _smooth_noise(rng, h, w, int(rng.integers(2, 10))) * 0.3 + _random_colour(rng) * 0.7
        floor = _smooth_noise(rng, h, w, int(rng.integers(8, 40))) * 0.4 + _random_colour(rng) * 0.6
        out = wall.copy()
        out[horizon:] = floor[horizon:]
    out = np.ascontiguousarray(out, dtype=np.float32)
    # clutter: a few random shapes
    for _ in range(int(rng.poisson(2.0))):
        colour = tuple(float(c) for c in _random_colour(rng))
        cx, cy = int(rng.integers(w)), int(rng.integers(h))
        size = int(rng.uniform(0.03, 0.3) * max(h, w))
        if rng.random() < 0.5:
            cv2.rectangle(out, (cx, cy), (cx + size, cy + int(size * rng.uniform(0.2, 3))), colour, -1)
        else:
            cv2.ellipse(out, (cx, cy), (size, int(size * rng.uniform(0.3, 1))), float(rng.uniform(0, 180)),
                        0, 360, colour, -1)
    return np.clip(out, 0, 1)


def shade(
    rng: np.random.Generator,
    appearance_of_sphere: list[Appearance],
    material: np.ndarray,
    person: np.ndarray,
    normal: np.ndarray,
    mask: np.ndarray,
) -> np.ndarray:
    """Colours the rendered body pixels (H, W, 3) float32; background pixels are left 0.

    Args:
        rng: randomness for textures and the light.
        appearance_of_sphere: appearance per person.
        material: (H, W) material index per pixel (-1 background).
        person: (H, W) person index per pixel (-1 background).
        normal: (H, W, 3) unit surface normals in camera space.
        mask: (H, W) bool body pixels.
    """
    h, w = material.shape
    out = np.zeros((h, w, 3), np.float32)
    if not mask.any():
        return out
    # one light per image: mostly from the camera side and above (camera Y points down)
    light = np.array([rng.normal(0, 0.6), -abs(rng.normal(0.5, 0.5)), -1.0], np.float32)
    light /= np.linalg.norm(light)
    ambient = rng.uniform(0.25, 0.6)
    tint = rng.uniform(0.85, 1.15, 3).astype(np.float32)
    n = normal[mask]
    diffuse = np.clip(n @ light, 0, None)
    half = light + np.array([0, 0, -1], np.float32)
    half /= np.linalg.norm(half)
    spec = np.clip(n @ half, 0, None) ** 20
    albedo = np.zeros((int(mask.sum()), 3), np.float32)
    ys, xs = np.nonzero(mask)
    pm = person[mask]
    mm = material[mask]
    for p in np.unique(pm):
        for mat_i in np.unique(mm[pm == p]):
            sel = (pm == p) & (mm == mat_i)
            mat = appearance_of_sphere[p].materials[mat_i]
            if mat.kind == "solid":
                albedo[sel] = mat.colour
                continue
            y0, y1, x0, x1 = ys[sel].min(), ys[sel].max() + 1, xs[sel].min(), xs[sel].max() + 1
            if mat.kind == "photo" and mat.photo >= 0:
                tex = _photo_patch(rng, y1 - y0, x1 - x0, mat.photo) * (0.5 + mat.colour)
                albedo[sel] = np.clip(tex[ys[sel] - y0, xs[sel] - x0], 0, 1)
            else:
                m = _pattern(mat.kind, mat.period, mat.angle, y1 - y0, x1 - x0, rng)[ys[sel] - y0, xs[sel] - x0]
                albedo[sel] = mat.colour * (1 - m[:, None]) + mat.colour2 * m[:, None]
    shininess = np.array([[m.shininess for m in a.materials] for a in appearance_of_sphere], np.float32)
    colour = albedo * (ambient + (1 - ambient) * diffuse[:, None]) * tint + shininess[pm, mm][:, None] * spec[:, None]
    out[mask] = colour
    return out
