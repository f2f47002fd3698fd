"""Load checkpoints with ``weights_only=True`` and a tight allowlist.

torch >= 2.6 loads with ``weights_only=True`` by default and MMEngine's own
checkpoints (message hub ``HistoryBuffer`` objects holding numpy arrays)
then fail to load. Instead of switching ``weights_only`` off (which would
execute arbitrary pickled code from any file), we allow exactly the types
MMEngine writes, inside a context manager, and nothing else: a crafted
pickle is still refused.

Every load passes ``weights_only=True`` explicitly, so the environment
switch ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (which only changes torch's
*default*) cannot turn it off. :func:`register_safe_loaders` (run by
``import drm_mm``) installs these loaders as MMEngine's ``CheckpointLoader``
schemes for local files and http(s) URLs, so ``load_from``, ``resume``,
``init_cfg=dict(type='Pretrained')``, MMPretrain's ``tools/test.py``,
``get_model(..., pretrained=...)`` and the inferencers load safely too.

Checkpoints of other projects may hold other harmless types (an
``argparse.Namespace`` of arguments, a ``pathlib.PosixPath`` in ``meta``).
Name the classes you trust, and only those are added to the allowlist:

* for the process: the environment variable
  ``DRM_MM_SAFE_GLOBALS='argparse.Namespace,pathlib.PosixPath'`` (read at
  every load);
* for one config: ``checkpoint_safe_globals = ['argparse.Namespace']``
  (read by ``DRMRunner`` / ``DRMFlexibleRunner`` and
  ``demo/image_demo.py``);
* for one call or block:
  ``with allow_checkpoint_globals('argparse.Namespace'):``.

See ``docs/safe_loading.md``.
"""
import contextlib
import importlib
import os
import os.path as osp
import pickle
import re
from typing import (Any, Callable, Iterable, Iterator, List, Optional,
                    Sequence, Union)

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray

