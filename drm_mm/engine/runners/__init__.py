"""Runners."""
from .drm_flexible_runner import DRMFlexibleRunner
from .drm_runner import DRMRunner
from .drm_runner_mixin import DRMRunnerMixin, WorkDirBusyError

__all__ = [
    'DRMRunner', 'DRMFlexibleRunner', 'DRMRunnerMixin', 'WorkDirBusyError'
]
