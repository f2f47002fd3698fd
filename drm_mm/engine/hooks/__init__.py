"""Hooks of drm_mm (registered in ``drm_mm.registry.HOOKS``)."""
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .class_consistency_hook import (ClassConsistencyHook,
                                     ClassMismatchError, class_mismatch)
from .divergence_guard_hook import DivergenceError, DivergenceGuardHook
from .resume_position_hook import ResumePositionHook
from .soft_label_cache_hook import SoftLabelCacheHook

__all__ = [
    'AtomicCheckpointHook', 'ClassConsistencyHook', 'ClassMismatchError',
    'class_mismatch', 'DivergenceError', 'DivergenceGuardHook',
    'ResumePositionHook', 'SoftLabelCacheHook'
]
