"""``CoreSoftLabels``: the core-based soft labels p_c of DRM's WRM term.

p_c(y|x) comes from the frozen *pre-trained* CLIP (the teacher): its image
embedding's affinities to the concept-description prototypes of every
class, normalised per image (:mod:`.normalization`). The component owns the
teacher and, with ``source='cache'``, the table ``p_c[sample_idx]`` of the
training set, which ``SoftLabelCacheHook`` fills: it calls
:meth:`~CoreSoftLabels.start_pass` (teacher and cache-key fingerprint),
runs the pass with :meth:`~CoreSoftLabels.pass_labels` and
:meth:`~CoreSoftLabels.finish_shard` (or loads the stored table), installs
it with :meth:`~CoreSoftLabels.set_table` and calls
:meth:`~CoreSoftLabels.end_pass`.
"""
import copy
import hashlib
import math
from typing import Dict, List, Optional

import torch
from mmengine import dist as mm_dist
from mmengine.model import BaseModule
from mmpretrain.structures import DataSample

from drm_mm.registry import MODELS, build_in_scope
from ..clip.open_clip_adapter import freeze_module
from ..clip.open_clip_model import OpenCLIP
from .normalization import (TABLE_ONLY, affinities, check_normalization,
                            class_bounds, class_minmax_soft_labels,
                            default_tau, soft_labels_from_affinities)
from .table_storage import (check_storage, chunked_problem, file_change,
                            lookup)

SOURCES = ('cache', 'online')
#: OpenCLIP config keys that do not change the teacher's outputs.
_IGNORED_CLIP_KEYS = ('type', 'frozen', 'grad_checkpointing', 'cache_dir',
                      'init_cfg')
#: How far a row of a stored table may sum from 1 (float16 storage).
ROW_SUM_TOLERANCE = 1e-2


def weights_digest(module: torch.nn.Module) -> str:
    """Digest of a module's state dict (names, dtypes, shapes, values)."""
    hasher = hashlib.blake2b(digest_size=20)
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        hasher.update(f'{name}|{tensor.dtype}|{tuple(tensor.shape)}'.encode())
        hasher.update(tensor.view(-1).view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b'')
    return hasher.hexdigest()


def table_problem(table: torch.Tensor, num_classes: int) -> Optional[str]:
    """Why ``table`` is no p_c table of ``num_classes`` classes (shape,
    NaN / inf, negative values, rows that do not sum to 1), or None."""
    if table.dim() != 2 or table.size(1) != num_classes:
        return (f'shape {tuple(table.shape)} instead of (N, {num_classes})')
    values = table.float()
    bad = int((~torch.isfinite(values)).sum())
    if bad:
        return f'{bad} non-finite value(s) (NaN / inf)'
    if values.numel() and float(values.min()) < 0:
        return f'negative values (down to {float(values.min()):.3g})'
    if values.numel():
        off = float((values.sum(dim=1) - 1).abs().max())
        if off > ROW_SUM_TOLERANCE:
            return f'rows that do not sum to 1 (off by up to {off:.3g})'
    return None


