"""WiSE-FT: interpolate a zero-shot and a fine-tuned CLIP in weight space and
evaluate every interpolation (docs/method.md, "WiSE-FT").

``θ_α = (1 − α) · θ_zero-shot + α · θ_fine-tuned`` over every floating-point
tensor of the model's state dict (both towers, the logit scale, any linear
head); integer / bool buffers and non-tensor entries come from the
fine-tuned model. Text-fed heads rebuild their prototypes from the loaded
weights, so evaluating ``θ_α`` evaluates both rebuilt heads. The helpers for
reading, checking and saving state dicts are shared with
:mod:`drm_mm.engine.model_soups`.
"""
import csv
import math
import os
import os.path as osp
import time
from collections import OrderedDict
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional,
                    Sequence, Tuple)

import torch
from torch import nn

from drm_mm.utils.safe_checkpoint import load_trusted_checkpoint

__all__ = [
    'CheckpointMismatchError', 'state_dict_of', 'load_state_dict_file',
    'is_float_tensor', 'check_compatible', 'interpolate_state_dicts',
    'check_alpha', 'check_alphas', 'make_checkpoint', 'save_checkpoint',
    'unwrap_model', 'model_state_dict', 'load_weights', 'scalar_metrics',
    'pick_axes', 'write_metrics_csv', 'plot_id_ood', 'wise_ft_sweep'
]


class CheckpointMismatchError(ValueError):
    """Two state dicts do not come from the same architecture / config."""


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
    return state_dict_of(load_trusted_checkpoint(path), repr(path))


# ---------------------------------------------------------------- checking
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


def check_alpha(alpha: float, what: str = 'alpha') -> float:
    """``alpha`` as a float, or a ValueError when it is outside [0, 1]."""
    value = float(alpha)
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise ValueError(f'{what}={alpha!r} is outside [0, 1]; WiSE-FT mixes '
                         f'(1 - alpha) * zero-shot + alpha * fine-tuned.')
    return value


def check_alphas(alphas: Iterable[float]) -> List[float]:
    """Validated, de-duplicated alphas in the given order."""
    out: List[float] = []
    for a in alphas:
        value = check_alpha(a)
        if value not in out:
            out.append(value)
    if not out:
        raise ValueError('no alpha given; pass e.g. --alphas 0 0.5 1.')
    return out


# ---------------------------------------------------------------- mixing
def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """At least float32 for the arithmetic (half tensors are mixed in
    float32 and cast back)."""
    return torch.promote_types(dtype, torch.float32)


def interpolate_state_dicts(zs: Mapping, ft: Mapping, alpha: float,
                            zs_name: str = 'zero-shot',
                            ft_name: str = 'fine-tuned') -> 'OrderedDict':
    """``(1 − alpha) · zs + alpha · ft`` for every floating-point tensor;
    other entries (integer buffers, bools) are taken from ``ft``.

    The result has ``ft``'s key order and dtypes and lives on CPU.

    Raises:
        ValueError: ``alpha`` outside [0, 1].
        CheckpointMismatchError: the state dicts differ in keys or shapes.
    """
    alpha = check_alpha(alpha)
    check_compatible(zs, ft, zs_name, ft_name)
    out = OrderedDict()
    for key, theta_ft in ft.items():
        if not is_float_tensor(theta_ft):
            out[key] = theta_ft.detach().cpu().clone() if isinstance(
                theta_ft, torch.Tensor) else theta_ft
            continue
        work = _compute_dtype(theta_ft.dtype)
        theta_zs = zs[key].detach().cpu().to(work)
        theta = theta_ft.detach().cpu().to(work)
        mixed = (1.0 - alpha) * theta_zs + alpha * theta
        out[key] = mixed.to(theta_ft.dtype)
    return out


