"""Classifiers: the DRM classifier (DRM and its baselines by config) and
its text prototypes."""
from .drm_classifier import CLIP_MEAN, CLIP_STD, DRMClassifier
from .text_prototypes import TextPrototypes

__all__ = ['DRMClassifier', 'CLIP_MEAN', 'CLIP_STD', 'TextPrototypes']
