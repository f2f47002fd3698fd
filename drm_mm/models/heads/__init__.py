"""Heads: the text-fed CLIP classifier head (df + cd, β mixture) that owns
the DRM loss."""
from .clip_text_head import CLIPTextHead

__all__ = ['CLIPTextHead']
