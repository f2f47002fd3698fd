"""WILDS-exact metrics and loops that evaluate several test sets in one run."""
from .loops import MultiDatasetTestLoop, MultiDatasetValLoop
from .metrics import (FMoWMetric, GroupAccuracy, ImageNetAccuracy,
                      IWildCamMetric)

__all__ = [
    'MultiDatasetTestLoop', 'MultiDatasetValLoop', 'FMoWMetric',
    'GroupAccuracy', 'ImageNetAccuracy', 'IWildCamMetric'
]
