"""Classifiers: the DRM classifier (DRM and its baselines by config)."""
from .drm_classifier import CLIP_MEAN, CLIP_STD, DRMClassifier

__all__ = ['DRMClassifier', 'CLIP_MEAN', 'CLIP_STD']
