"""Losses of DRM: the dual risk and the cross-rank contrastive loss."""
from .car_ft_loss import CARFTLoss
from .contrastive_loss import (ContrastiveLoss, contrastive_loss,
                               gather_with_grad)
from .dual_risk_loss import DualRiskLoss, soft_cross_entropy
from .l2sp_loss import L2SPLoss
from .lipsum_loss import LipsumLoss, random_text_tokens

__all__ = [
    'ContrastiveLoss', 'contrastive_loss', 'gather_with_grad', 'DualRiskLoss',
    'soft_cross_entropy', 'L2SPLoss', 'CARFTLoss', 'LipsumLoss',
    'random_text_tokens'
]
