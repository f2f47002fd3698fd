"""One place that builds open_clip models, tokenizers and text encoders for
drm_mm.

The padding-free text forward lives in :mod:`.text_trimming`.

``pretrained`` is an open_clip tag (``'openai'``, ``'laion400m_e31'``, ...),
a local weights file, or ``None`` (random init). Building the architecture
(:func:`create_architecture`) never touches a file or the network; the
weights are loaded separately (:func:`load_pretrained`), so a model whose
weights come from a full checkpoint is built offline. Local files always
load with ``weights_only=True``; a tag that needs a download and cannot get
one fails with a message saying which file to place where.
"""
import contextlib
import logging
import os
import os.path as osp
import pickle
import warnings
from pathlib import Path
from typing import Callable, Optional

import open_clip
from torch import nn

from drm_mm.utils.safe_checkpoint import refusal_reason
from .text_trimming import TrimmedTextEncoder, is_trimmable

#: Architectures shipped with drm_mm (tiny test models, the toy world CLIP).
MODEL_CONFIG_DIR = Path(__file__).parent / 'model_configs'
open_clip.add_model_config(MODEL_CONFIG_DIR)


def _check_model_name(model_name: str) -> None:
    if model_name not in open_clip.list_models():
        raise ValueError(
            f'Unknown open_clip architecture {model_name!r}. Use one of '
            f'open_clip.list_models() (e.g. ViT-B-16, ViT-L-14, '
            f'ViT-L-14-336) or register a JSON config with '
            f'open_clip.add_model_config(path) / put it in {MODEL_CONFIG_DIR}.')


def _mismatch_message(path: str, missing: list, unexpected: list) -> str:
    parts = []
    if missing:
        parts.append(f'missing keys (first: {missing[:5]})')
    if unexpected:
        parts.append(f'unexpected keys (first: {unexpected[:5]})')
    return ' and '.join(parts)


