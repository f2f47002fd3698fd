"""Vision backbones."""
from .open_clip_vision import OpenCLIPVision

__all__ = ['OpenCLIPVision']
