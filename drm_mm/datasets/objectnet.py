"""``ObjectNet``: its classes that map to ImageNet, scored by folding.

Uses the mapping files shipped inside the ObjectNet 1.0 download
(``objectnet-1.0/mappings/``): ``folder_to_objectnet_label.json``,
``objectnet_to_imagenet_1k.json``, ``pytorch_to_imagenet_2012_id.json`` and
``imagenet_to_label_2012_v2``. Classes are the ObjectNet folders whose
label maps to ImageNet (113 in the release), sorted by folder name; the
images of the other folders are not part of the benchmark and are left out
(the count is logged). The model predicts over ImageNet-1k and
``metainfo['class_folding']`` maps its classes to ObjectNet's: the
multi-set loops hand it to ``model.set_class_folding``, so each head's
logits are folded (max over an ObjectNet class's ImageNet classes) before
its softmax and the β mixture, as the authors evaluate; a model without
that method has its 1000-way scores folded by ``ImageNetAccuracy``.
The red frame of ObjectNet images is cropped by a :class:`CropBorder`
inserted after the image loader.
"""
from __future__ import annotations

import json
import logging
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log

from drm_mm.datasets.imagenet_base import (ImageNetFolderBase,
                                           list_subfolders)
from drm_mm.datasets.transforms.crop_border import CropBorder
from drm_mm.datasets.transforms.load_image_draft import LoadImageDraft
from drm_mm.registry import DATASETS

MAPPING_FILES = ('folder_to_objectnet_label.json',
                 'objectnet_to_imagenet_1k.json',
                 'pytorch_to_imagenet_2012_id.json',
                 'imagenet_to_label_2012_v2')


def read_objectnet_mappings(mapping_dir: str
                            ) -> Tuple[Dict[str, str], Dict[str, List[int]]]:
    """Read the ObjectNet mapping files.

    Returns:
        ``({folder: ObjectNet label}, {folder: [ImageNet-1k indices]})``, the
        second only for folders whose label maps to ImageNet.
    """
    for filename in MAPPING_FILES:
        path = osp.join(mapping_dir, filename)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'ObjectNet: mapping file {path} is missing; the mapping '
                f'files ship inside the ObjectNet 1.0 download '
                f'(objectnet-1.0/mappings/). Re-extract the archive.')

    def load(filename: str) -> Any:
        path = osp.join(mapping_dir, filename)
        try:
            with open(path, encoding='utf-8') as f:
                return json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'ObjectNet: {path} is not valid JSON: '
                             f'{err}.') from None

    folder_to_label = load('folder_to_objectnet_label.json')
    label_to_imagenet = load('objectnet_to_imagenet_1k.json')
    pytorch_to_2012 = load('pytorch_to_imagenet_2012_id.json')
    with open(osp.join(mapping_dir, 'imagenet_to_label_2012_v2'),
              encoding='utf-8') as f:
        lines = [line.strip() for line in f]
    while lines and not lines[-1]:
        lines.pop()

    name_to_index: Dict[str, int] = {}
    duplicates = set()
    for pytorch_index, line_index in pytorch_to_2012.items():
        line_index = int(line_index)
        if not 0 <= line_index < len(lines):
            raise ValueError(
                f'ObjectNet: pytorch_to_imagenet_2012_id.json maps '
                f'{pytorch_index} to line {line_index}, beyond the '
                f'{len(lines)} lines of imagenet_to_label_2012_v2.')
        name = lines[line_index]
        if name in name_to_index:
            duplicates.add(name)
        name_to_index[name] = int(pytorch_index)

    label_to_folder = {label: folder
                       for folder, label in folder_to_label.items()}
    folding: Dict[str, List[int]] = {}
    for label, names in label_to_imagenet.items():
        if label not in label_to_folder:
            raise ValueError(
                f'ObjectNet: label {label!r} of objectnet_to_imagenet_1k.json '
                f'has no folder in folder_to_objectnet_label.json.')
        indices = []
        for name in str(names).split('; '):
            if name not in name_to_index:
                raise ValueError(
                    f'ObjectNet: ImageNet class {name!r} (for {label!r}) is '
                    f'not in imagenet_to_label_2012_v2.')
            if name in duplicates:
                print_log(f'ObjectNet: ImageNet name {name!r} appears on '
                          f'several lines of imagenet_to_label_2012_v2; the '
                          f'last one is used (as WiSE-FT does).',
                          logger='current', level=logging.WARNING)
            indices.append(name_to_index[name])
        folding[label_to_folder[label]] = sorted(set(indices))
    return folder_to_label, folding


