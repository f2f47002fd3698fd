"""``TextPrototypes``: the prompt sets of a CLIP classifier, their tokens and
their class prototypes.

The prompt sets (:data:`~drm_mm.prompts.PROMPT_SETS`), each a list of
prompts per class in label order: ``'df'`` (default templates) and ``'cd'``
(concept descriptions), plus ``'caption'``, the templates of the training
captions of the contrastive ERM when they differ from df. Tokens are made
once (CPU, copied to a device on first use); batching by prompt length is
planned in one place,
:func:`~drm_mm.models.clip.text_trimming.plan_length_buckets`, through
``OpenCLIP.encode_text``.

The no-gradient prototypes are cached together with a stamp of the text
tower's weights; the stamp changes with every in-place update (optimizer
step, ``load_state_dict``) and every move or cast, so the cache never
serves stale prototypes and nobody has to invalidate it, except after edits
through ``param.data`` (they bypass the version counter; e.g. WiSE-FT):
call :meth:`invalidate` then.
"""
import itertools
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from drm_mm.prompts import PROMPT_SETS
from ..clip.open_clip_model import OpenCLIP, is_text_param
from ..heads.clip_text_head import TextRequest
from ..rank_shards import gather_with_grad, rank_and_world, shard_bounds
from .wrm_text_policy import WRMTextPolicy

#: The token set of the training captions when their templates differ from
#: the df templates.
CAPTION_SET = 'caption'


def class_prototypes(text_features: torch.Tensor,
                     counts: Sequence[int]) -> torch.Tensor:
    """Prototypes ``(C, D)``: per class, the renormalised mean of its
    (normalised) prompt embeddings, which are stored class after class,
    ``counts[c]`` rows for class ``c``."""
    if sum(counts) != text_features.size(0):
        raise ValueError(f'class_prototypes: counts sum to {sum(counts)} but '
                         f'there are {text_features.size(0)} embeddings.')
    feats = F.normalize(text_features, dim=-1)
    if len(set(counts)) == 1:
        mean = feats.view(len(counts), counts[0], -1).mean(dim=1)
    else:
        owner = torch.repeat_interleave(
            torch.arange(len(counts), device=feats.device),
            torch.as_tensor(list(counts), device=feats.device))
        total = feats.new_zeros(len(counts), feats.size(1)).index_add(
            0, owner, feats)
        mean = total / torch.as_tensor(
            list(counts), device=feats.device,
            dtype=feats.dtype).unsqueeze(1)
    return F.normalize(mean, dim=-1)


