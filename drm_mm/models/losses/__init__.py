"""Losses of DRM: the dual risk and the cross-rank contrastive loss."""
from .contrastive_loss import (ContrastiveLoss, contrastive_loss,
                               gather_with_grad)
from .dual_risk_loss import DualRiskLoss, soft_cross_entropy

__all__ = [
    'ContrastiveLoss', 'contrastive_loss', 'gather_with_grad', 'DualRiskLoss',
    'soft_cross_entropy'
]