HISTORY_STATS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` while unpickling: a HistoryBuffer
    pickles its statistic methods as ``getattr(HistoryBuffer, 'mean')``;
    any other attribute lookup is refused."""
    if obj is HistoryBuffer and name in HISTORY_STATS:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')


def _numpy_globals() -> list:
    """numpy reconstructors, under their numpy 1.x and 2.x module names."""
    allowed = [np.ndarray, np.dtype]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        allowed += [(_multiarray._reconstruct, f'{module}._reconstruct'),
                    (_multiarray.scalar, f'{module}.scalar')]
    allowed += [
        type(np.dtype(t)) for t in ('f2', 'f4', 'f8', 'i4', 'i8', 'u1', '?')
    ]
    return allowed


#: Environment variable: comma-separated classes allowed in every load.
SAFE_GLOBALS_ENV = 'DRM_MM_SAFE_GLOBALS'
#: Config key: classes allowed while a runner of that config loads.
SAFE_GLOBALS_KEY = 'checkpoint_safe_globals'
_NAME = re.compile(r'^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$')
#: Classes allowed by the enclosing allow_checkpoint_globals blocks.
_extra_stack: List[list] = []


def resolve_safe_globals(names: Union[str, Iterable[Union[str, type]]],
                         where: str) -> list:
    """The classes named by ``names`` (``'module.Class'`` strings, a comma-
    separated string, or classes). A name that is not an importable class
    raises a one-line ``ValueError`` naming ``where`` (the variable, key or
    call that gave it)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(',') if n.strip()]
    resolved = []
    for name in names:
        if isinstance(name, type):
            resolved.append(name)
            continue
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f'{where}: {name!r} is not a class name; give '
                f'"module.Class" names, e.g. "argparse.Namespace".')
        module, _, attr = name.rpartition('.')
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            raise ValueError(f'{where}: cannot import {name!r}; give the '
                             f'module and class, e.g. '
                             f'"pathlib.PosixPath".') from None
        if not isinstance(obj, type):
            raise ValueError(
                f'{where}: {name!r} is not a class (only classes can be '
                f'allowed: a function such as builtins.eval would let a file '
                f'run code).')
        resolved.append((obj, name) if obj.__module__ + '.' +
                        obj.__qualname__ != name else obj)
    return resolved


def _env_globals() -> list:
    value = os.environ.get(SAFE_GLOBALS_ENV, '')
    return resolve_safe_globals(value, SAFE_GLOBALS_ENV) if value else []


def allowed_globals(extra: Sequence = ()) -> list:
    """The globals an MMEngine checkpoint may contain, plus the classes of
    ``$DRM_MM_SAFE_GLOBALS``, of the enclosing
    :func:`allow_checkpoint_globals` blocks and ``extra`` (names or
    classes, e.g. a config's ``checkpoint_safe_globals``)."""
    allowed = _numpy_globals() + [
        HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'),
        (_history_buffer_getattr, '__builtin__.getattr')
    ]
    allowed += _env_globals()
    for block in _extra_stack:
        allowed += block
    if extra:
        allowed += resolve_safe_globals(extra, SAFE_GLOBALS_KEY)
    return allowed


@contextlib.contextmanager
def allow_checkpoint_globals(*names: Union[str, type]) -> Iterator[None]:
    """Allow the named classes (``'argparse.Namespace'`` or the class) in
    the checkpoints loaded inside the block, on every drm_mm / MMEngine
    loading path, in addition to the default allowlist::

        with allow_checkpoint_globals('argparse.Namespace'):
            model = get_model(cfg, pretrained='other_project.pth')
    """
    block = resolve_safe_globals(list(names), 'allow_checkpoint_globals')
    _extra_stack.append(block)
    try:
        yield
    finally:
        _extra_stack.remove(block)


def _default_and_stack() -> list:
    try:
        return allowed_globals()
    except ValueError:  # a bad $DRM_MM_SAFE_GLOBALS is reported elsewhere
        return []


def _refused_globals(source: Any) -> List[str]:
    """Globals of the file that are neither torch's nor on our allowlist."""
    if not isinstance(source, str) or not osp.isfile(source):
        return []
    try:
        with torch.serialization.safe_globals(_default_and_stack()):
            return list(
                torch.serialization.get_unsafe_globals_in_checkpoint(source))
    except Exception:  # noqa: BLE001 - only used to word the message
        return []


def refusal_reason(err: Exception, source: Any = None) -> str:
    """One line saying what torch's weights-only unpickler refused (the
    global's name), without torch's advice to switch ``weights_only`` off."""
    text = str(err)
    names = _refused_globals(source)
    if names:
        return f'global {", ".join(names[:3])} is not allowed'
    getattr_refusal = re.search(r'getattr\(.*?\) is not allowed', text)
    if getattr_refusal:
        return getattr_refusal.group(0)[:200]
    match = re.search(r'GLOBAL (\S+?)(?: was not| whose module)', text)
    if match:
        return f'global {match.group(1)} is not allowed'
    line = next((ln.strip() for ln in text.splitlines()
                 if ln.strip() and 'weights_only' not in ln), '')
    return line[:200] or type(err).__name__


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds objects outside the allowlist (maybe malicious)."""


def _how_to_allow(reason: str) -> str:
    """The way to allow the refused class(es), for the error message; none
    for functions (lower-case names such as ``builtins.eval``)."""
    names = re.findall(r'([\w.]+\.[A-Z]\w*)', reason.split(' is not ')[0])
    if not names:
        return ''
    listed = ','.join(sorted(set(names)))
    return (f' If you trust the file, allow the class: '
            f'{SAFE_GLOBALS_ENV}={listed!r} (process), {SAFE_GLOBALS_KEY}='
            f'{listed.split(",")!r} (config) or '
            f'drm_mm.utils.allow_checkpoint_globals(...) (one call); see '
            f'docs/safe_loading.md.')


@contextlib.contextmanager
def mmengine_checkpoint_globals(source: str = 'checkpoint',
                                path: Optional[str] = None,
                                extra: Sequence = ()) -> Iterator:
    """Allow MMEngine's checkpoint types (and ``extra`` classes, see
    :func:`allowed_globals`) for ``torch.load(weights_only=True)`` inside
    the block, and turn a refusal into a one-line error naming the refused
    global and how to allow a class one trusts."""
    with torch.serialization.safe_globals(allowed_globals(extra)):
        try:
            yield
        except pickle.UnpicklingError as err:
            reason = refusal_reason(err, path)
            raise UnsafeCheckpointError(
                f'Refused to load {source}: {reason} (neither torch weights '
                f'nor MMEngine checkpoints contain it). The file may be '
                f'corrupt or crafted to run code; drm_mm only loads '
                f'checkpoints as weights. Re-save the weights as plain '
                f'tensors with a trusted tool.{_how_to_allow(reason)}'
            ) from None


def load_trusted_checkpoint(filename: str,
                            map_location: Union[str, Callable, None] = 'cpu'
                            ) -> dict:
    """``torch.load`` an MMEngine/drm_mm checkpoint with the allowlist and
    ``weights_only=True`` passed explicitly (whatever the environment)."""
    with mmengine_checkpoint_globals(repr(filename), filename):
        return torch.load(filename, map_location=map_location,
                          weights_only=True)


def load_from_local_safe(filename: str, map_location=None) -> dict:
    """MMEngine ``CheckpointLoader`` scheme for local paths (replaces
    ``load_from_local``, which calls ``torch.load`` without
    ``weights_only``)."""
    from .checkpoint_fit import tag_source
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return tag_source(load_trusted_checkpoint(filename, map_location),
                      filename)


def load_from_http_safe(filename: str, map_location=None,
                        model_dir: Optional[str] = None) -> dict:
    """MMEngine ``CheckpointLoader`` scheme for http(s) URLs: download into
    torch's hub cache (rank 0 first) and load like a local file."""
    from mmengine.dist import barrier, get_dist_info
    rank, world_size = get_dist_info()
    if rank == 0:
        checkpoint = _load_url(filename, map_location, model_dir)
    if world_size > 1:
        barrier()
        if rank > 0:
            checkpoint = _load_url(filename, map_location, model_dir)
    from .checkpoint_fit import tag_source
    return tag_source(checkpoint, filename)


def _load_url(url: str, map_location, model_dir: Optional[str]) -> dict:
    from urllib.parse import urlparse
    hub_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    cached = osp.join(hub_dir, osp.basename(urlparse(url).path))
    with mmengine_checkpoint_globals(repr(url), cached):
        return torch.hub.load_state_dict_from_url(
            url, model_dir=model_dir, map_location=map_location,
            weights_only=True)


def register_safe_loaders() -> None:
    """Make MMEngine load local and http(s) checkpoints with
    :func:`load_trusted_checkpoint` (``import drm_mm`` calls this)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme('', load_from_local_safe, force=True)
    CheckpointLoader.register_scheme(('http://', 'https://'),
                                     load_from_http_safe, force=True)
