"""What :class:`MultiDatasetValLoop` and :class:`MultiDatasetTestLoop` share.

Config shape (``val_*`` shown; ``test_*`` is the same)::

    val_dataloader = dict(
        # optional defaults shared by every set (any DataLoader argument)
        batch_size=64, num_workers=4,
        id_val=dict(dataset=dict(type='WILDSIWildCam', split='id_val', ...),
                    sampler=dict(type='DefaultSampler', shuffle=False)),
        test=dict(dataset=dict(type='WILDSIWildCam', split='test', ...),
                  sampler=dict(type='DefaultSampler', shuffle=False)),
    )
    # one evaluator for all sets ...
    val_evaluator = dict(type='IWildCamMetric')
    # ... or one per set, keyed like the loaders
    val_evaluator = dict(id_val=dict(type='IWildCamMetric'),
                         test=[dict(type='IWildCamMetric')])
    val_cfg = dict(type='MultiDatasetValLoop')

A plain MMEngine loader (``dict(batch_size=..., dataset=...)``, no named
set) is one set whose metrics are not prefixed, as with ValLoop / TestLoop.
A set is an entry whose value is a dict with a ``dataset`` key (or a built
DataLoader); the other entries are defaults merged into every set (which is
also how ``tools/test.py``'s ``pin_memory`` / ``collate_fn`` defaults
reach them). A top-level ``dataset`` holds defaults of every set's dataset
(a set's own keys win): ``dataset=dict(type=..., pipeline=test_pipeline)``
is also what MMPretrain's single-set APIs read (``get_model`` its
``type``, the inferencers its ``pipeline``). Metrics come back as ``<set>/<metric>`` (``id_val/macro_f1``,
``imagenet_r/accuracy``), in set order, so
``CheckpointHook(save_best='id_val/macro_f1', rule='greater')`` selects on
ID validation; a ``save_best`` naming a set or metric the loop does not
produce is refused in one line (the sets when the loop is built, the metric
names after the first validation). Before each set the loop calls
``model.set_class_subset(dataset.metainfo.get('class_subset'))`` when the
model (unwrapped from DDP) has that method, and resets it to None after;
likewise ``model.set_class_folding(metainfo['class_folding'])`` (ObjectNet),
so each head's logits are folded before its softmax.
"""
from __future__ import annotations

import copy
import logging
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, NamedTuple

from mmengine.evaluator import Evaluator
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.base_loop import BaseLoop
from torch.utils.data import DataLoader

try:  # private helper of MMEngine >= 0.10 loops
    from mmengine.runner.loops import _parse_losses
except ImportError:  # pragma: no cover - older MMEngine
    _parse_losses = None

_RESERVED_NAMES = ('type', 'metrics')

#: Name of the one set of a plain loader (``dict(dataset=..., ...)``): its
#: metrics are not prefixed, as with MMEngine's ValLoop / TestLoop.
SINGLE_SET = ''


class EvalSet(NamedTuple):
    """One evaluated set: its name (metric prefix), loader and evaluator."""
    name: str
    dataloader: DataLoader
    evaluator: Evaluator


def _is_set(value: Any) -> bool:
    return isinstance(value, DataLoader) or (isinstance(value, dict)
                                             and 'dataset' in value)


