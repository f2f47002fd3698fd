"""``DRMClassifier``: CLIP fine-tuned with Dual Risk Minimization.

One MMPretrain-style classifier for DRM and its baselines, selected by
config values (DESIGN.md §1):

=============  =====================================================
zero-shot      no training; ``head.beta`` picks df / cd / mixture
FT (CE)        ``loss=dict(erm='ce', wrm_weight=0)``
FLYP           ``loss=dict(erm='contrastive', wrm_weight=0)``
DRM            ``loss=dict(erm='contrastive', wrm_weight=λ)``
LP             ``head=dict(linear=True)``, all CLIP towers frozen,
               ``loss=dict(erm='ce', wrm_weight=0)``
LP-FT          LP's model with towers unfrozen, ``load_from`` = LP ckpt
=============  =====================================================

Text-tower work is batched: with a frozen text tower the df / cd
prototypes and the df caption embeddings are computed once and cached; with
a training text tower each step runs ONE text forward for the batch
captions, the df prompts (``erm='ce'``) and all cd prompts together
(without padding, in a few batches of similar prompt length, see
:class:`OpenCLIP`; under DDP each rank encodes only its share of the df /
cd prompts and all-gathers them with gradient). The eval prototypes are
cached and invalidated whenever weights may have changed (a training step,
a ``train()`` switch of a trainable text tower, any ``load_state_dict``);
call :meth:`invalidate_prototypes` after editing weights in place (e.g. a
WiSE-FT interpolation through ``param.data``).
"""
import copy
import hashlib
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
from mmpretrain.models.classifiers import BaseClassifier
from mmpretrain.structures import DataSample
from torch import nn

from drm_mm.prompts import (build_prompts, load_descriptions,
                            make_class_keys, resolve_templates)
from drm_mm.registry import MODELS, build_in_scope
from ..clip.open_clip_adapter import freeze_module
from ..clip.open_clip_model import OpenCLIP
from ..heads.clip_text_head import CLIPTextHead  # noqa: F401 (registers)
from ..heads.clip_text_head import class_prototypes
from ..losses import DualRiskLoss  # noqa: F401 (registers)
from ..losses.contrastive_loss import gather_with_grad
from ..soft_labels import (affinities, check_normalization,
                           soft_labels_from_affinities)

#: CLIP's pixel mean / std on the 0-255 scale (RGB).
CLIP_MEAN = (122.770938, 116.7460125, 104.09373615)
CLIP_STD = (68.5005327, 66.6321579, 70.32316305)
SOFT_LABEL_SOURCES = ('cache', 'online')


def _resolve_classnames(classnames: Union[str, Sequence[str]]) -> List[str]:
    if isinstance(classnames, str):
        from drm_mm.datasets.classnames import get_classnames
        return list(get_classnames(classnames))
    names = list(classnames)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError('DRMClassifier.classnames: give a dataset key (e.g. '
                         "'iwildcam') or a non-empty list of class names.")
    return names


def _default_class_keys(classnames: Union[str, Sequence[str]],
                        names: List[str]) -> Optional[List[str]]:
    """None when names are unique; for a dataset key with duplicated names,
    ``"<name> [<id>]"`` keys from the dataset's class ids (ImageNet wnids)."""
    if len(set(names)) == len(names):
        return None
    ids = None
    if isinstance(classnames, str):
        from drm_mm.datasets import classnames as cn
        getter = {'imagenet': 'imagenet_wnids',
                  'imagenet_a': 'imagenet_a_wnids',
                  'imagenet_r': 'imagenet_r_wnids'}.get(classnames)
        if getter is not None:
            ids = list(getattr(cn, getter)())
    return make_class_keys(names, ids)


def _tokens_of(clip: OpenCLIP, prompts: List[List[str]]
               ) -> Tuple[torch.Tensor, List[int]]:
    """Token ids of all prompts class after class (CPU) and per-class
    counts."""
    flat = [p for per_class in prompts for p in per_class]
    return clip.tokenizer(flat), [len(p) for p in prompts]


