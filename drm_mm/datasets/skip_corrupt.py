"""``SkipCorruptMixin``: skip corrupt training images, counted and logged.

The check happens where the image is decoded: :class:`LoadImageDraft`
raises :class:`CorruptImageError` naming the file. Without ``skip_corrupt``
the error propagates. With it, ``prepare_data`` logs the file, adds its index
to ``corrupt_indices`` and returns None, and MMEngine's ``BaseDataset``
(training mode) fetches another random sample instead. The sample that
comes back carries its own ``sample_idx``, so code keyed on ``sample_idx``
(the DRM soft-label cache) stays aligned; a skipped index simply never
appears. Evaluation splits (``test_mode=True``) refuse ``skip_corrupt``:
metrics over an incomplete split are not comparable with published numbers.
"""
from __future__ import annotations

import logging
from typing import Any, Set

from mmengine.logging import print_log

from drm_mm.datasets.transforms.load_image_draft import (CorruptImageError,
                                                         LoadImageDraft)


class SkipCorruptMixin:
    """Mix before ``BaseDataset``; call ``_init_skip_corrupt`` before its init.

    Attributes:
        skip_corrupt: whether corrupt images are skipped.
        corrupt_indices: indices found corrupt by this process (each
            DataLoader worker keeps its own set and logs its own count).
    """

    skip_corrupt: bool = False

    def _init_skip_corrupt(self, skip_corrupt: bool, test_mode: bool) -> None:
        if skip_corrupt and test_mode:
            raise ValueError(
                f'{type(self).__name__}: skip_corrupt=True is only for '
                f'training (test_mode=False); an evaluation split must keep '
                f'every image for its metrics to be comparable. Repair or '
                f're-download the corrupt files instead.')
        self.skip_corrupt = bool(skip_corrupt)
        self.corrupt_indices: Set[int] = set()

    def _check_skip_corrupt_pipeline(self) -> None:
        """With ``skip_corrupt`` the pipeline must use LoadImageDraft."""
        if not self.skip_corrupt:
            return
        transforms = getattr(self.pipeline, 'transforms', [])
        if not any(isinstance(t, LoadImageDraft) for t in transforms):
            raise ValueError(
                f'{type(self).__name__}: skip_corrupt=True needs '
                f'dict(type="LoadImageDraft") as the image loader of the '
                f'pipeline (it detects truncated or corrupt files; mmcv\'s '
                f'LoadImageFromFile does not). Replace the loader or set '
                f'skip_corrupt=False.')

    def prepare_data(self, idx: int) -> Any:
        try:
            return super().prepare_data(idx)  # type: ignore[misc]
        except CorruptImageError as err:
            if not self.skip_corrupt:
                raise
            self.corrupt_indices.add(int(idx))
            print_log(
                f'{type(self).__name__}: skipped corrupt image {err.path} '
                f'(sample {idx}); {len(self.corrupt_indices)} corrupt '
                f'file(s) skipped so far in this process. Cause: '
                f'{type(err.reason).__name__}: {err.reason}',
                logger='current', level=logging.WARNING)
            return None
