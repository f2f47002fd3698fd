"""Which pipeline the soft-label pass uses: one, stated once.

The pass labels the training set through test-time transforms. Unless
``SoftLabelCacheHook(pipeline=[...])`` states them, they are those of the
ID validation set: the first named set of ``val_dataloader`` (or its
``dataset``), else of ``test_dataloader`` when the config has no
validation. Every other evaluated set (the named sets of both loaders,
each merged with its loader's ``dataset`` defaults as the multi-set loops
merge them) must use the same pipeline; a config whose sets disagree gets
a one-line error naming the keys and the fix, never a silent choice. A
multi-set loader's top-level ``dataset`` holds defaults for MMPretrain's
single-set APIs and is no evaluated set: it is not compared.
"""
from typing import Any, List, Optional, Tuple

from drm_mm.evaluation.loops.multi_dataset_base import split_dataloader_cfg

_LOADERS = ('val_dataloader', 'test_dataloader')


def _dataset_pipeline(dataset: Any) -> Optional[list]:
    """The pipeline of a dataset config, looking inside wrappers
    (``dataset=`` / ``datasets=[...]``, first part with one)."""
    if not isinstance(dataset, dict):
        return None
    if isinstance(dataset.get('pipeline'), (list, tuple)):
        return list(dataset['pipeline'])
    inner = dataset.get('dataset')
    parts = [inner] if inner is not None else list(
        dataset.get('datasets') or [])
    for part in parts:
        found = _dataset_pipeline(part)
        if found is not None:
            return found
    return None


def evaluated_pipelines(cfg: Any) -> List[Tuple[str, list]]:
    """``[(config key, pipeline)]`` of every evaluated set, validation
    first, in config order."""
    found = []
    for loader in _LOADERS:
        node = cfg.get(loader) if cfg is not None else None
        if not isinstance(node, dict):
            continue
        named = any(isinstance(v, dict) and 'dataset' in v
                    for k, v in node.items() if k != 'dataset')
        if named:
            sets, _ = split_dataloader_cfg(dict(node), loader)
            items = [(f'{loader}.{name}.dataset.pipeline', value['dataset'])
                     for name, value in sets.items()
                     if isinstance(value, dict)]
        else:
            items = [(f'{loader}.dataset.pipeline', node.get('dataset'))]
        for key, dataset in items:
            pipeline = _dataset_pipeline(dataset)
            if pipeline is not None:
                found.append((key, pipeline))
    return found


def soft_label_pipeline(cfg: Any) -> Tuple[list, str]:
    """The pipeline of the soft-label pass when the hook states none, and
    the config key it comes from (see the module doc)."""
    found = evaluated_pipelines(cfg)
    if not found:
        raise ValueError(
            'SoftLabelCacheHook: no val_dataloader / test_dataloader '
            'pipeline in the config; set pipeline=[...] (the test-time '
            'transforms) of SoftLabelCacheHook in custom_hooks.')
    key, pipeline = found[0]
    other = [k for k, p in found[1:] if p != pipeline]
    if other:
        raise ValueError(
            f'SoftLabelCacheHook: the soft-label pass uses {key} (the ID '
            f'validation set), but {", ".join(other)} differ from it; make '
            f'the sets agree, or state the pass\'s transforms with '
            f'pipeline=[...] of SoftLabelCacheHook in custom_hooks.')
    return pipeline, key
