"""Classifiers: the DRM classifier (DRM and its baselines by config), its
text prototypes and the cd options of L_WRM."""
from .drm_classifier import CLIP_MEAN, CLIP_STD, DRMClassifier
from .text_prototypes import TextPrototypes, class_prototypes
from .wrm_text_policy import WRMTextPolicy

__all__ = [
    'DRMClassifier', 'CLIP_MEAN', 'CLIP_STD', 'TextPrototypes',
    'class_prototypes', 'WRMTextPolicy'
]
