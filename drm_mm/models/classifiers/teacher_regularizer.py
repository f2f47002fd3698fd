"""``TeacherRegularizer``: the robust fine-tuning regularisers that compare
the model with the frozen pre-trained CLIP (L2-SP, CAR-FT, Lipsum-FT;
docs/baselines.md).

``DRMClassifier(regularizer=dict(type='drm_mm.LipsumLoss', ...))`` (or a
list of such configs) builds one. Each training step the classifier hands
it the teacher (the one frozen CLIP that the soft-label component keeps),
the batch and the student's image features; it computes the teacher's
outputs without gradient and returns ``{'loss_l2sp' | 'loss_carft' |
'loss_lipsum': value}``, which MMEngine adds to the total loss like every
``loss*`` key. It has no parameters of its own.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.logging import MessageHub
from torch import nn

from drm_mm.prompts.templates import fill_template, resolve_templates
from drm_mm.registry import MODELS, build_in_scope
from ..losses import CARFTLoss, L2SPLoss, LipsumLoss
from ..losses.car_ft_loss import context_weights

#: The loss key of each regulariser.
LOSS_KEYS = {L2SPLoss: 'loss_l2sp', CARFTLoss: 'loss_carft',
             LipsumLoss: 'loss_lipsum'}


def _build(cfg: Union[dict, nn.Module]) -> nn.Module:
    term = build_in_scope(MODELS, dict(cfg)) if isinstance(cfg,
                                                            dict) else cfg
    if type(term) not in LOSS_KEYS:
        raise ValueError(f'DRMClassifier.regularizer: {type(term).__name__} '
                         f'is no regulariser; use drm_mm.L2SPLoss, '
                         f'drm_mm.CARFTLoss or drm_mm.LipsumLoss.')
    return term


class TeacherRegularizer(nn.Module):
    """The regularisers of ``DRMClassifier.regularizer``.

    Args:
        cfg (dict | list[dict]): one regulariser config (type
            ``drm_mm.L2SPLoss`` / ``drm_mm.CARFTLoss`` /
            ``drm_mm.LipsumLoss``) or a list of them, each type at most
            once.
        classnames (list[str]): the class names, which fill CAR-FT's
            context templates.
    """

    def __init__(self, cfg: Union[dict, Sequence[dict]],
                 classnames: Sequence[str]) -> None:
        super().__init__()
        cfgs = list(cfg) if isinstance(cfg, (list, tuple)) else [cfg]
        self.terms = nn.ModuleList(_build(c) for c in cfgs)
        kinds = [type(t).__name__ for t in self.terms]
        if len(set(kinds)) != len(kinds) or not kinds:
            raise ValueError(f'DRMClassifier.regularizer: {kinds}; give '
                             f'each of L2SPLoss, CARFTLoss, LipsumLoss at '
                             f'most once (and at least one, or None).')
        self.classnames = list(classnames)
        self._context_prompts: Optional[List[List[str]]] = None
        self._context: Optional[torch.Tensor] = None
        self._optimizer_checked = False
        for term in self.terms:
            if isinstance(term, CARFTLoss):
                templates = resolve_templates(term.context_templates)
                if len(templates) < 2:
                    raise ValueError(
                        f'CARFTLoss.context_templates has {len(templates)} '
                        f'template: one context makes the loss 0; use '
                        f"'imagenet_openai' (80) or a list of >= 2.")
                self._context_prompts = [
                    [fill_template(t, c) for c in self.classnames]
                    for t in templates]

    def check_optimizer(self, optimizer: torch.optim.Optimizer,
                        params: Sequence[nn.Parameter]) -> None:
        """Refuse optimizer weight decay on parameters L2-SP pulls to their
        pre-trained values (they would be pulled to 0 as well)."""
        if self._optimizer_checked or not any(
                isinstance(t, L2SPLoss) for t in self.terms):
            return
        self._optimizer_checked = True
        ids = {id(p) for p in params}
        for group in optimizer.param_groups:
            decay = group.get('weight_decay', 0) or 0
            if decay and any(id(p) in ids for p in group['params']):
                raise ValueError(
                    f'L2SPLoss replaces weight decay but the optimizer has '
                    f'weight_decay={decay}; set optim_wrapper.optimizer.'
                    f'weight_decay=0.0 (configs/baselines/l2sp_*.py).')

    def forward(self, teacher, clip, head: nn.Module, inputs: torch.Tensor,
                image_features: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The regularisers' terms for one training batch.

        Args:
            teacher (OpenCLIP): the frozen pre-trained CLIP.
            clip (OpenCLIP): the CLIP being fine-tuned.
            head (nn.Module): the head (its parameters are L2-SP's new
                parameters).
            inputs (torch.Tensor): the preprocessed images.
            image_features (torch.Tensor): the student's ``(N, D)``.
        """
        if teacher.device != inputs.device:
            teacher.to(inputs.device)
        scale = teacher.training_logit_scale.detach()
        losses = {}
        teacher_feats = None
        for term in self.terms:
            if isinstance(term, L2SPLoss):
                losses['loss_l2sp'] = self._l2sp(term, teacher, clip, head)
                continue
            if teacher_feats is None:
                with torch.no_grad():
                    teacher_feats = teacher.encode_image(inputs)
            if isinstance(term, CARFTLoss):
                losses['loss_carft'] = term(image_features, teacher_feats,
                                            self._contexts(teacher), scale)
            else:
                hub = MessageHub.get_current_instance()
                tokens = term.draw_tokens(teacher.tokenizer,
                                          int(hub.get_info('seed') or 0),
                                          int(hub.get_info('iter') or 0))
                with torch.no_grad():
                    texts = teacher.encode_text(tokens.to(inputs.device))
                losses['loss_lipsum'] = term(image_features, teacher_feats,
                                             texts, scale)
        return losses

    @torch.no_grad()
    def _contexts(self, teacher) -> torch.Tensor:
        """CAR-FT's context weights ``(K, D)`` by the teacher (cached)."""
        if self._context is None or self._context.device != teacher.device:
            prompts = self._context_prompts
            flat = [p for row in prompts for p in row]
            feats = teacher.encode_text(flat, max_rows=1024)
            self._context = context_weights(
                feats.view(len(prompts), len(self.classnames), -1))
        return self._context

    @staticmethod
    def _l2sp(term: L2SPLoss, teacher, clip, head: nn.Module
              ) -> torch.Tensor:
        params = {n: p for n, p in clip.named_parameters() if p.requires_grad}
        reference = dict(teacher.named_parameters())
        if any(n not in reference or reference[n].shape != p.shape
               for n, p in params.items()):
            raise ValueError('L2SPLoss: the parameters do not match the '
                             'pre-trained CLIP by name and shape (sharded '
                             'under FSDP?); L2-SP is unsupported under FSDP, '
                             'use DDP.')
        new = [p for p in head.parameters() if p.requires_grad]
        return term(params, reference, new)
