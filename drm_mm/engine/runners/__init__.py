"""Runners."""
from .drm_flexible_runner import DRMFlexibleRunner
from .drm_runner import DRMRunner

__all__ = ['DRMRunner', 'DRMFlexibleRunner']
