"""``ImageNetFolderBase``: class-per-folder test sets of the ImageNet family.

Subclasses name the folder under ``data_root`` and the expected class
folders (wnids or class indices) in label order. The folder is checked
against that list: an unknown class folder is an error naming the first
ones, missing classes are an error unless ``allow_missing_classes=True``,
and an empty result is never returned silently. Samples are ordered by
label, then file name.
"""
from __future__ import annotations

import logging
import os
import os.path as osp
from typing import Any, ClassVar, Dict, List, Optional, Sequence

from mmengine.logging import print_log
from mmpretrain.datasets import BaseDataset

from drm_mm.datasets.config_refs import DATA_ROOT_HINT, check_resolved
from drm_mm.datasets.skip_corrupt import SkipCorruptMixin
from drm_mm.datasets.transforms.build import build_transforms

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                  '.tiff', '.webp')


def list_images(folder: str) -> List[str]:
    """Image files of ``folder`` (not recursive), sorted by name."""
    with os.scandir(folder) as entries:
        names = [e.name for e in entries
                 if e.is_file() and not e.name.startswith('.')
                 and e.name.lower().endswith(IMG_EXTENSIONS)]
    return sorted(names)


def list_subfolders(folder: str) -> List[str]:
    """Visible sub-folders of ``folder``, sorted."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries
                      if e.is_dir() and not e.name.startswith('.'))


class ImageNetFolderBase(SkipCorruptMixin, BaseDataset):
    """Base of the ImageNet-family datasets (one folder per class).

    Args:
        data_root: folder holding ``folder``.
        folder: sub-folder with the class folders ('' = ``data_root``
            itself); default: the published name of the variant.
        pipeline: MMEngine transforms (loader first, ``PackInputs`` last).
        allow_missing_classes: accept a folder with only some of the
            classes (a warning names them); default False, because an
            incomplete test set gives numbers not comparable to published
            ones.
        skip_corrupt: skip corrupt images (training only).
        test_mode: MMEngine test mode (default True: these are test sets).
        **kwargs: other ``mmpretrain.datasets.BaseDataset`` arguments.
    """

    DEFAULT_ROOT: ClassVar[str] = 'data'
    DEFAULT_FOLDER: ClassVar[str] = ''
    DOWNLOAD_HINT: ClassVar[str] = ''
    ID_KIND: ClassVar[str] = 'WordNet ids such as n01440764'

    def __init__(self,
                 data_root: str = DEFAULT_ROOT,
                 folder: Optional[str] = None,
                 pipeline: Sequence = (),
                 allow_missing_classes: bool = False,
                 skip_corrupt: bool = False,
                 test_mode: bool = True,
                 **kwargs: Any) -> None:
        name = type(self).__name__
        for key in ('ann_file', 'data_prefix', 'classes'):
            if key in kwargs:
                raise TypeError(f'{name}: {key!r} is not used (classes and '
                                f'paths come from the published layout).')
        check_resolved(name, 'data_root', data_root)
        self.folder = self.DEFAULT_FOLDER if folder is None else str(folder)
        self.allow_missing_classes = bool(allow_missing_classes)
        self._init_skip_corrupt(skip_corrupt, test_mode)
        super().__init__(ann_file='', data_root=osp.expanduser(str(data_root)),
                         data_prefix='',
                         pipeline=self._adapt_pipeline(
                             build_transforms(pipeline)),
                         test_mode=test_mode, **kwargs)
        self._check_skip_corrupt_pipeline()

    # hooks for subclasses ------------------------------------------------

    def _adapt_pipeline(self, transforms: List[Any]) -> List[Any]:
        """Change the built pipeline (ObjectNet inserts its border crop)."""
        return transforms

    def expected_folders(self) -> List[str]:
        """Class folder names in label order."""
        raise NotImplementedError

    def class_metainfo(self) -> Dict[str, Any]:
        """``classes`` and, for subsets, ``class_subset``."""
        raise NotImplementedError

    # ---------------------------------------------------------------------

    @property
    def image_root(self) -> str:
        """``<data_root>/<folder>``: the folder holding the class folders."""
        return osp.abspath(osp.join(self.data_root, self.folder))

    def _check_root(self) -> str:
        name = type(self).__name__
        root = self.image_root
        if not osp.isdir(root):
            raise FileNotFoundError(
                f'{name}: {root} does not exist '
                f'(data_root={self.data_root!r}, folder={self.folder!r}). '
                f'{DATA_ROOT_HINT} {self.DOWNLOAD_HINT}')
        return root

    def _check_folders(self, root: str, present: List[str],
                       expected: List[str]) -> List[str]:
        """Return the expected folders present; raise on unknown / missing."""
        name = type(self).__name__
        if not present:
            if list_images(root):
                raise ValueError(
                    f'{name}: {root} holds images but no class folders; sort '
                    f'the images into one folder per class ({self.ID_KIND}).')
            raise ValueError(f'{name}: {root} has no class folders. '
                             f'{self.DOWNLOAD_HINT}')
        expected_set = set(expected)
        unknown = [f for f in present if f not in expected_set]
        if unknown:
            raise ValueError(
                f'{name}: {len(unknown)} class folder(s) of {root} are not '
                f'expected classes ({self.ID_KIND}): first unknown '
                f'{unknown[:5]}. Point data_root/folder at the published '
                f'layout of this dataset.')
        present_set = set(present)
        missing = [f for f in expected if f not in present_set]
        if missing:
            message = (f'{name}: {root} lacks {len(missing)} of '
                       f'{len(expected)} class folders (first missing: '
                       f'{missing[:5]}).')
            if not self.allow_missing_classes:
                raise ValueError(
                    f'{message} The download is incomplete; complete it, or '
                    f'pass allow_missing_classes=True to evaluate on the '
                    f'classes present (not comparable to published numbers).')
            print_log(message, logger='current', level=logging.WARNING)
        return [f for f in expected if f in present_set]

    def _scan(self, root: str, folders: List[str],
              label_of: Dict[str, int]) -> List[dict]:
        data_list = []
        empty = []
        for folder in folders:
            files = list_images(osp.join(root, folder))
            if not files:
                empty.append(folder)
            data_list.extend(
                dict(img_path=osp.join(root, folder, f),
                     gt_label=label_of[folder]) for f in files)
        if empty:
            message = (f'{type(self).__name__}: {len(empty)} class folder(s) '
                       f'of {root} hold no images: {empty[:5]}.')
            if not self.allow_missing_classes:
                raise ValueError(f'{message} Complete the download or pass '
                                 f'allow_missing_classes=True.')
            print_log(message, logger='current', level=logging.WARNING)
        if not data_list:
            raise ValueError(f'{type(self).__name__}: no images found under '
                             f'{root}. {self.DOWNLOAD_HINT}')
        return data_list

    def load_data_list(self) -> List[dict]:
        root = self._check_root()
        expected = self.expected_folders()
        folders = self._check_folders(root, list_subfolders(root), expected)
        label_of = {f: i for i, f in enumerate(expected)}
        data_list = self._scan(root, folders, label_of)
        for key, value in self.class_metainfo().items():
            self._metainfo.setdefault(key, value)
        print_log(f'{type(self).__name__}: {len(data_list)} images in '
                  f'{len(folders)} classes from {root}.', logger='current',
                  level=logging.INFO)
        return data_list

    def extra_repr(self) -> List[str]:
        return [f'Image root: \t{self.image_root}']
