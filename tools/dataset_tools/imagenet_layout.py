"""Writers of tiny ImageNet-family folders in their published layouts (tests).

Each writer fills a folder with small random images in the layout of the
published download, so dataset classes are tested on the real structure:

    ImageNet        <root>/train/<wnid>/<wnid>_<k>.JPEG
                    <root>/val/<wnid>/ILSVRC2012_val_<8 digits>.JPEG
                    (val re-sorted into class folders, as usual)
    ImageNet-V2     <root>/imagenetv2-matched-frequency-format-val/<idx>/<hash>.jpeg
                    (folders named by the 0..999 class index)
    ImageNet-Sketch <root>/sketch/<wnid>/sketch_<k>.JPEG
    ImageNet-R      <root>/imagenet-r/<wnid>/art_<k>.jpg
    ImageNet-A      <root>/imagenet-a/<wnid>/<k>.jpg
    ObjectNet       <root>/objectnet-1.0/images/<folder>/<hash>.png
                    <root>/objectnet-1.0/mappings/folder_to_objectnet_label.json
                        {folder: ObjectNet label}, every folder
                    .../mappings/objectnet_to_imagenet_1k.json
                        {ObjectNet label: "imagenet name; imagenet name"},
                        only the labels that overlap ImageNet
                    .../mappings/pytorch_to_imagenet_2012_id.json
                        {"<pytorch index>": <line of imagenet_to_label_2012_v2>}
                    .../mappings/imagenet_to_label_2012_v2
                        one ImageNet class name per line, in 2012-id order

The ObjectNet mapping formats are those read by the WiSE-FT / CLIP
evaluation code for the ObjectNet 1.0 download (assumed, not checked
against the archive itself). ObjectNet images carry a one-pixel red border
like the real ones, which evaluation code crops. Import it from the
checkout root as ``tools.dataset_tools.imagenet_layout``.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from .wilds_layout import random_image

PathLike = Union[str, os.PathLike]

IMAGENET_V2_FOLDER = 'imagenetv2-matched-frequency-format-val'
IMAGENET_SKETCH_FOLDER = 'sketch'
IMAGENET_R_FOLDER = 'imagenet-r'
IMAGENET_A_FOLDER = 'imagenet-a'
OBJECTNET_FOLDER = 'objectnet-1.0'


def _check_wnids(wnids: Sequence[str], name: str) -> list:
    wnids = list(wnids)
    if not wnids:
        raise ValueError(f'{name}: wnids is empty; give at least one WordNet '
                         f'id such as "n01440764".')
    if len(set(wnids)) != len(wnids):
        raise ValueError(f'{name}: wnids contain duplicates: {wnids}.')
    for wnid in wnids:
        if not (isinstance(wnid, str) and len(wnid) == 9
                and wnid[0] == 'n' and wnid[1:].isdigit()):
            raise ValueError(f'{name}: {wnid!r} is not a WordNet id like '
                             f'"n01440764".')
    return wnids


def _check_count(value: int, key: str, name: str) -> int:
    if int(value) < 1:
        raise ValueError(f'{name}: {key} must be >= 1, got {value}.')
    return int(value)


def _save(image: Image.Image, path: pathlib.Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == 'JPEG':
        image.save(path, format='JPEG', quality=90)
    else:
        image.save(path, format=fmt)


def _class_folders(base: pathlib.Path, folders: Iterable[str], per_class: int,
                   size: Tuple[int, int], seed: int, fmt: str,
                   filename) -> None:
    rng = np.random.default_rng(seed)
    for folder in folders:
        for k in range(per_class):
            _save(random_image(rng, size), base / folder / filename(folder, k),
                  fmt)


def write_imagenet(root: PathLike, wnids: Sequence[str], per_class: int = 2,
                   splits: Sequence[str] = ('train', 'val'),
                   size: Tuple[int, int] = (32, 32),
                   seed: int = 0) -> pathlib.Path:
    """Write ``<root>/<split>/<wnid>/*.JPEG`` for each split; return ``root``."""
    name = 'write_imagenet'
    wnids = _check_wnids(wnids, name)
    per_class = _check_count(per_class, 'per_class', name)
    root = pathlib.Path(root)
    rng = np.random.default_rng(seed)
    val_index = 0
    for split in splits:
        if split not in ('train', 'val'):
            raise ValueError(f'{name}: unknown split {split!r}; use "train" '
                             f'and/or "val".')
        for wnid in wnids:
            for k in range(per_class):
                if split == 'train':
                    filename = f'{wnid}_{k}.JPEG'
                else:
                    val_index += 1
                    filename = f'ILSVRC2012_val_{val_index:08d}.JPEG'
                _save(random_image(rng, size), root / split / wnid / filename,
                      'JPEG')
    return root


def write_imagenet_v2(root: PathLike, n_classes: int = 1000,
                      per_class: int = 1, size: Tuple[int, int] = (32, 32),
                      seed: int = 0) -> pathlib.Path:
    """Write ImageNet-V2 matched-frequency: folders ``0..n_classes-1``."""
    name = 'write_imagenet_v2'
    n_classes = _check_count(n_classes, 'n_classes', name)
    per_class = _check_count(per_class, 'per_class', name)
    base = pathlib.Path(root) / IMAGENET_V2_FOLDER
    _class_folders(
        base, (str(i) for i in range(n_classes)), per_class, size, seed,
        'JPEG', lambda folder, k: hashlib.sha1(
            f'v2/{folder}/{k}'.encode()).hexdigest() + '.jpeg')
    return base


def _wnid_folders(root: PathLike, folder: str, wnids: Sequence[str],
                  per_class: int, size: Tuple[int, int], seed: int,
                  name: str, filename) -> pathlib.Path:
    """``<root>/<folder>/<wnid>/<filename(wnid, k)>`` JPEGs, checked."""
    wnids = _check_wnids(wnids, name)
    base = pathlib.Path(root) / folder
    _class_folders(base, wnids, _check_count(per_class, 'per_class', name),
                   size, seed, 'JPEG', filename)
    return base


def write_imagenet_sketch(root: PathLike, wnids: Sequence[str],
                          per_class: int = 1,
                          size: Tuple[int, int] = (32, 32),
                          seed: int = 0) -> pathlib.Path:
    """Write ImageNet-Sketch: ``<root>/sketch/<wnid>/sketch_<k>.JPEG``."""
    return _wnid_folders(root, IMAGENET_SKETCH_FOLDER, wnids, per_class, size,
                         seed, 'write_imagenet_sketch',
                         lambda folder, k: f'sketch_{k}.JPEG')


def write_imagenet_r(root: PathLike, wnids: Sequence[str], per_class: int = 1,
                     size: Tuple[int, int] = (32, 32),
                     seed: int = 0) -> pathlib.Path:
    """Write ImageNet-R: ``<root>/imagenet-r/<wnid>/art_<k>.jpg``."""
    return _wnid_folders(root, IMAGENET_R_FOLDER, wnids, per_class, size,
                         seed, 'write_imagenet_r',
                         lambda folder, k: f'art_{k}.jpg')


def write_imagenet_a(root: PathLike, wnids: Sequence[str], per_class: int = 1,
                     size: Tuple[int, int] = (32, 32),
                     seed: int = 0) -> pathlib.Path:
    """Write ImageNet-A: ``<root>/imagenet-a/<wnid>/<k>.jpg``."""
    return _wnid_folders(root, IMAGENET_A_FOLDER, wnids, per_class, size,
                         seed, 'write_imagenet_a', lambda folder, k: f'{k}.jpg')


def write_objectnet(root: PathLike,
                    mapping: Mapping[str, Tuple[str, Sequence[str]]],
                    imagenet_classnames: Sequence[str],
                    per_class: int = 1,
                    size: Tuple[int, int] = (32, 32),
                    seed: int = 0,
                    pytorch_to_2012: Optional[Sequence[int]] = None
                    ) -> pathlib.Path:
    """Write ObjectNet 1.0 images and its four mapping files; return the folder.

    Args:
        mapping: ``{folder: (objectnet_label, [imagenet class names])}``; an
            empty list marks an ObjectNet class with no ImageNet counterpart
            (left out of ``objectnet_to_imagenet_1k.json``, as in the real
            file).
        imagenet_classnames: ImageNet class names by PyTorch index (sorted
            wnid order); every name used in ``mapping`` must be one of them.
        pytorch_to_2012: for each PyTorch index its ImageNet-2012 id (line
            of ``imagenet_to_label_2012_v2``). Default: the reversed order,
            so a reader that skips this mapping gets wrong labels.
    """
    name = 'write_objectnet'
    per_class = _check_count(per_class, 'per_class', name)
    classnames = [str(c) for c in imagenet_classnames]
    if len(set(classnames)) != len(classnames):
        raise ValueError(f'{name}: imagenet_classnames must be unique, they '
                         f'are keys of the ObjectNet mapping files.')
    n = len(classnames)
    if pytorch_to_2012 is None:
        pytorch_to_2012 = list(range(n - 1, -1, -1))
    pytorch_to_2012 = [int(i) for i in pytorch_to_2012]
    if sorted(pytorch_to_2012) != list(range(n)):
        raise ValueError(f'{name}: pytorch_to_2012 must be a permutation of '
                         f'0..{n - 1} (one 2012 id per ImageNet class).')
    if not mapping:
        raise ValueError(f'{name}: mapping is empty; give at least one '
                         f'{{folder: (objectnet_label, [imagenet names])}}.')
    folder_to_label = {}
    label_to_imagenet = {}
    for folder, entry in mapping.items():
        if len(entry) != 2:
            raise ValueError(f'{name}: mapping[{folder!r}] must be '
                             f'(objectnet_label, [imagenet names]), got '
                             f'{entry!r}.')
        label, names = entry
        unknown = [c for c in names if c not in classnames]
        if unknown:
            raise ValueError(f'{name}: mapping[{folder!r}] names ImageNet '
                             f'classes {unknown} absent from '
                             f'imagenet_classnames.')
        if any('; ' in c for c in names):
            raise ValueError(f'{name}: mapping[{folder!r}]: ImageNet names '
                             f'cannot contain "; " (the file separator).')
        folder_to_label[folder] = label
        if names:
            label_to_imagenet[label] = '; '.join(names)
    if len(set(folder_to_label.values())) != len(folder_to_label):
        raise ValueError(f'{name}: ObjectNet labels in mapping must be '
                         f'unique, got {sorted(folder_to_label.values())}.')

    base = pathlib.Path(root) / OBJECTNET_FOLDER
    rng = np.random.default_rng(seed)
    for folder in mapping:
        for k in range(per_class):
            image = random_image(rng, size)
            pixels = np.asarray(image).copy()
            pixels[[0, -1], :] = (255, 0, 0)
            pixels[:, [0, -1]] = (255, 0, 0)
            filename = hashlib.sha1(f'objectnet/{folder}/{k}'.encode()
                                    ).hexdigest() + '.png'
            _save(Image.fromarray(pixels, mode='RGB'),
                  base / 'images' / folder / filename, 'PNG')

    mappings = base / 'mappings'
    mappings.mkdir(parents=True, exist_ok=True)
    _dump_json(mappings / 'folder_to_objectnet_label.json', folder_to_label)
    _dump_json(mappings / 'objectnet_to_imagenet_1k.json', label_to_imagenet)
    _dump_json(mappings / 'pytorch_to_imagenet_2012_id.json',
               {str(p): i for p, i in enumerate(pytorch_to_2012)})
    lines = [''] * n
    for pytorch_index, line in enumerate(pytorch_to_2012):
        lines[line] = classnames[pytorch_index]
    (mappings / 'imagenet_to_label_2012_v2').write_text(
        ''.join(f'{c}\n' for c in lines), encoding='utf-8')
    return base


def _dump_json(path: pathlib.Path, obj: object) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=1)
