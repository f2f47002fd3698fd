"""Strategies of MMEngine's FlexibleRunner and their helpers."""
from .clip_block_wrap_policy import clip_block_wrap_policy
from .drm_fsdp_strategy import DRMFSDPStrategy

__all__ = ['DRMFSDPStrategy', 'clip_block_wrap_policy']