@DATASETS.register_module()
class ObjectNet(ImageNetFolderBase):
    """ObjectNet 1.0 test set restricted to the classes that map to ImageNet.

    ``gt_label`` = index of the ObjectNet class (sorted folder order);
    ``metainfo``: ``classes`` (lower-cased ObjectNet labels),
    ``class_folding`` (per class, the ImageNet-1k indices folded into it),
    ``folders``. Use with ``ImageNetAccuracy`` in a multi-set loop (which
    folds the model's logits through ``set_class_folding``).

    Args:
        data_root: folder holding ``objectnet-1.0/``.
        folder: the ObjectNet folder under ``data_root``.
        border: pixels cropped from each side after loading (the ObjectNet
            frame). The issue's protocol uses 1; WiSE-FT / model-soups crop
            2. A ``CropBorder`` already in the pipeline is kept as is.
        **kwargs: see :class:`ImageNetFolderBase`.
    """

    DEFAULT_FOLDER = 'objectnet-1.0'
    ID_KIND = 'ObjectNet folder names listed in folder_to_objectnet_label.json'
    DOWNLOAD_HINT = ('Download ObjectNet 1.0 from https://objectnet.dev and '
                     'extract it so that <data_root>/objectnet-1.0/images/ '
                     'and .../mappings/ exist.')

    def __init__(self,
                 data_root: str = ImageNetFolderBase.DEFAULT_ROOT,
                 folder: Optional[str] = None,
                 pipeline: Sequence = (),
                 border: int = 1,
                 **kwargs: Any) -> None:
        if isinstance(border, bool) or not isinstance(border, int) \
                or border < 0:
            raise ValueError(f'ObjectNet: border must be an int >= 0, got '
                             f'{border!r}.')
        self.border = border
        self._folding: Dict[str, List[int]] = {}
        super().__init__(data_root=data_root, folder=folder,
                         pipeline=pipeline, **kwargs)

    @property
    def base_dir(self) -> str:
        """``<data_root>/<folder>``: holds ``images/`` and ``mappings/``."""
        return osp.abspath(osp.join(self.data_root, self.folder))

    @property
    def image_root(self) -> str:
        return osp.join(self.base_dir, 'images')

    def _adapt_pipeline(self, transforms: List[Any]) -> List[Any]:
        if self.border == 0 or any(isinstance(t, CropBorder)
                                   for t in transforms):
            return transforms
        for position, transform in enumerate(transforms):
            if isinstance(transform, (LoadImageDraft, LoadImageFromFile)):
                return (transforms[:position + 1] + [CropBorder(self.border)]
                        + transforms[position + 1:])
        return transforms  # nothing decodes images: nothing to crop

    def load_data_list(self) -> List[dict]:
        root = self._check_root()
        folder_to_label, folding = read_objectnet_mappings(
            osp.join(self.base_dir, 'mappings'))
        present = list_subfolders(root)
        # Every ObjectNet folder is known; only the mapped ones are classes.
        self._check_known(root, present, folder_to_label)
        expected = sorted(folding)
        folders = self._check_folders(
            root, [f for f in present if f in folding], expected)
        left_out = [f for f in present if f not in folding]
        if left_out:
            print_log(f'ObjectNet: {len(left_out)} folder(s) of {root} are '
                      f'ObjectNet classes without an ImageNet counterpart; '
                      f'their images are not part of the benchmark and are '
                      f'left out.', logger='current', level=logging.INFO)
        label_of = {f: i for i, f in enumerate(expected)}
        data_list = self._scan(root, folders, label_of)
        self._folding = folding
        for key, value in self.class_metainfo(expected,
                                              folder_to_label).items():
            self._metainfo.setdefault(key, value)
        print_log(f'ObjectNet: {len(data_list)} images in {len(folders)} '
                  f'classes from {root}.', logger='current',
                  level=logging.INFO)
        return data_list

    def _check_known(self, root: str, present: List[str],
                     folder_to_label: Dict[str, str]) -> None:
        unknown = [f for f in present if f not in folder_to_label]
        if unknown:
            raise ValueError(
                f'ObjectNet: {len(unknown)} folder(s) of {root} are not '
                f'ObjectNet classes ({self.ID_KIND}): first unknown '
                f'{unknown[:5]}.')

    def expected_folders(self) -> List[str]:
        return sorted(self._folding)

    def class_metainfo(self, expected: Optional[List[str]] = None,
                       folder_to_label: Optional[Dict[str, str]] = None
                       ) -> Dict[str, Any]:
        expected = self.expected_folders() if expected is None else expected
        labels = folder_to_label or {}
        return dict(
            classes=tuple(str(labels.get(f, f)).lower() for f in expected),
            class_folding=[list(self._folding[f]) for f in expected],
            folders=tuple(expected))
