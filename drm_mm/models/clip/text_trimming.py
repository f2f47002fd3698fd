"""Padding-free text forward of CLIP (a fast path; exact up to rounding):
:class:`TrimmedTextEncoder`.

CLIP's text transformer is causal and pools the embedding at the EOT token
(or the EOS id), so a prompt's embedding depends only on its tokens up to
that position. Prompts are padded to the context length (77), but concept
descriptions are ~25 tokens long: running each batch at the length of its
longest prompt, in a few batches of similar lengths, skips most of the
padding work. Positional embedding and causal mask are sliced to match.

:func:`plan_length_buckets` is the one planner of text batches in drm_mm:
it groups rows by length (at most ``max_buckets`` groups) and caps every
batch at ``max_rows`` (the classifier's ``text_batch_size``);
:func:`encode_by_plan` runs a plan and puts the rows back in order.
"""
import collections
from typing import Callable, List, Optional, Tuple

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import text_global_pool
from torch import nn

#: Padded tokens one extra length bucket must save to be worth its launch
#: overhead (a rough figure for one more batched text forward).
BUCKET_OVERHEAD_TOKENS = 512

#: A plan: ``[(row indices, bucket length), ...]`` (CPU indices) and the
#: permutation that puts the concatenated outputs back in row order.
LengthPlan = Tuple[List[Tuple[torch.Tensor, int]], torch.Tensor]


def _bucket_limits(histogram: List[Tuple[int, int]], max_buckets: int,
                   overhead: int) -> List[int]:
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
    return sorted(limits)


# The one plan cache: the prompt sets of a training run repeat every step.
_plans: 'collections.OrderedDict[tuple, LengthPlan]' = \
    collections.OrderedDict()


def _length_plan(lengths: torch.Tensor, max_buckets: int, overhead: int,
                 max_rows: Optional[int]) -> LengthPlan:
    """Buckets (split into batches of at most ``max_rows``) and the
    inverse permutation, memoised."""
    lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
    key = (lengths.numpy().tobytes(), int(max_buckets), int(overhead),
           max_rows)
    found = _plans.get(key)
    if found is not None:
        _plans.move_to_end(key)
        return found
    histogram = sorted(collections.Counter(lengths.tolist()).items())
    limits = _bucket_limits(histogram, max(1, int(max_buckets)),
                            int(overhead))
    bucket_of = torch.bucketize(lengths, torch.tensor(limits))
    plan = []
    for k, limit in enumerate(limits):
        rows = torch.nonzero(bucket_of == k).flatten()
        for part in (rows.split(max_rows) if max_rows else (rows, )):
            if part.numel():
                plan.append((part, int(limit)))
    inverse = torch.empty(lengths.numel(), dtype=torch.long)
    inverse[torch.cat([rows for rows, _ in plan])] = torch.arange(
        lengths.numel())
    _plans[key] = (plan, inverse)
    if len(_plans) > 64:
        _plans.popitem(last=False)
    return plan, inverse


def plan_length_buckets(lengths: torch.Tensor, max_buckets: int,
                        overhead: int = BUCKET_OVERHEAD_TOKENS,
                        max_rows: Optional[int] = None
                        ) -> List[Tuple[torch.Tensor, int]]:
    """Split rows into batches of similar length: ``[(row indices, bucket
    length), ...]`` (CPU indices). At most ``max_buckets`` lengths, chosen to
    minimise padded tokens plus ``overhead`` tokens per bucket; each bucket
    split into batches of at most ``max_rows`` rows (None: no cap)."""
    return _length_plan(lengths, max_buckets, overhead, max_rows)[0]


def encode_by_plan(encode_at: Callable[[torch.Tensor, int], torch.Tensor],
                   text: torch.Tensor, lengths: torch.Tensor,
                   max_buckets: int, overhead: int,
                   max_rows: Optional[int] = None) -> torch.Tensor:
    """``encode_at(rows of text, bucket length)`` per planned batch, the
    outputs concatenated in the order of ``text``'s rows."""
    plan, inverse = _length_plan(lengths, max_buckets, overhead, max_rows)
    if len(plan) == 1:
        return encode_at(text, plan[0][1])
    outs = [
        encode_at(text[rows.to(text.device, non_blocking=True)], length)
        for rows, length in plan
    ]
    return torch.cat(outs)[inverse.to(text.device, non_blocking=True)]


