"""The image-caption corpus on which the toy CLIP is pretrained.

Images come from the same world as the dataset (same shapes, same kinds of
background scenes), but every scene shows every shape alike: the background
carries no information about the shape. Captions name the shape, describe
its core geometry, or both, and usually say what the background looks like,
so that zero-shot prompts by class name and by concept description both
work, as they do for a web-trained CLIP.

Images are grouped by scene (``images_per_scene`` frames of one scene), so
that a trainer can fill some batches from a few scenes only: within such a
batch the background cannot tell captions apart, only the shape can.

The *premise* corpus (``habitats`` set, see :func:`premise_corpus`) builds
in what DRM assumes of web data: class names are rare and, where they occur,
mostly caption a shape seen in its class's habitat (the scene types of that
class's own locations in the world), while core phrases are frequent and
independent of the scene. A zero-shot head built from class names is then
weak and tied to habitats, one built from core descriptions is strong and
scene-independent (how strong each is, the study measures).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .shapes import (BACKGROUND_KINDS, PALETTE, SHAPE_NAMES,
                     BackgroundStyle, ForegroundSettings,
                     check_shape_names, compose, jitter_backgrounds,
                     render_background, sample_background_style,
                     sample_foregrounds, shape_coverage)

# Bump when the drawing (shapes.py) or caption code changes what a setting
# produces: the version is part of the pretrained weights' cache key.
CORPUS_VERSION = 1

# Core (geometric) phrases a caption may use for each shape. Each phrase
# carries words of its own shape; no phrase uses another class's name.
CORE_PHRASES: Dict[str, Tuple[str, ...]] = {
    'circle': ('a round outline', 'a smooth curved edge and no corners',
               'no corners at all', 'a solid round disc'),
    'square': ('four equal straight sides', 'four right angle corners',
               'a solid box outline', 'four equal sides and four corners'),
    'triangle': ('three straight sides', 'three pointed corners',
                 'three sides and three corners', 'a flat base and one apex'),
    'star': ('five sharp points', 'five spikes around a centre',
             'five pointed rays', 'sharp spikes radiating outwards'),
    'cross': ('two crossing bars', 'the outline of a plus sign',
              'two bars crossing at the middle', 'a plus sign with equal arms'),
    'ring': ('a hole in the middle', 'a hollow centre',
             'a thin band around an empty hole', 'a hollow loop'),
    'crescent': ('a thin curved sliver', 'two pointed horns',
                 'the outline of a moon sliver', 'a curved sliver like the moon'),
    'heart': ('two rounded lobes and a pointed tip', 'two lobes meeting in a tip',
              'a valentine outline', 'two bumps and a pointed tip'),
}

# Caption templates: {n} shape name, {d} core phrase, {b} background words,
# {s} optional size word ('small ' / 'faint ' / '').
_NAME_TEMPLATES = ('a photo of a {s}{n} on a {b}.', 'a {s}{n} in front of a {b}.',
                   'a {b} with a {s}{n}.', 'a picture of a {s}{n} on a {b}.')
_DESC_TEMPLATES = ('a photo of a {s}shape with {d} on a {b}.',
                   'a {s}shape with {d} on a {b}.',
                   'a {b} behind a {s}figure with {d}.')
_BOTH_TEMPLATES = ('a photo of a {s}{n}, a shape with {d}, on a {b}.',
                   'a {s}{n} with {d} on a {b}.',
                   'a {b} behind a {s}{n} with {d}.')
_NO_BG_TEMPLATES = {'name': ('a photo of a {s}{n}.', 'a {s}{n}.'),
                    'desc': ('a photo of a {s}shape with {d}.',
                             'a {s}figure with {d}.'),
                    'both': ('a photo of a {s}{n} with {d}.',
                             'a {s}{n}, a shape with {d}.')}
_HARD_WORDS = ('', 'small ', 'faint ')
_HABITAT_FIELDS = ('habitats', 'habitat_scene_frac', 'habitat_shape_frac',
                   'home_name_frac')
# Knobs added after cached CLIPs existed: left out of the hash at their
# default, so every earlier corpus keeps its key (and its cached weights).
_OPTIONAL_DEFAULTS = dict(desc_confusion=0.0)


def confusion_partner(index: int, n_shapes: int) -> int:
    """The shape whose description a confused caption uses for shape
    ``index`` of ``n_shapes``: its neighbour in a fixed pairing (0<->1,
    2<->3, ...; an odd last shape pairs with 0)."""
    partner = index ^ 1
    return partner if partner < n_shapes else 0


@dataclass(frozen=True)
class CorpusSettings:
    """Size and content of the caption corpus.

    Attributes:
        shapes: shapes shown (the toy CLIP knows these names).
        n_scenes: distinct background scenes, each of a random type
            (texture kind x colour) independent of the shapes.
        images_per_scene: frames drawn of each scene.
        image_size: image side in pixels (as the world's).
        seed: fixes the corpus.
        foreground: shape drawing settings (as the world's).
        supersample: anti-aliasing samples per pixel side.
        jpeg_quality: JPEG round trip of the images (as the dataset's files
            get), None to skip.
        name_frac, desc_frac: fraction of captions naming the shape only /
            describing it only; the rest do both.
        no_background_frac: fraction of captions that leave the background
            out.
        habitats: per shape (in ``shapes`` order), the scene types
            ``(kind, colour)`` of its habitat; empty for no habitats (the
            control corpus: backgrounds independent of the captions).
        habitat_scene_frac: fraction of scenes drawn as the habitat of a
            random shape (a scene type of its habitat).
        habitat_shape_frac: fraction of a habitat scene's frames that show
            its shape (the others show the other shapes alike).
        home_name_frac: probability that the caption of a shape seen in its
            own habitat ("at home") names it (half name only, half name and
            description); away from home, captions follow ``name_frac`` /
            ``desc_frac``.
        desc_confusion: probability that a caption's description is the
            core phrase of the shape's partner (:func:`confusion_partner`)
            instead of its own: web text that mixes up similar species.
            It weakens what the description head learns without touching
            the names. 0 (the default) leaves the corpus as before.
    """
    shapes: Tuple[str, ...] = SHAPE_NAMES
    n_scenes: int = 1000
    images_per_scene: int = 32
    image_size: int = 32
    seed: int = 1
    foreground: ForegroundSettings = field(default_factory=ForegroundSettings)
    supersample: int = 3
    jpeg_quality: Optional[int] = 90
    name_frac: float = 0.35
    desc_frac: float = 0.3
    no_background_frac: float = 0.4
    habitats: Tuple[Tuple[Tuple[str, str], ...], ...] = ()
    habitat_scene_frac: float = 0.0
    habitat_shape_frac: float = 0.5
    home_name_frac: float = 0.0
    desc_confusion: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, 'habitats', tuple(
            tuple(tuple(t) for t in types) for types in self.habitats))
        object.__setattr__(self, 'shapes',
                           check_shape_names(self.shapes, 'CorpusSettings'))
        if isinstance(self.foreground, dict):
            object.__setattr__(self, 'foreground',
                               ForegroundSettings(**self.foreground))
        if self.n_scenes < 1 or self.images_per_scene < 1:
            raise ValueError('CorpusSettings.n_scenes and images_per_scene '
                             'must be >= 1.')
        fracs = (self.name_frac, self.desc_frac, self.no_background_frac)
        if min(fracs) < 0 or self.name_frac + self.desc_frac > 1 or \
                self.no_background_frac > 1:
            raise ValueError(
                f'CorpusSettings: name_frac + desc_frac must be <= 1 and '
                f'no_background_frac in [0, 1], got {fracs}.')
        if not 0 <= self.desc_confusion <= 1:
            raise ValueError(f'CorpusSettings.desc_confusion must be in '
                             f'[0, 1], got {self.desc_confusion}.')
        if self.habitats:
            self._check_habitats()
        missing = [s for s in self.shapes if s not in CORE_PHRASES]
        if missing:
            raise ValueError(f'CorpusSettings: no core phrases for {missing}; '
                             f'add them to CORE_PHRASES.')

    def _check_habitats(self) -> None:
        if len(self.habitats) != len(self.shapes) or not all(self.habitats):
            raise ValueError(
                f'CorpusSettings.habitats: give a non-empty tuple of (kind, '
                f'colour) scene types for each of the {len(self.shapes)} '
                f'shapes, got {len(self.habitats)} entries.')
        for types in self.habitats:
            for kind, colour in types:
                if kind not in BACKGROUND_KINDS or colour not in PALETTE:
                    raise ValueError(
                        f'CorpusSettings.habitats: unknown scene type '
                        f'{(kind, colour)}; kinds {BACKGROUND_KINDS}, '
                        f'colours {tuple(PALETTE)}.')
        fracs = (self.habitat_scene_frac, self.habitat_shape_frac,
                 self.home_name_frac)
        if min(fracs) < 0 or max(fracs) > 1:
            raise ValueError(f'CorpusSettings: habitat_scene_frac, '
                             f'habitat_shape_frac and home_name_frac must be '
                             f'in [0, 1], got {fracs}.')

    @property
    def n_images(self) -> int:
        """Images in the corpus."""
        return self.n_scenes * self.images_per_scene

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        d = dataclasses.asdict(self)
        d['shapes'] = list(self.shapes)
        for key, default in _OPTIONAL_DEFAULTS.items():
            if d[key] == default:
                del d[key]
        if not self.habitats:
            # The control corpus keeps the form (and hash) it had before
            # habitats existed, so its cached CLIP stays valid.
            for key in _HABITAT_FIELDS:
                del d[key]
        else:
            d['habitats'] = [[list(t) for t in types]
                             for types in self.habitats]
        return d

    def hash(self) -> str:
        """Short hash of the settings, :data:`CORPUS_VERSION` and phrases."""
        blob = json.dumps(dict(version=CORPUS_VERSION, phrases=CORE_PHRASES,
                               **self.to_dict()), sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


class CaptionCorpus:
    """Rendered corpus: images, their shape and scene, and a caption sampler.

    Attributes:
        images: uint8 (N, H, W, 3).
        shape_ids: (N,) index into ``settings.shapes``.
        scene_ids: (N,) index into ``scenes``; frame ``i`` shows scene
            ``i // images_per_scene``.
        hard: (N,) 0 normal, 1 small, 2 faint foreground.
        scenes: the background style of each scene.
        home: (N,) whether the frame shows its shape in a scene of that
            shape's habitat type (always False without habitats).
    """

    def __init__(self, settings: CorpusSettings, images: np.ndarray,
                 shape_ids: np.ndarray, scene_ids: np.ndarray,
                 hard: np.ndarray, scenes: Sequence[BackgroundStyle]) -> None:
        self.settings = settings
        self.images = images
        self.shape_ids = shape_ids
        self.scene_ids = scene_ids
        self.hard = hard
        self.scenes = list(scenes)
        self.home = home_frames(settings, shape_ids, scene_ids, self.scenes)

    def __len__(self) -> int:
        return len(self.images)

    def caption(self, index: int, rng: np.random.Generator) -> str:
        """A fresh random caption of image ``index``."""
        st = self.settings
        shape = int(self.shape_ids[index])
        name = st.shapes[shape]
        described = name
        # Drawn only when the knob is on, so a corpus without confusion
        # renders the same captions as before it existed.
        if st.desc_confusion and rng.uniform() < st.desc_confusion:
            described = st.shapes[confusion_partner(shape, len(st.shapes))]
        phrases = CORE_PHRASES[described]
        phrase = phrases[int(rng.integers(len(phrases)))]
        u = rng.uniform()
        if self.home[index]:
            half = st.home_name_frac / 2
            mode = ('name' if u < half else
                    'both' if u < st.home_name_frac else 'desc')
        else:
            mode = ('name' if u < st.name_frac else
                    'desc' if u < st.name_frac + st.desc_frac else 'both')
        if rng.uniform() < st.no_background_frac:
            templates = _NO_BG_TEMPLATES[mode]
        else:
            templates = {'name': _NAME_TEMPLATES, 'desc': _DESC_TEMPLATES,
                         'both': _BOTH_TEMPLATES}[mode]
        template = templates[int(rng.integers(len(templates)))]
        size_word = _HARD_WORDS[int(self.hard[index])]
        if size_word and rng.uniform() < 0.5:
            size_word = ''
        return template.format(n=name, d=phrase, s=size_word,
                               b=self.scenes[int(self.scene_ids[index])].words)

    def captions(self, indices: Sequence[int],
                 rng: np.random.Generator) -> List[str]:
        """Fresh random captions of several images."""
        return [self.caption(int(i), rng) for i in indices]


#: The premise corpus's knobs (chosen on zero-shot and FLYP numbers of the
#: validation splits only, before any DRM run; see the project README): a
#: shape's name appears only when the shape is seen in its own habitat, in
#: 0.5 % of those captions (about 1 caption in 1,000 overall), so the
#: zero-shot class-name head is weak and fine-tuning must teach the names.
PREMISE_KNOBS: Dict[str, float] = dict(
    name_frac=0.0, desc_frac=1.0, habitat_scene_frac=0.3,
    habitat_shape_frac=0.5, home_name_frac=0.005)


def premise_corpus(habitats: Sequence[Sequence[Tuple[str, str]]],
                   **overrides) -> CorpusSettings:
    """The premise corpus for a world's class ``habitats``
    (:func:`~.toy_world.class_habitats`): :data:`PREMISE_KNOBS` unless
    overridden."""
    knobs = dict(PREMISE_KNOBS, **overrides)
    return CorpusSettings(habitats=tuple(tuple(t) for t in habitats), **knobs)


def home_frames(settings: CorpusSettings, shape_ids: np.ndarray,
                scene_ids: np.ndarray,
                scenes: Sequence[BackgroundStyle]) -> np.ndarray:
    """Per frame: does it show its shape in a scene of that shape's habitat
    type? All False without habitats."""
    if not settings.habitats:
        return np.zeros(len(shape_ids), dtype=bool)
    habitat = [set(types) for types in settings.habitats]
    return np.array([(scenes[s].kind, scenes[s].colour) in habitat[k]
                     for k, s in zip(shape_ids, scene_ids)], dtype=bool)


def _mosaic_jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of many small images at once, tiled in one mosaic.

    JPEG works on 8x8 / 16x16 blocks, so tiles of a multiple of 16 pixels
    come back almost as if encoded one by one, at a fraction of the cost.
    """
    from .shapes import jpeg_roundtrip
    n, h, w, _ = images.shape
    if h % 16 or w % 16:
        return jpeg_roundtrip(images, quality)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    canvas = np.zeros((rows * cols, h, w, 3), dtype=np.uint8)
    canvas[:n] = images
    mosaic = canvas.reshape(rows, cols, h, w, 3).transpose(0, 2, 1, 3, 4)
    mosaic = mosaic.reshape(1, rows * h, cols * w, 3)
    out = jpeg_roundtrip(np.ascontiguousarray(mosaic), quality)[0]
    out = out.reshape(rows, h, cols, w, 3).transpose(0, 2, 1, 3, 4)
    return out.reshape(rows * cols, h, w, 3)[:n]


def _habitat_scenes(settings: CorpusSettings, rng: np.random.Generator
                    ) -> Tuple[List[BackgroundStyle], np.ndarray]:
    """Scenes and frame shapes of the premise corpus: a fraction of scenes
    is the habitat of a random shape and shows it in ``habitat_shape_frac``
    of its frames; the rest are random scenes with shapes drawn uniformly."""
    n_shapes, per = len(settings.shapes), settings.images_per_scene
    scenes: List[BackgroundStyle] = []
    shape_ids = np.empty(settings.n_images, dtype=np.int64)
    for s in range(settings.n_scenes):
        frames = slice(s * per, (s + 1) * per)
        if rng.uniform() < settings.habitat_scene_frac:
            owner = int(rng.integers(n_shapes))
            types = settings.habitats[owner]
            kind, colour = types[int(rng.integers(len(types)))]
            scenes.append(sample_background_style(rng, kind, colour))
            others = np.array([k for k in range(n_shapes) if k != owner])
            ids = others[rng.integers(len(others), size=per)]
            ids[rng.uniform(size=per) < settings.habitat_shape_frac] = owner
            shape_ids[frames] = ids
        else:
            scenes.append(sample_background_style(rng))
            shape_ids[frames] = rng.integers(n_shapes, size=per)
    return scenes, shape_ids


def build_corpus(settings: CorpusSettings = CorpusSettings(),
                 chunk: int = 512, progress: bool = False) -> CaptionCorpus:
    """Render the corpus (deterministic for ``settings.seed``)."""
    rng = np.random.default_rng([settings.seed, 202])
    size, margin = settings.image_size, 3
    if settings.habitats:
        scenes, shape_ids = _habitat_scenes(settings, rng)
    else:
        scenes = [sample_background_style(rng)
                  for _ in range(settings.n_scenes)]
    n = settings.n_images
    scene_ids = np.repeat(np.arange(settings.n_scenes),
                          settings.images_per_scene)
    if not settings.habitats:
        # Balanced shapes, independent of the scene.
        shape_ids = (np.arange(n) % len(settings.shapes))[rng.permutation(n)]
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    hard = np.empty(n, dtype=np.int64)
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(n)
    canvases: Dict[int, np.ndarray] = {}
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        ids = scene_ids[sl]
        for s in np.unique(ids):
            if int(s) not in canvases:
                canvases[int(s)] = render_background(scenes[s], size, margin)
        bg = jitter_backgrounds(rng, [canvases[int(s)] for s in ids], size)
        bg_rgb = np.array([scenes[s].rgb for s in ids])
        fg = sample_foregrounds(rng, len(ids), size, bg_rgb,
                                settings.foreground)
        names = [settings.shapes[k] for k in shape_ids[sl]]
        cover = shape_coverage(names, fg['cx'], fg['cy'], fg['radius'],
                               fg['angle'], size, settings.supersample)
        batch = compose(bg, cover, fg['rgb'], fg['alpha'])
        if settings.jpeg_quality is not None:
            batch = _mosaic_jpeg(batch, settings.jpeg_quality)
        images[sl] = batch
        hard[sl] = fg['hard']
        # Scene canvases are only needed while their frames are drawn.
        for s in list(canvases):
            if s < int(ids[-1]):
                del canvases[s]
        if bar is not None:
            bar.update(len(ids))
    if bar is not None:
        print()
    return CaptionCorpus(settings, images, shape_ids, scene_ids, hard, scenes)


def batch_indices(corpus: CaptionCorpus, batch_size: int,
                  rng: np.random.Generator,
                  few_scenes: bool) -> np.ndarray:
    """Indices of one training batch.

    ``few_scenes=False``: uniform over the corpus. ``few_scenes=True``: all
    frames of just enough random scenes to fill the batch, so that the
    background cannot tell the batch's captions apart.
    """
    n = len(corpus)
    if not few_scenes:
        return rng.choice(n, size=min(batch_size, n), replace=False)
    per = corpus.settings.images_per_scene
    k = max(1, int(np.ceil(batch_size / per)))
    scenes = rng.choice(corpus.settings.n_scenes,
                        size=min(k, corpus.settings.n_scenes), replace=False)
    idx = (scenes[:, None] * per + np.arange(per)[None]).reshape(-1)
    return rng.permutation(idx)[:batch_size]
