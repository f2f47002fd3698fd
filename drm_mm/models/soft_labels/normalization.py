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
* ``'minmax_prob'``: per-image min-max of the zero-shot *probabilities*
  ``q = softmax(s · a)``: ``q̂ = (q - min q) / (max q - min q)``, then
  ``p ∝ q̂^(1/τ)`` renormalised (the least likely class gets exactly 0).
* ``'minmax_class'``: per-class min-max of each class's affinities over the
  whole training set, ``â_y = (a_y - min_x a_y) / (max_x a_y - min_x a_y)``,
  then per image ``p ∝ â^(1/τ)`` renormalised. It needs the whole set, so
  only the cached table has it (the soft-label cache pass, sharded).

``τ`` defaults per normalisation (:data:`DEFAULT_TAU`): 0.1 for the min-max
forms, 1.0 for the softmax (and unused by ``'none'``).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

NORMALIZATIONS = ('minmax', 'softmax', 'none', 'minmax_prob',
                  'minmax_class')
#: τ of each normalisation when ``tau=None``.
DEFAULT_TAU = dict(minmax=0.1, softmax=1.0, none=1.0, minmax_prob=0.1,
                   minmax_class=0.1)
#: Normalisations that need the whole training set (a cached table).
TABLE_ONLY = ('minmax_class', )


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
    return sharpen_rows(_scale(a, low, a.max(dim=1, keepdim=True).values),
                        tau)


def _scale(a: torch.Tensor, low: torch.Tensor,
           high: torch.Tensor) -> torch.Tensor:
    """``(a - low) / (high - low)``; 1 where ``high <= low`` (flat)."""
    span = high - low
    flat = span <= 0
    scaled = (a - low) / torch.where(flat, torch.ones_like(span), span)
    return torch.where(flat, torch.ones_like(scaled), scaled)


def sharpen_rows(scaled: torch.Tensor, tau: float) -> torch.Tensor:
    """``p ∝ scaled^(1/tau)`` per row; a row of zeros becomes uniform."""
    sharpened = scaled.pow(1.0 / tau)
    total = sharpened.sum(dim=1, keepdim=True)
    uniform = torch.full_like(sharpened, 1.0 / sharpened.size(1))
    return torch.where(total > 0, sharpened / total.clamp(min=1e-30),
                       uniform)


def minmax_prob_soft_labels(affinity: torch.Tensor, logit_scale: float,
                            tau: float = 0.1) -> torch.Tensor:
    """Per-row min-max of the zero-shot probabilities
    ``softmax(logit_scale * a)``, sharpened by ``1/tau``, renormalised."""
    _check(affinity, tau)
    return minmax_soft_labels(softmax_soft_labels(affinity, logit_scale),
                              tau)


def class_bounds(affinity: torch.Tensor
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-class ``(min, max)`` over the rows (``+inf`` / ``-inf`` for no
    rows, so a min / max across ranks ignores an empty shard)."""
    _check(affinity, 1.0)
    a = affinity.float()
    if a.size(0) == 0:
        return (torch.full((a.size(1), ), float('inf')),
                torch.full((a.size(1), ), float('-inf')))
    return a.min(dim=0).values, a.max(dim=0).values


def class_minmax_soft_labels(affinity: torch.Tensor, tau: float = 0.1,
                             bounds: Optional[Tuple[torch.Tensor,
                                                    torch.Tensor]] = None
                             ) -> torch.Tensor:
    """Per-class min-max of the affinities (each column scaled by its
    min / max over the whole set: ``bounds``, default this tensor's
    :func:`class_bounds`), then per row ``^(1/tau)`` renormalised. A class
    whose affinities are all equal scales to 1; a row at every class's
    minimum becomes uniform."""
    _check(affinity, tau)
    low, high = class_bounds(affinity) if bounds is None else bounds
    a = affinity.float()
    return sharpen_rows(_scale(a, low.float()[None].to(a.device),
                               high.float()[None].to(a.device)), tau)


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
                                tau: Optional[float] = None,
                                logit_scale: Optional[float] = None
                                ) -> torch.Tensor:
    """Dispatch to the normalisation named ``normalization`` (float32
    out); ``tau=None``: :func:`default_tau`. ``'minmax_class'`` scales by
    the min / max of the rows given (give it the whole set)."""
    tau = default_tau(normalization) if tau is None else tau
    if normalization == 'minmax':
        return minmax_soft_labels(affinity, tau)
    if normalization == 'minmax_class':
        return class_minmax_soft_labels(affinity, tau)
    if normalization == 'none':
        return plain_soft_labels(affinity)
    if logit_scale is None:
        raise ValueError(f'normalization={normalization!r} needs the '
                         'pre-trained logit_scale.')
    if normalization == 'softmax':
        return softmax_soft_labels(affinity, logit_scale, tau)
    return minmax_prob_soft_labels(affinity, logit_scale, tau)


def default_tau(normalization: str) -> float:
    """τ of ``normalization`` when none is given (:data:`DEFAULT_TAU`)."""
    check_normalization(normalization)
    return DEFAULT_TAU[normalization]


def check_normalization(normalization: str) -> None:
    """Raise a clear error for an unknown normalisation name."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f'unknown soft-label normalization '
                         f'{normalization!r}; choose from {NORMALIZATIONS}.')
