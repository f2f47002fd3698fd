"""``OpenCLIP``: both towers of an open_clip CLIP as one MMEngine module."""
import warnings
from typing import Optional, Sequence, Union

import torch
from mmengine.model import BaseModule

from drm_mm.registry import MODELS
from .open_clip_adapter import (build_text_encoder, build_tokenizer,
                                check_pretrained, create_architecture,
                                load_pretrained)
from .text_trimming import encode_by_plan

TOWERS = ('image', 'text', 'logit_scale')
#: Upper bound of ``exp(logit_scale)`` in the training losses (CLIP's 100).
MAX_LOGIT_SCALE = 100.0


def is_image_param(name: str) -> bool:
    """Whether a parameter/buffer name of an open_clip CLIP is image tower."""
    return name.startswith('visual.')


def is_text_param(name: str) -> bool:
    """Whether a parameter name of an open_clip CLIP belongs to the text
    tower (everything that is neither image tower nor logit scale/bias)."""
    return not is_image_param(name) and name not in ('logit_scale',
                                                     'logit_bias')


@MODELS.register_module()
class OpenCLIP(BaseModule):
    """An open_clip CLIP (image + text tower) with its tokenizer.

    Built once and shared: the DRM classifier, its head and the soft-label
    pass all use this one instance, so weights are never loaded twice.

    The constructor builds the architecture only (no file or network
    access); :meth:`init_weights` loads the ``pretrained`` weights, as
    MMEngine's ``Runner`` calls it before training. ``get_model``, the
    inferencers and ``tools/test.py`` load a full checkpoint instead and
    never fetch the pretrained weights. A checkpoint that does not fit the
    towers (missing, unexpected or differently shaped keys) is refused
    with :class:`~drm_mm.utils.checkpoint_fit.CheckpointMismatchError`
    on every loading path, MMEngine's non-strict ones included.

    Args:
        model_name: open_clip architecture, e.g. ``'ViT-B-16'``.
        pretrained: open_clip tag (``'openai'``), local weights file or None,
            loaded by :meth:`init_weights`. Defaults to None (random).
        cache_dir: where open_clip/Hugging Face cache downloaded weights.
        force_quick_gelu: use QuickGELU (as OpenAI weights need; open_clip
            sets it itself for the ``openai`` tag).
        image_size: override the architecture's input resolution.
        grad_checkpointing: recompute activations in backward (saves memory).
        frozen: towers that never train: any of ``'image'``, ``'text'``,
            ``'logit_scale'``.
        trim_text: run the text tower only up to each batch's longest prompt
            instead of the full context length (exact for open_clip's causal
            text tower with EOT pooling; ignored where it would not be).
        text_length_buckets: with ``trim_text``, split a text batch into at
            most this many batches of similar prompt length (1: one batch at
            the longest length).
    """

    def __init__(self,
                 model_name: str,
                 pretrained: Optional[str] = None,
                 cache_dir: Optional[str] = None,
                 force_quick_gelu: bool = False,
                 image_size: Optional[int] = None,
                 grad_checkpointing: bool = False,
                 frozen: Sequence[str] = (),
                 trim_text: bool = True,
                 text_length_buckets: int = 4,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        unknown = set(frozen) - set(TOWERS)
        if unknown:
            raise ValueError(f'OpenCLIP.frozen: unknown tower(s) '
                             f'{sorted(unknown)}; choose from {TOWERS}.')
        self.model_name = model_name
        self.pretrained = pretrained
        check_pretrained(model_name, pretrained)
        self.cache_dir = cache_dir
        self.model = create_architecture(
            model_name,
            cache_dir=cache_dir,
            force_quick_gelu=force_quick_gelu,
            force_image_size=image_size)
        #: True until the pretrained weights or a checkpoint are loaded.
        self.pretrained_pending = pretrained is not None
        self.register_load_state_dict_pre_hook(_weights_from_state_dict)
        self.tokenizer = build_tokenizer(model_name)
        if int(text_length_buckets) < 1:
            raise ValueError(f'OpenCLIP.text_length_buckets must be >= 1, '
                             f'got {text_length_buckets}.')
        #: the padding-free text forward (None: open_clip's padded one)
        self.text_encoder = build_text_encoder(
            self.model, int(text_length_buckets)) if trim_text else None
        self.trim_text = self.text_encoder is not None
        self.frozen = tuple(frozen)
        if grad_checkpointing:
            self.model.set_grad_checkpointing(True)
        for name, param in self.model.named_parameters():
            if ((is_image_param(name) and 'image' in self.frozen)
                    or (is_text_param(name) and 'text' in self.frozen)
                    or (name in ('logit_scale', 'logit_bias')
                        and 'logit_scale' in self.frozen)):
                param.requires_grad_(False)

    def init_weights(self) -> None:
        """Load the ``pretrained`` weights (open_clip's own initialisation
        stays when ``pretrained`` is None). Loaded once: a second call, or
        a call after a checkpoint was loaded, changes nothing."""
        if self.pretrained_pending:
            load_pretrained(self.model, self.model_name, self.pretrained,
                            self.cache_dir)
            self.pretrained_pending = False

    def train(self, mode: bool = True) -> 'OpenCLIP':
        """Frozen towers stay in eval mode (dropout / BN statistics)."""
        super().train(mode)
        if 'image' in self.frozen:
            self.model.visual.eval()
        return self

    @property
    def text_trainable(self) -> bool:
        """Whether any text-tower parameter receives gradients."""
        return any(p.requires_grad
                   for n, p in self.model.named_parameters()
                   if is_text_param(n))

    @property
    def text_length_buckets(self) -> int:
        """Length buckets (text forwards) per trimmed call; 1 untrimmed."""
        return (self.text_encoder.text_length_buckets
                if self.text_encoder is not None else 1)

    @text_length_buckets.setter
    def text_length_buckets(self, value: int) -> None:
        if self.text_encoder is not None:
            self.text_encoder.text_length_buckets = int(value)

    @property
    def device(self) -> torch.device:
        return self.model.logit_scale.device

    @property
    def logit_scale(self) -> torch.Tensor:
        """``exp(logit_scale)`` unclamped: the scale of evaluation logits."""
        return self.model.logit_scale.exp()

    @property
    def training_logit_scale(self) -> torch.Tensor:
        """``exp(logit_scale)`` clamped to :data:`MAX_LOGIT_SCALE`, as CLIP
        training does: the scale of the training losses only."""
        return self.model.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def encode_image(self, images: torch.Tensor,
                     normalize: bool = True) -> torch.Tensor:
        """Image embeddings ``(N, D)``, L2-normalised by default."""
        if self.pretrained_pending and not getattr(self, '_warned', False):
            self._warned = True
            warnings.warn(
                f'OpenCLIP {self.model_name}: the pretrained weights '
                f'{self.pretrained!r} are not loaded, this forward uses '
                f'random weights: call model.init_weights() (the Runner does '
                f'before training) or load a checkpoint first.', UserWarning,
                stacklevel=2)
        return self.model.encode_image(images, normalize=normalize)

    def tokenize(self, texts: Union[str, Sequence[str]]) -> torch.Tensor:
        """Token ids ``(N, context_length)`` on the model's device."""
        if isinstance(texts, str):
            texts = [texts]
        return self.tokenizer(list(texts)).to(self.device)

    def text_lengths(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per prompt, the token positions the text tower has to run (CPU):
        up to the pooled EOT token with ``trim_text``, else all."""
        if self.text_encoder is not None:
            return self.text_encoder.text_lengths(tokens)
        return torch.full((tokens.size(0), ), tokens.size(1),
                          dtype=torch.long)

    def encode_text(self, texts: Union[Sequence[str], torch.Tensor],
                    normalize: bool = True,
                    lengths: Optional[torch.Tensor] = None,
                    max_rows: Optional[int] = None) -> torch.Tensor:
        """Text embeddings ``(N, D)`` of strings or token ids.

        ``lengths``: known per-row upper bounds of :meth:`text_lengths` (CPU)
        so that a trimmed forward needs no device sync; optional.
        ``max_rows``: at most this many prompts per forward (bounds memory).
        """
        tokens = texts if isinstance(texts, torch.Tensor) else self.tokenize(
            texts)
        if self.text_encoder is not None:
            return self.text_encoder(tokens, normalize=normalize,
                                     lengths=lengths, max_rows=max_rows)
        if max_rows is None or tokens.size(0) <= max_rows:
            return self.model.encode_text(tokens, normalize=normalize)
        return encode_by_plan(
            lambda rows, _: self.model.encode_text(rows, normalize=normalize),
            tokens, self.text_lengths(tokens), 1, 0, max_rows)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised image embeddings (so the module works as a backbone)."""
        return self.encode_image(images)


def _weights_from_state_dict(module: OpenCLIP, state_dict: dict, prefix: str,
                             local_metadata: dict, strict: bool, *args
                             ) -> None:
    """``load_state_dict`` pre-hook: a state dict that holds the CLIP's
    weights replaces the pretrained ones (nothing is fetched afterwards);
    one that does not fit the towers is refused (see
    :func:`~drm_mm.utils.checkpoint_fit.refuse_unfit_state_dict`)."""
    from drm_mm.utils.checkpoint_fit import refuse_unfit_state_dict
    refuse_unfit_state_dict(module, state_dict, prefix, local_metadata,
                            strict, *args)
    if any(k.startswith(f'{prefix}model.') for k in state_dict):
        module.pretrained_pending = False
