"""Engine extensions: runners, strategies, hooks and loops (registered in
drm_mm)."""
from .hooks import *  # noqa: F401,F403
from .loops import *  # noqa: F401,F403
from .optim_wrappers import *  # noqa: F401,F403
from .runners import *  # noqa: F401,F403
from .strategies import *  # noqa: F401,F403
