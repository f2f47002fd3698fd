"""``DRMClassifier``: CLIP fine-tuned with Dual Risk Minimization.

One MMPretrain-style classifier for DRM and its baselines, selected by
config values:

=============  =====================================================
zero-shot      no training; ``head.beta`` picks df / cd / mixture
FT (CE)        ``loss=dict(erm='ce', wrm_weight=0)``
L2-SP, CAR-FT, FT + ``regularizer=dict(type='drm_mm.L2SPLoss')`` (or
Lipsum-FT      ``CARFTLoss``, ``LipsumLoss``); with λ > 0: DRM + it
FLYP           ``loss=dict(erm='contrastive', wrm_weight=0)``
DRM            ``loss=dict(erm='contrastive', wrm_weight=λ)``
LP             ``head=dict(linear=True)``, all CLIP towers frozen,
               ``loss=dict(erm='ce', wrm_weight=0)``
LP-FT          LP's model with towers unfrozen, ``load_from`` = LP ckpt
=============  =====================================================

Its parts, one concept each: the CLIP towers (:class:`OpenCLIP`), the
prompts (:class:`~drm_mm.prompts.ClassPrompts`) and their prototypes
(:class:`TextPrototypes`, with the cd options of L_WRM in
:class:`WRMTextPolicy`), the core-based soft labels
(:class:`CoreSoftLabels`) and the df / cd heads (:class:`CLIPTextHead`),
which own the objective (:class:`DualRiskLoss`). A training step: image
features, p_c, the text the head asks for, then the head's loss.
"""
import inspect
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmpretrain.models.classifiers import BaseClassifier
from mmpretrain.structures import DataSample
from torch import nn

from drm_mm.prompts import ClassPrompts
from drm_mm.registry import MODELS, build_in_scope
from drm_mm.utils.checkpoint_fit import refuse_unfit_state_dict
from ..clip.open_clip_model import OpenCLIP
from ..heads.clip_text_head import CLIPTextHead  # noqa: F401 (registers)
from ..soft_labels import CoreSoftLabels
from .teacher_regularizer import TeacherRegularizer
from .text_prototypes import TextPrototypes
from .wrm_text_policy import WRMTextPolicy

#: CLIP's pixel mean / std on the 0-255 scale (RGB).
CLIP_MEAN = (122.770938, 116.7460125, 104.09373615)
CLIP_STD = (68.5005327, 66.6321579, 70.32316305)


def _build_soft_labels(cfg: Optional[dict]) -> nn.Module:
    """The soft-label component of ``soft_labels=dict(type=..., ...)``
    (default type ``CoreSoftLabels``); errors name the config key."""
    cfg = dict(cfg or {})
    name = cfg.pop('type', 'CoreSoftLabels')
    cls = MODELS.get(name) if isinstance(name, str) else name
    if cls is None:
        raise ValueError(f'DRMClassifier.soft_labels.type={name!r} is not '
                         f"registered in drm_mm's MODELS; use "
                         f"'CoreSoftLabels'.")
    allowed = [k for k in inspect.signature(cls).parameters
               if k != 'init_cfg']
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise ValueError(f'DRMClassifier.soft_labels: unknown key(s) '
                         f'{unknown}; use {", ".join(allowed)}.')
    try:
        return cls(**cfg)
    except ValueError as err:
        raise ValueError(f'DRMClassifier.{err}') from None