def split_dataloader_cfg(dataloader: Any, loop: str) -> tuple:
    """Return ``({name: loader cfg or DataLoader}, shared defaults)``."""
    if not isinstance(dataloader, dict):
        raise TypeError(
            f'{loop}: the dataloader config must be a dict of named sets, '
            f'e.g. dict(id_val=dict(dataset=..., sampler=...), '
            f'test=dict(...)); got {type(dataloader).__name__}.')
    dataloader = dict(dataloader)
    shared_dataset = dataloader.pop('dataset', None)
    if shared_dataset is not None and not isinstance(shared_dataset, dict):
        raise TypeError(
            f'{loop}: the top-level "dataset" of a multi-set dataloader holds '
            f'defaults of every set\'s dataset and must be a dict; got '
            f'{type(shared_dataset).__name__}. Name each set instead: '
            f'dict(<name>=dict(dataset=..., sampler=...), ...).')
    sets = {k: v for k, v in dataloader.items() if _is_set(v)}
    shared = {k: v for k, v in dataloader.items() if not _is_set(v)}
    if not sets and shared_dataset is not None:
        # one plain MMEngine loader: one set, metrics left unprefixed
        return {SINGLE_SET: dict(shared, dataset=shared_dataset)}, {}
    shared_type = (shared_dataset or {}).get('type')
    for name, value in sets.items():
        own_type = value['dataset'].get('type') \
            if isinstance(value, dict) else None
        if shared_type is not None and own_type is not None \
                and shared_type != own_type:
            raise ValueError(
                f'{loop}: the shared dataset (type {shared_type}) and set '
                f'{name!r} (type {own_type}, e.g. inherited from a base '
                f'config) disagree; to replace the base\'s sets write the '
                f'dataloader with _delete_=True, e.g. dict(_delete_=True, '
                f'batch_size=..., dataset=dict(type={shared_type!r}, ...)).')
    if shared_dataset:
        for name, value in sets.items():
            if isinstance(value, dict):
                merged = copy.deepcopy(shared_dataset)
                merged.update(value['dataset'])
                sets[name] = dict(value, dataset=merged)
    if not sets:
        raise ValueError(
            f'{loop}: no set found in the dataloader config (keys '
            f'{sorted(dataloader)}); each set is <name>=dict(dataset=..., '
            f'sampler=...).')
    for name in sets:
        if not isinstance(name, str) or '/' in name or not name \
                or name in _RESERVED_NAMES:
            raise ValueError(f'{loop}: invalid set name {name!r}; use a '
                             f'non-empty name without "/" other than '
                             f'{_RESERVED_NAMES}.')
    nested = [k for k, v in shared.items()
              if isinstance(v, dict) and k not in ('sampler', 'batch_sampler',
                                                   'collate_fn',
                                                   'worker_init_fn')]
    if nested:
        raise ValueError(
            f'{loop}: dataloader entries {nested} are dicts without a '
            f'"dataset" key; a set needs dict(dataset=..., ...).')
    return sets, shared


def evaluator_cfg_per_set(evaluator: Any, names: List[str],
                          loop: str) -> Dict[str, Any]:
    """Map each set name to its evaluator config (shared or per set)."""
    if isinstance(evaluator, (Evaluator, list)) or (
            isinstance(evaluator, dict)
            and ('type' in evaluator or 'metrics' in evaluator)):
        return {name: evaluator for name in names}
    if not isinstance(evaluator, dict):
        raise TypeError(f'{loop}: the evaluator must be a metric config, a '
                        f'list of them, or a dict keyed by set name; got '
                        f'{type(evaluator).__name__}.')
    missing = [n for n in names if n not in evaluator]
    extra = [k for k in evaluator if k not in names]
    if missing or extra:
        raise ValueError(
            f'{loop}: the evaluator dict must have exactly the set names '
            f'{names} as keys (or be one metric config with "type"); '
            f'missing {missing}, unknown {extra}.')
    return {name: evaluator[name] for name in names}


