"""Normalisations that turn concept-description affinities into core-based
soft labels ``p_c(y|x)``.

Pure tensor functions (no model, no runner). The raw affinities
``a_y = cos(f_img(x), W_cd[y])`` of a pre-trained CLIP lie in a narrow band,
so they are normalised per image before they serve as soft targets
(docs/method.md, "Core-based soft labels"):

* ``'minmax'`` (default): ``â = (a - min a) / (max a - min a)``, then
  ``p ∝ â^(1/τ)`` renormalised to sum 1. The least similar class gets
  exactly 0; τ = 1 is the plain linear form, τ < 1 sharpens.
* ``'softmax'``: the zero-shot softmax ``softmax(s · a / τ)`` at the
  pre-trained logit scale ``s``.
* ``'none'``: no calibration, the affinities only made a distribution:
  ``p ∝ max(a, 0)``.
"""
from typing import Optional

import torch
import torch.nn.functional as F

NORMALIZATIONS = ('minmax', 'softmax', 'none')


def affinities(image_features: torch.Tensor,
               prototypes: torch.Tensor) -> torch.Tensor:
    """Cosine affinities ``(N, C)`` of L2-normalised image features and
    class prototypes."""
    return image_features @ prototypes.t()


def _check(affinity: torch.Tensor, tau: float) -> None:
    if affinity.dim() != 2:
        raise ValueError(f'affinities must be (N, C), got shape '
                         f'{tuple(affinity.shape)}.')
    if not tau > 0:
        raise ValueError(f'soft-label temperature tau must be > 0, got {tau}.')


def minmax_soft_labels(affinity: torch.Tensor,
                       tau: float = 0.1) -> torch.Tensor:
    """Per-row min-max scaling, sharpened by ``1/tau``, renormalised.

    A row whose affinities are all equal (no information) becomes uniform.
    """
    _check(affinity, tau)
    a = affinity.float()
    low = a.min(dim=1, keepdim=True).values
    span = a.max(dim=1, keepdim=True).values - low
    flat = span <= 0
    scaled = (a - low) / torch.where(flat, torch.ones_like(span), span)
    scaled = torch.where(flat, torch.ones_like(scaled), scaled)
    sharpened = scaled.pow(1.0 / tau)
    return sharpened / sharpened.sum(dim=1, keepdim=True)


def softmax_soft_labels(affinity: torch.Tensor, logit_scale: float,
                        tau: float = 1.0) -> torch.Tensor:
    """Zero-shot softmax ``softmax(logit_scale * a / tau)``."""
    _check(affinity, tau)
    return F.softmax(affinity.float() * (float(logit_scale) / tau), dim=1)


def plain_soft_labels(affinity: torch.Tensor) -> torch.Tensor:
    """``p ∝ max(a, 0)`` (no calibration); uniform where all ``a <= 0``."""
    _check(affinity, 1.0)
    a = affinity.float().clamp(min=0)
    total = a.sum(dim=1, keepdim=True)
    uniform = torch.full_like(a, 1.0 / a.size(1))
    return torch.where(total > 0, a / total.clamp(min=1e-12), uniform)


def soft_labels_from_affinities(affinity: torch.Tensor,
                                normalization: str = 'minmax',
                                tau: float = 0.1,
                                logit_scale: Optional[float] = None
                                ) -> torch.Tensor:
    """Dispatch to the normalisation named ``normalization`` (float32 out)."""
    check_normalization(normalization)
    if normalization == 'minmax':
        return minmax_soft_labels(affinity, tau)
    if normalization == 'softmax':
        if logit_scale is None:
            raise ValueError("normalization='softmax' needs the pre-trained "
                             'logit_scale.')
        return softmax_soft_labels(affinity, logit_scale, tau)
    return plain_soft_labels(affinity)


def check_normalization(normalization: str) -> None:
    """Raise a clear error for an unknown normalisation name."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f'unknown soft-label normalization '
                         f'{normalization!r}; choose from {NORMALIZATIONS}.')
