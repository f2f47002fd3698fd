"""Late-bound references from dataset configs to top-level config keys.

MMEngine evaluates a base config before its child, so a child that sets
``data_root = '/my/wilds'`` changes the top-level key but not the splits the
base already built from it. drm_mm's dataset bases therefore write
``data_root='${data_root}'`` (or ``'${data_root}/imagenet'``) in every split
and :func:`resolve_config_refs` fills the references in when the runner is
built (:class:`~drm_mm.engine.runners.DRMRunner` calls it), after the child
and every ``--cfg-options`` are merged. One key then moves every split::

    data_root = '/my/wilds'                     # in a child config
    --cfg-options data_root=/my/wilds           # or on the command line

A value that is exactly ``'${key}'`` takes the key's value whatever its type
(e.g. ``classes='${classes}'``: a list of class names, or None when the
config sets ``classes = None``); a reference inside a longer string is
replaced by the value's text. A key the config lacks is an error naming it. Only the ``train_dataloader``,
``val_dataloader`` and ``test_dataloader`` trees are resolved; a split that
sets its own value (no reference) keeps it.
"""
import copy
import os
import re
from typing import Any, MutableMapping

__all__ = ['resolve_config_refs', 'has_config_refs', 'check_batch_sizes',
           'DATALOADER_KEYS']

#: The config trees whose references are resolved.
DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')

_REF = re.compile(r'\$\{([A-Za-z_][A-Za-z0-9_]*)\}')


def _value_of(cfg: MutableMapping, name: str, where: str, text: str,
              allow_none: bool = False) -> Any:
    value = cfg.get(name)
    if value is None and not (allow_none and name in cfg):
        raise ValueError(
            f'{where}={text!r} refers to the config key {name!r}, which is '
            f'not set: add `{name} = ...` to your config or pass '
            f'`--cfg-options {name}=...`.')
    return value


def _resolve(node: Any, cfg: MutableMapping, where: str) -> Any:
    if isinstance(node, str):
        whole = _REF.fullmatch(node)
        if whole:
            return copy.deepcopy(_value_of(cfg, whole.group(1), where, node,
                                           allow_none=True))

        def text(match: 're.Match') -> str:
            value = _value_of(cfg, match.group(1), where, node)
            if not isinstance(value, (str, os.PathLike)):
                raise ValueError(
                    f'{where}={node!r}: the config key {match.group(1)!r} '
                    f'is a {type(value).__name__}, not a path; set it to a '
                    f'string.')
            return os.fspath(value)

        return _REF.sub(text, node)
    if isinstance(node, MutableMapping):
        for key in list(node):
            node[key] = _resolve(node[key], cfg, f'{where}.{key}')
        return node
    if isinstance(node, list):
        return [_resolve(v, cfg, f'{where}[{i}]') for i, v in enumerate(node)]
    if isinstance(node, tuple):
        return tuple(_resolve(v, cfg, f'{where}[{i}]')
                     for i, v in enumerate(node))
    return node


def has_config_refs(node: Any) -> bool:
    """Whether ``node`` (a config tree) still holds a ``${key}`` reference."""
    if isinstance(node, str):
        return _REF.search(node) is not None
    if isinstance(node, MutableMapping):
        return any(has_config_refs(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(has_config_refs(v) for v in node)
    return False


def resolve_config_refs(cfg: MutableMapping) -> MutableMapping:
    """Replace the ``${key}`` references of the dataloader configs of
    ``cfg`` by the top-level values of ``cfg``, in place.

    Args:
        cfg (Config | dict): a merged config (child and ``--cfg-options``
            applied).

    Returns:
        Config | dict: ``cfg`` itself.

    Raises:
        ValueError: a reference names a key the config does not set (the
            message names the dataloader entry and the key to set), or a
            ``batch_size`` is not a positive int.
    """
    for field in DATALOADER_KEYS:
        loader = cfg.get(field)
        if loader is not None:
            cfg[field] = _resolve(loader, cfg, field)
            check_batch_sizes(cfg[field], field)
    return cfg


def check_batch_sizes(loader: Any, where: str) -> None:
    """Raise when a dataloader config (or one of its named sets) has a
    ``batch_size`` that is not a positive int (torch's own message names
    no config key)."""
    if not isinstance(loader, MutableMapping):
        return
    if 'batch_size' in loader:
        size = loader['batch_size']
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(
                f'{where}.batch_size={size!r}: must be a positive int '
                f'(images per GPU); set {where}.batch_size in the config or '
                f'with --cfg-options {where}.batch_size=32.')
    for key, value in loader.items():
        if isinstance(value, MutableMapping) and 'dataset' in value \
                and key != 'dataset':
            check_batch_sizes(value, f'{where}.{key}')


#: How to point every split at another folder (for "not found" errors).
DATA_ROOT_HINT = ('Set the top-level `data_root` of the config (every split '
                  'follows it) or pass `--cfg-options data_root=/path`.')


def check_resolved(owner: str, key: str, value: Any) -> None:
    """Raise when a dataset argument still holds a ``${key}`` reference
    (the dataset was built from a config that did not go through
    :class:`~drm_mm.engine.runners.DRMRunner` or
    :func:`resolve_config_refs`)."""
    if has_config_refs(value):
        raise ValueError(
            f'{owner}: {key}={value!r} is an unresolved config reference; '
            f'build the datasets through the runner (runner_type='
            f'"drm_mm.DRMRunner") or call drm_mm.datasets.'
            f'resolve_config_refs(cfg) before building them.')
