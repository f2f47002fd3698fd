"""One place that builds open_clip models and tokenizers for drm_mm.

``pretrained`` is an open_clip tag (``'openai'``, ``'laion400m_e31'``, ...),
a local weights file, or ``None`` (random init). Local files always load
offline and with ``weights_only=True``; a tag that needs a download and
cannot get one fails with a message saying which file to place where.
"""
import collections
import contextlib
import functools
import logging
import os
import os.path as osp
import pickle
from pathlib import Path
from typing import Callable, List, Optional, Tuple, Union

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import text_global_pool
from torch import nn

from drm_mm.utils.safe_checkpoint import refusal_reason

#: Architectures shipped with drm_mm (tiny test models, the toy world CLIP).
MODEL_CONFIG_DIR = Path(__file__).parent / 'model_configs'
open_clip.add_model_config(MODEL_CONFIG_DIR)


def _check_model_name(model_name: str) -> None:
    if model_name not in open_clip.list_models():
        raise ValueError(
            f'Unknown open_clip architecture {model_name!r}. Use one of '
            f'open_clip.list_models() (e.g. ViT-B-16, ViT-L-14, '
            f'ViT-L-14-336) or register a JSON config with '
            f'open_clip.add_model_config(path) / put it in {MODEL_CONFIG_DIR}.')


def _mismatch_message(path: str, missing: list, unexpected: list) -> str:
    parts = []
    if missing:
        parts.append(f'missing keys (first: {missing[:5]})')
    if unexpected:
        parts.append(f'unexpected keys (first: {unexpected[:5]})')
    return ' and '.join(parts)