class TrimmedTextEncoder:
    """The padding-free text forward of a built open_clip ``CLIP``.

    It runs the CLIP's own text submodules (``token_embedding``,
    ``positional_embedding``, ``transformer``, ``ln_final``,
    ``text_projection``, ``attn_mask``) on the first positions of each
    length bucket. Not an ``nn.Module``: it owns no weights (the CLIP keeps
    them, with its state-dict keys) and reads the submodules at every call,
    so moves, casts and loaded weights apply. Built by
    :func:`~drm_mm.models.clip.open_clip_adapter.build_text_encoder` only
    where trimming is exact (causal text tower, EOT / EOS pooling).

    Args:
        model (open_clip.CLIP): the CLIP whose text tower runs.
        max_buckets (int): at most this many length buckets (text
            forwards) per call. Defaults to 4.
        overhead (int): padded tokens a further bucket must save (see
            :func:`plan_length_buckets`). Defaults to
            :data:`BUCKET_OVERHEAD_TOKENS`.
    """

    def __init__(self, model: nn.Module, max_buckets: int = 4,
                 overhead: int = BUCKET_OVERHEAD_TOKENS) -> None:
        if max_buckets < 1:
            raise ValueError(f'text_length_buckets must be >= 1, got '
                             f'{max_buckets}.')
        self.model = model
        self.text_length_buckets = int(max_buckets)
        self.text_bucket_overhead = int(overhead)

    def text_lengths(self, text: torch.Tensor) -> torch.Tensor:
        """Per prompt, pooled position + 1: the tokens that matter (CPU)."""
        if self.model.text_pool_type == 'eos':
            index = (text == self.model.text_eos_id).int().argmax(dim=-1)
        else:
            index = text.argmax(dim=-1)
        return (index + 1).cpu()

    def _encode_at(self, text: torch.Tensor, length: int) -> torch.Tensor:
        """open_clip's text forward (as ``CLIP.encode_text``) on the first
        ``length`` positions."""
        model = self.model
        cast_dtype = model.transformer.get_cast_dtype()
        text = text[:, :length]
        x = model.token_embedding(text).to(cast_dtype)
        x = x + model.positional_embedding[:length].to(cast_dtype)
        x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
        x = model.ln_final(x)
        x = text_global_pool(x, text, model.text_pool_type,
                             eos_token_id=getattr(model, 'text_eos_id', None))
        if model.text_projection is not None:
            if isinstance(model.text_projection, nn.Linear):
                x = model.text_projection(x)
            else:
                x = x @ model.text_projection
        return x

    def __call__(self, text: torch.Tensor, normalize: bool = False,
                 lengths: Optional[torch.Tensor] = None,
                 max_rows: Optional[int] = None) -> torch.Tensor:
        """Text embeddings as open_clip computes them, without the padding.

        Args:
            text (torch.Tensor): token ids ``(N, context_length)``.
            normalize (bool): L2-normalise the embeddings. Defaults to
                False.
            lengths (torch.Tensor, optional): per-row upper bounds of
                :meth:`text_lengths` (CPU), so the caller can avoid a device
                sync. Defaults to None (computed).
            max_rows (int, optional): at most this many prompts per forward.
                Defaults to None (no cap).
        """
        if text.size(0) == 0:
            return self.model.encode_text(text, normalize=normalize)
        if lengths is None:
            lengths = self.text_lengths(text)
        lengths = torch.as_tensor(lengths, dtype=torch.long).cpu().clamp(
            1, text.size(1))
        x = encode_by_plan(self._encode_at, text, lengths,
                           self.text_length_buckets,
                           self.text_bucket_overhead, max_rows)
        return F.normalize(x, dim=-1) if normalize else x


def is_trimmable(model: nn.Module) -> bool:
    """Whether the padding-free forward is exact for ``model``: open_clip's
    own ``CLIP`` class (not e.g. a Hugging Face text tower) with a causal
    text tower and EOT / EOS pooling."""
    if type(model) is not open_clip.CLIP:
        return False
    if getattr(model, 'text_pool_type', None) not in ('argmax', 'eos'):
        return False
    if model.text_pool_type == 'eos' and getattr(model, 'text_eos_id',
                                                 None) is None:
        return False
    return _is_causal_mask(getattr(model, 'attn_mask', None))


def _is_causal_mask(mask: Optional[torch.Tensor]) -> bool:
    if mask is None or mask.dim() != 2 or mask.size(0) != mask.size(1):
        return False
    blocked = torch.isinf(mask) & (mask < 0)
    upper = torch.ones_like(blocked).triu(1)
    return bool(torch.equal(blocked, upper)
                and torch.all(mask[~upper] == 0))
