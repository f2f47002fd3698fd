"""The toy world: a synthetic iWildCam-layout dataset with a core feature (the
foreground shape) and a non-core one (the background of the "location").

Each location is a camera with a fixed background scene. In the training
locations each class is seen mostly at its own locations, so the background
is a strong spurious cue; ``id_val`` / ``id_test`` follow the training
distribution. The OOD ``val`` / ``test`` splits use unseen locations whose
background says nothing about the class (``neutral``: a new scene type) or
the opposite (``opposite``: a scene like a training location of one class,
showing only the other classes). The dataset is written with
``write_iwildcam`` of ``tools/dataset_tools/wilds_layout.py``, so
``wilds.get_dataset('iwildcam', root_dir=root)`` opens it unchanged.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .shapes import (BACKGROUND_KINDS, PALETTE, SHAPE_NAMES, BackgroundStyle,
                     ForegroundSettings, check_shape_names, compose,
                     jitter_backgrounds, render_background,
                     sample_background_style, sample_foregrounds,
                     shape_coverage)

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

# Bump when the drawing or sampling code changes what a setting produces.
WORLD_VERSION = 1
SPLITS: Tuple[str, ...] = ('train', 'id_val', 'id_test', 'val', 'test')
WORLD_INFO_FILE = 'toy_world.json'
SAMPLE_INFO_FILE = 'toy_samples.csv'
HARD_NAMES: Tuple[str, ...] = ('normal', 'small', 'faint')


@dataclass(frozen=True)
class WorldSettings:
    """Every knob of the toy world; the defaults are the documented world.

    Attributes:
        classes: shape names, one class each (order = label ``y``).
        image_size: image side in pixels.
        seed: fixes every location, sample and pixel.
        n_train, n_id_val, n_id_test, n_val, n_test: images per split
            (classes balanced within each split).
        locations_per_class: training locations owned by each class.
        own_location_frac: probability that a train / id_val / id_test image
            is taken at one of its class's own locations (the spurious
            correlation); otherwise at a location of another class.
        n_val_locations, n_test_locations: unseen locations of the OOD
            ``val`` and ``test`` splits.
        opposite_location_frac: fraction of those OOD locations whose scene
            copies the look of a training location of one class while
            showing only the other classes; the rest are neutral (a scene
            type no training location has, all classes alike).
        foreground: size, hard-case and colour settings of the shapes.
        background_margin: pixels of scene around the view, for the small
            camera shifts between frames.
        brightness_jitter, pixel_noise: per-frame light change and noise.
        jpeg_quality: quality of the written JPEGs.
    """
    classes: Tuple[str, ...] = SHAPE_NAMES
    image_size: int = 32
    seed: int = 0
    n_train: int = 4000
    n_id_val: int = 500
    n_id_test: int = 1000
    n_val: int = 1000
    n_test: int = 1000
    locations_per_class: int = 3
    own_location_frac: float = 0.9
    n_val_locations: int = 8
    n_test_locations: int = 8
    opposite_location_frac: float = 0.5
    foreground: ForegroundSettings = field(default_factory=ForegroundSettings)
    background_margin: int = 3
    brightness_jitter: float = 0.12
    pixel_noise: float = 0.02
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        object.__setattr__(self, 'classes',
                           check_shape_names(self.classes, 'WorldSettings'))
        if isinstance(self.foreground, dict):
            object.__setattr__(self, 'foreground',
                               ForegroundSettings(**self.foreground))
        for key in ('n_train', 'n_id_val', 'n_id_test', 'n_val', 'n_test'):
            if getattr(self, key) < len(self.classes):
                raise ValueError(
                    f'WorldSettings.{key}={getattr(self, key)} must be at '
                    f'least the number of classes ({len(self.classes)}) so '
                    f'that every class appears in every split.')
        if self.image_size < 8:
            raise ValueError(f'WorldSettings.image_size must be >= 8, got '
                             f'{self.image_size}.')
        if self.locations_per_class < 1:
            raise ValueError('WorldSettings.locations_per_class must be >= 1.')
        if not 0 <= self.own_location_frac <= 1:
            raise ValueError(f'WorldSettings.own_location_frac must be in '
                             f'[0, 1], got {self.own_location_frac}.')
        if not 0 <= self.opposite_location_frac <= 1:
            raise ValueError(f'WorldSettings.opposite_location_frac must be '
                             f'in [0, 1], got {self.opposite_location_frac}.')
        if self.n_val_locations < 1 or self.n_test_locations < 1:
            raise ValueError('WorldSettings.n_val_locations and '
                             'n_test_locations must be >= 1.')
        n_styles = len(BACKGROUND_KINDS) * len(PALETTE)
        needed = (len(self.classes) * self.locations_per_class +
                  self.n_val_locations + self.n_test_locations)
        if needed > n_styles:
            raise ValueError(
                f'WorldSettings: {needed} locations need distinct scene '
                f'types but only {n_styles} (kind x colour) exist; lower '
                f'locations_per_class or the OOD location counts.')

    def split_sizes(self) -> Dict[str, int]:
        """Images per split."""
        return {s: getattr(self, f'n_{s}') for s in SPLITS}

    def to_dict(self) -> Dict[str, Any]:
        """Plain-JSON form (``WorldSettings(**d)`` rebuilds it)."""
        d = dataclasses.asdict(self)
        d['classes'] = list(self.classes)
        return d

    def hash(self) -> str:
        """Short hash of the settings and :data:`WORLD_VERSION`."""
        blob = json.dumps(dict(version=WORLD_VERSION, **self.to_dict()),
                          sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Location:
    """A camera: its split group, scene and what its scene says.

    ``kind`` is ``'id'`` (owned by class ``cls``), ``'neutral'`` (``cls`` =
    -1) or ``'opposite'`` (looks like a training location of class ``cls``
    and shows every class but ``cls``).
    """
    index: int
    split_group: str  # 'id', 'val' or 'test'
    kind: str
    cls: int
    style: BackgroundStyle


def _scene_combos(rng: np.random.Generator) -> List[Tuple[str, str]]:
    combos = [(k, c) for k in BACKGROUND_KINDS for c in PALETTE]
    return [combos[i] for i in rng.permutation(len(combos))]


def make_locations(settings: WorldSettings) -> List[Location]:
    """All locations of the world, indexed 0..L-1 (ID first, then val, test).

    Every ID and neutral location has a scene type (texture kind x colour)
    of its own; an opposite location reuses the type of a training location
    of the class it mimics, with a new layout (phase, frequency, noise).
    """
    rng = np.random.default_rng([settings.seed, 101])
    combos = iter(_scene_combos(rng))
    n_cls = len(settings.classes)
    owners = np.repeat(np.arange(n_cls), settings.locations_per_class)
    owners = owners[rng.permutation(len(owners))]
    locations: List[Location] = []
    for owner in owners:
        kind, colour = next(combos)
        locations.append(Location(len(locations), 'id', 'id', int(owner),
                                  sample_background_style(rng, kind, colour)))
    id_locations = list(locations)
    mimic_offset = 0
    for group, count in (('val', settings.n_val_locations),
                         ('test', settings.n_test_locations)):
        n_opposite = int(round(settings.opposite_location_frac * count))
        if n_opposite == count and len(set(
                (mimic_offset + j) % n_cls for j in range(count))) < 2:
            raise ValueError(
                f'WorldSettings: all {count} {group} location(s) would be '
                f'"opposite" locations of one class, leaving that class no '
                f'{group} location; raise n_{group}_locations or lower '
                f'opposite_location_frac.')
        for j in range(count):
            if j < n_opposite:
                cls = (mimic_offset + j) % n_cls
                own = [loc for loc in id_locations if loc.cls == cls]
                model = own[int(rng.integers(len(own)))].style
                style = sample_background_style(rng, model.kind, model.colour)
                locations.append(Location(len(locations), group, 'opposite',
                                          cls, style))
            else:
                kind, colour = next(combos)
                locations.append(Location(
                    len(locations), group, 'neutral', -1,
                    sample_background_style(rng, kind, colour)))
        mimic_offset += n_opposite
    return locations


def class_habitats(settings: WorldSettings
                   ) -> Tuple[Tuple[Tuple[str, str], ...], ...]:
    """Per class, the scene types ``(kind, colour)`` of its own (training)
    locations: the habitat that a premise caption corpus ties its name to."""
    habitats: List[List[Tuple[str, str]]] = [[] for _ in settings.classes]
    for loc in make_locations(settings):
        if loc.kind == 'id':
            habitats[loc.cls].append((loc.style.kind, loc.style.colour))
    return tuple(tuple(types) for types in habitats)


def background_images(settings: WorldSettings, per_location: int = 25
                      ) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """Frames of the scenes alone, without a shape, and the class each
    scene is tied to: ``'id'`` the training locations (their owner class),
    ``'opposite'`` the OOD locations that mimic a class's scene (that
    class). A model that names these classes reads the background."""
    locations = make_locations(settings)
    rng = np.random.default_rng([settings.seed, 404])
    size, margin = settings.image_size, settings.background_margin
    out: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
    for kind in ('id', 'opposite'):
        chosen = [l for l in locations if l.kind == kind]
        frames = jitter_backgrounds(
            rng, [render_background(l.style, size, margin)
                  for l in chosen for _ in range(per_location)], size,
            settings.brightness_jitter, settings.pixel_noise)
        images = np.clip(np.round(frames * 255), 0, 255).astype(np.uint8)
        out[kind] = (images, np.repeat([l.cls for l in chosen], per_location))
    return out


def _split_plan(settings: WorldSettings, split: str,
                locations: Sequence[Location],
                rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray,
                                                   np.ndarray]:
    """Labels, locations and location relation (see SAMPLE_INFO_FILE)."""
    n = settings.split_sizes()[split]
    n_cls = len(settings.classes)
    y = (np.arange(n) % n_cls)[rng.permutation(n)]
    loc = np.empty(n, dtype=np.int64)
    relation = np.empty(n, dtype=object)
    if split in ('train', 'id_val', 'id_test'):
        pool = [l for l in locations if l.split_group == 'id']
        own = rng.uniform(size=n) < settings.own_location_frac
        for i in range(n):
            if own[i]:
                cand = [l.index for l in pool if l.cls == y[i]]
            else:
                cand = [l.index for l in pool if l.cls != y[i]]
            loc[i] = cand[int(rng.integers(len(cand)))]
            relation[i] = 'own' if own[i] else 'other'
    else:
        pool = [l for l in locations if l.split_group == split]
        for i in range(n):
            cand = [l for l in pool if l.cls != y[i]]
            chosen = cand[int(rng.integers(len(cand)))]
            loc[i] = chosen.index
            relation[i] = chosen.kind
    return y, loc, relation


SplitPlan = Tuple[np.ndarray, np.ndarray, np.ndarray]


def plan_world(settings: WorldSettings
               ) -> Tuple[List[Location], Dict[str, SplitPlan]]:
    """Locations and, per split, labels / location ids / relations.

    Locations that no image uses (possible only in very small worlds) are
    dropped and the rest renumbered 0..L-1, as wilds requires.
    """
    locations = make_locations(settings)
    plans = {split: _split_plan(settings, split, locations,
                                np.random.default_rng(
                                    [settings.seed, 1 + i, 0]))
             for i, split in enumerate(SPLITS)}
    used = sorted({int(l) for _, loc, _ in plans.values() for l in loc})
    if len(used) < len(locations):
        remap = np.full(len(locations), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        locations = [dataclasses.replace(l, index=int(remap[l.index]))
                     for l in locations if remap[l.index] >= 0]
        plans = {s: (y, remap[loc], rel) for s, (y, loc, rel) in plans.items()}
    return locations, plans


def iter_samples(settings: WorldSettings,
                 plan: Optional[Tuple[List[Location],
                                      Dict[str, SplitPlan]]] = None,
                 chunk: int = 256,
                 progress: bool = False,
                 splits: Sequence[str] = SPLITS) -> Iterator[Dict[str, Any]]:
    """Yield the samples of ``splits`` (default all, order :data:`SPLITS`).

    Each sample is a dict for ``write_iwildcam`` (``image`` uint8 HxWx3,
    ``split``, ``y``, ``location``) plus ``relation`` (own/other/neutral/
    opposite) and ``hard`` (normal/small/faint). Every split draws from its
    own random stream, so changing one split's size leaves the others, and
    a split is the same whether drawn alone or with the others.
    """
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f'iter_samples: unknown split(s) {unknown}; use '
                         f'{SPLITS}.')
    locations, plans = plan if plan is not None else plan_world(settings)
    size, margin = settings.image_size, settings.background_margin
    canvases = {l.index: render_background(l.style, size, margin)
                for l in locations}
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(sum(settings.split_sizes()[s] for s in splits))
    for split_id, split in enumerate(SPLITS):
        if split not in splits:
            continue
        rng = np.random.default_rng([settings.seed, 1 + split_id, 1])
        y, loc, relation = plans[split]
        for start in range(0, len(y), chunk):
            sl = slice(start, start + chunk)
            names = [settings.classes[c] for c in y[sl]]
            bg = jitter_backgrounds(rng, [canvases[l] for l in loc[sl]], size,
                                    settings.brightness_jitter,
                                    settings.pixel_noise)
            bg_rgb = np.array([locations[l].style.rgb for l in loc[sl]])
            fg = sample_foregrounds(rng, len(names), size, bg_rgb,
                                    settings.foreground)
            cover = shape_coverage(names, fg['cx'], fg['cy'], fg['radius'],
                                   fg['angle'], size)
            images = compose(bg, cover, fg['rgb'], fg['alpha'])
            for k in range(len(names)):
                i = start + k
                yield dict(image=images[k], split=split, y=int(y[i]),
                           location=int(loc[i]), relation=str(relation[i]),
                           hard=HARD_NAMES[int(fg['hard'][k])])
            if bar is not None:
                bar.update(len(names))
    if bar is not None:
        print()


def world_info(settings: WorldSettings,
               locations: Sequence[Location]) -> Dict[str, Any]:
    """What ``toy_world.json`` stores: settings, hash and the locations."""
    return dict(
        version=WORLD_VERSION, hash=settings.hash(),
        settings=settings.to_dict(),
        locations=[dict(index=l.index, split_group=l.split_group,
                        kind=l.kind, cls=l.cls,
                        cls_name=settings.classes[l.cls] if l.cls >= 0 else '',
                        style=dataclasses.asdict(l.style))
                   for l in locations])


def generate_world(root: PathLike,
                   settings: WorldSettings = WorldSettings(),
                   overwrite: bool = False,
                   progress: bool = True) -> pathlib.Path:
    """Write the toy world under ``<root>/iwildcam_v2.0`` and return that.

    Besides the WILDS files it writes ``toy_world.json`` (settings, hash,
    locations) and ``toy_samples.csv`` (per image, in metadata.csv order:
    ``relation`` of the image to its location and its ``hard`` case).
    """
    from tools.dataset_tools.wilds_layout import write_iwildcam

    plan = plan_world(settings)
    locations = plan[0]
    extra: List[Tuple[str, str]] = []

    def samples() -> Iterator[Dict[str, Any]]:
        for s in iter_samples(settings, plan, progress=progress):
            extra.append((s.pop('relation'), s.pop('hard')))
            yield s

    categories = [(y, y, name) for y, name in enumerate(settings.classes)]
    folder = write_iwildcam(root, samples(), categories=categories,
                            jpeg_quality=settings.jpeg_quality,
                            overwrite=overwrite)
    with open(folder / SAMPLE_INFO_FILE, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['relation', 'hard'])
        writer.writerows(extra)
    (folder / WORLD_INFO_FILE).write_text(
        json.dumps(world_info(settings, locations), indent=1))
    logger.info('toy world %s written to %s', settings.hash(), folder)
    return folder


def read_world_info(root: PathLike) -> Optional[Dict[str, Any]]:
    """``toy_world.json`` of the world under ``root``, or None if absent."""
    path = pathlib.Path(root) / 'iwildcam_v2.0' / WORLD_INFO_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def ensure_world(root: PathLike,
                 settings: WorldSettings = WorldSettings(),
                 progress: bool = True) -> Tuple[pathlib.Path, bool]:
    """Generate the world unless ``root`` already holds these settings.

    Returns (folder, generated). A world with other settings is replaced.
    """
    info = read_world_info(root)
    folder = pathlib.Path(root) / 'iwildcam_v2.0'
    if info is not None and info.get('hash') == settings.hash():
        logger.info('toy world %s found in %s, reusing it', settings.hash(),
                    folder)
        return folder, False
    if folder.exists():
        logger.info('replacing the toy world in %s (settings changed)', folder)
    return generate_world(root, settings, overwrite=True,
                          progress=progress), True
