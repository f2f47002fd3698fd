"""WiSE-FT: interpolate a zero-shot and a fine-tuned CLIP in weight space and
evaluate every interpolation (Wortsman et al., 2022).

``θ_α = (1 − α) · θ_zero-shot + α · θ_fine-tuned`` over every floating-point
tensor of the model's state dict (both towers, the logit scale, any linear
head); integer / bool buffers and non-tensor entries come from the
fine-tuned model. Text-fed heads rebuild their prototypes from the loaded
weights, so evaluating ``θ_α`` evaluates both rebuilt heads. Reading and
checking state dicts lives in :mod:`drm_mm.utils.checkpoint_utils`; the
CSV, tables and figures of a sweep are written by ``tools/wise_ft.py``.
"""
import time
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, \
    Sequence

import torch

from drm_mm.utils.checkpoint_utils import (  # noqa: F401  re-exported
    CheckpointMismatchError, check_compatible, is_float_tensor, load_weights,
    model_state_dict, unwrap_model)

__all__ = [
    'check_alpha', 'check_alphas', 'interpolate_state_dicts',
    'scalar_metrics', 'wise_ft_sweep'
]


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


def interpolate_state_dicts(zs: Mapping, ft: Mapping, alpha: float,
                            zs_name: str = 'zero-shot',
                            ft_name: str = 'fine-tuned') -> 'OrderedDict':
    """``(1 − alpha) · zs + alpha · ft`` for every floating-point tensor;
    other entries (integer buffers, bools) are taken from ``ft``.

    The arithmetic runs in at least float32 (half tensors are mixed in
    float32 and rounded once); the result has ``ft``'s key order and dtypes,
    lives on CPU and shares no memory with ``zs`` or ``ft``.

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
        work = torch.promote_types(theta_ft.dtype, torch.float32)
        theta_zs = zs[key].detach().cpu().to(work)
        theta = theta_ft.detach().cpu().to(work)
        mixed = (1.0 - alpha) * theta_zs + alpha * theta
        out[key] = mixed.to(theta_ft.dtype)
    return out


def scalar_metrics(metrics: Mapping[str, Any]) -> Dict[str, float]:
    """The metrics that are single numbers, as floats (others dropped; the
    sweep logs which)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    return out


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
                  zeroshot_name: str = 'zero-shot weights',
                  on_row: Optional[Callable[[int, Dict[str, Any]], None]]
                  = None) -> List[Dict[str, Any]]:
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
        on_row: called as ``on_row(index, row)`` after each alpha (e.g. to
            send the row to the visualizer backends while the sweep runs).

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
        if on_row is not None:
            on_row(i - 1, row)
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
