"""Drawing of the toy world: foreground shapes (the core feature) and
background styles (the non-core feature), vectorised in numpy.

Everything here is pure and deterministic: randomness comes only from the
``numpy.random.Generator`` passed in, so the world generator and the caption
corpus draw from the same distribution of shapes and backgrounds and a seed
fixes every pixel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

# Foreground classes. Each shape is defined in its own frame (u, v), scaled
# so that the shape roughly fills the unit disc; ``radius`` in pixels maps
# that frame to the image.
SHAPE_NAMES: Tuple[str, ...] = ('circle', 'square', 'triangle', 'star',
                                'cross', 'ring', 'crescent', 'heart')

# Background textures and the adjective a caption uses for each.
BACKGROUND_KINDS: Tuple[str, ...] = ('plain', 'stripes', 'checker', 'dots',
                                     'gradient', 'noise')
BACKGROUND_KIND_WORDS: Dict[str, str] = {
    'plain': 'plain', 'stripes': 'striped', 'checker': 'checkered',
    'dots': 'dotted', 'gradient': 'shaded', 'noise': 'speckled'}

# Named background colours (RGB in 0..255); captions use the names.
PALETTE: Dict[str, Tuple[int, int, int]] = {
    'red': (190, 45, 40), 'orange': (225, 130, 35),
    'yellow': (225, 205, 60), 'green': (60, 150, 60),
    'teal': (40, 140, 140), 'blue': (45, 85, 190),
    'purple': (120, 60, 160), 'pink': (225, 130, 170),
    'brown': (120, 80, 45), 'gray': (128, 128, 128),
    'white': (232, 232, 225), 'black': (35, 35, 40)}

_STAR_INNER = 0.45  # inner radius of the five-pointed star (outer = 1)


def _disc(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u * u + v * v <= 0.85 ** 2


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= 0.78


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    inside = np.ones(u.shape, dtype=bool)
    for k in range(3):  # equilateral, circumradius 1.1, apex at -v
        phi = np.pi / 2 + k * 2 * np.pi / 3
        inside &= u * np.cos(phi) + v * np.sin(phi) <= 0.55
    return inside


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r = np.hypot(u, v) / 1.05
    sector = 2 * np.pi / 5
    theta = np.mod(np.arctan2(v, u), sector)
    theta = np.minimum(theta, sector - theta)  # fold onto [0, 36 deg]
    x, y = r * np.cos(theta), r * np.sin(theta)
    qx, qy = _STAR_INNER * np.cos(sector / 2), _STAR_INNER * np.sin(sector / 2)
    # Inside when on the centre's side of the edge tip (1, 0) -> inner vertex.
    return (qx - 1.0) * y - qy * (x - 1.0) >= 0


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))


def _ring(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r2 = u * u + v * v
    return (r2 <= 0.92 ** 2) & (r2 >= 0.55 ** 2)


def _crescent(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (u * u + v * v <= 0.92 ** 2) & ((u - 0.45) ** 2 + v * v >= 0.72 ** 2)


def _heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    x, y = 1.15 * u, -1.15 * v + 0.1  # lobes towards -v (up in the image)
    a = x * x + y * y - 1.0
    return a * a * a <= x * x * y * y * y


SHAPE_FUNCTIONS: Dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    'circle': _disc, 'square': _square, 'triangle': _triangle, 'star': _star,
    'cross': _cross, 'ring': _ring, 'crescent': _crescent, 'heart': _heart}


def check_shape_names(names: Sequence[str], where: str) -> Tuple[str, ...]:
    """Return ``names`` as a tuple, or raise naming the unknown shape."""
    names = tuple(names)
    unknown = [n for n in names if n not in SHAPE_FUNCTIONS]
    if unknown:
        raise ValueError(f'{where}: unknown shape(s) {unknown}; the toy world '
                         f'draws {list(SHAPE_NAMES)}.')
    if len(set(names)) != len(names) or len(names) < 2:
        raise ValueError(f'{where}: need at least two distinct shapes, got '
                         f'{list(names)}.')
    return names


def shape_coverage(shapes: Sequence[str], cx: np.ndarray, cy: np.ndarray,
                   radius: np.ndarray, angle: np.ndarray, size: int,
                   supersample: int = 4) -> np.ndarray:
    """Fraction of each pixel covered by each image's shape, (N, size, size).

    Args:
        shapes: shape name per image.
        cx, cy: centre in pixels (x to the right, y down), shape (N,).
        radius: pixels per unit of the shape frame, shape (N,).
        angle: rotation in radians, shape (N,).
        size: image side in pixels.
        supersample: samples per pixel side (anti-aliasing).
    """
    n, s = len(shapes), int(size) * int(supersample)
    grid = (np.arange(s, dtype=np.float32) + 0.5) / supersample
    cover = np.zeros((n, s, s), dtype=np.float32)
    shapes = np.asarray(shapes)
    for name in np.unique(shapes):
        idx = np.nonzero(shapes == name)[0]
        dx = grid[None, None, :] - cx[idx, None, None].astype(np.float32)
        dy = grid[None, :, None] - cy[idx, None, None].astype(np.float32)
        c = np.cos(angle[idx]).astype(np.float32)[:, None, None]
        sn = np.sin(angle[idx]).astype(np.float32)[:, None, None]
        r = radius[idx].astype(np.float32)[:, None, None]
        u = (dx * c + dy * sn) / r
        v = (dy * c - dx * sn) / r
        cover[idx] = SHAPE_FUNCTIONS[str(name)](u, v)
    return cover.reshape(n, size, supersample, size,
                         supersample).mean(axis=(2, 4))


@dataclass(frozen=True)
class BackgroundStyle:
    """A background scene: texture ``kind`` in a named base ``colour``.

    ``rgb`` is the base colour and ``rgb2`` the pattern colour (0..1 floats);
    ``freq`` (cycles per image side), ``angle`` (radians), ``phase`` and
    ``seed`` (noise texture) fix the rest of the look.
    """
    kind: str
    colour: str
    rgb: Tuple[float, float, float]
    rgb2: Tuple[float, float, float]
    freq: float
    angle: float
    phase: float
    seed: int

    @property
    def words(self) -> str:
        """Caption words, e.g. ``'striped blue background'``."""
        return f'{BACKGROUND_KIND_WORDS[self.kind]} {self.colour} background'


def sample_background_style(rng: np.random.Generator,
                            kind: Optional[str] = None,
                            colour: Optional[str] = None) -> BackgroundStyle:
    """Draw a random background style; ``kind``/``colour`` pin those parts."""
    if kind is None:
        kind = BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
    elif kind not in BACKGROUND_KIND_WORDS:
        raise ValueError(f'sample_background_style: unknown kind {kind!r}; '
                         f'use one of {BACKGROUND_KINDS}.')
    names = tuple(PALETTE)
    if colour is None:
        colour = names[int(rng.integers(len(names)))]
    elif colour not in PALETTE:
        raise ValueError(f'sample_background_style: unknown colour '
                         f'{colour!r}; use one of {names}.')
    base = np.asarray(PALETTE[colour], dtype=np.float64) / 255.0
    base = np.clip(base + rng.uniform(-0.06, 0.06, 3), 0.0, 1.0)
    # Pattern colour: the base pushed towards white or black, so that the
    # named colour stays the scene's dominant hue.
    target = np.ones(3) if base.mean() < 0.5 else np.zeros(3)
    pattern = base + rng.uniform(0.25, 0.45) * (target - base)
    return BackgroundStyle(
        kind=kind, colour=colour,
        rgb=tuple(float(x) for x in base),
        rgb2=tuple(float(x) for x in pattern),
        freq=float(rng.uniform(2.0, 4.5)), angle=float(rng.uniform(0, np.pi)),
        phase=float(rng.uniform(0, 2 * np.pi)),
        seed=int(rng.integers(2 ** 31 - 1)))


def render_background(style: BackgroundStyle, size: int,
                      margin: int = 0) -> np.ndarray:
    """The style's scene as float32 (size + 2 margin)^2 x 3 RGB in 0..1.

    The pattern's period is relative to ``size`` so that a crop of side
    ``size`` shows ``style.freq`` cycles whatever the margin.
    """
    side = int(size) + 2 * int(margin)
    coords = (np.arange(side, dtype=np.float64) + 0.5 - margin) / size
    x, y = np.meshgrid(coords, coords)
    ca, sa = np.cos(style.angle), np.sin(style.angle)
    along = x * ca + y * sa
    f, ph = style.freq, style.phase
    if style.kind == 'plain':
        mix = 0.15 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * along + ph))
    elif style.kind == 'stripes':
        mix = 0.5 + 0.5 * np.tanh(3.0 * np.sin(2 * np.pi * f * along + ph))
    elif style.kind == 'checker':
        across = -x * sa + y * ca
        mix = 0.5 + 0.5 * np.tanh(3.0 * np.sin(2 * np.pi * f * along + ph) *
                                  np.sin(2 * np.pi * f * across + ph))
    elif style.kind == 'dots':
        period = 1.0 / (f + 1.5)
        across = -x * sa + y * ca
        du = np.mod(along + ph / (2 * np.pi) * period, period) - period / 2
        dv = np.mod(across, period) - period / 2
        dist = np.hypot(du, dv) / period
        mix = 0.5 + 0.5 * np.tanh((0.28 - dist) * 25.0)
    elif style.kind == 'gradient':
        mix = np.clip(0.5 + 0.9 * (along - along.mean()), 0.0, 1.0)
    elif style.kind == 'noise':
        grid = int(round(2 * f)) + 2
        noise = np.random.default_rng(style.seed).uniform(
            0, 1, (grid + 1, grid + 1))
        g = np.clip((coords + 0.25) / 1.5, 0, 1) * grid  # covers the margin
        i0 = np.minimum(g.astype(int), grid - 1)
        t = g - i0
        gy, gx = np.meshgrid(i0, i0, indexing='ij')
        ty, tx = np.meshgrid(t, t, indexing='ij')
        mix = ((1 - ty) * ((1 - tx) * noise[gy, gx] + tx * noise[gy, gx + 1]) +
               ty * ((1 - tx) * noise[gy + 1, gx] + tx * noise[gy + 1, gx + 1]))
        mix = np.clip((mix - 0.5) * 2.0 + 0.5, 0, 1)
    else:
        raise ValueError(f'render_background: unknown kind {style.kind!r}; '
                         f'use one of {BACKGROUND_KINDS}.')
    rgb, rgb2 = np.asarray(style.rgb), np.asarray(style.rgb2)
    img = rgb[None, None] + mix[..., None] * (rgb2 - rgb)[None, None]
    return img.astype(np.float32)


@dataclass(frozen=True)
class ForegroundSettings:
    """How foreground shapes are drawn; sizes are fractions of the image side.

    ``radius`` is the usual size range; a fraction ``hard_frac`` of images
    gets a hard foreground, half of them small (``small_radius``) and half
    faint (blended with opacity in ``faint_alpha``). Shapes are turned by a
    random angle of at most ``max_rotation`` degrees either way (upright
    objects, as in photos). Colours are random hues kept at least
    ``min_contrast`` (RGB distance, 0..1.7) from the background's base
    colour, except faint ones.
    """
    radius: Tuple[float, float] = (0.22, 0.38)
    small_radius: Tuple[float, float] = (0.11, 0.16)
    faint_alpha: Tuple[float, float] = (0.3, 0.5)
    hard_frac: float = 0.2
    min_contrast: float = 0.45
    max_rotation: float = 30.0

    def __post_init__(self) -> None:
        for key in ('radius', 'small_radius', 'faint_alpha'):
            lo, hi = (float(x) for x in getattr(self, key))
            object.__setattr__(self, key, (lo, hi))  # JSON gives lists
            if not 0 < lo <= hi <= 1:
                raise ValueError(f'ForegroundSettings.{key} must be a range '
                                 f'0 < low <= high <= 1, got {(lo, hi)}.')
        if not 0 <= self.max_rotation <= 180:
            raise ValueError(f'ForegroundSettings.max_rotation must be in '
                             f'[0, 180] degrees, got {self.max_rotation}.')
        if not 0 <= self.hard_frac <= 1:
            raise ValueError(f'ForegroundSettings.hard_frac must be in [0, 1], '
                             f'got {self.hard_frac}.')


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack([np.stack(c, -1) for c in (
        (v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))])
    return table[i, np.arange(len(h))]


def sample_foregrounds(rng: np.random.Generator, n: int, size: int,
                       bg_rgb: np.ndarray,
                       settings: ForegroundSettings = ForegroundSettings()
                       ) -> Dict[str, np.ndarray]:
    """Draw position, size, rotation, colour and opacity of ``n`` shapes.

    Returns arrays ``cx, cy, radius, angle`` (pixels / radians), ``rgb``
    (N, 3) in 0..1, ``alpha`` (N,) and ``hard`` (N,) in {0 normal, 1 small,
    2 faint}. ``bg_rgb`` (N, 3) is each image's background base colour.
    """
    hard = np.zeros(n, dtype=np.int64)
    is_hard = rng.uniform(size=n) < settings.hard_frac
    hard[is_hard] = 1 + (rng.uniform(size=n) < 0.5)[is_hard]
    frac = rng.uniform(*settings.radius, size=n)
    frac_small = rng.uniform(*settings.small_radius, size=n)
    frac = np.where(hard == 1, frac_small, frac)
    radius = frac * size
    # Keep the shape (unit disc) inside the image.
    pos = rng.uniform(0, 1, size=(n, 2))
    lo, hi = radius[:, None] + 0.5, size - radius[:, None] - 0.5
    cx, cy = (lo + pos * np.maximum(hi - lo, 0)).T
    angle = np.deg2rad(rng.uniform(-1, 1, size=n) * settings.max_rotation)
    rgb = _hsv_to_rgb(rng.uniform(0, 1, n), rng.uniform(0.45, 1, n),
                      rng.uniform(0.35, 1, n))
    # Too close to the background: use the complementary colour instead.
    close = np.linalg.norm(rgb - bg_rgb, axis=1) < settings.min_contrast
    rgb = np.where((close & (hard != 2))[:, None], 1.0 - rgb, rgb)
    still = np.linalg.norm(rgb - bg_rgb, axis=1) < settings.min_contrast
    flip = np.where(bg_rgb.mean(1, keepdims=True) < 0.5, 1.0, 0.0)
    rgb = np.where((still & (hard != 2))[:, None], flip, rgb)
    alpha = np.where(hard == 2, rng.uniform(*settings.faint_alpha, size=n), 1.0)
    return dict(cx=cx, cy=cy, radius=radius, angle=angle, rgb=rgb,
                alpha=alpha, hard=hard)


def compose(backgrounds: np.ndarray, coverage: np.ndarray, rgb: np.ndarray,
            alpha: np.ndarray) -> np.ndarray:
    """Blend shapes onto backgrounds: float (N,H,W,3) -> uint8 (N,H,W,3)."""
    a = (coverage * alpha.astype(np.float32)[:, None, None])[..., None]
    out = backgrounds + (rgb.astype(np.float32)[:, None, None, :] -
                         backgrounds) * a
    out *= 255.0
    np.rint(out, out=out)
    return np.clip(out, 0, 255).astype(np.uint8)


def jitter_backgrounds(rng: np.random.Generator, canvases: Sequence[np.ndarray],
                       size: int, brightness: float = 0.12,
                       noise: float = 0.02) -> np.ndarray:
    """Random crops of side ``size`` from scene canvases, with light changes.

    Each crop is one camera frame: a small shift of the view, a global
    brightness factor in 1 +- ``brightness`` and pixel noise of std
    ``noise``. Returns float32 (N, size, size, 3).
    """
    n = len(canvases)
    out = np.empty((n, size, size, 3), dtype=np.float32)
    for i, canvas in enumerate(canvases):
        m = canvas.shape[0] - size
        ox, oy = rng.integers(0, m + 1, size=2) if m > 0 else (0, 0)
        out[i] = canvas[oy:oy + size, ox:ox + size]
    out *= rng.uniform(1 - brightness, 1 + brightness,
                       size=(n, 1, 1, 1)).astype(np.float32)
    out += np.float32(noise) * rng.standard_normal(size=out.shape,
                                                   dtype=np.float32)
    return np.clip(out, 0.0, 1.0, out=out)


def jpeg_roundtrip(images: np.ndarray, quality: int = 90) -> np.ndarray:
    """Pass uint8 (N,H,W,3) images through JPEG, as the dataset stores them
    (the layout writer's own round trip, image by image)."""
    from tools.dataset_tools.wilds_layout import jpeg_roundtrip as one_image
    out = np.empty_like(images)
    for i, img in enumerate(images):
        out[i] = np.asarray(one_image(Image.fromarray(img, mode='RGB'),
                                      int(quality)))
    return out
