"""Training loops (registered in ``drm_mm.registry.LOOPS``)."""
from .resumable_epoch_based_train_loop import (ResumableEpochBasedTrainLoop,
                                               iteration_seed, reseed_all)

__all__ = ['ResumableEpochBasedTrainLoop', 'iteration_seed', 'reseed_all']
