"""Convert a released DRM checkpoint (a whole pickled module of the authors'
code, e.g. ``src.models.modeling.CLIPEncoder`` holding an OpenAI-layout CLIP)
into a drm_mm checkpoint for the matching config:

    python tools/model_converters/drm_release_to_drm_mm.py SRC.pt OUT.pth \
        [--config configs/drm/vitb16_iwildcam.py]

Nothing from the file is imported or run. A restricted unpickler gives every
class of the authors' code, torch.nn, torchvision, open_clip and PIL an inert
stand-in that only stores its pickled attributes, rebuilds tensors with
torch's own functions and refuses any other global with a one-line error.
From the object graph it takes the one CLIP module (a module with ``visual``
and ``transformer`` sub-modules and a ``logit_scale`` parameter), collects
its parameters and persistent buffers by name (the OpenAI CLIP layout, which
open_clip shares), casts floating tensors to float32 and writes
``{'state_dict': {'clip.model.<key>': tensor}, 'meta': {...}}``; the meta
records the activation the pickled modules use (``quick_gelu`` for OpenAI
weights), which the evaluating config must match
(``model.clip.force_quick_gelu``). With
``--config`` the keys and shapes are checked against the model the config
builds (built without pretrained weights).
"""
from __future__ import annotations

import _compat_pickle
import argparse
import builtins
import collections
import os.path as osp
import pickle
import re
import sys
import types
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

#: Modules whose classes (and functions) become inert stand-ins.
STAND_IN_PREFIXES = ('src.', 'clip_m.', 'clip.', 'open_clip.', 'torchvision.',
                     'PIL.', 'torch.nn.modules.', 'torch.nn.parallel.')
#: Exact globals that become stand-ins too.
STAND_IN_NAMES = {('functools', 'partial'), ('argparse', 'Namespace')}
#: Real functions / classes a tensor pickle needs (nothing else is real).
_TORCH_REBUILD = ('_rebuild_tensor', '_rebuild_tensor_v2',
                  '_rebuild_parameter', '_rebuild_parameter_with_state')
_SAFE_BUILTINS = ('set', 'frozenset', 'slice', 'complex', 'tuple', 'list',
                  'dict')
OPENAI_JIT_KEYS = ('input_resolution', 'context_length', 'vocab_size')
#: Parameter / buffer names of an OpenAI or open_clip CLIP.
_KEY = re.compile(r'[A-Za-z0-9_.]+')


class ReleaseCheckpointError(ValueError):
    """The file is not a DRM release checkpoint that can be converted."""


class StandIn:
    """Inert stand-in for a class of the pickled code: stores its pickled
    state and constructor arguments, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__['_stand_in_args'] = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and (
                state[0] is None or isinstance(state[0], dict)):
            state = dict(state[0] or {}, **(state[1] or {}))
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__['_stand_in_state'] = state


_stand_ins: Dict[Tuple[str, str], type] = {}


def stand_in(module: str, name: str) -> type:
    """The (cached) stand-in class for ``module.name``."""
    key = (module, name)
    if key not in _stand_ins:
        _stand_ins[key] = type(name.split('.')[-1], (StandIn, ), {
            '__module__': f'stand_in:{module}', '__qualname__': name})
    return _stand_ins[key]


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` for stand-ins only (old protocols)."""
    if not (isinstance(cls, type) and issubclass(cls, StandIn)
            and base is object):
        raise ReleaseCheckpointError(
            f'refusing copyreg._reconstructor({cls!r}, {base!r}): only '
            f'stand-in classes are rebuilt.')
    return object.__new__(cls)


