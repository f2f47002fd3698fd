"""Optimizer wrappers (registered in ``drm_mm.registry.OPTIM_WRAPPERS``)."""
from .divergence_guard_optim_wrapper import (DivergenceError,
                                             DivergenceGuardAmpOptimWrapper,
                                             DivergenceGuardOptimWrapper)

__all__ = [
    'DivergenceError', 'DivergenceGuardOptimWrapper',
    'DivergenceGuardAmpOptimWrapper'
]
