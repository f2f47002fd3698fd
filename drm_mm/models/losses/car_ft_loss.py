"""``CARFTLoss``: CAR-FT's context regulariser (Mao et al., Context-Aware
Robust Fine-Tuning, IJCV 2023; docs/baselines.md).

A context prompt is a template ("a sketch of a {c}.", "a photo of the
large {c}." ...) with its class left open; its weight is the mean over the
classes of the template's normalised text embeddings. The context
distribution of an image is the zero-shot softmax over the K context
weights; CAR-FT keeps the fine-tuned image encoder's context distribution
close to the frozen pre-trained one's:

    L_ctx = E_x KL( p_0(· | x) ‖ p_θ(· | x) ),
    p(k | x) = softmax_k( s · cos(f(x), w_k) )
"""
from typing import Sequence, Union

import torch
import torch.nn.functional as F

from drm_mm.registry import MODELS
from .teacher_feature_loss import TeacherFeatureLoss


def context_weights(template_features: torch.Tensor) -> torch.Tensor:
    """The K context prompt weights ``(K, D)`` from the text embeddings
    ``(K, C, D)`` of K templates filled with each of the C class names:
    per template, the mean of its normalised class embeddings,
    renormalised (a class-agnostic "a [CONTEXT] of [CLASS]")."""
    if template_features.dim() != 3:
        raise ValueError(f'context_weights: expected (templates, classes, '
                         f'dim) text embeddings, got '
                         f'{tuple(template_features.shape)}.')
    mean = F.normalize(template_features.float(), dim=-1).mean(dim=1)
    return F.normalize(mean, dim=-1)


def context_log_probs(image_features: torch.Tensor,
                      context_features: torch.Tensor,
                      logit_scale: torch.Tensor) -> torch.Tensor:
    """``log p(k | x)`` ``(N, K)``: log-softmax over the contexts of the
    scaled cosine similarities (float32)."""
    image = F.normalize(image_features.float(), dim=-1)
    context = F.normalize(context_features.float(), dim=-1)
    return F.log_softmax(logit_scale * image @ context.t(), dim=-1)


@MODELS.register_module()
class CARFTLoss(TeacherFeatureLoss):
    """CAR-FT: KL divergence between the context distributions of the
    frozen pre-trained and of the fine-tuned image encoder.

    ``forward(image_features, teacher_image_features, text_features,
    logit_scale)`` (``text_features``: the K context weights) returns

        loss_weight · 1/N Σ_x Σ_k p_0(k|x) · (log p_0(k|x) − log p_θ(k|x))

    with ``p(k|x) = softmax_k(s · cos(f(x), w_k))``: the teacher's
    distribution is the target (KL(p_0 ‖ p_θ), the distillation direction).
    Features are L2-normalised here; the teacher features, the context
    weights and the scale are detached, so the gradient reaches the
    fine-tuned image features only.

    Args:
        loss_weight (float): the weight of L_ctx added to the fine-tuning
            loss. Defaults to 1.0, our choice: no stored source gives the
            paper's value (docs/baselines.md).
        context_templates (str | list[str]): the context prompts: a
            template-set key of :mod:`drm_mm.prompts.templates` or a list
            of ``{c}`` templates (at least 2), filled with every class name
            by the classifier. Defaults to ``'imagenet_openai'`` (the 80
            OpenAI ImageNet templates).
    """

    text_rows = 'K'

    def __init__(self, loss_weight: float = 1.0,
                 context_templates: Union[str, Sequence[str]] =
                 'imagenet_openai') -> None:
        super().__init__(loss_weight)
        self.context_templates = context_templates

    def gap(self, image_features: torch.Tensor,
            teacher_image_features: torch.Tensor,
            text_features: torch.Tensor,
            logit_scale: torch.Tensor) -> torch.Tensor:
        """KL(p_0 ‖ p_θ) over the contexts ``text_features`` ``(K, D)``
        (:func:`context_weights`), averaged over the images."""
        log_p_student = context_log_probs(image_features, text_features,
                                          logit_scale)
        with torch.no_grad():
            log_p_teacher = context_log_probs(teacher_image_features,
                                              text_features, logit_scale)
        return F.kl_div(log_p_student, log_p_teacher, reduction='batchmean',
                        log_target=True)
