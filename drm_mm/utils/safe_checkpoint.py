"""Load MMEngine checkpoints with ``weights_only=True`` and a tight allowlist.

torch >= 2.6 loads with ``weights_only=True`` by default and MMEngine's own
checkpoints (message hub ``HistoryBuffer`` objects holding numpy arrays)
then fail to load. Instead of switching ``weights_only`` off (which would
execute arbitrary pickled code from any file), we allow exactly the types
MMEngine writes, inside a context manager, and nothing else: a crafted
pickle is still refused.
"""
import contextlib
import pickle
from typing import Any, Callable, Iterator, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray

_HISTORY_STATS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` while unpickling: a HistoryBuffer
    pickles its statistic methods as ``getattr(HistoryBuffer, 'mean')``;
    any other attribute lookup is refused."""
    if obj is HistoryBuffer and name in _HISTORY_STATS:
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


def _reason(err: Exception) -> str:
    """The informative line of torch's weights-only refusal."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if 'WeightsUnpickler error' in line or 'Unsupported' in line:
            return line.split('. Please use')[0][:300]
    return lines[0][:300] if lines else type(err).__name__


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds objects outside the allowlist (maybe malicious)."""


@contextlib.contextmanager
def mmengine_checkpoint_globals(source: str = 'checkpoint') -> Iterator:
    """Allow MMEngine's checkpoint types for ``torch.load(weights_only=True)``
    inside the block, and turn a refusal into a clear error."""
    with torch.serialization.safe_globals(allowed_globals()):
        try:
            yield
        except pickle.UnpicklingError as err:
            raise UnsafeCheckpointError(
                f'Refused to load {source}: it contains objects that '
                f'neither torch weights nor MMEngine checkpoints contain '
                f'({_reason(err)}). It may be corrupt or '
                f'crafted to run code. drm_mm never loads with '
                f'weights_only=False; re-save the weights as plain tensors '
                f'with a trusted tool.') from None


def load_trusted_checkpoint(filename: str,
                            map_location: Union[str, Callable] = 'cpu'
                            ) -> dict:
    """``torch.load`` an MMEngine/drm_mm checkpoint with the allowlist."""
    with mmengine_checkpoint_globals(repr(filename)):
        return torch.load(filename, map_location=map_location,
                          weights_only=True)