@MODELS.register_module()
class CoreSoftLabels(BaseModule):
    """p_c of the frozen pre-trained CLIP, online or from a cached table.

    Args:
        source: ``'cache'``: a table over the training set, filled before
            training by ``SoftLabelCacheHook`` (see the module doc) and
            looked up by ``sample_idx``; ``'online'``: the teacher runs on
            every training batch.
        normalization: ``'minmax'`` / ``'softmax'`` / ``'none'`` /
            ``'minmax_prob'`` / ``'minmax_class'`` (cache only; see
            :mod:`drm_mm.models.soft_labels.normalization`).
        tau: sharpening temperature (> 0); None: the normalisation's
            default (0.1 for the min-max forms, 1.0 for softmax).
        storage: ``'dense'``: the table in memory (float32, or float16 when
            the hook stores float16); ``'memmap'``: a float16 ``.npy`` file
            written once by the cache pass and mapped read-only by every
            rank (see :mod:`.table_storage`).
        topk: None (all C values) or k: keep the k largest p_c per row,
            renormalised to sum to 1 (``storage='memmap'`` only).
    """

    def __init__(self,
                 source: str = 'cache',
                 normalization: str = 'minmax',
                 tau: Optional[float] = None,
                 storage: str = 'dense',
                 topk: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if source not in SOURCES:
            raise ValueError(f'soft_labels.source={source!r}; choose from '
                             f'{SOURCES}.')
        try:
            check_normalization(normalization)
        except ValueError as err:
            raise ValueError(f'soft_labels.normalization: {err}') from None
        if normalization in TABLE_ONLY and source != 'cache':
            raise ValueError(f'soft_labels.normalization={normalization!r} '
                             f'needs the whole training set: use '
                             f"source='cache' (not {source!r}).")
        if tau is None:
            tau = default_tau(normalization)
        try:
            value = float(tau)
        except (TypeError, ValueError):
            value = float('nan')
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f'soft_labels.tau must be > 0 and finite, got '
                             f'{tau!r}.')
        self.topk = check_storage(storage, topk)
        if normalization in TABLE_ONLY and storage != 'dense':
            raise ValueError(f'soft_labels.normalization={normalization!r} '
                             f"scales each class over the whole table: use "
                             f"storage='dense' (not {storage!r}).")
        self.storage = storage
        self.source = source
        self.normalization = normalization
        self.tau = value
        #: Whether the model trains with p_c (λ > 0); set by bind().
        self.active = False
        #: Whether a regulariser reads the teacher every step, so it is kept
        #: whatever the source (as with source 'online'); set by bind().
        self.keep_teacher = False
        #: p_c ``(num_train_samples, C)`` on CPU (source 'cache'): a float32
        #: / float16 tensor, or a memory-mapped MemmapTable / TopKTable;
        #: not saved in checkpoints.
        self.table = None
        self._cd_prompts: Optional[List[List[str]]] = None
        self._text = None
        self._clip_cfg: Optional[dict] = None
        # The teacher sits in a list so that it is no submodule: not in the
        # state dict, the optimizer, DDP's parameters or model.to().
        self._kept_teacher: List[OpenCLIP] = []
        self._pass_teacher: List[OpenCLIP] = []
        self._teacher_cd: Optional[torch.Tensor] = None

    def init_weights(self) -> None:
        """No weights of its own."""

    def bind(self, clip: OpenCLIP, text, clip_cfg: Optional[dict],
             active: bool, keep_teacher: bool = False) -> None:
        """Called once by the classifier, before any training: the CLIP at
        its pre-trained weights, its prompts (a ``TextPrototypes`` with a
        'cd' set) and the CLIP config to rebuild the teacher from;
        ``keep_teacher``: a regulariser reads the teacher every step, so
        the one teacher is kept whatever the source."""
        self.active = bool(active)
        self.keep_teacher = bool(keep_teacher)
        self._text = text
        self._clip_cfg = copy.deepcopy(clip_cfg) if clip_cfg else None
        if self.keep_teacher and not (self._clip_cfg or {}).get('pretrained'):
            self._keep_copy(clip)
        if not self.active:
            return
        if not text.has('cd'):
            raise ValueError('CoreSoftLabels: soft labels need the cd '
                             'prompts (descriptions).')
        self._cd_prompts = text.prompts['cd']
        if not (self._clip_cfg or {}).get('pretrained'):
            self._keep_copy(clip)

    def _keep_copy(self, clip: OpenCLIP) -> None:
        """Nothing to rebuild the teacher from: keep a frozen copy of the
        initial CLIP (once)."""
        if not self._kept_teacher:
            teacher = copy.deepcopy(clip)
            freeze_module(teacher)
            self._kept_teacher = [teacher]

    @property
    def needs_table(self) -> bool:
        """Whether training looks p_c up in a table (filled by the
        soft-label pass first)."""
        return self.active and self.source == 'cache'

    # ------------------------------------------------------------ teacher
    def build_teacher(self) -> OpenCLIP:
        """The frozen pre-trained CLIP that defines p_c (the kept copy, or
        rebuilt from the bound ``clip`` config)."""
        if self._kept_teacher:
            teacher = self._kept_teacher[0]
            if teacher.pretrained_pending:  # a copy made before loading
                teacher.init_weights()
            return teacher
        if self._clip_cfg is None:
            raise RuntimeError('CoreSoftLabels: not bound to a classifier '
                               '(bind() first).')
        teacher = build_in_scope(MODELS, self._clip_cfg)
        teacher.init_weights()  # the pretrained weights (OpenCLIP loads
        freeze_module(teacher)  # them here, not when it is built)
        if self.keep_teacher or self.source == 'online':  # every batch
            self._kept_teacher = [teacher]
        return teacher

    @torch.no_grad()
    def teacher_probs(self, teacher: OpenCLIP,
                      inputs: torch.Tensor) -> torch.Tensor:
        """p_c ``(N, C)`` of preprocessed images under ``teacher``, at the
        teacher's own (pre-trained) logit scale."""
        if self.normalization in TABLE_ONLY:
            raise ValueError(f'soft_labels.normalization='
                             f'{self.normalization!r} is computed over the '
                             f'whole table (the soft-label pass), not per '
                             f'batch.')
        return soft_labels_from_affinities(
            self.teacher_affinities(teacher, inputs), self.normalization,
            self.tau, logit_scale=float(teacher.training_logit_scale))

    @torch.no_grad()
    def teacher_affinities(self, teacher: OpenCLIP,
                           inputs: torch.Tensor) -> torch.Tensor:
        """Raw cd affinities ``(N, C)`` of preprocessed images."""
        if teacher.device != inputs.device:
            teacher.to(inputs.device)
        if self._teacher_cd is None or \
                self._teacher_cd.device != inputs.device:
            self._teacher_cd = self._text.encode(teacher, 'cd')
        return affinities(teacher.encode_image(inputs), self._teacher_cd)

    def class_normalize(self, shard: torch.Tensor) -> torch.Tensor:
        """``'minmax_class'`` of this rank's raw affinities: each class
        scaled by its min / max over all ranks' rows, then ^(1/τ) per row."""
        low, high = class_bounds(shard)
        mm_dist.all_reduce(low, op='min')
        mm_dist.all_reduce(high, op='max')
        return class_minmax_soft_labels(shard, self.tau, (low, high))

    # ------------------------------------------------------------ the table
    def fingerprint(self, teacher: OpenCLIP) -> Dict[str, object]:
        """What of the model determines p_c (for a cache key)."""
        prompts = '\x1e'.join('\x1f'.join(d)
                              for d in (self._cd_prompts or []))
        return dict(
            type=type(self).__name__,
            clip={k: v for k, v in (self._clip_cfg or {}).items()
                  if k not in _IGNORED_CLIP_KEYS},
            teacher=weights_digest(teacher),
            descriptions=hashlib.sha256(prompts.encode()).hexdigest(),
            normalization=self.normalization,
            tau=self.tau,
            num_classes=len(self._cd_prompts or []))

    # ------------------------------------------------------------ the pass
    @property
    def num_classes(self) -> int:
        """Number of classes (columns of the table)."""
        return len(self._cd_prompts or [])

    def start_pass(self) -> Dict[str, object]:
        """Build the teacher for a pass over the training set (kept until
        :meth:`end_pass`); returns its :meth:`fingerprint`, the component's
        part of the table's cache key."""
        teacher = self.build_teacher()
        self._pass_teacher = [teacher]
        self._teacher_cd = None
        return self.fingerprint(teacher)

    def pass_labels(self, inputs: torch.Tensor) -> torch.Tensor:
        """Rows of the table for preprocessed images: p_c, or the raw
        affinities of a normalisation over the whole set (finished by
        :meth:`finish_shard`)."""
        teacher = self._pass_teacher[0]
        if self.normalization in TABLE_ONLY:
            return self.teacher_affinities(teacher, inputs)
        return self.teacher_probs(teacher, inputs)

    def finish_shard(self, shard: torch.Tensor) -> torch.Tensor:
        """This rank's rows of the pass as p_c (called on every rank; for
        ``'minmax_class'`` the ranks agree on each class's min / max)."""
        if self.normalization in TABLE_ONLY:
            return self.class_normalize(shard)
        return shard

    def end_pass(self) -> None:
        """Release the teacher of the pass (its device memory)."""
        for teacher in self._pass_teacher:
            teacher.cpu()
        self._pass_teacher = []
        self._teacher_cd = None

    def check_table(self) -> None:
        """Raise if the file of a mapped table changed since it was
        checked (another job rewrote it): training would read other
        targets."""
        change = file_change(self.table)
        if change is not None:
            raise RuntimeError(f'CoreSoftLabels: the soft-label table '
                               f'{change}; the targets would change mid-'
                               f'run. Give each run its own '
                               f'SoftLabelCacheHook.cache_dir and restart.')

    def set_table(self, table) -> None:
        """Install ``(num_train_samples, C)`` p_c (None: remove): a tensor
        (float16 stays float16, rows become float32 at lookup) or a stored
        table of :mod:`.table_storage` (checked in chunks of rows)."""
        if table is not None:
            problem = chunked_problem(table, len(self._cd_prompts or []),
                                      table_problem)
            if problem is not None:
                raise ValueError(f'CoreSoftLabels: the soft-label table has '
                                 f'{problem}.')
            if isinstance(table, torch.Tensor):
                table = table.detach().cpu()
                if table.dtype != torch.float16:
                    table = table.float()
        self.table = table

    # ------------------------------------------------------------ training
    def forward(self, inputs: torch.Tensor,
                data_samples: List[DataSample]) -> torch.Tensor:
        """p_c of a training batch: from the teacher (online), or looked up
        in the table by ``sample_idx``."""
        if self.source == 'online':
            return self.teacher_probs(self.build_teacher(), inputs)
        if self.table is None:
            raise RuntimeError(
                "DRMClassifier: soft_labels.source='cache' but no soft-label "
                "table is installed. Add dict(type='SoftLabelCacheHook') to "
                "custom_hooks in the config (or use soft_labels=dict("
                "source='online')).")
        try:
            index = [int(s.metainfo['sample_idx']) for s in data_samples]
        except KeyError:
            raise KeyError(
                "DRMClassifier: a data sample has no 'sample_idx'; keep "
                "'sample_idx' in PackInputs(meta_keys=...) of the train "
                'pipeline so the soft-label lookup is exact.') from None
        bad = [i for i in index if not 0 <= i < self.table.size(0)]
        if bad:
            raise IndexError(f'sample_idx {bad[:5]} outside the soft-label '
                             f'table of {self.table.size(0)} samples; the '
                             'cache does not match the training set.')
        return lookup(self.table, torch.as_tensor(index), inputs.device)
