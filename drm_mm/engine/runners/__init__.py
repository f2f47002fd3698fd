"""Runners."""
from .drm_runner import DRMRunner

__all__ = ['DRMRunner']
