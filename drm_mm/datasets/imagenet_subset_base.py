"""``ImageNetSubsetBase``: a 200-class ImageNet subset (ImageNet-R / -A).

``gt_label`` is the position in the subset (0..199) and
``metainfo['class_subset']`` lists the ImageNet-1k index of each subset
class, so the model restricts its 1000-way logits to the subset before the
softmax (``set_class_subset``, called by the multi-set loops) and the
metric compares subset positions.
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, List

from drm_mm.datasets.classnames import (class_subset_indices,
                                        imagenet_a_wnids, imagenet_classnames,
                                        imagenet_r_wnids)
from drm_mm.datasets.imagenet_base import ImageNetFolderBase


class ImageNetSubsetBase(ImageNetFolderBase):
    """Base of :class:`ImageNetR` and :class:`ImageNetA`."""

    SUBSET: ClassVar[str] = ''  # 'imagenet_r' or 'imagenet_a'

    def expected_folders(self) -> List[str]:
        wnids = {'imagenet_r': imagenet_r_wnids,
                 'imagenet_a': imagenet_a_wnids}[self.SUBSET]
        return list(wnids())

    def class_metainfo(self) -> Dict[str, Any]:
        subset = class_subset_indices(self.SUBSET)
        names = imagenet_classnames()
        return dict(classes=tuple(names[i] for i in subset),
                    class_subset=list(subset))
