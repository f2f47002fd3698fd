"""``DRMClassifier``: CLIP fine-tuned with Dual Risk Minimization.

One MMPretrain-style classifier for DRM and its baselines, selected by
config values:

=============  =====================================================
zero-shot      no training; ``head.beta`` picks df / cd / mixture
FT (CE)        ``loss=dict(erm='ce', wrm_weight=0)``
FLYP           ``loss=dict(erm='contrastive', wrm_weight=0)``
DRM            ``loss=dict(erm='contrastive', wrm_weight=λ)``
LP             ``head=dict(linear=True)``, all CLIP towers frozen,
               ``loss=dict(erm='ce', wrm_weight=0)``
LP-FT          LP's model with towers unfrozen, ``load_from`` = LP ckpt
=============  =====================================================

Its parts, one concept each: the CLIP towers (:class:`OpenCLIP`), the
prompts and their prototypes (:class:`TextPrototypes`), the df / cd heads
(:class:`CLIPTextHead`), the core-based soft labels
(:class:`CoreSoftLabels`) and the objective (:class:`DualRiskLoss`).
"""
import inspect
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmpretrain.models.classifiers import BaseClassifier
from mmpretrain.structures import DataSample
from torch import nn

from drm_mm.prompts import (apply_description_template, build_prompts,
                            check_description_template, load_descriptions,
                            make_class_keys, resolve_templates)
from drm_mm.registry import MODELS, build_in_scope
from drm_mm.utils.checkpoint_fit import refuse_unfit_state_dict
from ..clip.open_clip_model import OpenCLIP
from ..heads.clip_text_head import CLIPTextHead  # noqa: F401 (registers)
from ..losses import DualRiskLoss  # noqa: F401 (registers)
from ..soft_labels import CoreSoftLabels
from .text_prototypes import TextPrototypes

