"""Loops over several named datasets (in ``drm_mm.registry.LOOPS``)."""
from .multi_dataset_test_loop import MultiDatasetTestLoop
from .multi_dataset_val_loop import MultiDatasetValLoop

__all__ = ['MultiDatasetTestLoop', 'MultiDatasetValLoop']
