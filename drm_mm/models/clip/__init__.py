"""open_clip adapter: one place that builds CLIP models and tokenizers."""
from .open_clip_adapter import (MODEL_CONFIG_DIR, build_open_clip,
                                build_tokenizer, load_clip_weights)
from .open_clip_model import OpenCLIP, frozen_copy

__all__ = [
    'MODEL_CONFIG_DIR', 'build_open_clip', 'build_tokenizer',
    'load_clip_weights', 'OpenCLIP', 'frozen_copy'
]
