"""Zero-shot dual-prompt classification with your own class names.

No training: CLIP's default-prompt head (``templates``) and concept-
description head (``descriptions``) are built for the given classes and
mixed with β, exactly as a fine-tuned DRM model predicts.
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

from mmengine.config import Config


def _descriptions(descriptions: Union[None, str, Dict[str, List[str]]],
                  classnames: Sequence[str]) -> Optional[dict]:
    if descriptions is None or isinstance(descriptions, dict):
        return descriptions
    if not osp.isfile(descriptions):
        raise FileNotFoundError(
            f'descriptions file {descriptions!r} does not exist; pass a JSON '
            f'file {{class name: [description, ...]}} or a dict.')
    with open(descriptions, encoding='utf-8') as f:
        return json.load(f)


def zero_shot_classifier(classnames: Sequence[str],
                         descriptions: Union[None, str,
                                             Dict[str, List[str]]] = None,
                         templates: Optional[Sequence[str]] = None,
                         config: Union[str, Config] = 'drm/vitb16_iwildcam.py',
                         clip: Optional[dict] = None,
                         beta: Optional[float] = None,
                         checkpoint: Optional[str] = None,
                         device: Optional[str] = None):
    """A DRM classifier for ``classnames`` that runs without training.

    Args:
        classnames: your class names, in label order.
        descriptions: ``{class name: [core visual description, ...]}`` (or a
            JSON file of it) for the cd head; None: df head only (β = 1).
        templates: df prompt templates with ``{c}`` (default
            ``['a photo of a {c}.']``).
        config: a drm_mm config name (``get_config_path``), path or Config;
            it gives the architecture and test pipeline.
        clip: overrides of ``model.clip`` (e.g. ``dict(model_name='ViT-L-14',
            pretrained='openai')`` or a local weights file).
        beta: the mixture weight (default: the config's, 1 without
            descriptions).
        checkpoint: optional fine-tuned DRM checkpoint to load first.
        device: where the model goes.

    Returns:
        The model, ready for ``mmpretrain.inference_model(model, image)`` or
        ``ImageClassificationInferencer(model)``; the class names the
        inferencers show are ``classnames``.
    """
    from mmpretrain import get_model
    from modelindex.models.Model import Model
    from modelindex.models.Result import Result

    from drm_mm.utils import get_config_path
    names = [str(c) for c in classnames]
    if not names:
        raise ValueError('zero_shot_classifier: give at least one class name.')
    if not isinstance(config, Config):
        path = config if osp.isfile(config) else get_config_path(config)
        config = Config.fromfile(path)
    table = _descriptions(descriptions, names)
    model = dict(classnames=names,
                 templates=list(templates or ['a photo of a {c}.']))
    if table is None:
        model['descriptions'] = None
        model['head'] = dict(beta=1.0)
        model['loss'] = dict(wrm_weight=0.0)
    else:
        missing = [c for c in names if c not in table]
        if missing:
            raise KeyError(f'zero_shot_classifier: descriptions lack the '
                           f'classes {missing[:5]}; give every class at '
                           f'least one description.')
        model['descriptions'] = dict(
            {c: list(table[c]) for c in names}, _delete_=True)
    if beta is not None:
        model['head'] = dict(beta=float(beta))
    if clip:
        model['clip'] = dict(clip)
    config.merge_from_dict(dict(model=model))
    model = get_model(config, pretrained=checkpoint or False)
    if not checkpoint:  # the pretrained CLIP of ``clip`` / the config
        model.init_weights()
    if device is not None:
        model.to(device)
    # what mmpretrain.inference_model reads to pick the inferencer
    model._metainfo = Model(
        name='drm_zero_shot', config=config,
        results=[Result(task='Image Classification', dataset='custom',
                        metrics={})])
    return model
