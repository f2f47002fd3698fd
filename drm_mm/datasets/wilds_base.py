"""``WILDSBaseDataset``: an MMPretrain dataset over one split of WILDS.

Split membership, labels and metadata come from the ``wilds`` package
(``wilds.get_dataset(...).get_subset(split)``), so the official split
scheme holds exactly; images are decoded by the MMEngine pipeline
(``LoadImageDraft`` / ``LoadImageFromFile``), never by wilds' PIL loader.
Samples keep wilds' order within the split and are never filtered, so
``sample_idx`` is the stable position in the split.
"""
from __future__ import annotations

import logging
import os
import os.path as osp
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log
from mmpretrain.datasets import BaseDataset

from drm_mm.datasets.config_refs import DATA_ROOT_HINT, check_resolved
from drm_mm.datasets.skip_corrupt import SkipCorruptMixin
from drm_mm.datasets.transforms.build import build_transforms

WILDS_DOWNLOADS_PAGE = 'https://wilds.stanford.edu/downloads'
_WILDS_CACHE: Dict[str, Tuple[Tuple[Any, ...], Any]] = {}


def load_wilds_dataset(name: str, version: str, root: str, download: bool,
                       **kwargs: Any) -> Any:
    """``wilds.get_dataset(...)``, cached per process (root, metadata mtime).

    Building a WILDS dataset parses its whole metadata file; the splits of
    one run (train, id_val, test...) share one object. The stamps are taken
    before wilds downloads anything, so a download refreshes the entry next
    time.
    """
    import wilds
    root = osp.abspath(osp.expanduser(root))
    folder = osp.join(root, f'{name}_v{version}')
    stamps = []
    if osp.isdir(folder):
        for entry in sorted(os.listdir(folder)):
            if entry.endswith('.csv'):
                stat = os.stat(osp.join(folder, entry))
                stamps.append((entry, stat.st_mtime_ns))
    key = (version, root, tuple(sorted(kwargs.items())), tuple(stamps))
    cached = _WILDS_CACHE.get(name)
    if cached is None or cached[0] != key:
        # One entry per dataset name: the splits of a run share it, and a
        # large metadata table is not kept once another root is used.
        try:
            dataset = wilds.get_dataset(dataset=name, version=version,
                                        root_dir=root, download=download,
                                        **kwargs)
        except (AssertionError, KeyError, ValueError) as err:
            raise ValueError(
                f'wilds could not read {folder}: {type(err).__name__}: '
                f'{err}. The metadata files do not follow the WILDS '
                f'{name} v{version} layout; re-download the dataset.'
            ) from err
        _WILDS_CACHE[name] = (key, dataset)
    return _WILDS_CACHE[name][1]


def clear_wilds_cache() -> None:
    """Forget the cached wilds dataset objects (frees their metadata)."""
    _WILDS_CACHE.clear()