# ---------------------------------------------------------------- writing
def make_checkpoint(state_dict: Mapping,
                    meta: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """An MMEngine-style checkpoint dict, loadable by ``tools/test.py``."""
    return {'state_dict': OrderedDict(state_dict), 'meta': dict(meta or {})}


def save_checkpoint(checkpoint: Dict[str, Any], path: str) -> None:
    """``torch.save`` to ``<path>.tmp`` then rename, so a crash never leaves
    a truncated file at ``path``."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f'{path}.tmp'
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)


# ---------------------------------------------------------------- model
def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a DDP / FSDP wrapper (or the model itself)."""
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def model_state_dict(model: nn.Module) -> 'OrderedDict':
    """A CPU copy of the (unwrapped) model's state dict."""
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


# ---------------------------------------------------------------- metrics
def scalar_metrics(metrics: Mapping[str, Any]) -> Dict[str, float]:
    """The metrics that are single numbers, as floats (others dropped; see
    the tools, which warn about them)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    return out


def _set_name(key: str) -> str:
    return key.split('/', 1)[0] if '/' in key else ''


def _is_id_key(key: str) -> bool:
    name = _set_name(key)
    return name == 'id' or name.startswith('id_')


def pick_axes(keys: Sequence[str], id_metric: Optional[str] = None,
              ood_metric: Optional[str] = None
              ) -> Tuple[str, Optional[str]]:
    """The (ID, OOD) metric names of the plot.

    Defaults: ID = the first key of an ``id_*`` test set (else the first
    key); OOD = the first key of another set with the same metric name as
    ID (e.g. ``id_test/macro_f1`` → ``test/macro_f1``), else the first other
    key. OOD is None when there is a single metric (the tools then plot it
    against alpha).
    """
    keys = list(keys)
    if not keys:
        raise ValueError('the evaluation returned no scalar metric; check '
                         'the test_evaluator of the config.')
    for name, value in (('--id-metric', id_metric),
                        ('--ood-metric', ood_metric)):
        if value is not None and value not in keys:
            raise KeyError(f'{name} {value!r} is not a metric of this '
                           f'evaluation; available: {keys}.')
    if id_metric is None:
        id_keys = [k for k in keys if _is_id_key(k)]
        id_metric = id_keys[0] if id_keys else keys[0]
    if ood_metric is None:
        others = [k for k in keys if k != id_metric and not _is_id_key(k)]
        if not others:
            others = [k for k in keys if k != id_metric]
        suffix = id_metric.split('/', 1)[-1]
        same = [k for k in others if k.split('/', 1)[-1] == suffix]
        pool = same or others
        ood_metric = pool[0] if pool else None
    return id_metric, ood_metric


def write_metrics_csv(rows: Sequence[Mapping[str, Any]], path: str,
                      first: str = 'alpha') -> List[str]:
    """One CSV row per dict: ``first`` then every other key (first-seen
    order); a missing value is left empty. Returns the header."""
    header = [first]
    for row in rows:
        header += [k for k in row if k not in header]
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f'{path}.tmp'
    with open(tmp, 'w', newline='', encoding='utf-8') as f:
        writer = csv.DictWriter(f, fieldnames=header, restval='')
        writer.writeheader()
        for row in rows:
            writer.writerow({k: repr(v) if isinstance(v, float) else v
                             for k, v in row.items()})
    os.replace(tmp, path)
    return header


def plot_id_ood(rows: Sequence[Mapping[str, Any]], id_metric: str,
                ood_metric: Optional[str], path: str,
                title: str = 'WiSE-FT') -> None:
    """ID vs OOD, one labelled point per alpha, the zero-shot (alpha 0) and
    fine-tuned (alpha 1) ends marked; with no OOD metric, ID vs alpha."""
    import matplotlib
    matplotlib.use('Agg', force=True)
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r['alpha'])
    alphas = [r['alpha'] for r in rows]
    if ood_metric:
        xs = [r.get(id_metric, math.nan) for r in rows]
        ys = [r.get(ood_metric, math.nan) for r in rows]
    else:
        xs, ys = alphas, [r.get(id_metric, math.nan) for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=120)
    ax.plot(xs, ys, '-o', color='tab:blue', markersize=4, zorder=1,
            label='WiSE-FT')
    for a, x, y in zip(alphas, xs, ys):
        ax.annotate(f'{a:g}', (x, y), textcoords='offset points',
                    xytext=(4, 4), fontsize=7)
    ends = {0.0: ('zero-shot', '*', 'tab:green'),
            1.0: ('fine-tuned', 's', 'tab:red')}
    for a, x, y in zip(alphas, xs, ys):
        if a in ends:
            label, marker, color = ends[a]
            ax.scatter([x], [y], marker=marker, s=120, color=color,
                       zorder=2, label=f'{label} (alpha={a:g})')
    ax.set_xlabel(id_metric if ood_metric else 'alpha')
    ax.set_ylabel(ood_metric if ood_metric else id_metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    root, ext = osp.splitext(path)
    tmp = f'{root}.tmp{ext or ".png"}'
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


# ---------------------------------------------------------------- sweep
def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f'{hours:d}:{minutes:02d}:{secs:02d}'


def wise_ft_sweep(runner: Any, finetuned: Mapping, alphas: Sequence[float],
                  zeroshot: Optional[Mapping] = None,
                  evaluate: Optional[Callable[[], Mapping]] = None,
                  log: Optional[Callable[[str], None]] = None,
                  progress: bool = True,
                  finetuned_name: str = 'fine-tuned checkpoint',
                  zeroshot_name: str = 'zero-shot weights'
                  ) -> List[Dict[str, Any]]:
    """Evaluate ``θ_α`` for each alpha with one runner.

    Args:
        runner: an MMEngine runner (anything with ``model`` and ``test()``).
        finetuned: the fine-tuned state dict.
        alphas: values in [0, 1].
        zeroshot: the zero-shot state dict; default: the runner's model as
            built from the config (its pretrained weights), copied before
            anything is loaded.
        evaluate: what to run per alpha (default ``runner.test``); returns
            the metrics dict.
        log: where progress lines go (default: print).
        progress: show an MMEngine progress bar over alpha.

    Returns:
        One dict per alpha: ``{'alpha': a, <metric>: value, ...}``.
    """
    alphas = check_alphas(alphas)
    log = log or print
    evaluate = evaluate or runner.test
    if zeroshot is None:
        zeroshot = model_state_dict(runner.model)
    model_sd = unwrap_model(runner.model).state_dict()
    check_compatible(model_sd, finetuned, 'the model of the config',
                     finetuned_name)
    check_compatible(finetuned, zeroshot, finetuned_name, zeroshot_name)
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(alphas))
    rows: List[Dict[str, Any]] = []
    start = time.perf_counter()
    for i, alpha in enumerate(alphas, 1):
        mixed = interpolate_state_dicts(zeroshot, finetuned, alpha,
                                        zeroshot_name, finetuned_name)
        load_weights(runner.model, mixed, f'WiSE-FT weights (alpha={alpha})')
        del mixed
        metrics = evaluate()
        row: Dict[str, Any] = {'alpha': alpha}
        row.update(scalar_metrics(metrics))
        skipped = sorted(set(metrics) - set(row))
        if skipped:
            log(f'WiSE-FT: non-scalar metrics left out of the table: '
                f'{skipped}')
        rows.append(row)
        elapsed = time.perf_counter() - start
        eta = elapsed / i * (len(alphas) - i)
        shown = ', '.join(f'{k}: {v:.4f}' for k, v in row.items()
                          if k != 'alpha')
        log(f'WiSE-FT alpha={alpha:g} [{i}/{len(alphas)}] {shown} | '
            f'elapsed {_format_seconds(elapsed)}, ETA {_format_seconds(eta)}')
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.file.write('\n')
        bar.file.flush()
    return rows
