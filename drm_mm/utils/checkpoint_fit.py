"""Refuse a checkpoint that does not fit the model, on every loading path.

MMEngine's ``load_checkpoint`` (used by MMPretrain's ``get_model``, the
inferencers and ``init_cfg=dict(type='Pretrained')``) loads non-strictly:
missing, unexpected or differently shaped keys are only logged and the
model then predicts with the weights it was built with. drm_mm's models
register :func:`refuse_unfit_state_dict` as a ``load_state_dict`` pre-hook
(a public ``torch.nn.Module`` extension point that MMEngine's loader runs
too), so every path raises the runner's :class:`CheckpointMismatchError`
before any weight changes.

The error names the file: the checkpoint loaders of
:mod:`drm_mm.utils.safe_checkpoint` record it in the state dict's metadata
(:func:`tag_source`).
"""
from collections import OrderedDict
from typing import Any, List, Mapping, Optional

import torch
from torch import nn

from .checkpoint_utils import CheckpointMismatchError

__all__ = ['CheckpointMismatchError', 'refuse_unfit_state_dict',
           'tag_source', 'mismatch_message']

#: Key of the root metadata entry that records the checkpoint's file.
SOURCE_KEY = 'drm_mm_source'


def tag_source(checkpoint: Any, source: str) -> Any:
    """Record ``source`` (a path or URL) in the metadata of the state dict
    of ``checkpoint`` (MMEngine keeps ``_metadata`` when it loads), so that
    a mismatch names the file. Returns ``checkpoint``."""
    if not isinstance(checkpoint, dict):
        return checkpoint
    holder = checkpoint if isinstance(checkpoint.get('state_dict'),
                                      dict) else None
    state = checkpoint['state_dict'] if holder is not None else checkpoint
    metadata = getattr(state, '_metadata', None)
    if metadata is None:
        if holder is None:
            return checkpoint  # a bare dict cannot carry metadata
        state = OrderedDict(state)
        metadata = state._metadata = OrderedDict()
        holder['state_dict'] = state
    root = metadata.get('')
    metadata[''] = dict(root or {}, **{SOURCE_KEY: str(source)})
    return checkpoint


def mismatch_message(source: Optional[str], detail: str) -> str:
    """The one-line error of a checkpoint that does not fit the model (the
    same on the runner, ``get_model``, inferencer and demo paths)."""
    what = (f'checkpoint {source!r}' if source else
            'the state dict being loaded')
    return (f'{what} does not fit the model of this config ({detail}). It '
            f'was written for another architecture (model.clip.model_name, '
            f'head.linear, ...): load a checkpoint of the same model config, '
            f'or unset load_from / the checkpoint argument.')


def _shape(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f'{tuple(value.shape)}'
    return type(value).__name__


def _differences(module: nn.Module, state_dict: Mapping,
                 prefix: str) -> List[str]:
    expected = {f'{prefix}{k}': v for k, v in module.state_dict().items()}
    given = [k for k in state_dict if k.startswith(prefix)]
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in given if k not in expected]
    parts = []
    if missing:
        parts.append(f'{len(missing)} missing key(s), first {missing[:3]}')
    if unexpected:
        parts.append(f'{len(unexpected)} unexpected key(s), first '
                     f'{unexpected[:3]}')
    for key in given:
        if key in expected and isinstance(expected[key], torch.Tensor) and (
                not isinstance(state_dict[key], torch.Tensor)
                or state_dict[key].shape != expected[key].shape):
            parts.append(f'key {key!r} is {_shape(state_dict[key])} in the '
                         f'checkpoint but {_shape(expected[key])} in the '
                         f'model')
            break
    return parts


def _sharded(module: nn.Module) -> bool:
    """Whether FSDP shards part of ``module`` (its state dict then depends
    on the strategy's state-dict type; the strategy checks the load)."""
    from torch.distributed.fsdp import FullyShardedDataParallel
    return any(isinstance(m, FullyShardedDataParallel)
               for m in module.modules())


def refuse_unfit_state_dict(module: nn.Module, state_dict: Mapping,
                            prefix: str, local_metadata: Mapping,
                            strict: bool, *args) -> None:
    """``load_state_dict`` pre-hook: raise :class:`CheckpointMismatchError`
    unless the keys of ``state_dict`` under ``prefix`` are exactly the
    module's, with the same shapes.

    torch and MMEngine both pass ``strict=True`` to this hook whatever the
    caller asked for, so a partial load into the module is refused too; to
    load part of the weights on purpose, load into the submodule that owns
    them (e.g. ``model.clip.model.load_state_dict(...)``). Skipped under
    FSDP, whose strategy checks its own loads.
    """
    if _sharded(module):  # its state_dict() would gather the shards
        return
    parts = _differences(module, state_dict, prefix)
    if parts:
        source = (local_metadata or {}).get(SOURCE_KEY)
        if source is None:
            root = getattr(state_dict, '_metadata', None) or {}
            source = (root.get('') or {}).get(SOURCE_KEY)
        raise CheckpointMismatchError(
            mismatch_message(source, '; '.join(parts)))
