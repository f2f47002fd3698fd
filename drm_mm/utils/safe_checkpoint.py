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
"""
import contextlib
import os.path as osp
import pickle
import re
from typing import Any, Callable, Iterator, List, Optional, Union

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


def allowed_globals() -> list:
    """The globals an MMEngine checkpoint may contain."""
    return _numpy_globals() + [
        HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'),
        (_history_buffer_getattr, '__builtin__.getattr')
    ]


def _refused_globals(source: Any) -> List[str]:
    """Globals of the file that are neither torch's nor on our allowlist."""
    if not isinstance(source, str) or not osp.isfile(source):
        return []
    try:
        with torch.serialization.safe_globals(allowed_globals()):
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


@contextlib.contextmanager
def mmengine_checkpoint_globals(source: str = 'checkpoint',
                                path: Optional[str] = None) -> Iterator:
    """Allow MMEngine's checkpoint types for ``torch.load(weights_only=True)``
    inside the block, and turn a refusal into a one-line error naming the
    refused global."""
    with torch.serialization.safe_globals(allowed_globals()):
        try:
            yield
        except pickle.UnpicklingError as err:
            raise UnsafeCheckpointError(
                f'Refused to load {source}: {refusal_reason(err, path)} '
                f'(neither torch weights nor MMEngine checkpoints contain '
                f'it). The file may be corrupt or crafted to run code; '
                f'drm_mm only loads checkpoints as weights. Re-save the '
                f'weights as plain tensors with a trusted tool.') from None


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