def _shard_bounds(total: int, rank: int, world: int) -> Tuple[int, int]:
    """Rows ``[lo, hi)`` of ``total`` that ``rank`` of ``world`` encodes:
    contiguous, in rank order (what ``gather_with_grad`` concatenates)."""
    per_rank = -(-total // world)
    return min(rank * per_rank, total), min((rank + 1) * per_rank, total)


@MODELS.register_module()
class DRMClassifier(BaseClassifier):
    """CLIP image tower + text tower + :class:`CLIPTextHead` +
    :class:`DualRiskLoss`.

    Args:
        clip: config of :class:`OpenCLIP` (or the module); its ``frozen``
            chooses which towers train.
        classnames: class names in label order, or a dataset key resolved
            by ``drm_mm.datasets.classnames.get_classnames``.
        templates: df templates (list with ``{c}``) or a dataset key;
            default: the key of ``classnames``.
        descriptions: concept descriptions: a JSON path (relative paths are
            also looked up in ``drm_mm/prompts/``) or a dict. Needed when the
            cd head is used (``head.beta < 1`` or ``loss.wrm_weight > 0``).
        class_keys: description keys of the classes when names repeat.
        allow_extra_description_keys: warn (not fail) on unknown keys.
        caption_templates: templates of the training captions (FLYP ERM);
            default ``templates``. One is drawn per sample and step.
        head: :class:`CLIPTextHead` config (``beta``, ``linear``...).
        loss: :class:`DualRiskLoss` config (``erm``, ``wrm_weight``...).
        soft_labels: ``source`` (``'cache'``: a table filled by
            :class:`SoftLabelCacheHook`; ``'online'``: a frozen copy of the
            initial CLIP per batch), ``normalization``
            (``'minmax'``/``'softmax'``/``'none'``) and ``tau``.
        text_batch_size: prompts per text forward when encoding without
            gradient (eval prototypes), to bound memory.
        shard_text_prompts: in a distributed run with a training text
            tower, each rank encodes only its share of the df / cd prompts
            and the embeddings are all-gathered with gradient (the same
            loss and gradients as every rank encoding all of them, at
            1/world of the text cost).
        data_preprocessor: default ``ClsDataPreprocessor`` with CLIP's
            mean/std and ``to_rgb=True``.
    """

    def __init__(self,
                 clip: Union[dict, OpenCLIP],
                 classnames: Union[str, Sequence[str]],
                 templates: Optional[Union[str, Sequence[str]]] = None,
                 descriptions: Optional[Union[str, dict]] = None,
                 class_keys: Optional[Sequence[str]] = None,
                 allow_extra_description_keys: bool = False,
                 caption_templates: Optional[Union[str,
                                                   Sequence[str]]] = None,
                 head: Optional[dict] = None,
                 loss: Optional[dict] = None,
                 soft_labels: Optional[dict] = None,
                 text_batch_size: int = 1024,
                 shard_text_prompts: bool = True,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(mean=CLIP_MEAN, std=CLIP_STD,
                                     to_rgb=True)
        if isinstance(data_preprocessor, dict):
            data_preprocessor = dict(data_preprocessor)
            data_preprocessor.setdefault('type', 'ClsDataPreprocessor')
            data_preprocessor = build_in_scope(MODELS, data_preprocessor)
        super().__init__(init_cfg=init_cfg,
                         data_preprocessor=data_preprocessor)
        self._clip_cfg = copy.deepcopy(clip) if isinstance(clip,
                                                           dict) else None
        self.clip: OpenCLIP = build_in_scope(MODELS, clip) if isinstance(
            clip, dict) else clip
        self.loss_module = build_in_scope(
            MODELS, dict(dict(type='DualRiskLoss'), **(loss or {})))
        head_cfg = dict(dict(type='CLIPTextHead'), **(head or {}))
        sl_cfg = dict(source='cache', normalization='minmax', tau=0.1)
        sl_cfg.update(soft_labels or {})
        unknown = set(sl_cfg) - {'source', 'normalization', 'tau'}
        if unknown:
            raise ValueError(f'DRMClassifier.soft_labels: unknown key(s) '
                             f'{sorted(unknown)}; use source, normalization, '
                             f'tau.')
        if sl_cfg['source'] not in SOFT_LABEL_SOURCES:
            raise ValueError(f"DRMClassifier.soft_labels.source="
                             f"{sl_cfg['source']!r}; choose from "
                             f'{SOFT_LABEL_SOURCES}.')
        try:
            check_normalization(sl_cfg['normalization'])
        except ValueError as err:
            raise ValueError(f'DRMClassifier.soft_labels.normalization: '
                             f'{err}') from None
        if not float(sl_cfg['tau']) > 0:
            raise ValueError('DRMClassifier.soft_labels.tau must be > 0.')
        self.soft_label_cfg = sl_cfg
        self.text_batch_size = int(text_batch_size)
        self.shard_text_prompts = bool(shard_text_prompts)

        # ---- prompts
        self.classnames = _resolve_classnames(classnames)
        if templates is None:
            if not isinstance(classnames, str):
                raise ValueError('DRMClassifier.templates: give a template '
                                 'list or a dataset key when classnames is '
                                 'a list.')
            templates = classnames
        self.templates = resolve_templates(templates)
        self.caption_templates = (self.templates if caption_templates is None
                                  else resolve_templates(caption_templates))
        self.descriptions: Optional[List[List[str]]] = None
        if descriptions is not None:
            keys = (list(class_keys) if class_keys is not None else
                    _default_class_keys(classnames, self.classnames))
            self.descriptions = load_descriptions(
                descriptions, self.classnames, class_keys=keys,
                allow_extra_keys=allow_extra_description_keys)

        # ---- tokens (CPU; moved to the model's device on first use)
        self._tokens: Dict[str, torch.Tensor] = {}
        self._counts: Dict[str, List[int]] = {}
        # tokens the text tower runs per prompt (up to EOT when trimming)
        self._lengths: Dict[str, torch.Tensor] = {}
        self._add_prompts('df', build_prompts(self.templates,
                                              self.classnames))
        if self.caption_templates != self.templates:
            self._add_prompts('caption', build_prompts(
                self.caption_templates, self.classnames))
        if self.descriptions is not None:
            self._add_prompts('cd', self.descriptions)
        self._device_tokens: Dict[Tuple[str, torch.device],
                                  torch.Tensor] = {}
        self._cache: Dict[str, torch.Tensor] = {}

        # ---- head (the linear df head starts from the zero-shot prototypes)
        if head_cfg.get('linear', False):
            with torch.no_grad():
                zero_shot = self._encode_classes('df', grad=False)
            head_cfg.setdefault('num_classes', zero_shot.size(0))
            head_cfg.setdefault('embed_dim', zero_shot.size(1))
        self.head = build_in_scope(MODELS, head_cfg)
        if head_cfg.get('linear', False):
            self.head.init_linear(zero_shot)
            self._cache.clear()
        self._check_combination()

        # ---- soft labels
        self._soft_label_table: Optional[torch.Tensor] = None
        self._teacher_state: Optional[Dict[str, torch.Tensor]] = None
        self._online_teacher: Optional[List[OpenCLIP]] = None
        if self.needs_soft_labels:
            if self.soft_label_source == 'online':
                self._online_teacher = [self._frozen_teacher()]
            elif self._clip_cfg is None or self._clip_cfg.get(
                    'pretrained') is None:
                # No weights to rebuild from: keep the initial ones (CPU).
                self._teacher_state = {
                    k: v.detach().cpu().clone()
                    for k, v in self.clip.state_dict().items()
                }

        # Loading weights into the CLIP (checkpoint, WiSE-FT) makes cached
        # prototypes stale. A bound method survives deepcopy (EMA models).
        self.clip.register_load_state_dict_post_hook(self._on_load)

    def _on_load(self, module: nn.Module, incompatible_keys) -> None:
        self.invalidate_prototypes()

    # ------------------------------------------------------------ set-up
    def _add_prompts(self, name: str, prompts: List[List[str]]) -> None:
        self._tokens[name], self._counts[name] = _tokens_of(self.clip,
                                                            prompts)
        self._lengths[name] = self.clip.text_lengths(self._tokens[name])

    def _check_combination(self) -> None:
        needs_cd = self.head.needs_cd or self.loss_module.uses_wrm
        if needs_cd and self.descriptions is None:
            raise ValueError(
                f'DRMClassifier: the cd head is used (head.beta='
                f'{self.head.beta}, loss.wrm_weight='
                f'{self.loss_module.wrm_weight}) but no descriptions are '
                f'given. Set descriptions=<json> (e.g. "iwildcam.json"), or '
                f'beta=1 and wrm_weight=0 for a df-only model.')
        if self.head.linear and self.loss_module.erm != 'ce':
            raise ValueError(
                "DRMClassifier: a linear df head (LP / LP-FT) trains with "
                "loss.erm='ce'; the contrastive loss does not use it.")

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    @property
    def text_trainable(self) -> bool:
        return self.clip.text_trainable

    @property
    def needs_soft_labels(self) -> bool:
        """Whether training uses p_c (λ > 0)."""
        return self.loss_module.uses_wrm

    @property
    def soft_label_source(self) -> str:
        return self.soft_label_cfg['source']

    def set_class_subset(self,
                         indices: Optional[Sequence[int]] = None) -> None:
        """Restrict predictions to a class subset (ImageNet-A/R); None
        restores all classes."""
        self.head.set_class_subset(indices)

    # ------------------------------------------------------------ text side
    def _device_tokens_of(self, name: str,
                          device: torch.device) -> torch.Tensor:
        key = (name, device)
        if key not in self._device_tokens:
            self._device_tokens[key] = self._tokens[name].to(device)
        return self._device_tokens[key]

    def _encode_tokens(self, clip: OpenCLIP, tokens: torch.Tensor,
                       grad: bool,
                       lengths: Optional[torch.Tensor] = None
                       ) -> torch.Tensor:
        """Normalised text embeddings; without gradient in chunks of
        ``text_batch_size`` prompts of similar length (``lengths``: CPU
        per-row token counts, see :meth:`OpenCLIP.text_lengths`)."""
        if grad:
            return clip.encode_text(tokens, lengths=lengths)
        with torch.no_grad():
            if tokens.size(0) <= self.text_batch_size:
                return clip.encode_text(tokens, lengths=lengths)
            if lengths is None:
                lengths = clip.text_lengths(tokens)
            order = torch.argsort(lengths, stable=True)
            parts = [
                clip.encode_text(tokens[rows.to(tokens.device)],
                                 lengths=lengths[rows])
                for rows in order.split(self.text_batch_size)
            ]
            inverse = torch.empty_like(order)
            inverse[order] = torch.arange(order.numel())
            return torch.cat(parts)[inverse.to(tokens.device)]

    def _encode_classes(self, name: str, grad: bool,
                        clip: Optional[OpenCLIP] = None) -> torch.Tensor:
        """Class prototypes of prompt set ``name`` ('df' / 'cd')."""
        clip = clip or self.clip
        tokens = self._device_tokens_of(name, clip.device)
        feats = self._encode_tokens(clip, tokens, grad, self._lengths[name])
        return class_prototypes(feats, self._counts[name])

    def invalidate_prototypes(self) -> None:
        """Forget cached text embeddings (weights changed)."""
        self._cache.clear()

    def _cached(self, name: str) -> torch.Tensor:
        """Prototypes ('df', 'cd') or caption embeddings ('caption'),
        computed without gradient once and reused until invalidated."""
        device = self.clip.device
        value = self._cache.get(name)
        if value is None or value.device != device:
            if name == 'caption':
                source = 'caption' if 'caption' in self._tokens else 'df'
                tokens = self._device_tokens_of(source, device)
                feats = self._encode_tokens(self.clip, tokens, grad=False,
                                            lengths=self._lengths[source])
                value = feats.view(self.num_classes, -1, feats.size(-1))
            else:
                value = self._encode_classes(name, grad=False)
            self._cache[name] = value
        return value

    def prototypes(self, name: str) -> torch.Tensor:
        """Current eval prototypes ``(C, D)`` of 'df' or 'cd' (cached)."""
        if name not in ('df', 'cd'):
            raise ValueError(f"prototypes: name must be 'df' or 'cd', got "
                             f'{name!r}.')
        if name == 'cd' and self.descriptions is None:
            raise ValueError('no descriptions configured: no cd prototypes.')
        return self._cached(name)

    def train(self, mode: bool = True) -> 'DRMClassifier':
        """A trainable text tower makes the eval prototypes stale."""
        super().train(mode)
        if self.text_trainable:
            self.invalidate_prototypes()
        return self

    # ------------------------------------------------------------ forward
    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        if mode == 'tensor':
            return self.predict_scores(inputs)
        if mode == 'loss':
            if data_samples is None:
                raise ValueError("mode='loss' needs data_samples.")
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}".')

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings ``(N, D)``."""
        return self.clip.encode_image(inputs)

    def logits(self, inputs: torch.Tensor
               ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """``(z_df, z_cd)`` with the cached eval prototypes (each None when
        the mixture does not need it)."""
        feats = self.extract_feat(inputs)
        df = (self.prototypes('df') if self.head.needs_df
              and not self.head.linear else None)
        cd = self.prototypes('cd') if self.head.needs_cd else None
        z_df, z_cd = self.head(feats, df, cd, self.clip.logit_scale)
        if not self.head.needs_df:
            z_df = None
        return z_df, z_cd

    def predict_scores(self, inputs: torch.Tensor) -> torch.Tensor:
        """Dual-inference class probabilities ``(N, C)``."""
        return self.head.predict_scores(*self.logits(inputs))

    def predict(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None
                ) -> List[DataSample]:
        """Data samples with ``pred_score`` (the β mixture),
        ``pred_label``, ``df_score`` and ``cd_score`` (see
        :meth:`CLIPTextHead.predict`)."""
        return self.head.predict(*self.logits(inputs), data_samples)

    @property
    def _dataset_meta(self) -> dict:
        """What MMPretrain's ``get_model`` / inferencers read: the class
        names are always :attr:`classnames` (the model's label order)."""
        return dict(self.__dict__.get('_stored_dataset_meta') or {},
                    classes=tuple(self.classnames))

    @_dataset_meta.setter
    def _dataset_meta(self, meta: Optional[dict]) -> None:
        self.__dict__['_stored_dataset_meta'] = dict(meta or {})

    # ------------------------------------------------------------ training
    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """Dual risk of a batch: ``{'loss_erm', 'loss_wrm', stats...}``."""
        labels = torch.cat([s.gt_label for s in data_samples]).to(
            inputs.device).long()
        image_features = self.clip.encode_image(inputs)
        logit_scale = self.clip.logit_scale
        erm = self.loss_module.erm
        need_df = erm == 'ce' and not self.head.linear
        need_cd = self.loss_module.uses_wrm
        captions = df = cd = None

        if self.text_trainable and torch.is_grad_enabled():
            # One text forward call for everything text this step needs
            # (run without padding, in a few length buckets); under DDP each
            # rank encodes its share of the df / cd prompts.
            groups: List[Tuple[str, torch.Tensor, torch.Tensor]] = []
            device = image_features.device
            if erm == 'contrastive':
                groups.append(('caption', self._caption_tokens(labels),
                               self._caption_lengths(labels.numel())))
            shard = self._prompt_shard()
            for name, needed in (('df', need_df), ('cd', need_cd)):
                if needed:
                    tokens = self._device_tokens_of(name, device)
                    lengths = self._lengths[name]
                    if shard is not None:
                        lo, hi = _shard_bounds(tokens.size(0), *shard)
                        tokens, lengths = tokens[lo:hi], lengths[lo:hi]
                    groups.append((name, tokens, lengths))
            if groups:
                feats = self.clip.encode_text(
                    torch.cat([t for _, t, _ in groups]),
                    lengths=torch.cat([n for _, _, n in groups]))
                parts = dict(zip([n for n, _, _ in groups],
                                 feats.split([len(t) for _, t, _ in groups])))
                if shard is not None:
                    for name in ('df', 'cd'):
                        if name in parts:
                            parts[name] = gather_with_grad(parts[name])
                captions = parts.get('caption')
                if 'df' in parts:
                    df = class_prototypes(parts['df'], self._counts['df'])
                if 'cd' in parts:
                    cd = class_prototypes(parts['cd'], self._counts['cd'])
            self.invalidate_prototypes()  # the step changes the text tower
        else:
            if erm == 'contrastive':
                table = self._cached('caption')
                pick = torch.randint(table.size(1), (labels.numel(), ),
                                     device=labels.device)
                captions = table[labels, pick]
            if need_df:
                df = self._cached('df')
            if need_cd:
                cd = self._cached('cd')

        z_df = self.head.df_logits(image_features, df,
                                   logit_scale) if erm == 'ce' else None
        z_cd = self.head.logits(image_features, cd,
                                logit_scale) if need_cd else None
        soft = self.soft_labels_for(inputs, data_samples) if need_cd else None
        return self.loss_module(
            labels=labels, z_df=z_df, z_cd=z_cd, soft_labels=soft,
            image_features=image_features, caption_features=captions,
            logit_scale=logit_scale)

    def _prompt_shard(self) -> Optional[Tuple[int, int]]:
        """``(rank, world)`` when df / cd prompts are split across ranks."""
        if (self.shard_text_prompts and dist.is_available()
                and dist.is_initialized() and dist.get_world_size() > 1):
            return dist.get_rank(), dist.get_world_size()
        return None

    def _caption_lengths(self, count: int) -> torch.Tensor:
        """Token-count bound of ``count`` drawn captions: the longest
        caption prompt (known without looking at the draw on the device)."""
        name = 'caption' if 'caption' in self._tokens else 'df'
        longest = int(self._lengths[name].max())
        return torch.full((count, ), longest, dtype=torch.long)

    def _caption_tokens(self, labels: torch.Tensor) -> torch.Tensor:
        """Token ids of one df caption per sample (random template)."""
        name = 'caption' if 'caption' in self._tokens else 'df'
        tokens = self._device_tokens_of(name, labels.device)
        per_class = self._counts[name][0]
        pick = torch.randint(per_class, (labels.numel(), ),
                             device=labels.device)
        return tokens[labels * per_class + pick]

    # ------------------------------------------------------------ soft labels
    def _copy_clip(self) -> OpenCLIP:
        """A deep copy of the CLIP alone. Its load-state-dict hook is a bound
        method of this classifier, so a plain deepcopy would also copy the
        whole classifier (kept teacher weights, soft-label table...)."""
        clip = copy.deepcopy(self.clip, memo={id(self): self})
        hooks = clip._load_state_dict_post_hooks
        for key in [k for k, hook in hooks.items()
                    if getattr(hook, '__self__', None) is self]:
            del hooks[key]
        return clip

    def _frozen_teacher(self) -> OpenCLIP:
        teacher = self._copy_clip()
        freeze_module(teacher)
        return teacher

    def build_teacher(self) -> OpenCLIP:
        """The frozen pre-trained CLIP that defines p_c: the online copy,
        the kept initial weights, or a rebuild from ``clip.pretrained``."""
        if self._online_teacher is not None:
            return self._online_teacher[0]
        if self._teacher_state is not None:
            teacher = self._copy_clip()
            teacher.load_state_dict(self._teacher_state)
        elif self._clip_cfg is not None:
            teacher = build_in_scope(MODELS, self._clip_cfg)
        else:
            raise RuntimeError('DRMClassifier.build_teacher: no pre-trained '
                               'weights to build the teacher from.')
        freeze_module(teacher)
        return teacher.to(self.clip.device)

    def teacher_soft_labels(self, teacher: OpenCLIP,
                            inputs: torch.Tensor) -> torch.Tensor:
        """p_c ``(N, C)`` of preprocessed images under ``teacher``."""
        if self.descriptions is None:
            raise ValueError('soft labels need descriptions.')
        with torch.no_grad():
            if teacher.device != inputs.device:
                teacher.to(inputs.device)
            # The teacher's cd prototypes never change: cache them on it.
            cached = getattr(teacher, '_drm_cd_prototypes', None)
            if cached is None or cached.device != inputs.device:
                cached = self._encode_classes('cd', grad=False, clip=teacher)
                teacher._drm_cd_prototypes = cached
            protos = cached
            feats = teacher.encode_image(inputs)
            return soft_labels_from_affinities(
                affinities(feats, protos),
                self.soft_label_cfg['normalization'],
                float(self.soft_label_cfg['tau']),
                logit_scale=float(teacher.logit_scale))

    def set_soft_labels(self, table: Optional[torch.Tensor]) -> None:
        """Install the p_c table ``(num_train_samples, C)`` indexed by
        ``sample_idx`` (kept on CPU, not saved in checkpoints)."""
        if table is not None:
            if table.dim() != 2 or table.size(1) != self.num_classes:
                raise ValueError(f'set_soft_labels: expected (N, '
                                 f'{self.num_classes}), got '
                                 f'{tuple(table.shape)}.')
            table = table.detach().cpu()
        self._soft_label_table = table

    @property
    def soft_label_table(self) -> Optional[torch.Tensor]:
        return self._soft_label_table

    def soft_label_fingerprint(self) -> Dict[str, object]:
        """What of the model determines p_c (for the cache key), besides the
        teacher weights: cd prompts and normalisation."""
        prompts = hashlib.sha256('\x1e'.join(
            '\x1f'.join(d) for d in (self.descriptions or [])).encode(
            )).hexdigest()
        return dict(classes=hashlib.sha256('\x1f'.join(
            self.classnames).encode()).hexdigest(),
                    descriptions=prompts,
                    normalization=self.soft_label_cfg['normalization'],
                    tau=float(self.soft_label_cfg['tau']))

    def soft_labels_for(self, inputs: torch.Tensor,
                        data_samples: List[DataSample]) -> torch.Tensor:
        """p_c of a training batch: online from the teacher, or looked up
        in the cached table by ``sample_idx``."""
        if self.soft_label_source == 'online':
            return self.teacher_soft_labels(self._online_teacher[0], inputs)
        if self._soft_label_table is None:
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
        table = self._soft_label_table
        bad = [i for i in index if not 0 <= i < table.size(0)]
        if bad:
            raise IndexError(f'sample_idx {bad[:5]} outside the soft-label '
                             f'table of {table.size(0)} samples; the cache '
                             'does not match the training set.')
        return table[torch.as_tensor(index)].to(inputs.device,
                                                non_blocking=True)