def _rebuild_from_type_v2(func: Any, new_type: Any, args: tuple,
                          state: Any) -> Any:
    """torch's tensor-subclass rebuild, for plain tensors / parameters."""
    if func not in [getattr(torch._utils, n) for n in _TORCH_REBUILD] or \
            new_type not in (torch.Tensor, torch.nn.Parameter):
        raise ReleaseCheckpointError(
            f'refusing to rebuild a tensor of type {new_type!r} with '
            f'{func!r}.')
    from torch._tensor import _rebuild_from_type_v2 as rebuild
    return rebuild(func, new_type, args, state)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that maps code to stand-ins and allows only tensor
    rebuilding functions."""

    source = 'checkpoint'

    def find_class(self, module: str, name: str) -> Any:
        # protocol-2 pickles (torch.save) name Python 2 modules
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if module == 'torch._utils' and name in _TORCH_REBUILD:
            return getattr(torch._utils, name)
        if module == 'collections' and name == 'OrderedDict':
            return collections.OrderedDict
        if module == 'builtins' and name in _SAFE_BUILTINS:
            return getattr(builtins, name)
        if (module, name) in (('torch.nn.parameter', 'Parameter'),
                              ('torch._tensor', 'Tensor'),
                              ('torch', 'Tensor')):
            return torch.nn.Parameter if name == 'Parameter' else \
                torch.Tensor
        if module == 'torch._tensor' and name == '_rebuild_from_type_v2':
            return _rebuild_from_type_v2
        if module == 'torch' and isinstance(getattr(torch, name, None),
                                            (torch.dtype, )):
            return getattr(torch, name)
        if (module, name) in (('torch', 'device'), ('torch', 'Size')):
            return getattr(torch, name)
        if module == 'copyreg' and name == '_reconstructor':
            return _reconstructor
        if (module, name) in STAND_IN_NAMES or module.startswith(
                STAND_IN_PREFIXES) or module in ('clip', 'open_clip'):
            return stand_in(module, name)
        raise ReleaseCheckpointError(
            f'{self.source}: refusing to load the global {module}.{name}: it '
            f'is neither a tensor nor a module class of the DRM release, '
            f'and drm_mm never runs code from a checkpoint file.')


def _pickle_module(source: str) -> types.ModuleType:
    module = types.ModuleType('drm_release_pickle')
    unpickler = type('Unpickler', (RestrictedUnpickler, ),
                     {'source': source})
    module.Unpickler = unpickler
    module.load = lambda f, **kw: unpickler(f, **kw).load()
    module.__dict__['UnpicklingError'] = pickle.UnpicklingError
    return module


def load_release(path: str) -> Any:
    """The object graph of a release file, code replaced by stand-ins."""
    try:
        return torch.load(path, map_location='cpu', weights_only=False,
                          pickle_module=_pickle_module(path))
    except ReleaseCheckpointError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        raise ReleaseCheckpointError(
            f'{path}: not a readable torch checkpoint '
            f'({type(err).__name__}: {err}).') from None


def _children(obj: Any) -> List[Any]:
    if isinstance(obj, StandIn):
        return list(obj.__dict__.values())
    if isinstance(obj, dict):
        return list(obj.values())
    if isinstance(obj, (list, tuple)):
        return list(obj)
    return []


def _is_clip(obj: Any) -> bool:
    if not isinstance(obj, StandIn):
        return False
    modules = obj.__dict__.get('_modules') or {}
    params = obj.__dict__.get('_parameters') or {}
    return 'visual' in modules and 'transformer' in modules \
        and 'logit_scale' in params


def find_clip(root: Any, source: str) -> StandIn:
    """The one CLIP module in the object graph."""
    found, seen, stack = [], set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, torch.Tensor):
            continue
        seen.add(id(obj))
        if _is_clip(obj):
            found.append(obj)
            continue
        stack.extend(_children(obj))
    if len(found) != 1:
        raise ReleaseCheckpointError(
            f'{source}: expected one CLIP module (with visual, transformer '
            f'and logit_scale) in the pickled {type(root).__qualname__}, '
            f'found {len(found)}.')
    return found[0]


def activation_of(clip: StandIn) -> str:
    """``'quick_gelu'`` / ``'gelu'`` by the pickled activation classes of
    the CLIP (OpenAI weights use QuickGELU), ``'unknown'`` if none."""
    names, stack, seen = set(), [clip], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen or not isinstance(obj, StandIn):
            continue
        seen.add(id(obj))
        names.add(type(obj).__qualname__)
        stack.extend((obj.__dict__.get('_modules') or {}).values())
        stack.extend(v for v in obj.__dict__.values()
                     if isinstance(v, StandIn))
    if 'QuickGELU' in names:
        return 'quick_gelu'
    return 'gelu' if 'GELU' in names else 'unknown'


def module_state_dict(module: StandIn, prefix: str = ''
                      ) -> Dict[str, torch.Tensor]:
    """Parameters and persistent buffers of a stand-in nn.Module by name."""
    state = collections.OrderedDict()
    attrs = module.__dict__
    for name, value in (attrs.get('_parameters') or {}).items():
        if value is not None:
            state[prefix + name] = value
    skip = set(attrs.get('_non_persistent_buffers_set') or ())
    for name, value in (attrs.get('_buffers') or {}).items():
        if value is not None and name not in skip:
            state[prefix + name] = value
    for name, child in (attrs.get('_modules') or {}).items():
        if isinstance(child, StandIn):
            state.update(module_state_dict(child, f'{prefix}{name}.'))
    return state


def convert(path: str) -> Dict[str, Any]:
    """A drm_mm checkpoint dict from a release file."""
    root = load_release(path)
    clip = find_clip(root, path)
    state = module_state_dict(clip)
    odd = [k for k in state if not _KEY.fullmatch(k)]
    if odd:
        raise ReleaseCheckpointError(
            f'{path}: the CLIP module has a parameter named {ascii(odd[0])}, '
            'not an ASCII name of a CLIP weight: this file is not a DRM '
            'release (pass the authors\' .pt file).')
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ReleaseCheckpointError(f'{path}: entries {bad[:5]} of the CLIP '
                                     f'module are not tensors.')
    out = collections.OrderedDict()
    for key, value in state.items():
        if key in OPENAI_JIT_KEYS:
            continue
        value = value.detach().clone()
        if value.is_floating_point():
            value = value.float()
        out[f'clip.model.{key}'] = value.contiguous()
    return dict(state_dict=out,
                meta=dict(converted_from=osp.basename(path),
                          converter='drm_release_to_drm_mm',
                          source_class=type(root).__qualname__,
                          activation=activation_of(clip)))


def check_against_config(state: Dict[str, torch.Tensor],
                         config: str) -> None:
    """Keys and shapes must equal those of the config's model."""
    from drm_mm.registry import MODELS, build_in_scope
    # tools/tool_utils.py, beside this script's folder
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    from tool_utils import load_config
    cfg = load_config(config)
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') \
        else dict(cfg.model)
    model_cfg['clip'] = dict(model_cfg['clip'], pretrained=None)
    expected = build_in_scope(MODELS, model_cfg).state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    shapes = [f'{k} {tuple(state[k].shape)} vs {tuple(v.shape)}'
              for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    if missing or extra or shapes:
        raise ReleaseCheckpointError(
            f'the converted weights do not fit {config}: missing '
            f'{missing[:3]}, unexpected {extra[:3]}, shape mismatches '
            f'{shapes[:3]}. Pick the config of the same backbone.')


def ascii_safe(text: Any) -> str:
    """``text`` printable on any terminal (non-ASCII escaped)."""
    return str(text).encode('ascii', 'backslashreplace').decode('ascii')


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help="the authors' released .pt file")
    parser.add_argument('out', help='drm_mm checkpoint to write (.pth)')
    parser.add_argument('--config', help='drm_mm config to check the keys '
                        'and shapes against')
    parser.add_argument('--force', action='store_true',
                        help='overwrite an existing output file')
    args = parser.parse_args(argv)
    from drm_mm.utils.checkpoint_utils import save_checkpoint
    try:
        if not osp.isfile(args.src):
            raise ReleaseCheckpointError(f'{args.src}: no such file.')
        if osp.isdir(args.out):
            raise ReleaseCheckpointError(f'{args.out} is a directory; pass '
                                         'the .pth file to write.')
        if osp.exists(args.out) and not args.force:
            raise ReleaseCheckpointError(f'{args.out} exists; pass --force '
                                         f'to overwrite it.')
        checkpoint = convert(args.src)
        if args.config:
            check_against_config(checkpoint['state_dict'], args.config)
        save_checkpoint(checkpoint, args.out)  # .tmp, renamed; none left
    except (ReleaseCheckpointError, OSError) as err:
        print(f'error: {ascii_safe(err)}', file=sys.stderr)
        return 1
    except RecursionError:
        print(f'error: {ascii_safe(args.src)}: the pickled objects nest '
              'deeper than Python can walk (RecursionError); this is not a '
              "DRM release: pass the authors' .pt file.", file=sys.stderr)
        return 1
    act = checkpoint['meta']['activation']
    print(f'wrote {args.out}: {len(checkpoint["state_dict"])} tensors from '
          f'{checkpoint["meta"]["source_class"]} ({act} activations); '
          f'evaluate it with tools/test.py CONFIG {args.out} --cfg-options '
          f'model.clip.pretrained=None model.clip.force_quick_gelu='
          f'{act != "gelu"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
