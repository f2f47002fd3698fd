"""``DualRiskLoss``: L = L_ERM + λ · L_WRM (docs/method.md).

L_ERM is FLYP's contrastive image<->caption loss (``erm='contrastive'``)
or cross-entropy on the ERM logits (``erm='ce'``); L_WRM is the soft
cross-entropy of the WRM logits against the core-based soft labels p_c.
Which prompt set gives the captions / logits of each term is an option
(df and cd by default); the head that owns this loss makes them.
"""
import math
import numbers
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from drm_mm.prompts import PROMPT_SETS
from drm_mm.registry import MODELS
from .contrastive_loss import ContrastiveLoss

ERM_TYPES = ('contrastive', 'ce')


def soft_cross_entropy(logits: torch.Tensor,
                       targets: torch.Tensor) -> torch.Tensor:
    """Batch mean of ``-Σ_y targets_y · log softmax(logits)_y``."""
    if logits.shape != targets.shape:
        raise ValueError(f'soft cross-entropy: logits {tuple(logits.shape)} '
                         f'and soft labels {tuple(targets.shape)} differ.')
    log_p = F.log_softmax(logits.float(), dim=1)
    return -(targets.float() * log_p).sum(dim=1).mean()


@MODELS.register_module()
class DualRiskLoss(nn.Module):
    """Dual risk: expected risk (ERM) plus λ times the worst-case risk (WRM).

    Returns ``loss_erm`` and ``loss_wrm`` (already multiplied by λ) plus
    statistics for the log whose names contain no ``loss`` (MMEngine sums
    every key containing ``loss``): ``wrm_raw`` (unweighted L_WRM),
    ``soft_label_max`` (mean of max p_c) and ``acc_df`` (batch accuracy of
    the ERM logits, for ``erm='ce'``; the df logits by default).

    Args:
        erm (str): ``'contrastive'`` (FLYP) or ``'ce'``.
            Defaults to ``'contrastive'``.
        wrm_weight (float): λ; 0 turns DRM into its ERM baseline (FLYP /
            FT). Defaults to 1.0.
        label_smoothing (float): for ``erm='ce'``. Defaults to 0.0.
        gather (bool): gather contrastive features across ranks (global
            batch). Defaults to True.
        erm_weight (float): weight of L_ERM; 0 trains with L_WRM only
            (ablation). Defaults to 1.0.
        erm_prompts (str): the prompt set of L_ERM: ``'df'`` (captions / CE
            on the class-name prototypes) or ``'cd'`` (captions drawn from
            the descriptions / CE on the cd prototypes). Defaults to
            ``'df'``.
        wrm_prompts (str): the prompt set of the logits L_WRM trains:
            ``'cd'`` or ``'df'`` (the soft labels are core-based either
            way). Defaults to ``'cd'``.
    """

    def __init__(self,
                 erm: str = 'contrastive',
                 wrm_weight: float = 1.0,
                 label_smoothing: float = 0.0,
                 gather: bool = True,
                 erm_weight: float = 1.0,
                 erm_prompts: str = 'df',
                 wrm_prompts: str = 'cd') -> None:
        super().__init__()
        if erm not in ERM_TYPES:
            raise ValueError(f'DualRiskLoss.erm={erm!r}; choose from '
                             f'{ERM_TYPES}.')
        if (isinstance(wrm_weight, bool)
                or not isinstance(wrm_weight, numbers.Real)
                or not math.isfinite(wrm_weight) or wrm_weight < 0):
            raise ValueError(f'DualRiskLoss.wrm_weight (lambda) must be >= 0 '
                             f'and a finite number, got {wrm_weight!r}.')
        if (isinstance(erm_weight, bool)
                or not isinstance(erm_weight, numbers.Real)
                or not math.isfinite(erm_weight) or erm_weight < 0):
            raise ValueError(f'DualRiskLoss.erm_weight must be >= 0 and a '
                             f'finite number, got {erm_weight!r}.')
        if erm_weight == 0 and wrm_weight == 0:
            raise ValueError('DualRiskLoss: erm_weight and wrm_weight are '
                             'both 0, nothing to train; set one of them > '
                             '0.')
        for key, value in (('erm_prompts', erm_prompts),
                           ('wrm_prompts', wrm_prompts)):
            if value not in PROMPT_SETS:
                raise ValueError(f'DualRiskLoss.{key}={value!r}; choose from '
                                 f'{PROMPT_SETS}.')
        if not 0 <= label_smoothing < 1:
            raise ValueError(f'DualRiskLoss.label_smoothing must be in [0, 1)'
                             f', got {label_smoothing}.')
        if label_smoothing and erm != 'ce':
            raise ValueError("DualRiskLoss.label_smoothing applies to "
                             "erm='ce' only.")
        self.erm = erm
        self.wrm_weight = float(wrm_weight)
        self.erm_weight = float(erm_weight)
        self.erm_prompts = erm_prompts
        self.wrm_prompts = wrm_prompts
        self.label_smoothing = float(label_smoothing)
        self.contrastive = ContrastiveLoss(gather=gather)

    @property
    def uses_wrm(self) -> bool:
        """Whether the WRM term (cd logits, soft labels) is needed."""
        return self.wrm_weight > 0

    @property
    def uses_erm(self) -> bool:
        """Whether the ERM term is computed (``erm_weight > 0``)."""
        return self.erm_weight > 0

    @property
    def needs_cd(self) -> bool:
        """Whether a term uses the cd prompts (WRM: also its soft labels)."""
        return self.uses_wrm or (self.uses_erm and self.erm_prompts == 'cd')

    def erm_loss(self,
                 labels: Optional[torch.Tensor] = None,
                 z_erm: Optional[torch.Tensor] = None,
                 image_features: Optional[torch.Tensor] = None,
                 caption_features: Optional[torch.Tensor] = None,
                 logit_scale: Optional[torch.Tensor] = None) -> torch.Tensor:
        """L_ERM from the inputs its form needs."""
        if self.erm == 'contrastive':
            if image_features is None or caption_features is None or \
                    logit_scale is None:
                raise ValueError("erm='contrastive' needs image_features, "
                                 'caption_features and logit_scale.')
            return self.contrastive(image_features, caption_features,
                                    logit_scale)
        if z_erm is None or labels is None:
            raise ValueError("erm='ce' needs z_erm and labels.")
        return F.cross_entropy(z_erm.float(), labels,
                               label_smoothing=self.label_smoothing)

    def forward(self,
                labels: Optional[torch.Tensor] = None,
                z_erm: Optional[torch.Tensor] = None,
                z_wrm: Optional[torch.Tensor] = None,
                soft_labels: Optional[torch.Tensor] = None,
                image_features: Optional[torch.Tensor] = None,
                caption_features: Optional[torch.Tensor] = None,
                logit_scale: Optional[torch.Tensor] = None
                ) -> Dict[str, torch.Tensor]:
        """The dual risk of a batch.

        Args:
            labels (torch.Tensor, optional): class indices ``(N, )``.
            z_erm (torch.Tensor, optional): logits of L_ERM's prompt set
                (``erm='ce'``).
            z_wrm (torch.Tensor, optional): logits of L_WRM's prompt set.
            soft_labels (torch.Tensor, optional): p_c ``(N, C)`` for L_WRM.
            image_features (torch.Tensor, optional): for the contrastive
                L_ERM.
            caption_features (torch.Tensor, optional): one caption of L_ERM's
                prompt set per image, for the contrastive L_ERM.
            logit_scale (torch.Tensor, optional): the clamped training scale
                of the contrastive L_ERM.
        """
        losses: Dict[str, torch.Tensor] = {}
        if self.uses_erm:
            erm = self.erm_loss(labels, z_erm, image_features,
                                caption_features, logit_scale)
            losses['loss_erm'] = (erm if self.erm_weight == 1.0 else
                                  self.erm_weight * erm)
        if self.uses_wrm:
            if z_wrm is None or soft_labels is None:
                raise ValueError('DualRiskLoss with wrm_weight > 0 needs '
                                 'z_wrm and soft_labels.')
            wrm = soft_cross_entropy(z_wrm, soft_labels)
            losses['loss_wrm'] = self.wrm_weight * wrm
            if not self.uses_erm:
                losses['loss_erm'] = wrm.new_zeros(())
            losses['wrm_raw'] = wrm.detach()
            losses['soft_label_max'] = soft_labels.detach().float().max(
                dim=1).values.mean()
        else:
            ref = losses['loss_erm']
            losses['loss_wrm'] = ref.new_zeros(())
        if z_erm is not None and labels is not None:
            losses['acc_df'] = (z_erm.detach().argmax(dim=1) == labels
                                ).float().mean()
        return losses
