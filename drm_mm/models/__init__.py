"""Models of drm_mm: the open_clip adapter, backbones, the text-fed CLIP
head, DualRiskLoss, core-based soft labels and the DRM classifier."""
from .backbones import *  # noqa: F401,F403
from .classifiers import *  # noqa: F401,F403
from .clip import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .soft_labels import *  # noqa: F401,F403
