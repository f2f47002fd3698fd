"""``TeacherFeatureLoss``: the shared shape of CAR-FT's and Lipsum-FT's
regularisers, which compare the fine-tuned image features with the frozen
pre-trained ones on the same images, through text features of the frozen
pre-trained text encoder (context prompts, random texts)."""
import torch
from torch import nn

from .l2sp_loss import check_weight


class TeacherFeatureLoss(nn.Module):
    """Base of the weighted regularisers ``loss_weight · gap(f_θ, f_0, t, s)``.

    Subclasses set :attr:`text_rows` (the letter of the text rows in error
    messages) and implement :meth:`gap`; the inputs are checked and the
    teacher features, text features and scale detached here, so the
    gradient reaches the fine-tuned image features only.

    Args:
        loss_weight (float): the weight of the term. Defaults to 1.0.
    """

    #: The letter naming the rows of ``text_features`` in errors.
    text_rows = 'M'

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = check_weight(type(self).__name__, 'loss_weight',
                                        loss_weight)

    def gap(self, image_features: torch.Tensor,
            teacher_image_features: torch.Tensor,
            text_features: torch.Tensor,
            logit_scale: torch.Tensor) -> torch.Tensor:
        """The unweighted term (float32 scalar)."""
        raise NotImplementedError

    def forward(self, image_features: torch.Tensor,
                teacher_image_features: torch.Tensor,
                text_features: torch.Tensor, logit_scale) -> torch.Tensor:
        """The weighted term, a float32 scalar.

        Args:
            image_features (Tensor): ``(N, D)`` of the fine-tuned encoder.
            teacher_image_features (Tensor): ``(N, D)`` of the frozen
                pre-trained encoder on the same images.
            text_features (Tensor): ``(rows, D)`` text features of the
                frozen pre-trained text encoder (see the subclass).
            logit_scale (Tensor | float): ``s = exp(logit_scale)`` of the
                pre-trained CLIP (100 for OpenAI's), used for both.
        """
        owner = type(self).__name__
        if image_features.shape != teacher_image_features.shape:
            raise ValueError(f'{owner}: image_features '
                             f'{tuple(image_features.shape)} and '
                             f'teacher_image_features '
                             f'{tuple(teacher_image_features.shape)} differ; '
                             'give both encoders the same images.')
        if text_features.dim() != 2 or \
                text_features.size(1) != image_features.size(-1):
            raise ValueError(f'{owner}: text_features must be '
                             f'({self.text_rows}, {image_features.size(-1)}),'
                             f' got {tuple(text_features.shape)}.')
        scale = torch.as_tensor(logit_scale, dtype=torch.float32,
                                device=image_features.device).detach()
        return self.loss_weight * self.gap(
            image_features, teacher_image_features.detach(),
            text_features.detach(), scale)
