"""Reading, checking and writing model state dicts.

Shared by WiSE-FT (:mod:`drm_mm.engine.wise_ft`), model soups
(:mod:`drm_mm.engine.model_soups`) and the runner, which import it for
:class:`CheckpointMismatchError` and the compatibility check without
importing each other.
"""
import io
import os
import os.path as osp
import pickle
import zipfile
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional

import torch
from torch import nn

from .safe_checkpoint import load_trusted_checkpoint

__all__ = [
    'CheckpointMismatchError', 'CheckpointReadError', 'CheckpointWriteError',
    'state_dict_of',
    'load_state_dict_file', 'is_float_tensor', 'check_compatible',
    'make_checkpoint', 'save_checkpoint', 'unwrap_model', 'model_state_dict',
    'load_weights', 'missing_storage_records'
]


class CheckpointMismatchError(ValueError):
    """Two state dicts do not come from the same architecture / config."""


class CheckpointReadError(ValueError):
    """A checkpoint file exists but cannot be read (truncated, corrupt)."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (nothing is left behind)."""


# ---------------------------------------------------------------- reading
def state_dict_of(checkpoint: Mapping, source: str) -> 'OrderedDict':
    """The model state dict inside ``checkpoint``.

    Accepts an MMEngine checkpoint (``{'state_dict': ..., 'meta': ...}``) or
    a bare state dict; a ``module.`` prefix on every key (a DDP-wrapped
    model saved as is) is removed, as MMEngine does when loading.

    Args:
        checkpoint: what ``torch.load`` returned.
        source: where it came from, for error messages (a path).
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointMismatchError(
            f'{source}: expected a checkpoint dict, got '
            f'{type(checkpoint).__name__}. Save checkpoints with MMEngine '
            f'(or as {{"state_dict": model.state_dict()}}).')
    state = checkpoint.get('state_dict')
    if state is None:
        if checkpoint and all(
                isinstance(v, torch.Tensor) for v in checkpoint.values()):
            state = checkpoint
        else:
            raise CheckpointMismatchError(
                f'{source}: no "state_dict" entry and not a bare state dict '
                f'(top-level keys: {sorted(map(str, checkpoint))[:10]}). '
                f'Pass a checkpoint written by tools/train.py.')
    if not isinstance(state, Mapping) or not state:
        raise CheckpointMismatchError(
            f'{source}: "state_dict" is empty or not a mapping.')
    keys = list(state)
    if all(isinstance(k, str) and k.startswith('module.') for k in keys):
        return OrderedDict((k[len('module.'):], v) for k, v in state.items())
    return OrderedDict(state)


def load_state_dict_file(path: str) -> 'OrderedDict':
    """Read a checkpoint with the safe loader and return its state dict."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist.')
    try:
        checkpoint = load_trusted_checkpoint(path)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:
        text = str(err).strip()
        if path in text:  # the safe loader's refusals name the file
            raise
        first = text.splitlines()[0] if text else type(err).__name__
        raise CheckpointReadError(
            f'checkpoint {path!r} cannot be read ({first}); it is truncated '
            f'or corrupt: pass another file or re-save it.') from err
    return state_dict_of(checkpoint, repr(path))


# ---------------------------------------------------------------- checking
class _Inert:
    """Stands for every object of a pickle read by
    :func:`missing_storage_records`: accepts any construction and any
    state, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> '_Inert':
        return _Inert()

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _StorageKeys(pickle.Unpickler):
    """Reads a ``torch.save`` ``data.pkl`` only for its storage keys: every
    global resolves to :class:`_Inert` (no code of the file runs) and each
    persistent id ``('storage', type, key, location, numel)`` is
    recorded."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.keys: List[str] = []

    def find_class(self, module: str, name: str) -> type:
        return _Inert

    def persistent_load(self, pid: Any) -> '_Inert':
        if isinstance(pid, tuple) and len(pid) > 2 and pid[0] == 'storage':
            self.keys.append(str(pid[2]))
        return _Inert()


