"""Heads: the text-fed CLIP classifier head (df + cd, β mixture)."""
from .clip_text_head import CLIPTextHead, class_prototypes

__all__ = ['CLIPTextHead', 'class_prototypes']