class MultiDatasetLoopMixin:
    """Run one loop over several named sets; mixed into ValLoop / TestLoop.

    Args:
        runner (Runner): the runner that builds the loaders and evaluators.
        dataloader (dict): named dataloader configs (or built DataLoaders)
            and their shared defaults, or one plain loader config.
        evaluator (dict | list): metric config(s), shared by all sets or
            keyed by set name.
        fp16 (bool): autocast the forward pass. Defaults to False.
    """

    _stage: str = 'val'  # 'val' or 'test'
    sets: List[EvalSet]

    def __init__(self, runner: Any, dataloader: Any, evaluator: Any,
                 fp16: bool = False) -> None:
        # stands in for ValLoop / TestLoop's __init__, which build one loader
        self._init_sets(runner, dataloader, evaluator)
        self.fp16 = fp16
        # ValLoop / TestLoop's run_iter collects losses in val_loss / test_loss
        setattr(self, f'{self._stage}_loss', dict())

    def _init_sets(self, runner: Any, dataloader: Any,
                   evaluator: Any) -> None:
        loop = type(self).__name__
        set_cfgs, shared = split_dataloader_cfg(dataloader, loop)
        names = list(set_cfgs)
        evaluators = evaluator_cfg_per_set(evaluator, names, loop)
        diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
        self.sets = []
        for name in names:
            loader = set_cfgs[name]
            if isinstance(loader, dict):
                cfg = copy.deepcopy(shared)
                cfg.update(copy.deepcopy(loader))
                loader = runner.build_dataloader(
                    cfg, seed=runner.seed, diff_rank_seed=diff_rank_seed)
            ev = evaluators[name]
            if isinstance(ev, Evaluator):
                if sum(e is ev for e in evaluators.values()) > 1:
                    ev = copy.deepcopy(ev)  # metrics keep per-set state
            else:
                ev = runner.build_evaluator(copy.deepcopy(ev))
            meta = getattr(loader.dataset, 'metainfo', None)
            if meta is not None:
                ev.dataset_meta = meta
            self.sets.append(EvalSet(name, loader, ev))
        BaseLoop.__init__(self, runner, self.sets[0].dataloader)
        self.evaluator = self.sets[0].evaluator
        if self._stage == 'val' and names != [SINGLE_SET]:
            for key in self._selection_keys():
                if key.split('/', 1)[0] not in names:
                    raise ValueError(self._selection_error(key, names))

    def _selection_keys(self) -> List[str]:
        """The metric names ``CheckpointHook(save_best=...)`` selects on
        (``'auto'``, the first metric, always exists)."""
        keys: List[str] = []
        for hook in getattr(self.runner, 'hooks', []):
            for key in getattr(hook, 'key_indicators', None) or []:
                if isinstance(key, str) and key != 'auto':
                    keys.append(key)
        return keys

    def _selection_error(self, key: str, available: List[str]) -> str:
        what = 'sets' if available and '/' not in available[0] else 'metrics'
        return (f'default_hooks.checkpoint.save_best={key!r} is not among '
                f'the {what} of val_dataloader / val_evaluator '
                f'({available}); set default_hooks.checkpoint.save_best to '
                f'one of them (\'<set>/<metric>\' with named sets) or '
                f'to \'auto\' (the first metric).')

    # ------------------------------------------------------------------

    def _bare_model(self) -> Any:
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    @contextmanager
    def _class_subset(self, eval_set: EvalSet) -> Iterator[None]:
        meta = getattr(eval_set.dataloader.dataset, 'metainfo', None) or {}
        folding = meta.get('class_folding')
        fold = getattr(self._bare_model(), 'set_class_folding', None)
        if folding is not None and fold is not None:
            # ObjectNet: each head's logits are folded before its softmax
            fold([list(g) for g in folding])
            try:
                yield
            finally:
                fold(None)
            return
        subset = meta.get('class_subset')
        setter = getattr(self._bare_model(), 'set_class_subset', None)
        if setter is None:
            if subset is not None:
                print_log(
                    f'{type(self).__name__}: set {eval_set.name!r} has a '
                    f'class_subset but the model has no set_class_subset(); '
                    f'ImageNetAccuracy restricts 1000-way scores itself, '
                    f'other metrics see unrestricted predictions.',
                    logger='current', level=logging.WARNING)
            yield
            return
        setter(None if subset is None else list(subset))
        try:
            yield
        finally:
            setter(None)

    def _reset_iter_timer(self) -> None:
        """Restart the ETA estimate of IterTimerHook for a new set."""
        for hook in getattr(self.runner, 'hooks', []):
            if hasattr(hook, 'time_sec_test_val'):
                hook.time_sec_test_val = 0

    def _run_set(self, eval_set: EvalSet) -> Dict[str, Any]:
        stage = self._stage
        self.dataloader = eval_set.dataloader
        self.evaluator = eval_set.evaluator
        meta = getattr(eval_set.dataloader.dataset, 'metainfo', None)
        if meta is not None:
            self.runner.visualizer.dataset_meta = meta
        losses = getattr(self, f'{stage}_loss')
        losses.clear()
        self._reset_iter_timer()
        print_log(f'{stage} set {eval_set.name!r}: '
                  f'{len(eval_set.dataloader.dataset)} samples.',
                  logger='current', level=logging.INFO)
        with self._class_subset(eval_set):
            for idx, data_batch in enumerate(eval_set.dataloader):
                self.run_iter(idx, data_batch)
        metrics = eval_set.evaluator.evaluate(
            len(eval_set.dataloader.dataset))
        if losses and _parse_losses is not None:
            metrics.update(_parse_losses(losses, stage))
        prefixed = {f'{eval_set.name}/{k}' if eval_set.name else k: v
                    for k, v in metrics.items()}
        summary = '  '.join(f'{k}: {v:.4f}' if isinstance(v, float)
                            else f'{k}: {v}' for k, v in prefixed.items())
        print_log(f'{stage} set {eval_set.name!r} done: {summary}',
                  logger='current', level=logging.INFO)
        return prefixed

    def run(self) -> Dict[str, Any]:
        stage = self._stage
        self.runner.call_hook(f'before_{stage}')
        self.runner.call_hook(f'before_{stage}_epoch')
        self.runner.model.eval()
        metrics: Dict[str, Any] = {}
        for eval_set in self.sets:
            metrics.update(self._run_set(eval_set))
        if stage == 'val':
            for key in self._selection_keys():
                if key not in metrics:
                    raise ValueError(self._selection_error(key,
                                                           list(metrics)))
        self.runner.call_hook(f'after_{stage}_epoch', metrics=metrics)
        self.runner.call_hook(f'after_{stage}')
        return metrics