def missing_storage_records(path: str) -> List[str]:
    """Storage keys that ``data.pkl`` of the ``torch.save`` zip ``path``
    refers to but the zip has no ``data/<key>`` record for (empty when the
    file is complete). The zip's CRCs cannot show a record removed whole.

    A file that is not such a zip, or whose pickle cannot be read, gives
    ``['data.pkl']``.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pickles = [n for n in names if n.endswith('/data.pkl')
                       or n == 'data.pkl']
            if len(pickles) != 1:
                return ['data.pkl']
            prefix = pickles[0][:-len('data.pkl')]
            reader = _StorageKeys(archive.read(pickles[0]))
            reader.load()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, TypeError,
            AttributeError, IndexError, KeyError, RecursionError,
            pickle.UnpicklingError, MemoryError):
        return ['data.pkl']
    present = set(names)
    return [key for key in dict.fromkeys(reader.keys)
            if f'{prefix}data/{key}' not in present]


def is_float_tensor(value: Any) -> bool:
    """True for the entries that are interpolated / averaged."""
    return isinstance(value, torch.Tensor) and (value.is_floating_point()
                                                or value.is_complex())


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f'{str(value.dtype).replace("torch.", "")} ' \
               f'{tuple(value.shape)}'
    return type(value).__name__


def check_compatible(reference: Mapping, other: Mapping,
                     reference_name: str, other_name: str) -> None:
    """Raise :class:`CheckpointMismatchError` unless both state dicts have the
    same keys, shapes and kinds (floating point or not).

    The message names the first mismatching key (in ``other``'s order, then
    the keys only ``reference`` has) and how many keys differ.
    """
    only_other = [k for k in other if k not in reference]
    only_ref = [k for k in reference if k not in other]
    if only_other or only_ref:
        if only_other:
            first = (f'key {only_other[0]!r} is in {other_name} but not in '
                     f'{reference_name}')
        else:
            first = (f'key {only_ref[0]!r} is in {reference_name} but not '
                     f'in {other_name}')
        raise CheckpointMismatchError(
            f'{other_name} and {reference_name} have different '
            f'architectures: {first} ({len(only_other)} key(s) only in '
            f'{other_name}, {len(only_ref)} only in {reference_name}). Use '
            f'checkpoints of the same config.')
    for key, value in other.items():
        ref = reference[key]
        ref_tensor = isinstance(ref, torch.Tensor)
        kind_differs = (ref_tensor != isinstance(value, torch.Tensor)
                        or is_float_tensor(ref) != is_float_tensor(value))
        if kind_differs or (ref_tensor and ref.shape != value.shape):
            raise CheckpointMismatchError(
                f'{other_name} and {reference_name} have different '
                f'architectures: key {key!r} is {_describe(value)} in '
                f'{other_name} but {_describe(ref)} in {reference_name}. '
                f'Use checkpoints of the same config.')


# ---------------------------------------------------------------- writing
def make_checkpoint(state_dict: Mapping,
                    meta: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """An MMEngine-style checkpoint dict, loadable by ``tools/test.py``."""
    return {'state_dict': OrderedDict(state_dict), 'meta': dict(meta or {})}


def save_checkpoint(checkpoint: Dict[str, Any], path: str) -> None:
    """``torch.save`` to ``<path>.tmp`` then rename, so a crash never leaves
    a truncated file at ``path``; a failed write (a full disk, ``path`` a
    folder) removes the ``.tmp`` and raises :class:`CheckpointWriteError`
    with one line naming the file."""
    if osp.isdir(path):
        raise CheckpointWriteError(
            f'cannot write the checkpoint {path}: it is a directory; pass a '
            'file path (e.g. ending in .pth).')
    tmp = f'{path}.tmp'
    try:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        if osp.isfile(tmp):
            os.remove(tmp)
        lines = str(err).strip().splitlines()
        first = lines[0][:200] if lines else type(err).__name__
        raise CheckpointWriteError(
            f'cannot write the checkpoint {path} ({type(err).__name__}: '
            f'{first}); free disk space or choose another path.') from None


# ---------------------------------------------------------------- model
def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a DDP / FSDP wrapper (or the model itself)."""
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def model_state_dict(model: nn.Module) -> 'OrderedDict':
    """A CPU copy of the (unwrapped) model's state dict: it shares no memory
    with the live weights, so loading other weights never changes it."""
    return OrderedDict(
        (k, v.detach().cpu().clone() if isinstance(v, torch.Tensor) else v)
        for k, v in unwrap_model(model).state_dict().items())


def load_weights(model: nn.Module, state_dict: Mapping,
                 source: str = 'state dict') -> None:
    """Load ``state_dict`` strictly into ``model`` and drop any cached
    class prototypes, so the next evaluation rebuilds the text-fed heads."""
    inner = unwrap_model(model)
    check_compatible(inner.state_dict(), state_dict, 'the model of the config',
                     source)
    inner.load_state_dict(state_dict, strict=True)
    invalidate = getattr(inner, 'invalidate_prototypes', None)
    if callable(invalidate):
        invalidate()
