"""Hooks of drm_mm."""
from .divergence_guard_hook import DivergenceError, DivergenceGuardHook

__all__ = ['DivergenceError', 'DivergenceGuardHook']
