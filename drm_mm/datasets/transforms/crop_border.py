"""``CropBorder``: remove a fixed border of pixels from ``results['img']``.

ObjectNet images carry a thin red frame that evaluation code removes before
the usual resize / center crop (:class:`~drm_mm.datasets.objectnet.ObjectNet`
inserts this transform after the image loader).
"""
from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform

from drm_mm.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CropBorder(BaseTransform):
    """Crop ``border`` pixels from every side of ``results['img']``.

    Args:
        border: pixels removed on each side (0 keeps the image).
    """

    def __init__(self, border: int = 1) -> None:
        if isinstance(border, bool) or not isinstance(border, int) \
                or border < 0:
            raise ValueError(f'CropBorder: border must be an int >= 0, got '
                             f'{border!r}.')
        self.border = border

    def transform(self, results: dict) -> dict:
        if self.border == 0:
            return results
        img = results['img']
        height, width = img.shape[:2]
        b = self.border
        if height <= 2 * b or width <= 2 * b:
            raise ValueError(
                f'CropBorder: image {results.get("img_path", "")} is '
                f'{width}x{height}, too small to remove a {b}-pixel border.')
        results['img'] = np.ascontiguousarray(img[b:height - b, b:width - b])
        results['img_shape'] = results['img'].shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(border={self.border})'
