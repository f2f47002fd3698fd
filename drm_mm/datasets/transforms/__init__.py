"""Data transforms of drm_mm (registered in ``drm_mm.registry.TRANSFORMS``)."""
from .crop_border import CropBorder
from .load_image_draft import (CorruptImageError, ImageTooLargeError,
                               LoadImageDraft)

__all__ = [
    'CorruptImageError', 'CropBorder', 'ImageTooLargeError', 'LoadImageDraft'
]