#: CLIP's pixel mean / std on the 0-255 scale (RGB).
CLIP_MEAN = (122.770938, 116.7460125, 104.09373615)
CLIP_STD = (68.5005327, 66.6321579, 70.32316305)


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
    """For a dataset key, its description keys (ImageNet and its subsets:
    ``"<name> [<wnid>]"`` for the names the 1000 classes use twice); for a
    list of names, None when they are unique (else an error asking for
    class_keys)."""
    if isinstance(classnames, str):
        from drm_mm.datasets.classnames import get_class_keys
        return get_class_keys(classnames)
    if len(set(names)) == len(names):
        return None
    return make_class_keys(names)


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
            also looked up in ``drm_mm/prompts/``) or a dict keyed by class
            name. Needed when the cd head is used (``head.beta < 1`` or
            ``loss.wrm_weight > 0``).
        class_keys: description keys of the classes when names repeat.
        description_template: how a cd prompt is made from a description
            ``{d}`` and the class name ``{c}``: ``'{d}'`` (default) uses the
            description as it is, ``'{c} is {d}'`` prefixes the class name.
        allow_extra_description_keys: warn (not fail) on unknown keys.
        caption_templates: templates of the training captions (FLYP ERM);
            default ``templates``. One is drawn per sample and step.
        head: :class:`CLIPTextHead` config (``beta``, ``linear``...).
        loss: :class:`DualRiskLoss` config (``erm``, ``wrm_weight``...).
        soft_labels: config of the soft-label component, default type
            :class:`CoreSoftLabels` (``source``, ``normalization``,
            ``tau``).
        text_batch_size: prompts per text forward when encoding without
            gradient (eval prototypes), to bound memory.
        shard_text_prompts: in a distributed run with a training text
            tower, each rank encodes only its share of the df / cd prompts
            and the embeddings are all-gathered with gradient (the same
            loss and gradients as every rank encoding all of them, at
            1/world of the text cost).
        wrm_text_grad: True (default, the exact path): L_WRM trains the
            text tower through the cd prototypes. False (cheaper): the cd
            prototypes are encoded without gradient, so L_WRM trains the
            image tower (and logit scale) only; the ERM term still trains
            the text tower.
        wrm_text_refresh: with ``wrm_text_grad=False`` (or
            ``wrm_text_classes``: the classes outside S), re-encode the cd
            prototypes every this many training forward passes (1: every
            step; with gradient accumulation each pass counts). A resumed
            run re-encodes at its first step.
        wrm_text_classes: None (default): the exact path. An integer m
            (with a training text tower and ``wrm_text_grad=True``): each
            step only the cd prompts of a class subset S are encoded with
            gradient, the other classes' cd prototypes are the no-gradient
            ones of ``wrm_text_grad=False`` (re-encoded every
            ``wrm_text_refresh`` steps). S = the ``ceil(m/2)`` classes with
            the most p_c mass summed over the batch plus ``m - ceil(m/2)``
            drawn uniformly without replacement from the other classes
            (inclusion probability q). Estimator: a drawn class's prototype
            keeps its value, its gradient is scaled by 1/q
            (``t.detach() + (t - t.detach()) / q``), so that over the draws
            each class's text gradient counts once in expectation. With a
            fresh cache (``wrm_text_refresh=1``) the loss value and the
            image gradient are the exact path's and the text gradient is an
            unbiased estimate of the exact path's; with k > 1 the classes
            outside S use prototypes up to k-1 steps old (loss value, image
            gradient and the estimate are those of these stale values). m
            >= the number of classes: the exact path; m >= 2 (one top class
            and one drawn). Distributed: each rank picks S from its own
            batch and draw and encodes all of S itself (not sharded); each
            rank's estimate is unbiased for its local gradient, so DDP's
            average is unbiased for the global one and ranks need not agree
            on S. No effect with a frozen text tower or ``wrm_weight=0``.
            Cost: with k = 1 every cd prompt is still encoded (without
            gradient) each step; the saving is then only the gradient pass
            of the prompts outside S, with k > 1 also their forward.
        data_preprocessor: default ``ClsDataPreprocessor`` with CLIP's
            mean/std and ``to_rgb=True``.
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
        if isinstance(text_batch_size, bool) or not isinstance(
                text_batch_size, int) or text_batch_size < 1:
            raise ValueError(f'DRMClassifier.text_batch_size must be a '
                             f'positive integer (prompts per text forward), '
                             f'got {text_batch_size!r}.')
        if not isinstance(wrm_text_grad, bool):
            raise ValueError(f'DRMClassifier.wrm_text_grad must be True or '
                             f'False, got {wrm_text_grad!r}.')
        if isinstance(wrm_text_refresh, bool) or not isinstance(
                wrm_text_refresh, int) or wrm_text_refresh < 1:
            raise ValueError(f'DRMClassifier.wrm_text_refresh must be a '
                             f'positive integer (steps), got '
                             f'{wrm_text_refresh!r}.')
        if wrm_text_classes is not None and (
                isinstance(wrm_text_classes, bool)
                or not isinstance(wrm_text_classes, int)
                or wrm_text_classes < 2):
            raise ValueError(f'DRMClassifier.wrm_text_classes must be None '
                             f'or an integer >= 2 (classes whose cd prompts '
                             f'get gradient each step), got '
                             f'{wrm_text_classes!r}.')
        if wrm_text_classes is not None and not wrm_text_grad:
            raise ValueError('DRMClassifier.wrm_text_classes needs '
                             'wrm_text_grad=True (wrm_text_grad=False drops '
                             'the cd gradient of every class); set one of '
                             'them.')
        self.wrm_text_grad = wrm_text_grad
        self.wrm_text_refresh = wrm_text_refresh
        self.wrm_text_classes = wrm_text_classes
        self._subset_generator: Optional[torch.Generator] = None
        self.clip: OpenCLIP = build_in_scope(MODELS, clip) if isinstance(
            clip, dict) else clip
        self.loss_module = build_in_scope(
            MODELS, dict(dict(type='DualRiskLoss'), **(loss or {})))
        self.soft_labels = _build_soft_labels(soft_labels)

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
        self.description_template = check_description_template(
            description_template)
        self.descriptions: Optional[List[List[str]]] = None
        if descriptions is not None:
            self.descriptions = apply_description_template(
                self._load_descriptions(descriptions, classnames, class_keys,
                                        allow_extra_description_keys),
                self.classnames, self.description_template)
        prompts = dict(df=build_prompts(self.templates, self.classnames))
        if self.caption_templates != self.templates:
            prompts['caption'] = build_prompts(self.caption_templates,
                                               self.classnames)
        if self.descriptions is not None:
            prompts['cd'] = self.descriptions
        self.text = TextPrototypes(self.clip, prompts, text_batch_size,
                                   shard_text_prompts)

        # ---- head (the linear df head starts from the zero-shot prototypes)
        head_cfg = dict(dict(type='CLIPTextHead'), **(head or {}))
        if head_cfg.get('linear', False):
            zero_shot = self.text.encode(self.clip, 'df')
            head_cfg.setdefault('num_classes', zero_shot.size(0))
            head_cfg.setdefault('embed_dim', zero_shot.size(1))
        self.head = build_in_scope(MODELS, head_cfg)
        if head_cfg.get('linear', False):
            self.head.init_linear(zero_shot)
        self._check_combination()
        # Every loading path (MMEngine's non-strict ones too) refuses a
        # checkpoint that does not fit this model.
        self.register_load_state_dict_pre_hook(refuse_unfit_state_dict)
        self.soft_labels.bind(self.clip, self.text,
                              clip if isinstance(clip, dict) else None,
                              active=self.loss_module.uses_wrm)

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

    def _load_descriptions(self, descriptions: Union[str, dict],
                           classnames: Union[str, Sequence[str]],
                           class_keys: Optional[Sequence[str]],
                           allow_extra: bool) -> List[List[str]]:
        """Descriptions per class; an ImageNet subset key (``'imagenet_r'``)
        reads the 1000-class file and keeps its classes."""
        if class_keys is None and classnames in ('imagenet_a', 'imagenet_r'):
            from drm_mm.datasets.classnames import (class_subset_indices,
                                                    get_class_keys,
                                                    get_classnames)
            full = load_descriptions(
                descriptions, get_classnames('imagenet'),
                class_keys=get_class_keys('imagenet'),
                allow_extra_keys=allow_extra)
            return [full[i] for i in class_subset_indices(classnames)]
        keys = (list(class_keys) if class_keys is not None else
                _default_class_keys(classnames, self.classnames))
        return load_descriptions(descriptions, self.classnames,
                                 class_keys=keys, allow_extra_keys=allow_extra)

    def _check_combination(self) -> None:
        needs_cd = self.head.needs_cd or self.loss_module.needs_cd
        if needs_cd and self.descriptions is None:
            raise ValueError(
                f'DRMClassifier: the cd head is used (head.beta='
                f'{self.head.beta}, loss.wrm_weight='
                f'{self.loss_module.wrm_weight}, loss.erm_prompts='
                f'{self.loss_module.erm_prompts!r}) but no descriptions are '
                f'given. Set descriptions=<json> (e.g. "iwildcam.json"), or '
                f"beta=1, wrm_weight=0 and erm_prompts='df' for a df-only "
                f'model.')
        lm = self.loss_module
        if self.wrm_text_classes is not None and lm.wrm_prompts != 'cd':
            raise ValueError(
                "DRMClassifier.wrm_text_classes applies to L_WRM's cd "
                "prompts; with loss.wrm_prompts='df' leave it None.")
        if self.wrm_text_classes is not None and lm.uses_erm and \
                lm.erm == 'ce' and lm.erm_prompts == 'cd':
            raise ValueError(
                "DRMClassifier.wrm_text_classes saves nothing with "
                "loss.erm='ce' and loss.erm_prompts='cd' (L_ERM encodes "
                "every cd prompt with gradient); leave it None.")
        if self.head.linear and self.loss_module.erm_prompts == 'cd':
            raise ValueError(
                "DRMClassifier: a linear df head (LP / LP-FT) trains on the "
                "df logits; use loss.erm_prompts='df'.")
        if self.head.linear and self.loss_module.erm != 'ce':
            raise ValueError(
                "DRMClassifier: a linear df head (LP / LP-FT) trains with "
                "loss.erm='ce'; the contrastive loss does not use it.")

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    @property
    def needs_soft_labels(self) -> bool:
        """Whether training uses p_c (λ > 0)."""
        return self.loss_module.uses_wrm

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
        """Dual risk of a batch: ``{'loss_erm', 'loss_wrm', stats...}``.

        Image features; the text the step needs (captions for the
        contrastive ERM, df prototypes for CE, cd prototypes for WRM, or the
        other set by ``loss.erm_prompts`` / ``loss.wrm_prompts``); the
        logits of each term; p_c; then ``w·L_ERM + λ·L_WRM``.
        """
        labels = torch.cat([s.gt_label for s in data_samples]).to(
            inputs.device).long()
        lm = self.loss_module
        wrm = lm.uses_wrm
        contrastive = lm.uses_erm and lm.erm == 'contrastive'
        ce = lm.uses_erm and lm.erm == 'ce'
        # which prompt sets' prototypes the step needs (loss.*_prompts)
        used = {(ce, lm.erm_prompts), (wrm, lm.wrm_prompts)}
        image_features = self.clip.encode_image(inputs)
        logit_scale = self.clip.training_logit_scale  # clamped (losses only)
        # p_c before the text: wrm_text_classes picks its classes by it
        soft = self.soft_labels(inputs, data_samples) if wrm else None
        text = self.text.training_text(
            self.clip, labels, captions=contrastive,
            df=(True, 'df') in used and not self.head.linear,
            cd=(True, 'cd') in used,
            caption_set=None if lm.erm_prompts == 'df' else 'cd',
            # wrm_text_grad=False drops the cd gradient only when no ERM
            # term uses the cd prototypes
            cd_grad=self.wrm_text_grad or (ce and lm.erm_prompts == 'cd'),
            cd_refresh=self.wrm_text_refresh,
            cd_classes=self._wrm_classes(soft) if wrm else None)

        def logits(name: str) -> torch.Tensor:
            if name == 'df':
                return self.head.df_logits(image_features, text.get('df'),
                                           logit_scale)
            return self.head.logits(image_features, text['cd'], logit_scale)

        z_erm = logits(lm.erm_prompts) if ce else None
        z_wrm = logits(lm.wrm_prompts) if wrm else None
        return self.loss_module(
            labels=labels, z_df=z_erm, z_cd=z_wrm, soft_labels=soft,
            image_features=image_features,
            caption_features=text.get('caption'), logit_scale=logit_scale)

    def _wrm_classes(self, soft: torch.Tensor
                     ) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """The class subset S of ``wrm_text_classes`` for this batch and the
        gradient scale of each class in it (CPU): the ``ceil(m/2)`` classes
        of most p_c mass (scale 1), then ``m - ceil(m/2)`` drawn from the
        rest (scale 1/q). None on the exact path."""
        m = self.wrm_text_classes
        if m is None or m >= self.num_classes or not (
                self.clip.text_trainable and torch.is_grad_enabled()):
            return None
        top_n = -(-m // 2)
        mass = soft.detach().float().sum(dim=0).cpu()
        top = torch.topk(mass, top_n).indices
        others = torch.ones(self.num_classes, dtype=torch.bool)
        others[top] = False
        rest = others.nonzero().squeeze(1)
        drawn = self._draw_classes(rest, m - top_n)
        q = (m - top_n) / rest.numel()
        scale = torch.cat([torch.ones(top_n), torch.full((drawn.numel(), ),
                                                         1.0 / q)])
        return torch.cat([top, drawn]), scale

    def _draw_classes(self, rest: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` of the classes ``rest`` drawn uniformly without
        replacement, by a CPU generator of the classifier's own, seeded at
        its first use from ``torch.initial_seed()`` (the run's seed): the
        draws leave torch's global random stream (caption draws) as it
        is."""
        if self._subset_generator is None:
            self._subset_generator = torch.Generator().manual_seed(
                torch.initial_seed())
        order = torch.randperm(rest.numel(), generator=self._subset_generator)
        return rest[order[:n]]
