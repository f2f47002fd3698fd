"""WILDS-exact and ImageNet-family metrics (in ``drm_mm.registry.METRICS``)."""
from .fmow_metric import FMoWMetric
from .group_accuracy import GroupAccuracy, group_accuracy
from .imagenet_accuracy import ImageNetAccuracy, fold_scores
from .iwildcam_metric import IWildCamMetric, wilds_iwildcam_metrics

__all__ = ['FMoWMetric', 'GroupAccuracy', 'IWildCamMetric',
           'ImageNetAccuracy', 'fold_scores', 'group_accuracy',
           'wilds_iwildcam_metrics']
