"""``WILDSFMoW``: WILDS FMoW v1.1 (62 land-use classes), MMPretrain dataset.

The official split scheme (wilds ``'official'`` == ``'time_after_2016'``):
train / id_val / id_test before 2013, val 2013-2015, test 2016 onwards;
sequestered images are dropped by wilds.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, List

import numpy as np

from drm_mm.datasets.wilds_base import WILDSBaseDataset
from drm_mm.registry import DATASETS

FMOW_FIRST_YEAR = 2002  # wilds' year metadata counts from 2002


@DATASETS.register_module()
class WILDSFMoW(WILDSBaseDataset):
    """One split of WILDS FMoW v1.1 (``<data_root>/fmow_v1.1``).

    Each data info has ``img_path``, ``gt_label``, ``region`` (index into
    ``metainfo['regions']``, wilds' region order, which includes
    ``'Other'``), ``year`` (calendar year) and ``wilds_index``.
    ``metainfo['classes']``: the 62 WILDS category names (underscores kept).

    :class:`~drm_mm.evaluation.metrics.FMoWMetric` needs ``region`` and
    ``year``: put them in ``PackInputs(meta_keys=(..., 'region', 'year'))``.
    See :class:`~drm_mm.datasets.wilds_base.WILDSBaseDataset` for the
    arguments.
    """

    WILDS_NAME = 'fmow'
    VERSION = '1.1'
    IMAGE_DIR = 'images'
    REQUIRED_FILES = ('rgb_metadata.csv', 'country_code_mapping.csv')

    def _wilds_class(self) -> Any:
        from wilds.datasets.fmow_dataset import FMoWDataset
        return FMoWDataset

    def _build_data_list(self, wilds_dataset: Any,
                         indices: np.ndarray) -> List[dict]:
        from wilds.datasets.fmow_dataset import categories
        regions = list(wilds_dataset.metadata_map['region'])
        self._set_metainfo(classes=tuple(categories), regions=tuple(regions),
                           split_scheme=wilds_dataset.split_scheme)
        image_dir = self._image_dir()
        labels = wilds_dataset.y_array.numpy()
        region = self._metadata_column(wilds_dataset, 'region')
        year = self._metadata_column(wilds_dataset, 'year')
        rows = wilds_dataset.full_idxs  # metadata row of each wilds index
        return [dict(img_path=osp.join(image_dir,
                                       f'rgb_img_{int(rows[i])}.png'),
                     gt_label=int(labels[i]), region=int(region[i]),
                     year=FMOW_FIRST_YEAR + int(year[i]), wilds_index=int(i))
                for i in indices]
