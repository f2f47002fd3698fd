"""``WILDSIWildCam``: WILDS iWildCam v2.0 (182 classes), MMPretrain dataset.

Classes are the lower-cased common English names the benchmark prompts use
("a photo of {c}."), mapped from the Latin names of the user's
``categories.csv`` through the project file
``class_names/iwildcam_categories.csv``; an unknown category is an error.
"""
from __future__ import annotations

import csv
import os.path as osp
from typing import Any, List

import numpy as np

from drm_mm.datasets.classnames import (IWILDCAM_CATEGORIES_FILE,
                                        iwildcam_common_name)
from drm_mm.datasets.wilds_base import WILDSBaseDataset
from drm_mm.registry import DATASETS


@DATASETS.register_module()
class WILDSIWildCam(WILDSBaseDataset):
    """One split of WILDS iWildCam v2.0 (``<data_root>/iwildcam_v2.0``).

    Splits: ``train``, ``id_val``, ``id_test`` (ID cameras), ``val``,
    ``test`` (OOD cameras). Each data info has ``img_path``, ``gt_label``
    (WILDS ``y``), ``location`` (WILDS ``location_remapped``), ``sequence``
    and ``wilds_index``. ``metainfo['classes']``: lower-cased common names,
    ``y`` order; ``metainfo['category_names']``: the WILDS (Latin) names.

    Metrics (:class:`~drm_mm.evaluation.metrics.IWildCamMetric`) need only
    ``gt_label`` / predictions; add ``'location'`` to ``PackInputs``'
    ``meta_keys`` for per-location metrics. See
    :class:`~drm_mm.datasets.wilds_base.WILDSBaseDataset` for the arguments.
    """

    WILDS_NAME = 'iwildcam'
    VERSION = '2.0'
    IMAGE_DIR = 'train'  # every split's images live in train/
    REQUIRED_FILES = ('metadata.csv', 'categories.csv')
    CLASS_NAME_SOURCES = ('common', 'categories')

    def __init__(self, *args: Any, class_names: str = 'common',
                 **kwargs: Any) -> None:
        """``class_names='common'``: the benchmark's common English names
        (checked against the project table); ``'categories'``: the ``name``
        column of ``categories.csv`` as it is, for other datasets written in
        the iWildCam layout (e.g. the toy world)."""
        if class_names not in self.CLASS_NAME_SOURCES:
            raise ValueError(f'WILDSIWildCam: class_names={class_names!r}; '
                             f'choose from {self.CLASS_NAME_SOURCES}.')
        self.class_names = class_names
        super().__init__(*args, **kwargs)

    def _wilds_class(self) -> Any:
        from wilds.datasets.iwildcam_dataset import IWildCamDataset
        return IWildCamDataset

    def _read_classes(self, n_classes: int) -> List[tuple]:
        """(common name, WILDS name) per label, checked with our CSV."""
        path = osp.join(self.dataset_dir, 'categories.csv')
        name = type(self).__name__
        with open(path, newline='', encoding='utf-8') as f:
            reader = csv.DictReader(f)
            missing = {'y', 'name'} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f'{name}: {path} lacks column(s) '
                                 f'{sorted(missing)}; the WILDS layout has '
                                 f'y,category_id,name.')
            rows = list(reader)
        by_y = {}
        for row in rows:
            try:
                y = int(row['y'])
            except ValueError:
                raise ValueError(f'{name}: {path}: y={row["y"]!r} is not an '
                                 f'integer.') from None
            if 0 <= y < n_classes:  # other rows (e.g. y=99999) are unused
                if y in by_y:
                    raise ValueError(f'{name}: {path} lists y={y} twice.')
                by_y[y] = row['name']
        absent = [y for y in range(n_classes) if y not in by_y]
        if absent:
            raise ValueError(f'{name}: {path} has no row for label(s) '
                             f'{absent[:10]} used in metadata.csv.')
        if self.class_names == 'categories':
            return [(by_y[y], by_y[y]) for y in range(n_classes)]
        classes = []
        for y in range(n_classes):
            try:
                common = iwildcam_common_name(by_y[y]).common_name
            except KeyError:
                raise ValueError(
                    f'{name}: category {by_y[y]!r} (y={y}) of {path} is not '
                    f'one of the WILDS iWildCam v2.0 categories listed in '
                    f'{IWILDCAM_CATEGORIES_FILE}, so it has no common English '
                    f'name for prompts. Use the official iWildCam v2.0 '
                    f'download, or add the category with its common name to '
                    f'that file.') from None
            classes.append((common, by_y[y]))
        return classes

    def _build_data_list(self, wilds_dataset: Any,
                         indices: np.ndarray) -> List[dict]:
        classes = self._read_classes(int(wilds_dataset.n_classes))
        self._set_metainfo(classes=tuple(c for c, _ in classes),
                           category_names=tuple(n for _, n in classes))
        image_dir = self._image_dir()
        filenames = wilds_dataset._input_array
        labels = wilds_dataset.y_array.numpy()
        locations = self._metadata_column(wilds_dataset, 'location')
        sequences = self._metadata_column(wilds_dataset, 'sequence')
        return [dict(img_path=osp.join(image_dir, str(filenames[i])),
                     gt_label=int(labels[i]), location=int(locations[i]),
                     sequence=int(sequences[i]), wilds_index=int(i))
                for i in indices]
