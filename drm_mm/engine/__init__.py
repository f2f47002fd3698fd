"""Engine extensions: runner, hooks and loops (registered in drm_mm)."""
from .runners import *  # noqa: F401,F403
