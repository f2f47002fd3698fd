"""``build_transforms``: build pipeline configs in the drm_mm scope.

MMPretrain's datasets build pipeline dicts in the current default scope, so
``dict(type='LoadImageDraft')`` only resolves under ``default_scope='drm_mm'``.
Building through drm_mm's TRANSFORMS (a child of MMPretrain's) finds drm_mm,
MMPretrain and MMCV transforms in any scope.
"""
from __future__ import annotations

from typing import Any, List, Sequence

from drm_mm.registry import TRANSFORMS, build_in_scope


def build_transforms(pipeline: Sequence[Any]) -> List[Any]:
    """Build every dict of ``pipeline``; keep callables as they are."""
    if isinstance(pipeline, (dict, str)) or not isinstance(pipeline,
                                                           Sequence):
        raise TypeError(f'pipeline must be a list of transform dicts or '
                        f'callables, got {type(pipeline).__name__}.')
    built = []
    for transform in pipeline:
        if isinstance(transform, dict):
            built.append(build_in_scope(TRANSFORMS, transform))
        elif callable(transform):
            built.append(transform)
        else:
            raise TypeError(f'pipeline entries must be dicts or callables, '
                            f'got {transform!r}.')
    return built
