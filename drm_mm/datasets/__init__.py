"""Datasets (the user's own image folders, WILDS iWildCam / FMoW, ImageNet
and its shifted variants),
transforms and class names."""
from . import transforms  # noqa: F401  LoadImageDraft, CropBorder
from .classnames import get_classnames
from .config_refs import resolve_config_refs
from .imagenet_a import ImageNetA
from .image_folder import ImageFolder, read_classes
from .imagenet_folder import ImageNetFolder
from .imagenet_r import ImageNetR
from .imagenet_sketch import ImageNetSketch
from .imagenet_v2 import ImageNetV2
from .objectnet import ObjectNet
from .wilds_fmow import WILDSFMoW
from .wilds_iwildcam import WILDSIWildCam

__all__ = [
    'get_classnames', 'ImageFolder', 'read_classes', 'ImageNetA', 'ImageNetFolder', 'ImageNetR',
    'ImageNetSketch', 'ImageNetV2', 'ObjectNet', 'WILDSFMoW', 'WILDSIWildCam',
    'resolve_config_refs'
]
