"""``LipsumLoss``: Lipsum-FT's energy-gap regulariser (Nam, Heo, Lee,
ICLR 2024; docs/baselines.md), and the draw of its random texts.

Each step draws M random token sequences t_1..t_M; with the (frozen,
pre-trained) text encoder G they give ``v_θ(x)_m = s · ⟨G(t_m), F_θ(x)⟩``.
Lipsum-FT keeps ``v_θ(x)`` close to the pre-trained image encoder's:

    R(θ) = 1/(2M) · ‖v_θ(x) − v_θ0(x)‖²   (averaged over the batch)
"""
import hashlib
import torch
import torch.nn.functional as F

from drm_mm.registry import MODELS
from .teacher_feature_loss import TeacherFeatureLoss

#: The authors' defaults: M texts per step, L random tokens each.
DEFAULT_NUM_TEXTS = 80
DEFAULT_TEXT_LENGTH = 8


def check_count(key: str, value) -> int:
    """``value`` as an int >= 1, or a one-line ValueError naming
    ``LipsumLoss.key``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'LipsumLoss.{key} must be an integer >= 1, got '
                         f'{value!r}; set it in the config.')
    return value


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator for ``step`` of a run seeded ``seed``: the same on
    every rank and after a resume, with no state to checkpoint."""
    digest = hashlib.blake2b(f'lipsum:{int(seed)}:{int(step)}'.encode(),
                             digest_size=8).digest()
    return torch.Generator().manual_seed(
        int.from_bytes(digest, 'little') & (2**63 - 1))


def random_text_tokens(tokenizer,
                       num_texts: int = DEFAULT_NUM_TEXTS,
                       text_length: int = DEFAULT_TEXT_LENGTH,
                       seed: int = 0,
                       step: int = 0) -> torch.Tensor:
    """M random token sequences ``(num_texts, context_length)`` (CPU, long).

    Each row is ``[SOT, t_1 .. t_L, EOT, 0 ...]`` with ``t_i`` drawn
    uniformly, with replacement, from the tokenizer's vocabulary without its
    special tokens; the draw is a function of ``(seed, step)`` only.

    Args:
        tokenizer: an open_clip ``SimpleTokenizer`` (or anything with
            ``vocab_size``, ``all_special_ids``, ``sot_token_id``,
            ``eot_token_id`` and ``context_length``).
        num_texts (int): M. Defaults to 80.
        text_length (int): L, random tokens per text. Defaults to 8.
        seed (int): the run's seed. Defaults to 0.
        step (int): the training iteration. Defaults to 0.
    """
    needed = ('vocab_size', 'all_special_ids', 'sot_token_id',
              'eot_token_id', 'context_length')
    absent = [k for k in needed if getattr(tokenizer, k, None) is None]
    if absent:
        raise TypeError(f'random_text_tokens: {type(tokenizer).__name__} '
                        f'has no {absent}; use an open_clip SimpleTokenizer '
                        '(CLIP BPE vocabulary).')
    check_count('num_texts', num_texts)
    check_count('text_length', text_length)
    context_length = int(tokenizer.context_length)
    if text_length + 2 > context_length:
        raise ValueError(f'LipsumLoss.text_length={text_length} does not '
                         f'fit the context of {context_length} tokens with '
                         f'SOT and EOT; use at most {context_length - 2}.')
    special = set(int(i) for i in tokenizer.all_special_ids)
    allowed = torch.tensor(
        [i for i in range(int(tokenizer.vocab_size)) if i not in special],
        dtype=torch.long)
    index = torch.randint(len(allowed), (num_texts, text_length),
                          generator=step_generator(seed, step))
    tokens = torch.zeros(num_texts, context_length, dtype=torch.long)
    tokens[:, 0] = int(tokenizer.sot_token_id)
    tokens[:, 1:text_length + 1] = allowed[index]
    tokens[:, text_length + 1] = int(tokenizer.eot_token_id)
    return tokens


def energy_vector(image_features: torch.Tensor,
                  text_features: torch.Tensor,
                  logit_scale: torch.Tensor) -> torch.Tensor:
    """``v(x) = s · cos(F(x), G(t_m))`` ``(N, M)`` in float32."""
    image = F.normalize(image_features.float(), dim=-1)
    text = F.normalize(text_features.float(), dim=-1)
    return logit_scale * image @ text.t()


@MODELS.register_module()
class LipsumLoss(TeacherFeatureLoss):
    """Lipsum-FT: the energy gap on random texts between the fine-tuned and
    the pre-trained image encoder.

    ``forward(image_features, teacher_image_features, text_features,
    logit_scale)`` (``text_features``: the M random texts) returns

        loss_weight · 1/N Σ_x 1/(2M) Σ_m (v_θ(x)_m − v_θ0(x)_m)²

    with ``v(x)_m = s · cos(F(x), G(t_m))``. Features are L2-normalised
    here; the teacher features, the text features and the scale are
    detached, so the gradient reaches the fine-tuned image features only.
    ``num_texts`` and ``text_length`` configure :meth:`draw_tokens`.

    Args:
        loss_weight (float): λ, the regulariser's weight. Defaults to 1.0.
        num_texts (int): M, random texts per step. Defaults to 80.
        text_length (int): L, random tokens per text. Defaults to 8.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 num_texts: int = DEFAULT_NUM_TEXTS,
                 text_length: int = DEFAULT_TEXT_LENGTH) -> None:
        super().__init__(loss_weight)
        self.num_texts = check_count('num_texts', num_texts)
        self.text_length = check_count('text_length', text_length)

    def draw_tokens(self, tokenizer, seed: int, step: int) -> torch.Tensor:
        """This step's ``(num_texts, context_length)`` random token ids
        (:func:`random_text_tokens`)."""
        return random_text_tokens(tokenizer, self.num_texts,
                                  self.text_length, seed, step)

    def gap(self, image_features: torch.Tensor,
            teacher_image_features: torch.Tensor,
            text_features: torch.Tensor,
            logit_scale: torch.Tensor) -> torch.Tensor:
        """``1/N Σ_x 1/(2M) ‖v_θ(x) − v_θ0(x)‖²`` on this step's random
        texts ``text_features`` ``(M, D)``."""
        v_student = energy_vector(image_features, text_features, logit_scale)
        with torch.no_grad():
            v_teacher = energy_vector(teacher_image_features, text_features,
                                      logit_scale)
        gap = (v_student - v_teacher).pow(2).sum(dim=1)
        return (gap / (2 * text_features.size(0))).mean()
