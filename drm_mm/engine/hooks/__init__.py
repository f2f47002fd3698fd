"""Hooks of drm_mm (registered in ``drm_mm.registry.HOOKS``)."""
from .divergence_guard_hook import DivergenceError, DivergenceGuardHook
from .soft_label_cache_hook import (SoftLabelCacheHook, dataset_fingerprint,
                                    find_pipeline, image_stamps,
                                    preprocessor_fingerprint)

__all__ = [
    'DivergenceError', 'DivergenceGuardHook', 'SoftLabelCacheHook',
    'dataset_fingerprint', 'find_pipeline', 'image_stamps',
    'preprocessor_fingerprint'
]
