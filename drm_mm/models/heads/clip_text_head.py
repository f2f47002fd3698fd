"""``CLIPTextHead``: the classifier head of CLIP, fed by text, and owner of
the DRM loss.

Logits are ``logit_scale · f_img · Wᵀ`` with class prototypes ``W`` made
from text embeddings. The head holds a df head (default prompts) and a cd
head (concept descriptions). In training it declares the text its loss
needs (:attr:`CLIPTextHead.text_request`), makes the logits of each term
and computes :class:`~drm_mm.models.losses.DualRiskLoss`. At predict time
it returns the dual-inference mixture ``β·softmax(z_df) +
(1−β)·softmax(z_cd)``, optionally restricted to a class subset
(ImageNet-A/R) or folded into target classes (ObjectNet: max logit per
target class) before each head's softmax. Prototypes come in from the
classifier, which owns the text tower.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from drm_mm.prompts import PROMPT_SETS
from drm_mm.registry import MODELS, build_in_scope
from ..losses import DualRiskLoss  # noqa: F401 (registers the default)


class TextRequest(NamedTuple):
    """The text a training step needs, as the head declares it.

    Args:
        captions (str, optional): the prompt set of the contrastive L_ERM's
            captions, None without them.
        erm (str, optional): the prompt set whose prototypes give the CE
            L_ERM's logits, None when they need none.
        wrm (str, optional): the prompt set whose prototypes give L_WRM's
            logits, None when they need none.
    """
    captions: Optional[str] = None
    erm: Optional[str] = None
    wrm: Optional[str] = None

    @property
    def prototypes(self) -> Tuple[str, ...]:
        """The prompt sets whose prototypes are needed, df first."""
        return tuple(n for n in PROMPT_SETS if n in (self.erm, self.wrm))


@MODELS.register_module()
class CLIPTextHead(BaseModule):
    """df + cd CLIP heads: the DRM loss in training, the β mixture at
    predict.

    Args:
        beta (float): weight of the df head in the mixture; 1 = df head
            alone, 0 = cd head alone. Defaults to 0.5.
        linear (bool): make the df head a trainable linear layer (weight +
            bias), initialised from the zero-shot df prototypes with
            :meth:`init_linear` (linear probing, LP-FT); it trains with
            ``loss.erm='ce'`` on the df logits. Defaults to False.
        num_classes (int, optional): rows of the linear df head
            (``linear``). Defaults to None.
        embed_dim (int, optional): columns of the linear df head
            (``linear``). Defaults to None.
        compact_subset (bool): with a class subset, return scores over the
            subset only (labels are subset positions); False: scores over
            all classes with exact zeros outside the subset. Defaults to
            False.
        loss (dict): config of the loss, default type
            :class:`~drm_mm.models.losses.DualRiskLoss` (``DRMClassifier``
            passes its ``loss`` here). Defaults to ``dict(type=
            'DualRiskLoss')``.
        init_cfg (dict, optional): MMEngine's initialisation config.
            Defaults to None.
    """

    def __init__(self,
                 beta: float = 0.5,
                 linear: bool = False,
                 num_classes: Optional[int] = None,
                 embed_dim: Optional[int] = None,
                 compact_subset: bool = False,
                 loss: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f'CLIPTextHead.beta must be in [0, 1], got '
                             f'{beta}.')
        self.beta = float(beta)
        self.linear = linear
        self.loss_module = build_in_scope(
            MODELS, dict(dict(type='DualRiskLoss'), **(loss or {})))
        if linear and self.loss_module.erm_prompts == 'cd':
            raise ValueError(
                "DRMClassifier: a linear df head (LP / LP-FT) trains on the "
                "df logits; use loss.erm_prompts='df'.")
        if linear and self.loss_module.erm != 'ce':
            raise ValueError(
                "DRMClassifier: a linear df head (LP / LP-FT) trains with "
                "loss.erm='ce'; the contrastive loss does not use it.")
        self.compact_subset = compact_subset
        self.class_subset: Optional[torch.Tensor] = None
        self.class_folding: Optional[List[torch.Tensor]] = None
        if linear:
            if not num_classes or not embed_dim:
                raise ValueError('CLIPTextHead(linear=True) needs num_classes '
                                 'and embed_dim (the classifier fills them).')
            self.weight = nn.Parameter(torch.zeros(num_classes, embed_dim))
            self.bias = nn.Parameter(torch.zeros(num_classes))

    def init_weights(self) -> None:
        """The linear head is initialised from text (see init_linear)."""

    @property
    def needs_df(self) -> bool:
        return self.beta > 0

    @property
    def needs_cd(self) -> bool:
        """Whether prediction uses the cd head."""
        return self.beta < 1

    @property
    def needs_descriptions(self) -> bool:
        """Whether prediction or the loss uses the cd prompts."""
        return self.needs_cd or self.loss_module.needs_cd

    @property
    def needs_soft_labels(self) -> bool:
        """Whether the loss uses p_c (λ > 0)."""
        return self.loss_module.uses_wrm

    @property
    def text_request(self) -> TextRequest:
        """The text a training step needs: the captions of the contrastive
        L_ERM and the prototypes of the CE L_ERM's and of L_WRM's logits
        (none for df logits of the linear head)."""
        lm = self.loss_module

        def prototypes(prompt_set: str) -> Optional[str]:
            return None if self.linear and prompt_set == 'df' else prompt_set

        erm = lm.erm if lm.uses_erm else None
        return TextRequest(
            captions=lm.erm_prompts if erm == 'contrastive' else None,
            erm=prototypes(lm.erm_prompts) if erm == 'ce' else None,
            wrm=prototypes(lm.wrm_prompts) if lm.uses_wrm else None)

    @torch.no_grad()
    def init_linear(self, prototypes: torch.Tensor) -> None:
        """Set the linear df head to the zero-shot df prototypes."""
        if not self.linear:
            raise RuntimeError('init_linear: the head is not linear.')
        if prototypes.shape != self.weight.shape:
            raise ValueError(f'init_linear: prototypes '
                             f'{tuple(prototypes.shape)} do not match the '
                             f'head {tuple(self.weight.shape)}.')
        self.weight.copy_(prototypes)
        self.bias.zero_()

    @staticmethod
    def logits(image_features: torch.Tensor, prototypes: torch.Tensor,
               logit_scale: torch.Tensor) -> torch.Tensor:
        """``logit_scale · image_features · prototypesᵀ``."""
        return logit_scale * image_features @ prototypes.t().to(
            image_features.dtype)

    def df_logits(self, image_features: torch.Tensor,
                  prototypes: Optional[torch.Tensor],
                  logit_scale: torch.Tensor) -> torch.Tensor:
        """z_df from the df prototypes, or the linear df head."""
        if self.linear:
            return self.logits(image_features, self.weight,
                               logit_scale) + self.bias
        if prototypes is None:
            raise ValueError('df prototypes are needed for z_df.')
        return self.logits(image_features, prototypes, logit_scale)

    def loss(self, image_features: torch.Tensor,
             text: Dict[str, torch.Tensor], labels: torch.Tensor,
             soft_labels: Optional[torch.Tensor],
             logit_scale: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The loss of a batch from its features and the text of
        :attr:`text_request`.

        Args:
            image_features (torch.Tensor): L2-normalised ``(N, D)``.
            text (dict): ``'caption'`` embeddings and ``'df'`` / ``'cd'``
                prototypes, as the request names them.
            labels (torch.Tensor): class indices ``(N, )``.
            soft_labels (torch.Tensor, optional): p_c ``(N, C)`` for L_WRM.
            logit_scale (torch.Tensor): the clamped training scale.
        """
        lm = self.loss_module

        def logits(prompt_set: str) -> torch.Tensor:
            if prompt_set == 'df':
                return self.df_logits(image_features, text.get('df'),
                                      logit_scale)
            return self.logits(image_features, text['cd'], logit_scale)

        ce = lm.uses_erm and lm.erm == 'ce'
        return lm(labels=labels,
                  z_erm=logits(lm.erm_prompts) if ce else None,
                  z_wrm=logits(lm.wrm_prompts) if lm.uses_wrm else None,
                  soft_labels=soft_labels, image_features=image_features,
                  caption_features=text.get('caption'),
                  logit_scale=logit_scale)

    def forward(self, image_features: torch.Tensor,
                df_prototypes: Optional[torch.Tensor],
                cd_prototypes: Optional[torch.Tensor],
                logit_scale: torch.Tensor
                ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """``(z_df, z_cd)``; an entry is None when its prototypes are."""
        z_df = None
        if df_prototypes is not None or self.linear:
            z_df = self.df_logits(image_features, df_prototypes, logit_scale)
        z_cd = None if cd_prototypes is None else self.logits(
            image_features, cd_prototypes, logit_scale)
        return z_df, z_cd

    def predict(self, z_df: Optional[torch.Tensor],
                z_cd: Optional[torch.Tensor],
                data_samples: Optional[list] = None) -> list:
        """Data samples with ``pred_score`` (the β mixture), ``pred_label``
        and each head's probabilities as ``df_score`` / ``cd_score`` (a
        head that β leaves out has none)."""
        from mmpretrain.structures import DataSample
        scores = self.predict_scores(z_df, z_cd).detach()
        labels = scores.argmax(dim=1, keepdim=True)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(scores.size(0))]
        heads = {name: self._probs(z).detach()
                 for name, z in (('df_score', z_df), ('cd_score', z_cd))
                 if z is not None}
        for i, (sample, score, label) in enumerate(
                zip(data_samples, scores, labels)):
            sample.set_pred_score(score).set_pred_label(label)
            for name, probs in heads.items():
                sample.set_field(probs[i], name, dtype=torch.Tensor)
        return data_samples

    def set_class_subset(self,
                         indices: Optional[Sequence[int]] = None) -> None:
        """Restrict predictions to ``indices`` (None: all classes)."""
        if indices is None:
            self.class_subset = None
            return
        subset = torch.as_tensor(list(indices), dtype=torch.long)
        if subset.numel() == 0 or subset.dim() != 1:
            raise ValueError('set_class_subset: give a non-empty list of '
                             'class indices or None.')
        if len(torch.unique(subset)) != subset.numel():
            raise ValueError('set_class_subset: indices repeat.')
        self.class_subset = subset

    def set_class_folding(
            self, folding: Optional[Sequence[Sequence[int]]] = None) -> None:
        """Fold each head's logits into target classes before its softmax
        (ObjectNet): target ``k`` takes the max logit over ``folding[k]``.
        None restores all classes."""
        if folding is None:
            self.class_folding = None
            return
        groups = [torch.as_tensor(list(g), dtype=torch.long) for g in folding]
        if not groups or any(g.numel() == 0 or g.dim() != 1 for g in groups):
            raise ValueError('set_class_folding: give a non-empty list of '
                             'non-empty class-index lists or None.')
        self.class_folding = groups

    def _fold(self, logits: torch.Tensor) -> torch.Tensor:
        top = max(int(g.max()) for g in self.class_folding)
        if top >= logits.size(1):
            raise ValueError(f'class folding refers to class {top} but there '
                             f'are {logits.size(1)} classes.')
        return torch.stack([logits[:, g.to(logits.device)].max(dim=1).values
                            for g in self.class_folding], dim=1)

    def _probs(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.class_folding is not None:
            if self.class_subset is not None:
                raise ValueError('a class subset and a class folding are set '
                                 'at once; use one.')
            return F.softmax(self._fold(logits), dim=1)
        if self.class_subset is None:
            return F.softmax(logits, dim=1)
        subset = self.class_subset.to(logits.device)
        if int(subset.max()) >= logits.size(1) or int(subset.min()) < 0:
            raise ValueError(f'class subset indices out of range for '
                             f'{logits.size(1)} classes.')
        if self.compact_subset:
            return F.softmax(logits[:, subset], dim=1)
        masked = torch.full_like(logits, float('-inf'))
        masked[:, subset] = logits[:, subset]
        return F.softmax(masked, dim=1)

    def predict_scores(self, z_df: Optional[torch.Tensor],
                       z_cd: Optional[torch.Tensor]) -> torch.Tensor:
        """Dual inference ``β·softmax(z_df) + (1−β)·softmax(z_cd)``."""
        if self.beta == 1.0:
            if z_df is None:
                raise ValueError('beta=1 needs z_df.')
            return self._probs(z_df)
        if self.beta == 0.0:
            if z_cd is None:
                raise ValueError('beta=0 needs z_cd.')
            return self._probs(z_cd)
        if z_df is None or z_cd is None:
            raise ValueError(f'beta={self.beta} mixes both heads; z_df and '
                             f'z_cd are needed.')
        return self.beta * self._probs(z_df) + (1 - self.beta) * self._probs(
            z_cd)