def load_clip_weights(model: nn.Module, path: str, model_name: str) -> None:
    """Load a local CLIP weights file into ``model``, safely and strictly.

    Uses ``weights_only=True`` (third-party files are untrusted) and names
    the first mismatching keys when the file is for another architecture.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'pretrained weights file {path!r} does not exist. Pass an '
            f'existing local file, an open_clip tag (see '
            f'open_clip.list_pretrained_tags_by_model({model_name!r})) or '
            f'None for random weights.')
    try:
        incompatible = open_clip.load_checkpoint(
            model, path, strict=False, weights_only=True)
    except pickle.UnpicklingError as err:
        raise RuntimeError(
            f'Refused to load pretrained file {path!r}: '
            f'{refusal_reason(err, path)}. Pretrained weights are untrusted '
            f'input; convert them to a state_dict of tensors (or '
            f'.safetensors) with a trusted tool first.') from None
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        detail = '; '.join(line.strip() for line in first[1:4]) or first[0]
        raise ValueError(
            f'pretrained file {path!r} does not match architecture '
            f'{model_name!r}: {detail}. Check model_name and the file.'
        ) from None
    missing = list(getattr(incompatible, 'missing_keys', []))
    unexpected = list(getattr(incompatible, 'unexpected_keys', []))
    if missing or unexpected:
        raise ValueError(
            f'pretrained file {path!r} does not match architecture '
            f'{model_name!r}: {_mismatch_message(path, missing, unexpected)}.'
            f' Check model_name and the file.')


def _download_help(model_name: str, tag: str, cache_dir: Optional[str],
                   err: Exception) -> str:
    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    hub = cfg.get('hf_hub', '').rstrip('/')
    where = (f'the Hugging Face repo {hub!r}' if hub else
             f'{cfg.get("url", "its URL")}')
    cache = cache_dir or os.environ.get('HF_HUB_CACHE') or os.environ.get(
        'HF_HOME', '~/.cache/huggingface')
    return (
        f'Could not get open_clip weights {model_name!r}/{tag!r} ({err}). '
        f'Without network: download the weights file from {where} on a '
        f'machine with access and pass its local path as pretrained=..., or '
        f'put the repo into the Hugging Face cache ({cache}) and set '
        f'HF_HUB_OFFLINE=1 before starting (this also avoids a long network '
        f'time-out).')


def check_pretrained(model_name: str, pretrained: Optional[str]) -> None:
    """Raise a one-line ``ValueError`` unless ``pretrained`` is None, an
    open_clip tag of ``model_name`` or looks like a weights file (whether
    the file exists is checked when the weights are loaded)."""
    _check_model_name(model_name)
    if pretrained is None:
        return
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained in tags:
        return
    looks_like_path = (os.sep in str(pretrained) or osp.splitext(
        str(pretrained))[1] in ('.pt', '.pth', '.bin', '.safetensors'))
    if not looks_like_path and not osp.exists(pretrained):
        raise ValueError(
            f'pretrained={pretrained!r} is neither an open_clip tag of '
            f'{model_name!r} (known tags: {tags}) nor an existing file.')


def create_architecture(model_name: str,
                        cache_dir: Optional[str] = None,
                        force_quick_gelu: bool = False,
                        force_image_size: Optional[int] = None) -> nn.Module:
    """An open_clip CLIP of ``model_name`` with open_clip's random
    initialisation, built without any file or network access (open_clip's
    "No pretrained weights loaded" warning is not shown: the caller loads
    weights next, see :func:`load_pretrained`)."""
    _check_model_name(model_name)
    with _quiet_random_init_warning():
        return open_clip.create_model(
            model_name, pretrained=None, force_quick_gelu=force_quick_gelu,
            force_image_size=force_image_size, cache_dir=cache_dir,
            pretrained_text=False)


def load_pretrained(model: nn.Module, model_name: str, pretrained: str,
                    cache_dir: Optional[str] = None) -> None:
    """Load the CLIP weights ``pretrained`` (open_clip tag or local file)
    into ``model``, strictly and with ``weights_only=True``.

    A tag is resolved as ``open_clip.create_model`` does (Hugging Face hub
    or URL, through ``cache_dir``); without network and cache it fails with
    a message saying which file to place where.
    """
    check_pretrained(model_name, pretrained)
    if pretrained not in open_clip.list_pretrained_tags_by_model(model_name):
        load_clip_weights(model, str(pretrained), model_name)
    else:
        cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
        tag_quick_gelu = bool(cfg.get('quick_gelu', False))
        model_quick_gelu = _uses_quick_gelu(model)
        if model_quick_gelu is not None and model_quick_gelu != tag_quick_gelu:
            warnings.warn(
                f'open_clip weights {model_name!r}/{pretrained!r} were '
                f'trained with quick_gelu={tag_quick_gelu}, the model uses '
                f'quick_gelu={model_quick_gelu}: set '
                f'clip.force_quick_gelu={tag_quick_gelu}.', UserWarning)
        try:
            path = open_clip.download_pretrained(cfg, cache_dir=cache_dir)
            if not path:
                raise RuntimeError('no download source in its config')
        except Exception as err:  # hub / network / cache errors
            raise RuntimeError(
                _download_help(model_name, pretrained, cache_dir,
                               err)) from None
        open_clip.load_checkpoint(model, path, strict=True,
                                  weights_only=True)
    from mmengine.logging import print_log
    print_log(f'OpenCLIP {model_name}: weights loaded from {pretrained}',
              logger='current')


def _uses_quick_gelu(model: nn.Module) -> Optional[bool]:
    """Whether the towers use QuickGELU (None: no GELU found)."""
    from open_clip.transformer import QuickGELU
    found = None
    for module in model.modules():
        if isinstance(module, QuickGELU):
            return True
        if isinstance(module, nn.GELU):
            found = False
    return found


def build_open_clip(model_name: str,
                    pretrained: Optional[str] = None,
                    cache_dir: Optional[str] = None,
                    force_quick_gelu: bool = False,
                    force_image_size: Optional[int] = None) -> nn.Module:
    """Build an open_clip CLIP model with weights from a tag, file or None
    (:func:`create_architecture`, then :func:`load_pretrained`)."""
    check_pretrained(model_name, pretrained)
    model = create_architecture(model_name, cache_dir=cache_dir,
                                force_quick_gelu=force_quick_gelu,
                                force_image_size=force_image_size)
    if pretrained is not None:
        load_pretrained(model, model_name, pretrained, cache_dir)
    return model


class _RandomInitFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return 'No pretrained weights loaded' not in record.getMessage()


@contextlib.contextmanager
def _quiet_random_init_warning():
    """Hide open_clip's "initialized randomly" warning while a model is
    built for weights that are loaded from a file right after."""
    root = logging.getLogger()
    filt = _RandomInitFilter()
    root.addFilter(filt)
    try:
        yield
    finally:
        root.removeFilter(filt)


def build_tokenizer(model_name: str) -> Callable:
    """The open_clip tokenizer of ``model_name`` (works offline for CLIP)."""
    _check_model_name(model_name)
    return open_clip.get_tokenizer(model_name)


def build_text_encoder(model: nn.Module,
                       max_buckets: int = 4) -> Optional[TrimmedTextEncoder]:
    """The padding-free text forward of a built CLIP, or None where it
    would not be exact (then ``model.encode_text`` is the forward)."""
    return TrimmedTextEncoder(model, max_buckets) if is_trimmable(
        model) else None


def freeze_module(module: nn.Module) -> None:
    """Stop gradients and put ``module`` in eval mode permanently."""
    module.eval()
    for param in module.parameters():
        param.requires_grad_(False)
