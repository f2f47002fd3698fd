"""Models of drm_mm: the open_clip adapter, backbones, heads, losses and the
DRM classifier."""
from .backbones import *  # noqa: F401,F403
from .clip import *  # noqa: F401,F403