def load_clip_weights(model: nn.Module, path: str, model_name: str) -> None:
    """Load a local CLIP weights file into ``model``, safely and strictly.

    Uses ``weights_only=True`` (third-party files are untrusted) and names
    the first mismatching keys when the file is for another architecture.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'pretrained weights file {path!r} does not exist. Pass an '
            f'existing local file, an open_clip tag (see '
            f'open_clip.list_pretrained_tags_by_model({model_name!r})) or '
            f'None for random weights.')
    try:
        incompatible = open_clip.load_checkpoint(
            model, path, strict=False, weights_only=True)
    except pickle.UnpicklingError as err:
        raise RuntimeError(
            f'Refused to load pretrained file {path!r}: '
            f'{refusal_reason(err, path)}. Pretrained weights are untrusted '
            f'input; convert them to a state_dict of tensors (or '
            f'.safetensors) with a trusted tool first.') from None
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        detail = '; '.join(line.strip() for line in first[1:4]) or first[0]
        raise ValueError(
            f'pretrained file {path!r} does not match architecture '
            f'{model_name!r}: {detail}. Check model_name and the file.'
        ) from None
    missing = list(getattr(incompatible, 'missing_keys', []))
    unexpected = list(getattr(incompatible, 'unexpected_keys', []))
    if missing or unexpected:
        raise ValueError(
            f'pretrained file {path!r} does not match architecture '
            f'{model_name!r}: {_mismatch_message(path, missing, unexpected)}.'
            f' Check model_name and the file.')


def _download_help(model_name: str, tag: str, cache_dir: Optional[str],
                   err: Exception) -> str:
    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    hub = cfg.get('hf_hub', '').rstrip('/')
    where = (f'the Hugging Face repo {hub!r}' if hub else
             f'{cfg.get("url", "its URL")}')
    cache = cache_dir or os.environ.get('HF_HUB_CACHE') or os.environ.get(
        'HF_HOME', '~/.cache/huggingface')
    return (
        f'Could not get open_clip weights {model_name!r}/{tag!r} ({err}). '
        f'Without network: download the weights file from {where} on a '
        f'machine with access and pass its local path as pretrained=..., or '
        f'put the repo into the Hugging Face cache ({cache}) and set '
        f'HF_HUB_OFFLINE=1 before starting (this also avoids a long network '
        f'time-out).')


def build_open_clip(model_name: str,
                    pretrained: Optional[str] = None,
                    cache_dir: Optional[str] = None,
                    force_quick_gelu: bool = False,
                    force_image_size: Optional[int] = None) -> nn.Module:
    """Build an open_clip CLIP model with weights from a tag, file or None."""
    _check_model_name(model_name)
    kwargs = dict(force_quick_gelu=force_quick_gelu,
                  force_image_size=force_image_size,
                  cache_dir=cache_dir,
                  pretrained_text=False)
    if pretrained is None:
        return open_clip.create_model(model_name, pretrained=None, **kwargs)
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained in tags:
        try:
            return open_clip.create_model(
                model_name, pretrained=pretrained, weights_only=True,
                **kwargs)
        except Exception as err:  # hub / network / cache errors
            raise RuntimeError(
                _download_help(model_name, pretrained, cache_dir,
                               err)) from None
    looks_like_path = (os.sep in str(pretrained) or osp.splitext(
        str(pretrained))[1] in ('.pt', '.pth', '.bin', '.safetensors'))
    if not looks_like_path and not osp.exists(pretrained):
        raise ValueError(
            f'pretrained={pretrained!r} is neither an open_clip tag of '
            f'{model_name!r} (known tags: {tags}) nor an existing file.')
    with _quiet_random_init_warning():
        model = open_clip.create_model(model_name, pretrained=None, **kwargs)
    load_clip_weights(model, str(pretrained), model_name)
    from mmengine.logging import print_log
    print_log(f'OpenCLIP {model_name}: weights loaded from {pretrained}',
              logger='current')
    return model


class _RandomInitFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return 'No pretrained weights loaded' not in record.getMessage()


@contextlib.contextmanager
def _quiet_random_init_warning():
    """Hide open_clip's "initialized randomly" warning while a model is
    built for weights that are loaded from a file right after."""
    root = logging.getLogger()
    filt = _RandomInitFilter()
    root.addFilter(filt)
    try:
        yield
    finally:
        root.removeFilter(filt)


def build_tokenizer(model_name: str) -> Callable:
    """The open_clip tokenizer of ``model_name`` (works offline for CLIP)."""
    _check_model_name(model_name)
    return open_clip.get_tokenizer(model_name)


def freeze_module(module: nn.Module) -> None:
    """Stop gradients and put ``module`` in eval mode permanently."""
    module.eval()
    for param in module.parameters():
        param.requires_grad_(False)


TensorOrList = Union[torch.Tensor, list]


# --------------------------------------------------------------------------
# Padding-free text forward (a fast path; exact up to float rounding).
#
# CLIP's text transformer is causal and pools the embedding at the EOT token
# (or the EOS id), so a prompt's embedding depends only on its tokens up to
# that position. Prompts are padded to the context length (77) but iWildCam's
# concept descriptions are ~25 tokens long: running each batch at the length
# of its longest prompt, in a few batches of similar lengths, skips most of
# the padding work. Positional embedding and causal mask are sliced to match.

#: Padded tokens one extra length bucket must save to be worth its launch
#: overhead (a rough figure for one more batched text forward).
BUCKET_OVERHEAD_TOKENS = 512


@functools.lru_cache(maxsize=256)
def _bucket_limits(histogram: Tuple[Tuple[int, int], ...], max_buckets: int,
                   overhead: int) -> Tuple[int, ...]:
    """Upper lengths of at most ``max_buckets`` buckets minimising padded
    tokens (+ an overhead per bucket) for sorted ``(length, count)`` pairs."""
    lengths = [h[0] for h in histogram]
    prefix = [0]
    for _, count in histogram:
        prefix.append(prefix[-1] + count)
    m = len(lengths)
    inf = float('inf')
    # cost[b][j]: best cost of the first j lengths in b buckets
    cost = [[inf] * (m + 1) for _ in range(max_buckets + 1)]
    cut = [[0] * (m + 1) for _ in range(max_buckets + 1)]
    cost[0][0] = 0.0
    for b in range(1, max_buckets + 1):
        for j in range(1, m + 1):
            for i in range(j):
                if cost[b - 1][i] == inf:
                    continue
                value = (cost[b - 1][i] + (prefix[j] - prefix[i]) *
                         lengths[j - 1] + overhead)
                if value < cost[b][j]:
                    cost[b][j], cut[b][j] = value, i
    best = min(range(1, max_buckets + 1), key=lambda b: cost[b][m])
    limits, j = [], m
    for b in range(best, 0, -1):
        limits.append(lengths[j - 1])
        j = cut[b][j]
    return tuple(sorted(limits))


_LengthPlan = Tuple[List[Tuple[torch.Tensor, int]], torch.Tensor]
_plans: 'collections.OrderedDict[tuple, _LengthPlan]' = \
    collections.OrderedDict()


def _length_plan(lengths: torch.Tensor, max_buckets: int,
                 overhead: int) -> _LengthPlan:
    """Buckets and the permutation that restores row order, memoised: the
    prompt sets of a training run repeat every step."""
    lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
    key = (lengths.numpy().tobytes(), int(max_buckets), int(overhead))
    found = _plans.get(key)
    if found is not None:
        _plans.move_to_end(key)
        return found
    values = lengths.tolist()
    histogram = tuple(sorted(collections.Counter(values).items()))
    limits = _bucket_limits(histogram, max(1, int(max_buckets)),
                            int(overhead))
    bucket_of = torch.bucketize(lengths, torch.tensor(limits))
    plan = []
    for k, limit in enumerate(limits):
        rows = torch.nonzero(bucket_of == k).flatten()
        if rows.numel():
            plan.append((rows, int(limit)))
    inverse = torch.empty(len(values), dtype=torch.long)
    inverse[torch.cat([rows for rows, _ in plan])] = torch.arange(
        len(values))
    _plans[key] = (plan, inverse)
    if len(_plans) > 64:
        _plans.popitem(last=False)
    return plan, inverse


def plan_length_buckets(lengths: torch.Tensor, max_buckets: int,
                        overhead: int = BUCKET_OVERHEAD_TOKENS
                        ) -> List[Tuple[torch.Tensor, int]]:
    """Split rows into at most ``max_buckets`` batches of similar length:
    ``[(row indices, bucket length), ...]`` (CPU indices), the split that
    minimises padded tokens plus ``overhead`` tokens per batch.
    """
    return _length_plan(lengths, max_buckets, overhead)[0]


def _is_causal_mask(mask: Optional[torch.Tensor]) -> bool:
    if mask is None or mask.dim() != 2 or mask.size(0) != mask.size(1):
        return False
    blocked = torch.isinf(mask) & (mask < 0)
    upper = torch.ones_like(blocked).triu(1)
    return bool(torch.equal(blocked, upper)
                and torch.all(mask[~upper] == 0))


class TrimmedTextCLIP(open_clip.CLIP):
    """open_clip's ``CLIP`` with a text forward that skips the padding.

    Never built directly: :func:`enable_text_trimming` switches the class of
    a built CLIP whose text tower is causal with EOT/EOS pooling. Weights,
    state-dict keys and every other method stay open_clip's.
    """

    #: At most this many length buckets (text forwards) per call.
    text_length_buckets: int = 1
    #: Padded tokens a further bucket must save (see plan_length_buckets).
    text_bucket_overhead: int = BUCKET_OVERHEAD_TOKENS

    def text_lengths(self, text: torch.Tensor) -> torch.Tensor:
        """Per prompt, pooled position + 1: the tokens that matter (CPU)."""
        if self.text_pool_type == 'eos':
            index = (text == self.text_eos_id).int().argmax(dim=-1)
        else:
            index = text.argmax(dim=-1)
        return (index + 1).cpu()

    def _encode_text_at(self, text: torch.Tensor,
                        length: int) -> torch.Tensor:
        """open_clip's text forward on the first ``length`` positions."""
        cast_dtype = self.transformer.get_cast_dtype()
        text = text[:, :length]
        x = self.token_embedding(text).to(cast_dtype)
        x = x + self.positional_embedding[:length].to(cast_dtype)
        x = self.transformer(x, attn_mask=self.attn_mask[:length, :length])
        x = self.ln_final(x)
        x = text_global_pool(x, text, self.text_pool_type,
                             eos_token_id=getattr(self, 'text_eos_id', None))
        if self.text_projection is not None:
            if isinstance(self.text_projection, nn.Linear):
                x = self.text_projection(x)
            else:
                x = x @ self.text_projection
        return x

    def encode_text(self, text: torch.Tensor, normalize: bool = False,
                    lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Text embeddings as open_clip computes them, without the padding.

        Args:
            text: token ids ``(N, context_length)``.
            normalize: L2-normalise the embeddings.
            lengths: per-row upper bounds of :meth:`text_lengths` (CPU), so
                the caller can avoid a device sync; computed when None.
        """
        if text.size(0) == 0:
            return super().encode_text(text, normalize=normalize)
        if lengths is None:
            lengths = self.text_lengths(text)
        lengths = torch.as_tensor(lengths, dtype=torch.long).cpu().clamp(
            1, text.size(1))
        plan, inverse = _length_plan(lengths, self.text_length_buckets,
                                     self.text_bucket_overhead)
        if len(plan) == 1:
            x = self._encode_text_at(text, plan[0][1])
        else:
            outs = [
                self._encode_text_at(
                    text[rows.to(text.device, non_blocking=True)], length)
                for rows, length in plan
            ]
            x = torch.cat(outs)[inverse.to(text.device, non_blocking=True)]
        return F.normalize(x, dim=-1) if normalize else x


def enable_text_trimming(model: nn.Module, max_buckets: int = 4) -> bool:
    """Give a built open_clip ``CLIP`` the padding-free text forward.

    Returns False (model unchanged) when the text tower is not causal with
    EOT/EOS pooling, or the model is not open_clip's own ``CLIP`` class (e.g.
    a Hugging Face text tower), where trimming would not be exact.
    """
    if max_buckets < 1:
        raise ValueError(f'text_length_buckets must be >= 1, got '
                         f'{max_buckets}.')
    if type(model) not in (open_clip.CLIP, TrimmedTextCLIP):
        return False
    if getattr(model, 'text_pool_type', None) not in ('argmax', 'eos'):
        return False
    if model.text_pool_type == 'eos' and getattr(model, 'text_eos_id',
                                                 None) is None:
        return False
    if not _is_causal_mask(getattr(model, 'attn_mask', None)):
        return False
    model.__class__ = TrimmedTextCLIP
    model.text_length_buckets = int(max_buckets)
    return True
