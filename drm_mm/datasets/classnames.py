"""Class names used in prompts, and the WordNet-id lists behind them.

``get_classnames(name)`` gives the names the benchmarks' zero-shot heads
use: iWildCam's 182 lower-cased common English names (the project file
``class_names/iwildcam_categories.csv`` maps each WILDS category to one),
FMoW's 62 WILDS category names, open_clip's 1000 ImageNet names and the
200-class ImageNet-A / ImageNet-R subsets in their subset order (sorted
wnids, i.e. ascending ImageNet index).
"""
from __future__ import annotations

import csv
import functools
import os.path as osp
import re
from typing import Dict, List, NamedTuple, Tuple

CLASS_NAMES_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'class_names')
IWILDCAM_CATEGORIES_FILE = osp.join(CLASS_NAMES_DIR, 'iwildcam_categories.csv')
IMAGENET_WNIDS_FILE = osp.join(CLASS_NAMES_DIR, 'imagenet_wnids.txt')
IMAGENET_A_WNIDS_FILE = osp.join(CLASS_NAMES_DIR, 'imagenet_a_wnids.txt')
IMAGENET_R_WNIDS_FILE = osp.join(CLASS_NAMES_DIR, 'imagenet_r_wnids.txt')

CLASSNAME_SETS = ('iwildcam', 'fmow', 'imagenet', 'imagenet_a', 'imagenet_r')
_WNID = re.compile(r'^n\d{8}$')


class IWildCamCategory(NamedTuple):
    """One row of the project's iWildCam category file."""
    y: int
    category_id: int
    name: str
    common_name: str


def normalize_category_name(name: str) -> str:
    """Lower-case and collapse white space ('A  b' -> 'a b')."""
    return ' '.join(str(name).split()).lower()


@functools.lru_cache(maxsize=None)
def iwildcam_categories() -> Tuple[IWildCamCategory, ...]:
    """Rows of ``class_names/iwildcam_categories.csv`` in ``y`` order.

    Columns ``y,category_id,name,common_name``: ``name`` is the WILDS
    (Latin) name of ``categories.csv``, ``common_name`` the lower-cased
    English name used in prompts.
    """
    path = IWILDCAM_CATEGORIES_FILE
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} is missing; it ships with drm_mm (reinstall the '
            f'package, e.g. pip install -e .).')
    with open(path, newline='', encoding='utf-8') as f:
        reader = csv.DictReader(f)
        need = {'y', 'category_id', 'name', 'common_name'}
        if not need <= set(reader.fieldnames or ()):
            raise ValueError(f'{path}: columns must include {sorted(need)}, '
                             f'got {reader.fieldnames}.')
        rows = [IWildCamCategory(int(r['y']), int(r['category_id']),
                                 r['name'].strip(),
                                 r['common_name'].strip().lower())
                for r in reader]
    rows.sort(key=lambda r: r.y)
    if [r.y for r in rows] != list(range(len(rows))):
        raise ValueError(f'{path}: column y must list 0..{len(rows) - 1} '
                         f'exactly once.')
    return tuple(rows)


@functools.lru_cache(maxsize=None)
def _iwildcam_by_name() -> Dict[str, Tuple[IWildCamCategory, ...]]:
    rows: Dict[str, Tuple[IWildCamCategory, ...]] = {}
    for r in iwildcam_categories():
        key = normalize_category_name(r.name)
        rows[key] = rows.get(key, ()) + (r, )
    return rows


def iwildcam_common_name(name: str) -> IWildCamCategory:
    """Project row of a WILDS category ``name`` (Latin, as in categories.csv).

    The exact name (outer blanks stripped, any case) wins; otherwise runs of
    white space are also ignored. WILDS has two categories that differ only in
    white space (y=153 ``'mazama temama'``, y=181 ``'mazama  temama'``), so
    a tolerant match that is not unique is an error, never a guess.

    Raises:
        KeyError: the name is not one of the 182 WILDS iWildCam categories,
            or matches several only after normalisation.
    """
    stripped = str(name).strip().lower()
    exact = [r for r in iwildcam_categories() if r.name.lower() == stripped]
    if len(exact) == 1:
        return exact[0]
    rows = _iwildcam_by_name().get(normalize_category_name(name), ())
    if len(rows) != 1:
        raise KeyError(name if not rows else
                       f'{name!r} matches the WILDS categories '
                       f'{[r.name for r in rows]} (y={[r.y for r in rows]}) '
                       f'only up to white space; give the exact name.')
    return rows[0]


def _read_wnids(path: str, expected: int) -> Tuple[str, ...]:
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} is missing; it ships with drm_mm (reinstall the '
            f'package, e.g. pip install -e .).')
    with open(path, encoding='utf-8') as f:
        wnids = tuple(line.strip() for line in f if line.strip())
    bad = [w for w in wnids if not _WNID.match(w)]
    if bad or len(wnids) != expected or len(set(wnids)) != expected:
        raise ValueError(f'{path}: expected {expected} unique WordNet ids '
                         f'(one per line, like n01440764); got '
                         f'{len(wnids)} lines, malformed: {bad[:5]}.')
    if list(wnids) != sorted(wnids):
        raise ValueError(f'{path}: wnids must be in sorted order (the '
                         f'standard ImageNet class order).')
    return wnids


