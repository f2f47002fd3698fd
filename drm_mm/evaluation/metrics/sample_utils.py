"""Helpers of drm_mm metrics: labels and metadata of data samples."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Tuple

import torch
from mmengine.evaluator import BaseMetric


def as_int(value: Any, key: str, metric: str) -> int:
    """A scalar label (int, 0-d or 1-element tensor / array) as an int."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f'{metric}: {key!r} must hold one class index, '
                             f'got a tensor of shape {tuple(value.shape)} '
                             f'(multi-label samples are not supported).')
        return int(value.reshape(-1)[0].item())
    try:
        return int(value[0]) if hasattr(value, '__len__') else int(value)
    except (TypeError, ValueError, IndexError):
        raise ValueError(f'{metric}: {key!r} must be a class index, got '
                         f'{value!r}.') from None


def require(sample: Mapping[str, Any], key: str, metric: str,
            hint: str = '') -> Any:
    """``sample[key]`` or a clear KeyError saying how to provide it."""
    if key not in sample:
        raise KeyError(
            f'{metric}: data samples lack {key!r} (keys present: '
            f'{sorted(sample)}). {hint}'.rstrip())
    return sample[key]


META_HINT = ("Add it to PackInputs' meta_keys in the evaluation pipeline, "
             "e.g. PackInputs(meta_keys=('sample_idx', 'region', 'year')).")


class LabelMetric(BaseMetric):
    """Base of drm_mm's metrics: one result tuple of ints per data sample.

    Each sample gives ``(pred_label, gt_label, *meta)``, ``meta`` being the
    sample's values of :attr:`meta_keys` in order; a missing key is a
    one-line KeyError saying how to provide it. Metric names carry no
    prefix by default (wilds' key names, e.g. ``acc``).

    Args:
        collect_device (str): device results are gathered on across ranks.
            Defaults to ``'cpu'``.
        prefix (str, optional): prefix of the metric names. Defaults to
            None (no prefix).
    """

    default_prefix = ''
    #: Metadata keys read from each sample after the two labels (they must
    #: be in ``PackInputs``' ``meta_keys``).
    meta_keys: Tuple[str, ...] = ()

    def __init__(self, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        name = type(self).__name__
        keys = [(key, '') for key in ('pred_label', 'gt_label')]
        keys += [(key, META_HINT) for key in self.meta_keys]
        for sample in data_samples:
            self.results.append(tuple(
                as_int(require(sample, key, name, hint), key, name)
                for key, hint in keys))
