"""Inference entry points (MMPretrain's APIs on drm_mm models, zero-shot)."""
from .model_index import model_index_path, register_model_index
from .zero_shot import zero_shot_classifier

__all__ = ['model_index_path', 'register_model_index', 'zero_shot_classifier']
