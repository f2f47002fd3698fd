"""Small utilities shared by tools and engine components."""
from .config_path import get_config_path
from .safe_checkpoint import (UnsafeCheckpointError, allow_checkpoint_globals,
                              load_trusted_checkpoint,
                              mmengine_checkpoint_globals)

__all__ = [
    'get_config_path', 'UnsafeCheckpointError', 'allow_checkpoint_globals',
    'load_trusted_checkpoint',
    'mmengine_checkpoint_globals'
]