class TextPrototypes:
    """Tokens and prototypes of the df / caption / cd prompt sets.

    A plain object, not a module: it holds no weights, and the CLIP it
    encodes with is passed in (the classifier's, or the frozen teacher).

    Args:
        clip (OpenCLIP): the CLIP whose tokenizer makes the tokens.
        prompts (dict): per prompt set name (``'df'``, ``'cd'``,
            ``'caption'``), the prompts of each class.
        text_batch_size (int): at most this many prompts per text forward
            without gradient (bounds memory). Defaults to 1024.
        shard (bool): with a training text tower in a distributed run, each
            rank encodes only its share of the df / cd prompts and the
            embeddings are all-gathered with gradient. Defaults to True.
        wrm_text (WRMTextPolicy, optional): how L_WRM's cd prototypes are
            made in training. Defaults to the exact path.
    """

    def __init__(self, clip: OpenCLIP, prompts: Dict[str, List[List[str]]],
                 text_batch_size: int = 1024, shard: bool = True,
                 wrm_text: Optional[WRMTextPolicy] = None) -> None:
        known = PROMPT_SETS + (CAPTION_SET, )
        unknown = set(prompts) - set(known)
        if unknown:
            raise ValueError(f'TextPrototypes: unknown prompt set(s) '
                             f'{sorted(unknown)}; use {known}.')
        if isinstance(text_batch_size, bool) or not isinstance(
                text_batch_size, int) or text_batch_size < 1:
            raise ValueError(f'DRMClassifier.text_batch_size must be a '
                             f'positive integer (prompts per text forward), '
                             f'got {text_batch_size!r}.')
        self.prompts = {name: [list(p) for p in per_class]
                        for name, per_class in prompts.items()}
        self.text_batch_size = text_batch_size
        self.shard = bool(shard)
        self.wrm_text = wrm_text or WRMTextPolicy()
        self._tokens: Dict[str, torch.Tensor] = {}
        self._counts: Dict[str, List[int]] = {}
        #: tokens the text tower runs per prompt (up to EOT when trimming)
        self._lengths: Dict[str, torch.Tensor] = {}
        for name, per_class in self.prompts.items():
            tokens = clip.tokenizer([p for ps in per_class for p in ps])
            self._tokens[name] = tokens
            self._counts[name] = [len(ps) for ps in per_class]
            self._lengths[name] = clip.text_lengths(tokens)
        self._on_device: Dict[Tuple[str, torch.device], torch.Tensor] = {}
        self._cache: Dict[str, Tuple[tuple, torch.Tensor]] = {}
        self._text_slots: Optional[tuple] = None

    def has(self, name: str) -> bool:
        return name in self._tokens

    @property
    def caption_set(self) -> str:
        """The prompt set training captions are drawn from."""
        return CAPTION_SET if self.has(CAPTION_SET) else 'df'

    # ------------------------------------------------------------ cache
    def invalidate(self) -> None:
        """Forget cached embeddings (weights edited through ``.data``)."""
        self._cache.clear()

    def _weights_stamp(self, clip: OpenCLIP) -> tuple:
        """Version counter and storage of every text-tower parameter."""
        if self._text_slots is None or self._text_slots[0] is not clip.model:
            # (module, name) of each text parameter, found once per CLIP:
            # walking named_parameters() every batch costs milliseconds.
            slots = []
            for module_name, module in clip.model.named_modules():
                for name in module._parameters:
                    full = f'{module_name}.{name}' if module_name else name
                    if is_text_param(full):
                        slots.append((module, name))
            self._text_slots = (clip.model, slots)
        return tuple((p._version, p.data_ptr()) for p in (
            module._parameters[name] for module, name in self._text_slots[1])
            if p is not None)

    def cached(self, clip: OpenCLIP, name: str) -> torch.Tensor:
        """No-gradient prototypes ``(C, D)`` of 'df' / 'cd', or the caption
        embeddings ``(C, templates, D)`` of 'caption', reused while the text
        tower's weights stay the same."""
        stamp = self._weights_stamp(clip)
        hit = self._cache.get(name)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        if name == 'caption':
            feats = self._encode_rows(clip, self.caption_set)
            value = feats.view(len(self._counts[self.caption_set]), -1,
                               feats.size(-1))
        else:
            value = self.encode(clip, name)
        self._cache[name] = (stamp, value)
        return value

    # ------------------------------------------------------------ encoding
    def _device_tokens(self, name: str, device: torch.device) -> torch.Tensor:
        key = (name, device)
        if key not in self._on_device:
            self._on_device[key] = self._tokens[name].to(device)
        return self._on_device[key]

    def _encode_rows(self, clip: OpenCLIP, name: str) -> torch.Tensor:
        with torch.no_grad():
            return clip.encode_text(
                self._device_tokens(name, clip.device),
                lengths=self._lengths[name], max_rows=self.text_batch_size)

    def encode(self, clip: OpenCLIP, name: str) -> torch.Tensor:
        """Prototypes ``(C, D)`` of prompt set ``name`` under ``clip``,
        without gradient and without the cache."""
        return class_prototypes(self._encode_rows(clip, name),
                                self._counts[name])

    def training_text(self, clip: OpenCLIP, labels: torch.Tensor,
                      request: TextRequest,
                      soft_labels: Optional[torch.Tensor] = None
                      ) -> Dict[str, torch.Tensor]:
        """The text of one training step, as ``request`` names it:
        ``'caption'`` embeddings (one prompt of the sample's class drawn per
        sample from the requested set; for ``'df'`` that is
        :attr:`caption_set`) and ``'df'`` / ``'cd'`` prototypes.

        With a training text tower all of it comes from ONE text forward
        (each rank encoding its shard of the df / cd prompts, gathered with
        gradient); L_WRM's cd prototypes follow :attr:`wrm_text` (no
        gradient, or a class subset picked by ``soft_labels``). With a
        frozen text tower (or no grad) everything comes from the cache.

        Args:
            clip (OpenCLIP): the CLIP that encodes.
            labels (torch.Tensor): the batch's class indices ``(N, )``.
            request (TextRequest): what the head needs.
            soft_labels (torch.Tensor, optional): p_c ``(N, C)``; picks the
                class subset of ``wrm_text_classes``. Defaults to None.
        """
        if not (clip.text_trainable and torch.is_grad_enabled()):
            return self._cached_text(clip, labels, request)
        out: Dict[str, torch.Tensor] = {}
        groups: List[Tuple[str, torch.Tensor, torch.Tensor]] = []
        if request.captions is not None:
            groups.append(('caption', ) +
                          self._caption_tokens(labels, request.captions))
        shard = rank_and_world() if self.shard else None
        subset = None
        for name in request.prototypes:
            if name == 'cd' and not (self.wrm_text.grad
                                     or request.erm == 'cd'):
                out['cd'] = self.wrm_text.stale_cd(
                    lambda: self.encode(clip, 'cd'))
                continue
            if name == 'cd' and request.wrm == 'cd' and \
                    soft_labels is not None:
                subset = self.wrm_text.subset(soft_labels)
            tokens = self._device_tokens(name, labels.device)
            lengths = self._lengths[name]
            if subset is not None:
                rows, sub_counts = self._class_rows('cd', subset[0])
                tokens, lengths = tokens[rows.to(labels.device)], lengths[rows]
                name = 'cd_subset'
            elif shard is not None:
                lo, hi = shard_bounds(tokens.size(0), *shard)
                tokens, lengths = tokens[lo:hi], lengths[lo:hi]
            groups.append((name, tokens, lengths))
        if not groups:
            return out
        feats = clip.encode_text(torch.cat([t for _, t, _ in groups]),
                                 lengths=torch.cat([n for _, _, n in groups]))
        parts = feats.split([len(t) for _, t, _ in groups])
        for (name, _, _), part in zip(groups, parts):
            if name == 'caption':
                out[name] = part
            elif name == 'cd_subset':
                out['cd'] = self._subset_cd(clip, part, sub_counts, *subset)
            else:
                if shard is not None:
                    part = gather_with_grad(part)
                out[name] = class_prototypes(part, self._counts[name])
        return out

    def _cached_text(self, clip: OpenCLIP, labels: torch.Tensor,
                     request: TextRequest) -> Dict[str, torch.Tensor]:
        """:meth:`training_text` from the no-gradient cache."""
        out: Dict[str, torch.Tensor] = {}
        source = self._caption_source(request.captions)
        if source == self.caption_set:
            table = self.cached(clip, 'caption')
            pick = torch.randint(table.size(1), (labels.numel(), ),
                                 device=labels.device)
            out['caption'] = table[labels, pick]
        elif source is not None:  # rows of another set, e.g. a description
            rows = self._caption_rows(labels, source)
            out['caption'] = self._cached_rows(clip, source)[rows]
        for name in request.prototypes:
            out[name] = self.cached(clip, name)
        return out

    def _caption_source(self, prompt_set: Optional[str]) -> Optional[str]:
        """The token set captions of ``prompt_set`` are drawn from."""
        return self.caption_set if prompt_set == 'df' else prompt_set

    def _caption_tokens(self, labels: torch.Tensor, prompt_set: str
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Tokens of one caption of ``prompt_set`` per sample and their
        length bound: the longest prompt of the set (known without looking
        at the draw on the device)."""
        source = self._caption_source(prompt_set)
        if source == self.caption_set:
            return self._draw_captions(labels)
        rows = self._caption_rows(labels, source)
        tokens = self._device_tokens(source, labels.device)
        longest = int(self._lengths[source].max())
        return tokens[rows], torch.full((labels.numel(), ), longest,
                                        dtype=torch.long)

    def _subset_cd(self, clip: OpenCLIP, feats: torch.Tensor,
                   counts: List[int], classes: torch.Tensor,
                   scale: torch.Tensor) -> torch.Tensor:
        """cd prototypes ``(C, D)``: those of ``classes`` from ``feats``
        (their prompts' embeddings, with gradient) with the gradient scaled
        by ``scale`` and the value unchanged, the others without gradient
        (:meth:`WRMTextPolicy.stale_cd`)."""
        fresh = class_prototypes(feats, counts)
        scale = scale.to(device=fresh.device, dtype=fresh.dtype)
        fresh = fresh.detach() + (fresh - fresh.detach()) * scale[:, None]
        base = self.wrm_text.stale_cd(lambda: self.encode(clip, 'cd'))
        return base.to(fresh.dtype).index_copy(0, classes.to(fresh.device),
                                               fresh)

    def _class_rows(self, name: str, classes: torch.Tensor
                    ) -> Tuple[torch.Tensor, List[int]]:
        """Row indices (CPU) of every prompt of ``classes`` in prompt set
        ``name``, class after class, and each class's prompt count."""
        all_counts = self._counts[name]
        starts = [0, *itertools.accumulate(all_counts)]
        picked = classes.tolist()
        counts = [all_counts[c] for c in picked]
        rows = torch.cat([torch.arange(starts[c], starts[c] + n)
                          for c, n in zip(picked, counts)])
        return rows, counts

    def _caption_rows(self, labels: torch.Tensor,
                      name: str) -> torch.Tensor:
        """Row index (into prompt set ``name``) of one prompt of each
        sample's class, drawn uniformly (classes may have different
        numbers of prompts)."""
        counts = torch.tensor(self._counts[name], device=labels.device)
        starts = torch.cumsum(counts, 0) - counts
        offset = (torch.rand(labels.numel(), device=labels.device) *
                  counts[labels]).long()
        return starts[labels] + torch.minimum(offset, counts[labels] - 1)

    def _cached_rows(self, clip: OpenCLIP, name: str) -> torch.Tensor:
        """No-gradient embeddings of every prompt of ``name`` (cached
        like the prototypes)."""
        stamp = self._weights_stamp(clip)
        key = f'rows:{name}'
        hit = self._cache.get(key)
        if hit is None or hit[0] != stamp:
            hit = (stamp, self._encode_rows(clip, name))
            self._cache[key] = hit
        return hit[1]

    def _draw_captions(self, labels: torch.Tensor
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Tokens of one caption per sample (a random template of its
        class) and their length bound: the longest caption prompt (known
        without looking at the draw on the device)."""
        name = self.caption_set
        tokens = self._device_tokens(name, labels.device)
        per_class = self._counts[name][0]
        pick = torch.randint(per_class, (labels.numel(), ),
                             device=labels.device)
        longest = int(self._lengths[name].max())
        return (tokens[labels * per_class + pick],
                torch.full((labels.numel(), ), longest, dtype=torch.long))