class WILDSBaseDataset(SkipCorruptMixin, BaseDataset):
    """Base of :class:`WILDSIWildCam` and :class:`WILDSFMoW`.

    Args:
        data_root: folder holding ``<name>_v<version>/`` (what wilds calls
            ``root_dir``). Default ``data/wilds``.
        split: one of ``train, id_val, id_test, val, test``.
        pipeline: MMEngine transforms; start with an image loader, end with
            ``PackInputs`` whose ``meta_keys`` include ``sample_idx`` and the
            metadata keys of the metric (see the subclass).
        download: passed to wilds, which downloads the dataset into
            ``data_root`` when it is missing (needs network).
        skip_corrupt: skip (count, log) corrupt images during training; see
            :class:`~drm_mm.datasets.skip_corrupt.SkipCorruptMixin`.
        test_mode: MMEngine test mode; default ``split != 'train'``.
        split_scheme: wilds split scheme (``'official'``, the benchmark's).
        **kwargs: other ``mmpretrain.datasets.BaseDataset`` arguments
            (``metainfo``, ``indices``, ``lazy_init``, ``serialize_data``...).
    """

    WILDS_NAME: ClassVar[str] = ''
    VERSION: ClassVar[str] = ''
    SPLITS: ClassVar[Tuple[str, ...]] = ('train', 'id_val', 'id_test', 'val',
                                         'test')
    IMAGE_DIR: ClassVar[str] = ''
    REQUIRED_FILES: ClassVar[Tuple[str, ...]] = ()
    DEFAULT_ROOT: ClassVar[str] = 'data/wilds'

    def __init__(self,
                 data_root: str = DEFAULT_ROOT,
                 split: str = 'train',
                 pipeline: Sequence = (),
                 download: bool = False,
                 skip_corrupt: bool = False,
                 test_mode: Optional[bool] = None,
                 split_scheme: str = 'official',
                 **kwargs: Any) -> None:
        name = type(self).__name__
        if split not in self.SPLITS:
            raise ValueError(f'{name}: unknown split {split!r}; valid splits '
                             f'are {", ".join(self.SPLITS)}.')
        check_resolved(name, 'data_root', data_root)
        if not isinstance(data_root, (str, os.PathLike)) or not str(data_root):
            raise ValueError(f'{name}: data_root must be a folder path, got '
                             f'{data_root!r}. {DATA_ROOT_HINT}')
        for key in ('ann_file', 'data_prefix'):
            if key in kwargs:
                raise TypeError(f'{name}: {key!r} is not used (paths come '
                                f'from the WILDS layout under data_root).')
        self.split = split
        self.download = bool(download)
        self.split_scheme = split_scheme
        if test_mode is None:
            test_mode = split != 'train'
        self._init_skip_corrupt(skip_corrupt, test_mode)
        super().__init__(ann_file='', data_root=osp.expanduser(str(data_root)),
                         data_prefix='', pipeline=build_transforms(pipeline),
                         test_mode=test_mode, **kwargs)
        self._check_skip_corrupt_pipeline()

    # ------------------------------------------------------------------
    # layout checks

    @property
    def dataset_dir(self) -> str:
        """``<data_root>/<name>_v<version>``."""
        return osp.join(osp.abspath(self.data_root),
                        f'{self.WILDS_NAME}_v{self.VERSION}')

    def _download_hint(self) -> str:
        url = self._wilds_class()._versions_dict[self.VERSION]['download_url']
        return (f'Pass download=True to let wilds download '
                f'{self.WILDS_NAME} v{self.VERSION} into data_root (needs '
                f'network and disk space), or download it yourself from '
                f'{WILDS_DOWNLOADS_PAGE} (archive: {url}) and extract it so '
                f'that {self.dataset_dir} exists; or point data_root at an '
                f'existing WILDS download.')

    def _wilds_class(self) -> Any:
        raise NotImplementedError

    def _check_layout(self) -> None:
        """Raise a clear error unless the WILDS folder is complete."""
        name = type(self).__name__
        root = osp.abspath(self.data_root)
        folder = self.dataset_dir
        if self.download:
            return  # wilds downloads what is missing
        if not osp.isdir(root):
            raise FileNotFoundError(
                f'{name}: data_root {root} does not exist. '
                f'{DATA_ROOT_HINT} {self._download_hint()}')
        if not osp.isdir(folder):
            raise FileNotFoundError(
                f'{name}: {folder} does not exist (data_root={root}). '
                f'{DATA_ROOT_HINT} {self._download_hint()}')
        release = osp.join(folder, f'RELEASE_v{self.VERSION}.txt')
        if not osp.isfile(release):
            raise FileNotFoundError(
                f'{name}: {folder} has no RELEASE_v{self.VERSION}.txt, which '
                f'marks a complete WILDS v{self.VERSION} download (wilds '
                f'would treat the folder as missing). Re-download with '
                f'download=True or from {WILDS_DOWNLOADS_PAGE}; if the '
                f'folder is a complete v{self.VERSION} copy, restore the '
                f'file.')
        for required in self.REQUIRED_FILES:
            if not osp.exists(osp.join(folder, required)):
                raise FileNotFoundError(
                    f'{name}: {osp.join(folder, required)} is missing; the '
                    f'download in {folder} is incomplete. Re-download it '
                    f'(download=True or {WILDS_DOWNLOADS_PAGE}).')

    # ------------------------------------------------------------------
    # loading

    def _load_wilds(self) -> Any:
        return load_wilds_dataset(self.WILDS_NAME, self.VERSION,
                                  osp.abspath(self.data_root), self.download,
                                  split_scheme=self.split_scheme)

    def _split_indices(self, wilds_dataset: Any) -> np.ndarray:
        if self.split not in wilds_dataset.split_dict:
            raise ValueError(
                f'{type(self).__name__}: split {self.split!r} is not defined '
                f'by wilds for split scheme {self.split_scheme!r} (it has '
                f'{sorted(wilds_dataset.split_dict)}).')
        indices = np.asarray(wilds_dataset.get_subset(self.split).indices)
        if len(indices) == 0:
            raise ValueError(
                f'{type(self).__name__}: split {self.split!r} of '
                f'{self.dataset_dir} has no samples; the metadata file lists '
                f'none for it. Check the download (or the split name).')
        return indices

    def _image_dir(self) -> str:
        path = osp.join(self.dataset_dir, self.IMAGE_DIR)
        if not osp.isdir(path):
            raise FileNotFoundError(
                f'{type(self).__name__}: image folder {path} is missing; the '
                f'download in {self.dataset_dir} is incomplete.')
        return path

    def _metadata_column(self, wilds_dataset: Any, field: str) -> np.ndarray:
        fields = list(wilds_dataset.metadata_fields)
        return wilds_dataset.metadata_array[:, fields.index(field)].numpy()

    def _check_first_image(self, data_list: List[dict]) -> None:
        """Cheap sanity check: the first and last image files exist."""
        for info in (data_list[0], data_list[-1]):
            if not osp.isfile(info['img_path']):
                raise FileNotFoundError(
                    f'{type(self).__name__}: image {info["img_path"]} listed '
                    f'in the metadata of {self.dataset_dir} is missing; the '
                    f'download is incomplete (re-download it).')

    def _set_metainfo(self, **values: Any) -> None:
        """Fill metainfo keys the user did not set through ``metainfo``."""
        for key, value in values.items():
            self._metainfo.setdefault(key, value)

    def load_data_list(self) -> List[dict]:
        self._check_layout()
        wilds_dataset = self._load_wilds()
        indices = self._split_indices(wilds_dataset)
        data_list = self._build_data_list(wilds_dataset, indices)
        self._check_first_image(data_list)
        self._set_metainfo(split=self.split, wilds_dataset=self.WILDS_NAME,
                           wilds_version=self.VERSION)
        print_log(f'{type(self).__name__}: split {self.split!r} of '
                  f'{self.dataset_dir}: {len(data_list)} images.',
                  logger='current', level=logging.INFO)
        return data_list

    def _build_data_list(self, wilds_dataset: Any,
                         indices: np.ndarray) -> List[dict]:
        raise NotImplementedError

    def extra_repr(self) -> List[str]:
        return [f'Split: \t{self.split}', f'Data root: \t{self.data_root}']
