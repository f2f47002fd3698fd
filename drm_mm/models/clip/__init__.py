"""open_clip adapter: one place that builds CLIP models and tokenizers, and
the padding-free text forward."""
from .open_clip_adapter import (MODEL_CONFIG_DIR, build_open_clip,
                                build_tokenizer, freeze_module,
                                load_clip_weights)
from .open_clip_model import OpenCLIP
from .text_trimming import plan_length_buckets

__all__ = [
    'MODEL_CONFIG_DIR', 'build_open_clip', 'build_tokenizer',
    'freeze_module', 'load_clip_weights', 'OpenCLIP', 'plan_length_buckets'
]
