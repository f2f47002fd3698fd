"""Check that the parameter schedulers of a config fit the run they drive.

The paper's recipes warm up for 500 iterations; on a small dataset the run
is shorter than that and MMEngine fails deep inside the cosine scheduler
(``end should be larger than begin, but got begin=500, end=8``) or, without
a cosine, trains the whole run at a fraction of the learning rate.
:func:`check_schedule_fits` refuses such a schedule in one line that names
the scheduler and the fix; warm-ups written in epochs
(``by_epoch=True, convert_to_iter_based=True``, as in
``configs/_base_/schedules/warmup_cosine_epochs.py``) scale with the dataset
and always fit.
"""
from typing import Any, Mapping, Sequence

__all__ = ['check_schedule_fits']


def _as_list(scheduler: Any) -> list:
    if isinstance(scheduler, Mapping) and 'type' not in scheduler:
        # one scheduler list per optimizer (multiple optimizers)
        return [s for v in scheduler.values() for s in _as_list(v)]
    if isinstance(scheduler, Sequence) and not isinstance(scheduler, str):
        return list(scheduler)
    return [scheduler]


def check_schedule_fits(scheduler: Any, max_epochs: int,
                        max_iters: int) -> None:
    """Raise when a scheduler config begins or ends after the run ends.

    Args:
        scheduler (dict | list | None): the ``param_scheduler`` config
            (built scheduler objects are skipped).
        max_epochs (int): epochs of the run.
        max_iters (int): iterations of the run.

    Raises:
        ValueError: one line naming ``param_scheduler[i]``, its type, the
            run's length and the fix.
    """
    if scheduler is None or not max_epochs or not max_iters:
        return
    per_epoch = max_iters // max_epochs if max_epochs else max_iters
    for i, cfg in enumerate(_as_list(scheduler)):
        if not isinstance(cfg, Mapping):
            continue
        by_epoch = cfg.get('by_epoch', True)
        unit, limit = ('epoch', max_epochs) if by_epoch else \
            ('iteration', max_iters)
        begin = cfg.get('begin', 0)
        end = cfg.get('end')
        problem = None
        if begin >= limit:
            problem = f'begins at {unit} {begin}'
        elif end is not None and end > limit:
            problem = f'ends at {unit} {end}'
        if problem is None:
            continue
        raise ValueError(
            f'param_scheduler[{i}] ({cfg.get("type")}) {problem} but the run '
            f'has {limit} {unit}s ({max_epochs} epochs x {per_epoch} '
            f'iterations): set its begin/end (and those of the schedulers '
            f'after it) below {limit}, or write the warm-up in epochs '
            f'(by_epoch=True, convert_to_iter_based=True) so that it scales '
            f'with the dataset.')