@MODELS.register_module()
class DRMClassifier(BaseClassifier):
    """CLIP image tower + text tower + :class:`CLIPTextHead` (which owns
    :class:`DualRiskLoss`).

    Args:
        clip (dict | OpenCLIP): config of :class:`OpenCLIP` (or the
            module); its ``frozen`` chooses which towers train.
        classnames (str | list[str]): class names in label order or a
            dataset key (these and the next six options make the prompts:
            :class:`~drm_mm.prompts.ClassPrompts`).
        templates (str | list[str], optional): the df templates or their
            dataset key. Defaults to the key of ``classnames``.
        descriptions (str | dict, optional): the concept descriptions (JSON
            file or dict keyed by class), required when the cd head is used
            (``head.beta < 1``, ``loss.wrm_weight > 0`` or
            ``loss.erm_prompts='cd'``). Defaults to None.
        class_keys (list[str], optional): description keys for repeated
            class names. Defaults to None.
        description_template (str): the cd prompt of description ``{d}``
            (and class ``{c}``). Defaults to ``'{d}'``.
        allow_extra_description_keys (bool): only warn about description
            keys that name no class. Defaults to False.
        caption_templates (str | list[str], optional): templates of the
            FLYP captions, one drawn per sample and step. Defaults to
            ``templates``.
        head (dict, optional): :class:`CLIPTextHead` config (``beta``,
            ``linear`` ...). Defaults to ``dict(type='CLIPTextHead')``.
        loss (dict, optional): :class:`DualRiskLoss` config (``erm``,
            ``wrm_weight`` ...), handed to the head, which owns the loss.
            Defaults to ``dict(type='DualRiskLoss')``.
        soft_labels (dict, optional): config of the soft-label component
            (``source``, ``normalization``, ``tau``). Defaults to
            ``dict(type='CoreSoftLabels')``.
        regularizer (dict | list[dict], optional): a regulariser towards the
            frozen pre-trained CLIP added to the loss (``drm_mm.L2SPLoss``,
            ``drm_mm.CARFTLoss``, ``drm_mm.LipsumLoss``, or a list), with
            its inputs from the soft-label component's one teacher (see
            :class:`TeacherRegularizer`). Defaults to None (none).
        text_batch_size (int): prompts per text forward when encoding
            without gradient (eval prototypes), to bound memory. Defaults to
            1024.
        shard_text_prompts (bool): in a distributed run with a training
            text tower, each rank encodes only its share of the df / cd
            prompts and the embeddings are all-gathered with gradient (the
            same loss and gradients at 1/world of the text cost). Defaults
            to True.
        wrm_text_grad (bool): True: L_WRM trains the text tower through the
            cd prototypes (the exact path). False (cheaper): the cd
            prototypes come without gradient, so L_WRM trains the image
            tower (and logit scale) only. Defaults to True.
        wrm_text_refresh (int): re-encode the no-gradient cd prototypes
            (``wrm_text_grad=False``, or the classes outside the subset of
            ``wrm_text_classes``) every this many training forward passes.
            Defaults to 1.
        wrm_text_classes (int, optional): m in [2, number of classes]: each
            step only the cd prompts of m classes get gradient, an unbiased
            estimate of the exact text gradient (see
            :class:`WRMTextPolicy`); m = the number of classes is the exact
            path. Defaults to None (the exact path).
        data_preprocessor (dict | nn.Module, optional): Defaults to
            ``ClsDataPreprocessor`` with CLIP's mean/std and
            ``to_rgb=True``.
        init_cfg (dict, optional): MMEngine's initialisation config.
            Defaults to None.
    """

    def __init__(self,
                 clip: Union[dict, OpenCLIP],
                 classnames: Union[str, Sequence[str]],
                 templates: Optional[Union[str, Sequence[str]]] = None,
                 descriptions: Optional[Union[str, dict]] = None,
                 class_keys: Optional[Sequence[str]] = None,
                 description_template: str = '{d}',
                 allow_extra_description_keys: bool = False,
                 caption_templates: Optional[Union[str,
                                                   Sequence[str]]] = None,
                 head: Optional[dict] = None,
                 loss: Optional[dict] = None,
                 soft_labels: Optional[dict] = None,
                 regularizer: Optional[Union[dict, List[dict]]] = None,
                 text_batch_size: int = 1024,
                 shard_text_prompts: bool = True,
                 wrm_text_grad: bool = True,
                 wrm_text_refresh: int = 1,
                 wrm_text_classes: Optional[int] = None,
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
        self.clip: OpenCLIP = build_in_scope(MODELS, clip) if isinstance(
            clip, dict) else clip
        prompts = ClassPrompts(classnames, templates, descriptions,
                               class_keys, description_template,
                               allow_extra_description_keys,
                               caption_templates)
        self.classnames = prompts.classnames
        self.templates = prompts.templates
        self.descriptions = prompts.descriptions
        wrm_text = WRMTextPolicy(wrm_text_grad, wrm_text_refresh,
                                 wrm_text_classes, len(self.classnames))
        self.text = TextPrototypes(self.clip, prompts.sets, text_batch_size,
                                   shard_text_prompts, wrm_text)
        self.head = self._build_head(head, loss)
        lm = self.head.loss_module
        wrm_text.check_loss(lm.erm if lm.uses_erm else None, lm.erm_prompts,
                            lm.wrm_prompts)
        self.regularizer = (TeacherRegularizer(regularizer, self.classnames)
                            if regularizer is not None else None)
        self.soft_labels = _build_soft_labels(soft_labels)
        self.soft_labels.bind(self.clip, self.text,
                              clip if isinstance(clip, dict) else None,
                              active=self.head.needs_soft_labels,
                              keep_teacher=self.regularizer is not None)
        # Every loading path (MMEngine's non-strict ones too) refuses a
        # checkpoint that does not fit this model.
        self.register_load_state_dict_pre_hook(refuse_unfit_state_dict)

    def init_weights(self) -> None:
        """MMEngine's initialisation (the CLIP loads its pretrained weights,
        see :meth:`OpenCLIP.init_weights`); a linear df head is then set to
        the zero-shot prototypes of those weights. With
        ``init_cfg=dict(type='Pretrained', checkpoint=...)`` the checkpoint
        gives every weight and no CLIP weights are fetched."""
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [
            self.init_cfg or {}]
        if any(c.get('type') == 'Pretrained' for c in cfgs):
            # the checkpoint holds every weight: fetch no CLIP weights
            self.clip.pretrained_pending = False
        clip_loads = self.clip.pretrained_pending
        super().init_weights()
        if clip_loads and self.head.linear:
            with torch.no_grad():
                self.head.init_linear(self.text.encode(self.clip, 'df'))

    def _build_head(self, head: Optional[dict],
                    loss: Optional[dict]) -> CLIPTextHead:
        """The head with the loss config; a linear df head starts from the
        zero-shot df prototypes."""
        head_cfg = dict(dict(type='CLIPTextHead'), **(head or {}))
        if loss is not None and 'loss' in head_cfg:
            raise ValueError('DRMClassifier: the loss is set twice (loss= '
                             'and head.loss=); keep one.')
        head_cfg.setdefault('loss', loss)
        if head_cfg.get('linear', False):
            zero_shot = self.text.encode(self.clip, 'df')
            head_cfg.setdefault('num_classes', zero_shot.size(0))
            head_cfg.setdefault('embed_dim', zero_shot.size(1))
        built = build_in_scope(MODELS, head_cfg)
        if head_cfg.get('linear', False):
            built.init_linear(zero_shot)
        if built.needs_descriptions and self.descriptions is None:
            lm = built.loss_module
            raise ValueError(
                f'DRMClassifier: the cd head is used (head.beta='
                f'{built.beta}, loss.wrm_weight={lm.wrm_weight}, '
                f'loss.erm_prompts={lm.erm_prompts!r}) but no descriptions '
                f'are given. Set descriptions=<json> (e.g. "iwildcam.json"),'
                f" or beta=1, wrm_weight=0 and erm_prompts='df' for a "
                f'df-only model.')
        return built

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    @property
    def needs_soft_labels(self) -> bool:
        """Whether training uses p_c (λ > 0)."""
        return self.head.needs_soft_labels

    def set_soft_labels(self, table: Optional[torch.Tensor]) -> None:
        """Install the p_c table ``(num_train_samples, C)`` by hand (tools,
        tests); training runs fill it through ``SoftLabelCacheHook``."""
        self.soft_labels.set_table(table)

    @property
    def soft_label_table(self) -> Optional[torch.Tensor]:
        return self.soft_labels.table

    def set_class_subset(self,
                         indices: Optional[Sequence[int]] = None) -> None:
        """Restrict predictions to a class subset (ImageNet-A/R); None
        restores all classes."""
        self.head.set_class_subset(indices)

    def set_class_folding(
            self, folding: Optional[Sequence[Sequence[int]]] = None) -> None:
        """Fold predictions into target classes, each head's logits before
        its softmax (ObjectNet); None restores all classes."""
        self.head.set_class_folding(folding)

    def invalidate_prototypes(self) -> None:
        """Forget cached text embeddings after editing weights through
        ``param.data`` (e.g. WiSE-FT); other updates are noticed."""
        self.text.invalidate()

    def prototypes(self, name: str) -> torch.Tensor:
        """Current eval prototypes ``(C, D)`` of 'df' or 'cd' (cached)."""
        if name not in ('df', 'cd'):
            raise ValueError(f"prototypes: name must be 'df' or 'cd', got "
                             f'{name!r}.')
        if name == 'cd' and self.descriptions is None:
            raise ValueError('no descriptions configured: no cd prototypes.')
        return self.text.cached(self.clip, name)

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
        """Dual risk of a batch: ``{'loss_erm', 'loss_wrm', stats...}``:
        image features, p_c (λ > 0), the text the head asks for, then the
        head's ``w·L_ERM + λ·L_WRM``, plus the regulariser's term
        (``loss_l2sp`` / ``loss_carft`` / ``loss_lipsum``) if configured."""
        labels = torch.cat([s.gt_label for s in data_samples]).to(
            inputs.device).long()
        feats = self.extract_feat(inputs)
        soft = (self.soft_labels(inputs, data_samples)
                if self.head.needs_soft_labels else None)
        text = self.text.training_text(self.clip, labels,
                                       self.head.text_request, soft)
        losses = self.head.loss(feats, text, labels, soft,
                                self.clip.training_logit_scale)
        if self.regularizer is not None:
            losses.update(self.regularizer(self.soft_labels.build_teacher(),
                                           self.clip, self.head, inputs,
                                           feats))
        return losses

    def train_step(self, data, optim_wrapper):
        """MMEngine's train step; with L2-SP it first refuses optimizer
        weight decay on the parameters L2-SP pulls to their pre-trained
        values."""
        if self.regularizer is not None:
            self.regularizer.check_optimizer(
                getattr(optim_wrapper, 'optimizer', optim_wrapper),
                list(self.clip.parameters()))
        return super().train_step(data, optim_wrapper)
