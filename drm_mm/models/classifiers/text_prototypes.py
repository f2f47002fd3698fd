"""``TextPrototypes``: the prompt sets of a CLIP classifier, their tokens and
their class prototypes.

Three prompt sets, each a list of prompts per class in label order: ``'df'``
(default templates), ``'caption'`` (training captions of the contrastive
ERM, only when their templates differ from df) and ``'cd'`` (concept
descriptions). Tokens are made once (CPU, copied to a device on first use);
batching by prompt length is planned in one place,
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
from typing import Dict, List, Optional, Tuple

import torch

from ..clip.open_clip_model import OpenCLIP, is_text_param
from ..heads.clip_text_head import class_prototypes
from ..losses.contrastive_loss import gather_with_grad
from ..rank_shards import rank_and_world, shard_bounds

PROMPT_SETS = ('df', 'caption', 'cd')


class TextPrototypes:
    """Tokens and prototypes of the df / caption / cd prompt sets.

    A plain object, not a module: it holds no weights, and the CLIP it
    encodes with is passed in (the classifier's, or the frozen teacher).

    Args:
        clip: the CLIP whose tokenizer makes the tokens.
        prompts: per prompt set name, the prompts of each class.
        text_batch_size: at most this many prompts per text forward
            without gradient (bounds memory).
        shard: with a training text tower in a distributed run, each rank
            encodes only its share of the df / cd prompts and the embeddings
            are all-gathered with gradient.
    """

    def __init__(self, clip: OpenCLIP, prompts: Dict[str, List[List[str]]],
                 text_batch_size: int = 1024, shard: bool = True) -> None:
        unknown = set(prompts) - set(PROMPT_SETS)
        if unknown:
            raise ValueError(f'TextPrototypes: unknown prompt set(s) '
                             f'{sorted(unknown)}; use {PROMPT_SETS}.')
        self.prompts = {name: [list(p) for p in per_class]
                        for name, per_class in prompts.items()}
        self.text_batch_size = int(text_batch_size)
        self.shard = bool(shard)
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
        #: (training calls, cd prototypes) of the no-gradient WRM path
        self._stale_cd: Optional[Tuple[int, torch.Tensor]] = None

    def has(self, name: str) -> bool:
        return name in self._tokens

    @property
    def caption_set(self) -> str:
        """The prompt set training captions are drawn from."""
        return 'caption' if self.has('caption') else 'df'

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
                      captions: bool, df: bool, cd: bool,
                      caption_set: Optional[str] = None,
                      cd_grad: bool = True, cd_refresh: int = 1,
                      cd_classes: Optional[Tuple[torch.Tensor,
                                                 torch.Tensor]] = None
                      ) -> Dict[str, torch.Tensor]:
        """What text a training step needs: ``'caption'`` embeddings (one
        prompt of the sample's class drawn per sample from ``caption_set``,
        default :attr:`caption_set`; ``'cd'``: a description) and ``'df'`` /
        ``'cd'`` prototypes. With a training text tower all of it in ONE
        text forward (each rank encoding its shard of the df / cd prompts),
        else from the cache. ``cd_grad=False``: the cd prototypes come
        without gradient, re-encoded every ``cd_refresh`` calls (a cheaper
        WRM).

        ``cd_classes=(classes, scale)`` (CPU tensors; with ``cd_grad``):
        only these classes' cd prompts are encoded with gradient, in the
        same forward, not sharded across ranks; their prototypes keep their
        value and have their gradient multiplied by ``scale``; the other
        classes' prototypes are the no-gradient ones of ``cd_grad=False``
        (re-encoded every ``cd_refresh`` calls)."""
        needed = [n for n, on in (('df', df), ('cd', cd)) if on]
        source = self.caption_set if caption_set is None else caption_set
        out: Dict[str, torch.Tensor] = {}
        if cd_classes is not None and not cd_grad:
            raise ValueError('training_text: cd_classes needs cd_grad=True.')
        trains = clip.text_trainable and torch.is_grad_enabled()
        if cd and not cd_grad and trains:
            out['cd'] = self._no_grad_cd(clip, cd_refresh)
            needed.remove('cd')
        subset = cd_classes if cd and trains else None
        if subset is not None:
            needed.remove('cd')
        if not trains:
            if captions and source == self.caption_set:
                table = self.cached(clip, 'caption')
                pick = torch.randint(table.size(1), (labels.numel(), ),
                                     device=labels.device)
                out['caption'] = table[labels, pick]
            elif captions:  # rows of another set, e.g. one description each
                rows = self._caption_rows(labels, source)
                out['caption'] = self._cached_rows(clip, source)[rows]
            for name in needed:
                out[name] = self.cached(clip, name)
            return out
        groups: List[Tuple[str, torch.Tensor, torch.Tensor]] = []
        if captions and source == self.caption_set:
            groups.append(('caption', ) + self._draw_captions(labels))
        elif captions:
            rows = self._caption_rows(labels, source)
            tokens = self._device_tokens(source, labels.device)
            longest = int(self._lengths[source].max())
            groups.append(('caption', tokens[rows],
                           torch.full((labels.numel(), ), longest,
                                      dtype=torch.long)))
        shard = rank_and_world() if self.shard else None
        for name in needed:
            tokens = self._device_tokens(name, labels.device)
            lengths = self._lengths[name]
            if shard is not None:
                lo, hi = shard_bounds(tokens.size(0), *shard)
                tokens, lengths = tokens[lo:hi], lengths[lo:hi]
            groups.append((name, tokens, lengths))
        if subset is not None:
            rows, sub_counts = self._class_rows('cd', subset[0])
            groups.append(('cd_subset',
                           self._device_tokens('cd', labels.device)[
                               rows.to(labels.device)],
                           self._lengths['cd'][rows]))
        if not groups:
            return out
        feats = clip.encode_text(torch.cat([t for _, t, _ in groups]),
                                 lengths=torch.cat([n for _, _, n in groups]))
        parts = feats.split([len(t) for _, t, _ in groups])
        for (name, _, _), part in zip(groups, parts):
            if name == 'caption':
                out[name] = part
                continue
            if name == 'cd_subset':
                out['cd'] = self._subset_cd(clip, part, sub_counts, *subset,
                                            cd_refresh)
                continue
            if shard is not None:
                part = gather_with_grad(part)
            out[name] = class_prototypes(part, self._counts[name])
        return out

    def _no_grad_cd(self, clip: OpenCLIP, refresh: int) -> torch.Tensor:
        """cd prototypes without gradient, re-encoded every ``refresh``
        training calls."""
        calls, value = self._stale_cd or (0, None)
        if value is None or calls % refresh == 0:
            value = self.encode(clip, 'cd')
        self._stale_cd = (calls + 1, value)
        return value

    def _subset_cd(self, clip: OpenCLIP, feats: torch.Tensor,
                   counts: List[int], classes: torch.Tensor,
                   scale: torch.Tensor, refresh: int) -> torch.Tensor:
        """cd prototypes ``(C, D)``: those of ``classes`` from ``feats``
        (their prompts' embeddings, with gradient) with the gradient scaled
        by ``scale`` and the value unchanged, the others without gradient
        (:meth:`_no_grad_cd`)."""
        fresh = class_prototypes(feats, counts)
        scale = scale.to(device=fresh.device, dtype=fresh.dtype)
        fresh = fresh.detach() + (fresh - fresh.detach()) * scale[:, None]
        base = self._no_grad_cd(clip, refresh).to(fresh.dtype)
        return base.index_copy(0, classes.to(fresh.device), fresh)

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
