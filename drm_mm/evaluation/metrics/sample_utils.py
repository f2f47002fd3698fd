"""Helpers of drm_mm metrics: labels and metadata of data samples."""
from __future__ import annotations

from typing import Any, Mapping

import torch


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