@functools.lru_cache(maxsize=None)
def imagenet_wnids() -> Tuple[str, ...]:
    """The 1000 ImageNet-1k wnids, standard sorted order (= label order)."""
    return _read_wnids(IMAGENET_WNIDS_FILE, 1000)


@functools.lru_cache(maxsize=None)
def imagenet_a_wnids() -> Tuple[str, ...]:
    """The 200 ImageNet-A wnids, in subset order (sorted)."""
    return _read_wnids(IMAGENET_A_WNIDS_FILE, 200)


@functools.lru_cache(maxsize=None)
def imagenet_r_wnids() -> Tuple[str, ...]:
    """The 200 ImageNet-R wnids, in subset order (sorted)."""
    return _read_wnids(IMAGENET_R_WNIDS_FILE, 200)


def imagenet_wnid_to_index() -> Dict[str, int]:
    """``{wnid: ImageNet-1k label}``."""
    return {w: i for i, w in enumerate(imagenet_wnids())}


def class_subset_indices(name: str) -> List[int]:
    """ImageNet-1k indices of ``'imagenet_a'`` / ``'imagenet_r'``."""
    wnids = {'imagenet_a': imagenet_a_wnids,
             'imagenet_r': imagenet_r_wnids}.get(name)
    if wnids is None:
        raise ValueError(f'class_subset_indices: unknown subset {name!r}; '
                         f'use "imagenet_a" or "imagenet_r".')
    index = imagenet_wnid_to_index()
    unknown = [w for w in wnids() if w not in index]
    if unknown:
        raise ValueError(f'{name} wnids {unknown[:5]} are not ImageNet-1k '
                         f'wnids (check {CLASS_NAMES_DIR}).')
    return [index[w] for w in wnids()]


def imagenet_class_keys() -> List[str]:
    """Description keys of the 1000 ImageNet classes: the open_clip name, or
    ``"<name> [<wnid>]"`` for the names used twice (``missile``,
    ``sunglasses``), as in ``drm_mm/prompts/imagenet.json``."""
    from drm_mm.prompts.descriptions import make_class_keys
    return make_class_keys(imagenet_classnames(), list(imagenet_wnids()))


def get_class_keys(name: str) -> List[str]:
    """Description keys of a class-name set, in label order.

    The class names themselves, except for ImageNet and its subsets, whose
    keys are those of the 1000-class file (a subset keeps the wnid-qualified
    key of a name that is duplicated among the 1000 classes, so
    ``imagenet.json`` serves ImageNet-R / -A too).
    """
    if name == 'imagenet':
        return imagenet_class_keys()
    if name in ('imagenet_a', 'imagenet_r'):
        keys = imagenet_class_keys()
        return [keys[i] for i in class_subset_indices(name)]
    return get_classnames(name)


def imagenet_classnames() -> List[str]:
    """open_clip's 1000 ImageNet class names (OpenAI CLIP's), label order."""
    from open_clip import IMAGENET_CLASSNAMES
    return list(IMAGENET_CLASSNAMES)


def get_classnames(name: str) -> List[str]:
    """Class names for prompts of a benchmark, in label order.

    Args:
        name: ``'iwildcam'`` (182 lower-cased common names, ``y`` order),
            ``'fmow'`` (62 WILDS names with underscores), ``'imagenet'``
            (1000 open_clip names), ``'imagenet_a'`` / ``'imagenet_r'``
            (200 names each, subset order).
    """
    if name == 'iwildcam':
        return [r.common_name for r in iwildcam_categories()]
    if name == 'fmow':
        from wilds.datasets.fmow_dataset import categories
        return list(categories)
    if name == 'imagenet':
        return imagenet_classnames()
    if name in ('imagenet_a', 'imagenet_r'):
        names = imagenet_classnames()
        return [names[i] for i in class_subset_indices(name)]
    raise ValueError(f'get_classnames: unknown class-name set {name!r}; use '
                     f'one of {CLASSNAME_SETS}.')


def get_class_ids(name: str) -> List[str]:
    """The class ids behind a class-name set, in label order: the wnids of
    ``'imagenet'``, ``'imagenet_a'`` and ``'imagenet_r'``, whose repeated
    names are keyed ``"<name> [<wnid>]"`` in the description files."""
    wnids = {'imagenet': imagenet_wnids, 'imagenet_a': imagenet_a_wnids,
             'imagenet_r': imagenet_r_wnids}.get(name)
    if wnids is None:
        raise ValueError(f'get_class_ids: {name!r} has no class ids; use '
                         f'"imagenet", "imagenet_a" or "imagenet_r".')
    return list(wnids())
