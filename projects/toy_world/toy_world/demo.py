"""The toy-world study, end to end: data, tiny CLIP, FLYP / CE / DRM
fine-tuning over seeds, ID and OOD evaluation, WiSE-FT, table and plot.

Every fine-tuning run goes through the real components of drm_mm: the
``projects/toy_world/configs`` configs (``DRMClassifier``, ``DualRiskLoss``,
``SoftLabelCacheHook``, ``WILDSIWildCam``) built into a ``DRMRunner`` and
trained by MMEngine. Evaluation uses ``IWildCamMetric`` on preprocessed
copies of the ID (``id_test``) and OOD (``test``) splits, made once per
study with the config's own dataset, pipeline and data preprocessor, so the
WiSE-FT sweep costs one image forward per split and mixing weight; all
three heads (df, cd, their mixture) come from the same forward.

Each step is cached: the world and the pretrained CLIP by a hash of their
settings, each fine-tuning run by a hash of its merged config, seed and the
inputs it depends on, so a rerun only redoes what changed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import pathlib
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, \
    Tuple, Union

import torch

from .caption_corpus import premise_corpus
from .paths import (CHECKOUT_ROOT, CONFIG_DIR, DEFAULT_CACHE_DIR,
                    DEFAULT_WORK_DIR, DEFAULT_WORLD_ROOT)
from .pretrain_clip import PretrainSettings, pretrain_toy_clip
from .toy_world import WorldSettings, class_habitats, ensure_world

PathLike = Union[str, os.PathLike]

#: Fine-tuning methods: name -> config; they differ only in the method.
METHOD_CONFIGS: Dict[str, str] = {
    'flyp': 'flyp_toy_rn.py',
    'ce': 'ce_toy_rn.py',
    'drm': 'drm_toy_rn.py',
    'l2sp': 'l2sp_toy_rn.py',
    'carft': 'carft_toy_rn.py',
    'lipsum': 'lipsum_toy_rn.py',
}
ZERO_SHOT_CONFIG = 'zeroshot_toy_rn.py'
METHOD_TITLES = {'zeroshot': 'zero-shot', 'flyp': 'FLYP', 'ce': 'CE',
                 'drm': 'DRM', 'l2sp': 'L2-SP', 'carft': 'CAR-FT',
                 'lipsum': 'Lipsum-FT'}
#: The heads evaluated for every model, and the head of each method.
HEADS: Tuple[str, ...] = ('df', 'cd', 'mixture')
METHOD_HEAD = {'zeroshot': 'df', 'flyp': 'df', 'ce': 'df',
               'drm': 'mixture', 'l2sp': 'df', 'carft': 'df', 'lipsum': 'df'}
ID_SET, OOD_SET = 'id_test', 'test'
#: The splits the ID / OOD roles read with ``DemoSettings.validation``.
VALIDATION_SPLITS: Dict[str, str] = {ID_SET: 'id_val', OOD_SET: 'val'}
#: Splits :attr:`DemoSettings.extra_splits` may add (not the roles' own).
EXTRA_SPLITS: Tuple[str, ...] = tuple(VALIDATION_SPLITS.values())
METRICS: Tuple[str, ...] = ('acc', 'macro_f1')
# Bump when this module changes what a cached run result holds.
RESULT_VERSION = 1


WORLD_KINDS: Tuple[str, ...] = ('premise', 'control')
#: Pretraining steps of the premise world's CLIP (as the control's): fewer
#: steps weaken the zero-shot model but also FLYP's OOD accuracy, so the
#: zero-shot class-name head is kept weak by rare class names instead (the
#: project README, "How the premise world's knobs were chosen").
PREMISE_PRETRAIN_STEPS = 2100


def study_pretrain_settings(world_kind: str,
                            world: WorldSettings) -> PretrainSettings:
    """The tiny CLIP's settings for a study: the premise corpus tied to
    ``world``'s class habitats, or the control corpus."""
    if world_kind == 'premise':
        return PretrainSettings(corpus=premise_corpus(class_habitats(world)),
                                steps=PREMISE_PRETRAIN_STEPS)
    return PretrainSettings()


@dataclass(frozen=True)
class DemoSettings:
    """Everything the study runs; the defaults are the README's study.

    Attributes:
        methods: fine-tuning methods (keys of :data:`METHOD_CONFIGS`).
        seeds: one run per method and seed (data order).
        alphas: WiSE-FT mixing weights (0 = zero-shot, 1 = fine-tuned).
        epochs, lr: the fine-tuning budget, the same for every method
            (``None``: the config's schedule, ``projects/toy_world/configs/
            _base_/toy_finetune.py``).
        work_dir: where runs, cached results, table and plot go.
        world_root: where the toy world is generated.
        pretrain_cache_dir: where the pretrained CLIP is cached.
        world_kind: ``'premise'`` (the main study: a caption corpus where
            class names are rare and tied to their class's habitat, so the
            zero-shot class-name head carries the background shortcut) or
            ``'control'`` (names and descriptions independent of the
            background).
        world, pretrain: settings of the world and of the tiny CLIP
            (``pretrain=None``: the corpus of ``world_kind`` for ``world``,
            :func:`study_pretrain_settings`).
        eval_batch: images per forward in evaluation.
        cfg_options: config overrides (``{'model.loss.wrm_weight': 2}``)
            applied to every config of the study, as ``--cfg-options``
            (so method-specific options go with ``methods=('drm',)``).
        reference: a ``results.json`` of an earlier study whose FLYP curve
            is the WiSE-FT reference when this study runs no FLYP.
        betas: extra β mixtures evaluated on every run and WiSE-FT point
            from the same forward (heads ``beta<β>``, e.g. ``beta0.25``;
            the inference ablation).
        validation: evaluate on the validation splits (ID = ``id_val``,
            OOD = ``val``, unseen locations of their own) instead of
            ``id_test`` / ``test``: for choosing the world's knobs without
            reading the OOD test split. Results keep the role keys
            (``id_test/acc`` holds ``id_val``'s); the table says which
            splits were read.
        extra_splits: further splits of the world (``'id_val'``,
            ``'val'``) every model is evaluated on besides the ID / OOD
            roles, keyed by their own name (``df/id_val/acc``), from the
            same weights: for choices made on validation splits (β on
            ``id_val``, the premise on ``val``) next to the test
            numbers. Not with ``validation``.
    """
    methods: Tuple[str, ...] = ('flyp', 'ce', 'drm', 'l2sp', 'carft',
                                'lipsum')
    seeds: Tuple[int, ...] = (0, 1, 2)
    alphas: Tuple[float, ...] = tuple(i / 10 for i in range(11))
    epochs: Optional[int] = None
    lr: Optional[float] = None
    work_dir: str = str(DEFAULT_WORK_DIR)
    world_root: str = str(DEFAULT_WORLD_ROOT)
    pretrain_cache_dir: str = str(DEFAULT_CACHE_DIR)
    world: WorldSettings = field(default_factory=WorldSettings)
    pretrain: Optional[PretrainSettings] = None
    world_kind: str = 'premise'
    eval_batch: int = 500
    cfg_options: Dict[str, Any] = field(default_factory=dict)
    reference: Optional[str] = None
    betas: Tuple[float, ...] = ()
    validation: bool = False
    extra_splits: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.world_kind not in WORLD_KINDS:
            raise ValueError(f'DemoSettings.world_kind must be one of '
                             f'{WORLD_KINDS}, got {self.world_kind!r}.')
        if self.pretrain is None:
            object.__setattr__(self, 'pretrain', study_pretrain_settings(
                self.world_kind, self.world))
        unknown = [m for m in self.methods if m not in METHOD_CONFIGS]
        if unknown or not self.methods:
            raise ValueError(f'DemoSettings.methods: unknown {unknown}; '
                             f'choose from {sorted(METHOD_CONFIGS)}.')
        if not self.seeds:
            raise ValueError('DemoSettings.seeds: give at least one seed.')
        if any(not 0 <= a <= 1 for a in self.alphas) or \
                1.0 not in self.alphas:
            raise ValueError(f'DemoSettings.alphas must be values in [0, 1] '
                             f'including 1 (the fine-tuned model), got '
                             f'{self.alphas}.')
        if any(not 0 <= b <= 1 for b in self.betas):
            raise ValueError(f'DemoSettings.betas must be values in [0, 1], '
                             f'got {self.betas}.')
        bad = [s for s in self.extra_splits
               if s not in EXTRA_SPLITS or self.extra_splits.count(s) > 1]
        if bad:
            raise ValueError(f'DemoSettings.extra_splits: {bad} unknown or '
                             f'repeated; choose from {EXTRA_SPLITS}.')
        if self.extra_splits and self.validation:
            raise ValueError('DemoSettings.extra_splits cannot be used with '
                             'validation=True (the roles already read '
                             'id_val / val); drop one of them.')
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f'DemoSettings.epochs must be >= 1, got '
                             f'{self.epochs}.')
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f'DemoSettings.lr must be > 0, got {self.lr}.')


@dataclass
class EvalSet:
    """A split preprocessed once: model inputs and labels."""
    name: str
    inputs: torch.Tensor
    labels: torch.Tensor


# --------------------------------------------------------------- config
def zero_shot_options(cfg_options: Mapping[str, Any]) -> Dict[str, Any]:
    """The study's config overrides that apply to the zero-shot model: all
    but the loss's (an untrained model has no objective; e.g. a WRM-only
    variant's ``erm_weight=0`` would leave its loss with nothing)."""
    return {k: v for k, v in cfg_options.items()
            if not k.startswith('model.loss.')}


def _fingerprint(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def build_config(config: PathLike, weights: PathLike, data_root: PathLike,
                 work_dir: PathLike, seed: int = 0,
                 epochs: Optional[int] = None, lr: Optional[float] = None,
                 classes: Optional[Sequence[str]] = None,
                 cfg_options: Optional[Mapping[str, Any]] = None,
                 validation: bool = False):
    """A toy config with the study's data, weights, classes, seed and
    budget; no validation during training (the study evaluates after).
    ``validation``: the ID / OOD test sets read ``id_val`` / ``val``
    (:attr:`DemoSettings.validation`)."""
    from tools.tool_utils import load_config, set_dataloader_defaults
    cfg = load_config(str(config))
    cfg.model.clip.pretrained = str(weights)
    descriptions = cfg.model.get('descriptions')
    if isinstance(descriptions, str) and not os.path.isabs(descriptions):
        # the configs' paths are relative to the checkout root
        cfg.model.descriptions = str(CHECKOUT_ROOT / descriptions)
    if classes is not None:
        cfg.model.classnames = list(classes)
    for loader in ('train_dataloader', 'test_dataloader'):
        _set_data_root(cfg.get(loader), str(data_root))
    if validation:
        for role, split in VALIDATION_SPLITS.items():
            cfg.test_dataloader[role]['dataset']['split'] = split
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_cfg.val_interval = 10**9
    if epochs is not None:
        cfg.train_cfg.max_epochs = int(epochs)
    if lr is not None:
        cfg.optim_wrapper.optimizer.lr = float(lr)
    cfg.randomness = dict(seed=int(seed), deterministic=False)
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    cfg.launcher = 'none'
    set_dataloader_defaults(cfg, pin_memory=False, persistent_workers=False)
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    return cfg


def _set_data_root(node: Any, data_root: str) -> None:
    """Point every dataset under ``node`` at ``data_root``."""
    if isinstance(node, dict):
        if 'data_root' in node and 'type' in node:
            node['data_root'] = data_root
        for value in node.values():
            _set_data_root(value, data_root)


def file_digest(path: PathLike) -> str:
    """SHA-256 of a file's bytes (the run cache follows the weights
    themselves, so re-pretrained weights never reuse old runs)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def config_fingerprint(cfg) -> str:
    """A hash of everything in the merged config that shapes a run."""
    data = cfg.to_dict()
    for key in ('work_dir', 'log_level', 'launcher'):
        data.pop(key, None)
    data['model']['clip'].pop('pretrained', None)  # keyed by its content
    return _fingerprint(data)


# ----------------------------------------------------------- evaluation
def load_eval_sets(cfg, model: torch.nn.Module,
                   names: Sequence[str] = (ID_SET, OOD_SET),
                   batch_size: int = 500) -> Dict[str, EvalSet]:
    """The named test splits of ``cfg`` through their dataset, pipeline and
    the model's data preprocessor, as tensors."""
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    loaders = cfg.test_dataloader
    out = {}
    for name in names:
        if name not in loaders:
            raise KeyError(f'test_dataloader has no split {name!r}; it has '
                           f'{[k for k in loaders if isinstance(loaders[k], dict)]}.')
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            loader = Runner.build_dataloader(dict(
                batch_size=batch_size, num_workers=0,
                dataset=loaders[name]['dataset'],
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate')))
        inputs, labels = [], []
        with torch.no_grad():
            for batch in loader:
                data = model.data_preprocessor(batch, False)
                inputs.append(data['inputs'].cpu())
                labels.extend(int(s.gt_label) for s in data['data_samples'])
        out[name] = EvalSet(name, torch.cat(inputs),
                            torch.tensor(labels, dtype=torch.long))
    return out


def add_split_loaders(cfg, splits: Sequence[str]) -> None:
    """Add a test loader for each of ``splits`` to ``cfg.test_dataloader``
    (a copy of the ID role's, reading that split), for
    :func:`load_eval_sets`."""
    import copy
    for split in splits:
        loader = copy.deepcopy(cfg.test_dataloader[ID_SET])
        loader['dataset']['split'] = split
        cfg.test_dataloader[split] = loader


@contextlib.contextmanager
def _beta(model: torch.nn.Module, beta: float):
    old = model.head.beta
    model.head.beta = beta
    try:
        yield
    finally:
        model.head.beta = old


def beta_head(beta: float) -> str:
    """Name of the head that mixes with ``beta`` (``'beta0.25'``)."""
    return f'beta{beta:g}'


def evaluate_heads(model: torch.nn.Module, eval_sets: Mapping[str, EvalSet],
                   batch_size: int = 500,
                   betas: Sequence[float] = ()) -> Dict[str, float]:
    """``<head>/<set>/<metric>`` of the df head, the cd head and their
    mixture (the model's β; 0.5 if it uses one head), by IWildCamMetric;
    plus the accuracy (``beta<β>/<set>/acc``, wilds' ``Accuracy`` as
    IWildCamMetric's) of a ``beta<β>`` mixture for each of ``betas``: the
    macro averages go through sklearn at ~20 ms a call, which a grid of
    β at every WiSE-FT point would multiply."""
    from wilds.common.metrics.all_metrics import Accuracy

    from drm_mm.evaluation.metrics import IWildCamMetric
    mix_beta = model.head.beta if 0 < model.head.beta < 1 else 0.5
    has_cd = model.descriptions is not None
    out: Dict[str, float] = {}
    was_training = model.training
    model.eval()
    try:
        with _beta(model, mix_beta if has_cd else 1.0), torch.no_grad():
            for name, data in eval_sets.items():
                logits = [model.logits(chunk) for chunk in
                          data.inputs.split(batch_size)]
                z_df = torch.cat([z for z, _ in logits])
                z_cd = torch.cat([z for _, z in logits]) if has_cd else None
                for head, beta in [('df', 1.0), ('cd', 0.0),
                                   ('mixture', mix_beta)] + [
                                       (beta_head(b), b) for b in betas]:
                    if z_cd is None and head != 'df':
                        continue
                    with _beta(model, beta):
                        preds = model.head.predict_scores(z_df, z_cd).argmax(1)
                    if head not in HEADS:
                        out[f'{head}/{name}/acc'] = float(Accuracy().compute(
                            preds, data.labels)['acc_avg'])
                        continue
                    metric = IWildCamMetric()
                    metric.process(None, [
                        dict(pred_label=p, gt_label=g)
                        for p, g in zip(preds.tolist(), data.labels.tolist())
                    ])
                    for key, value in metric.compute_metrics(
                            metric.results).items():
                        out[f'{head}/{name}/{key}'] = float(value)
    finally:
        model.train(was_training)
    return out


def soft_label_report(table: torch.Tensor,
                      world_folder: PathLike) -> Dict[str, float]:
    """How good the core-based soft labels p_c of the training set are:
    accuracy of their argmax and mean mass on the true class, overall and
    for images at their class's own locations vs. at others' locations
    (``toy_samples.csv``), and their mean maximum (sharpness)."""
    import csv
    folder = pathlib.Path(world_folder)
    with open(folder / 'metadata.csv', newline='') as f:
        meta = list(csv.DictReader(f))
    with open(folder / 'toy_samples.csv', newline='') as f:
        extra = list(csv.DictReader(f))
    train = [(int(m['y']), e['relation']) for m, e in zip(meta, extra)
             if m['split'] == 'train']
    if len(train) != table.size(0):
        raise ValueError(f'soft_label_report: {table.size(0)} soft labels '
                         f'for {len(train)} training images in {folder}.')
    labels = torch.tensor([y for y, _ in train])
    own = torch.tensor([r == 'own' for _, r in train])
    table = table.float()
    hit = table.argmax(1) == labels
    mass = table.gather(1, labels[:, None])[:, 0]
    out = dict(acc=hit.float().mean().item(),
               true_class_mass=mass.mean().item(),
               max_mass=table.max(1).values.mean().item())
    for name, mask in (('own_location', own), ('other_location', ~own)):
        if mask.any():
            out[f'acc_{name}'] = hit[mask].float().mean().item()
    return out


# ------------------------------------------------------------ the study
class _Progress:
    """Timestamped progress lines with the study's elapsed time."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        elapsed = time.perf_counter() - self.start
        self.log(f'[toy demo {int(elapsed) // 60:d}:{int(elapsed) % 60:02d}]'
                 f' {message}')


def _quiet_mmengine() -> None:
    from mmengine.logging import MMLogger
    logging.getLogger('mmengine').setLevel(logging.WARNING)
    MMLogger.get_current_instance().setLevel(logging.WARNING)


def finetune_run(method: str, seed: int, settings: DemoSettings,
                 weights: PathLike, eval_sets: Dict[str, EvalSet],
                 zero_shot_state: Mapping,
                 progress: Callable[[str], None]) -> Dict[str, Any]:
    """Train one method with one seed, then its WiSE-FT sweep; the result
    is cached in ``<work_dir>/runs`` by a hash of what determines it."""
    from drm_mm.engine.wise_ft import model_state_dict, wise_ft_sweep
    from tools.tool_utils import build_runner

    run_dir = pathlib.Path(settings.work_dir) / f'{method}_seed{seed}'
    cfg = build_config(CONFIG_DIR / METHOD_CONFIGS[method], weights,
                       settings.world_root, run_dir, seed, settings.epochs,
                       settings.lr, settings.world.classes,
                       settings.cfg_options, settings.validation)
    key = _fingerprint(dict(config=config_fingerprint(cfg),
                            world=settings.world.hash(),
                            weights=file_digest(weights),
                            alphas=list(settings.alphas),
                            version=RESULT_VERSION,
                            **({'betas': list(settings.betas)}
                               if settings.betas else {}),
                            **({'extra_splits': list(settings.extra_splits)}
                               if settings.extra_splits else {})))
    cache = pathlib.Path(settings.work_dir) / 'runs' / \
        f'{method}_seed{seed}_{key}.json'
    if cache.is_file():
        result = json.loads(cache.read_text())
        progress(f'{METHOD_TITLES[method]} seed {seed}: cached ({cache.name})')
        return result
    start = time.perf_counter()
    runner = build_runner(cfg)
    _quiet_mmengine()
    model = runner.model
    epochs = cfg.train_cfg.max_epochs
    progress(f'{METHOD_TITLES[method]} seed {seed}: fine-tuning '
             f'{epochs} epochs x {len(runner.train_dataloader)} iterations '
             f'(lr {cfg.optim_wrapper.optimizer.lr:g})')
    runner.train()
    train_s = time.perf_counter() - start
    finetuned = model_state_dict(model)
    rows = wise_ft_sweep(
        runner, finetuned, list(settings.alphas),
        zeroshot=zero_shot_state,
        evaluate=lambda: evaluate_heads(model, eval_sets,
                                        settings.eval_batch, settings.betas),
        log=lambda _: None, progress=False)
    final = next(r for r in rows if r['alpha'] == 1.0)
    result = dict(method=method, seed=seed, key=key,
                  train_seconds=round(train_s, 1),
                  total_seconds=round(time.perf_counter() - start, 1),
                  final=final, wise_ft=rows)
    if getattr(model, 'soft_label_table', None) is not None:
        result['soft_labels'] = soft_label_report(
            model.soft_label_table,
            pathlib.Path(settings.world_root) / 'iwildcam_v2.0')
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix('.tmp')
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, cache)
    head = METHOD_HEAD[method]
    progress(f'{METHOD_TITLES[method]} seed {seed}: done in '
             f'{result["total_seconds"]:.0f} s; {head} head ID acc '
             f'{100 * final[f"{head}/{ID_SET}/acc"]:.1f}, OOD acc '
             f'{100 * final[f"{head}/{OOD_SET}/acc"]:.1f}')
    del runner, model
    return result


def run_demo(settings: DemoSettings = DemoSettings(),
             log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run the whole study and write ``results.json``, ``results.md`` and
    ``id_vs_ood.png`` into ``settings.work_dir``; returns the summary."""
    import drm_mm  # noqa: F401  registers every component
    from drm_mm.engine.wise_ft import model_state_dict
    from drm_mm.registry import MODELS, build_in_scope

    progress = _Progress(log)
    work_dir = pathlib.Path(settings.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)

    progress('1/4 toy world')
    folder, generated = ensure_world(settings.world_root, settings.world,
                                     progress=False)
    progress(f'toy world {"generated" if generated else "cached"}: {folder}')

    progress('2/4 tiny CLIP pretraining on the caption corpus')
    pre = pretrain_toy_clip(settings.pretrain,
                            cache_dir=settings.pretrain_cache_dir,
                            world=settings.world)
    progress(f'tiny CLIP {"cached" if pre.cached else "pretrained"}: '
             f'{pre.path}')

    progress('3/4 zero-shot evaluation')
    zs_cfg = build_config(CONFIG_DIR / ZERO_SHOT_CONFIG, pre.path,
                          settings.world_root, work_dir / 'zeroshot',
                          classes=settings.world.classes,
                          cfg_options=zero_shot_options(settings.cfg_options),
                          validation=settings.validation)
    zs_model = build_in_scope(MODELS, zs_cfg.model)
    zs_model.init_weights()  # the pretrained CLIP
    zs_model.eval()
    zero_shot_state = model_state_dict(zs_model)
    add_split_loaders(zs_cfg, settings.extra_splits)
    eval_sets = load_eval_sets(
        zs_cfg, zs_model, (ID_SET, OOD_SET) + tuple(settings.extra_splits),
        batch_size=settings.eval_batch)
    # descriptions are in the config, so all three heads are measured
    zero_shot = evaluate_heads(zs_model, eval_sets, settings.eval_batch,
                               settings.betas)
    del zs_model
    progress(f'zero-shot: df ID acc {100 * zero_shot[f"df/{ID_SET}/acc"]:.1f}'
             f', OOD acc {100 * zero_shot[f"df/{OOD_SET}/acc"]:.1f}; cd ID '
             f'{100 * zero_shot[f"cd/{ID_SET}/acc"]:.1f}, OOD '
             f'{100 * zero_shot[f"cd/{OOD_SET}/acc"]:.1f}')

    n_runs = len(settings.methods) * len(settings.seeds)
    progress(f'4/4 fine-tuning: {n_runs} runs ({", ".join(settings.methods)}'
             f' x seeds {list(settings.seeds)}), WiSE-FT over '
             f'{len(settings.alphas)} alphas each')
    runs = []
    for method in settings.methods:
        for seed in settings.seeds:
            runs.append(finetune_run(method, seed, settings, pre.path,
                                     eval_sets, zero_shot_state, progress))
    summary = summarize(settings, zero_shot, runs, pre)
    write_outputs(summary, work_dir)
    elapsed = time.perf_counter() - progress.start
    summary['wall_seconds'] = round(elapsed, 1)
    (work_dir / 'results.json').write_text(json.dumps(summary, indent=1))
    log(format_table(summary))
    progress(f'table: {work_dir / "results.md"}; plot: '
             f'{work_dir / "id_vs_ood.png"}')
    progress(f'wall time {elapsed:.0f} s')
    return summary


# -------------------------------------------------------------- summary
def mean_std(values: Sequence[float]) -> List[float]:
    """``[mean, sample std]`` of ``values`` over seeds (std 0 for one
    value), ``[]`` for none: the one spread statistic of the study, its
    ablations and the worlds report."""
    if not values:
        return []
    return [statistics.fmean(values),
            statistics.stdev(values) if len(values) > 1 else 0.0]


def summarize(settings: DemoSettings, zero_shot: Mapping[str, float],
              runs: Sequence[Mapping[str, Any]], pre=None) -> Dict[str, Any]:
    """Table rows (mean and sample std over seeds) and WiSE-FT curves
    (mean over seeds per alpha)."""
    rows = []
    for head in HEADS:
        if f'{head}/{ID_SET}/acc' in zero_shot:
            rows.append(dict(method='zeroshot', head=head, n=1, **{
                f'{s}/{m}': [zero_shot[f'{head}/{s}/{m}'], 0.0]
                for s in (ID_SET, OOD_SET) for m in METRICS}))
    curves = []
    for method in settings.methods:
        mine = [r for r in runs if r['method'] == method]
        heads = HEADS if method == 'drm' else (METHOD_HEAD[method], )
        for head in heads:
            row = dict(method=method, head=head, n=len(mine))
            for s in (ID_SET, OOD_SET):
                for m in METRICS:
                    row[f'{s}/{m}'] = list(mean_std(
                        [r['final'][f'{head}/{s}/{m}'] for r in mine]))
            rows.append(row)
        for head in heads:
            points = []
            for alpha in settings.alphas:
                at = [next(w for w in r['wise_ft'] if w['alpha'] == alpha)
                      for r in mine]
                points.append(dict(alpha=alpha, **{
                    f'{s}/{m}': statistics.fmean(
                        a[f'{head}/{s}/{m}'] for a in at)
                    for s in (ID_SET, OOD_SET) for m in METRICS}))
            curves.append(dict(method=method, head=head, points=points))
    out = dict(settings=_settings_dict(settings), rows=rows, curves=curves,
               runs=list(runs), zero_shot=dict(zero_shot))
    if 'flyp' not in settings.methods and settings.reference:
        earlier = json.loads(pathlib.Path(settings.reference).read_text())
        curve = next((c for c in earlier.get('curves', [])
                      if c['method'] == 'flyp' and c['head'] == 'df'), None)
        if curve is None:
            raise ValueError(f'DemoSettings.reference: {settings.reference} '
                             f'has no FLYP curve; run a study with FLYP '
                             f'first.')
        out['reference_curve'] = dict(curve, source=str(settings.reference))
    if pre is not None:
        out['pretrain'] = dict(weights=str(pre.path), cached=pre.cached,
                               train_seconds=pre.train_seconds,
                               zero_shot=dict(pre.metrics))
    return out


def _settings_dict(settings: DemoSettings) -> Dict[str, Any]:
    data = dataclasses.asdict(settings)
    data['world_hash'] = settings.world.hash()
    data['pretrain_hash'] = settings.pretrain.hash()
    return data


def _label(method: str, head: str) -> str:
    title = METHOD_TITLES[method]
    if method in ('zeroshot', 'drm') or head != METHOD_HEAD[method]:
        return f'{title} ({head})'
    return title


def eval_splits(summary: Mapping[str, Any]) -> Tuple[str, str]:
    """The splits a study's ID / OOD results were read on."""
    if summary['settings'].get('validation'):
        return VALIDATION_SPLITS[ID_SET], VALIDATION_SPLITS[OOD_SET]
    return ID_SET, OOD_SET


def format_table(summary: Mapping[str, Any]) -> str:
    """The results as a Markdown table (percent, mean ± std over seeds)."""
    seeds = summary['settings']['seeds']
    id_split, ood_split = eval_splits(summary)
    lines = [
        f'Toy world, {len(seeds)} seeds (mean ± std); ID = {id_split}, '
        f'OOD = {ood_split} (unseen locations); IWildCamMetric, percent.',
        '',
        '| model | ID acc | ID macro-F1 | OOD acc | OOD macro-F1 |',
        '|---|---|---|---|---|',
    ]
    for row in summary['rows']:
        cells = []
        for s in (ID_SET, OOD_SET):
            for m in METRICS:
                mean, std = row[f'{s}/{m}']
                cells.append(f'{100 * mean:.1f}' if row['n'] == 1 else
                             f'{100 * mean:.1f} ± {100 * std:.1f}')
        lines.append(f'| {_label(row["method"], row["head"])} | ' +
                     ' | '.join(cells) + ' |')
    wise = _wise_ft_lines(summary)
    if wise:
        lines += ['', 'WiSE-FT (weights mixed with the zero-shot model, mean '
                  'over seeds): ID / OOD acc at alpha = 0.5, and OOD acc of '
                  'each seed\'s fine-tuned model (alpha = 1) minus that of '
                  'the FLYP WiSE-FT curve (mean over seeds) at the same ID '
                  'acc, mean ± std over seeds ("n/a": outside its range):',
                  '',
                  '| model | alpha 0.5: ID / OOD acc | OOD vs FLYP curve |',
                  '|---|---|---|']
        lines += wise
    probe = summary.get('pretrain', {}).get('zero_shot', {})
    if 'df/background_id' in probe:
        n_cls = len(summary['settings']['world']['classes'])
        lines += ['', 'Background-only probe (zero-shot, scenes without a '
                  'shape): how often a head names the class a scene is tied '
                  'to — training locations / OOD locations that mimic a '
                  f'class — chance {100 / n_cls:.1f} %: ' + '; '.join(
                      f'{h} {probe[f"{h}/background_id"]:.1f} / '
                      f'{probe[f"{h}/background_opposite"]:.1f} %'
                      for h in ('df', 'cd')) + '.']
    soft = [r['soft_labels'] for r in summary['runs'] if 'soft_labels' in r]
    if soft:
        s0 = soft[0]
        lines += ['', f'Soft labels p_c (train set): argmax accuracy '
                  f'{100 * s0["acc"]:.1f} % (own locations '
                  f'{100 * s0.get("acc_own_location", math.nan):.1f}, other '
                  f'locations {100 * s0.get("acc_other_location", math.nan):.1f}'
                  f'), mass on the true class {s0["true_class_mass"]:.2f}, '
                  f'mean max {s0["max_mass"]:.2f}.']
    return '\n'.join(lines)


def ood_above_curve(curve: Mapping[str, Any], id_acc: float,
                    ood_acc: float) -> Optional[float]:
    """``ood_acc`` minus the OOD accuracy of ``curve`` (a WiSE-FT curve)
    at ID accuracy ``id_acc``, linearly interpolated; None outside the
    curve's ID range. Positive: better than mixing that model's weights."""
    pts = sorted((p[f'{ID_SET}/acc'], p[f'{OOD_SET}/acc'])
                 for p in curve['points'])
    if not pts[0][0] <= id_acc <= pts[-1][0]:
        return None
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= id_acc <= x1:
            y = y0 if x1 == x0 else y0 + (y1 - y0) * (id_acc - x0) / (x1 - x0)
            return ood_acc - y
    return None


def curve_gaps(summary: Mapping[str, Any]) -> Dict[Tuple[str, str], List[float]]:
    """Per (method, head): for each seed, OOD acc of its fine-tuned model
    minus the reference FLYP WiSE-FT curve (mean over seeds) at the same ID
    acc; seeds outside the curve's ID range are left out."""
    reference = _reference_curve(summary)
    gaps: Dict[Tuple[str, str], List[float]] = {}
    if reference is None:
        return gaps
    for curve in summary['curves']:
        if curve is reference:
            continue
        method, head = curve['method'], curve['head']
        values = [ood_above_curve(reference, r['final'][f'{head}/{ID_SET}/acc'],
                                  r['final'][f'{head}/{OOD_SET}/acc'])
                  for r in summary['runs'] if r['method'] == method]
        gaps[(method, head)] = [v for v in values if v is not None]
    return gaps


def _reference_curve(summary: Mapping[str, Any]) -> Optional[Mapping]:
    return next((c for c in summary['curves']
                 if c['method'] == 'flyp' and c['head'] == 'df'),
                summary.get('reference_curve'))


def _wise_ft_lines(summary: Mapping[str, Any]) -> List[str]:
    gaps = curve_gaps(summary)
    n_seeds = len(summary['settings']['seeds'])
    lines = []
    for curve in summary['curves']:
        pts = curve['points']
        half = [p for p in pts if abs(p['alpha'] - 0.5) < 1e-9]
        values = gaps.get((curve['method'], curve['head']), [])
        if not values:
            gap = 'n/a'
        else:
            mean, std = mean_std(values)
            gap = f'{100 * mean:+.1f} ± {100 * std:.1f}' + (
                f' ({len(values)} of {n_seeds} seeds)'
                if len(values) < n_seeds else '')
        lines.append(
            f'| {_label(curve["method"], curve["head"])} | '
            + (f'{100 * half[0][f"{ID_SET}/acc"]:.1f} / '
               f'{100 * half[0][f"{OOD_SET}/acc"]:.1f}' if half else 'n/a')
            + f' | {gap} |')
    return lines


def write_outputs(summary: Mapping[str, Any], work_dir: PathLike) -> None:
    """``results.md`` (the table) and ``id_vs_ood.png`` (the plot)."""
    work_dir = pathlib.Path(work_dir)
    (work_dir / 'results.md').write_text(format_table(summary) + '\n')
    plot_id_vs_ood(summary, work_dir / 'id_vs_ood.png')


def id_vs_ood_figure(summary: Mapping[str, Any], metric: str = 'acc'):
    """The ID vs OOD ``metric`` figure: each method's head with its WiSE-FT
    curve (mean over seeds) ending in a marker at the fine-tuned model
    (alpha = 1) with error bars of one standard deviation over seeds."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    styles = {'flyp': 'tab:blue', 'ce': 'tab:orange', 'drm': 'tab:green',
              'l2sp': 'tab:red', 'carft': 'tab:purple', 'lipsum': 'tab:brown'}
    rows = {(r['method'], r['head']): r for r in summary['rows']}
    n_seeds = len(summary['settings']['seeds'])
    for curve in summary['curves']:
        pts = curve['points']
        x = [100 * p[f'{ID_SET}/{metric}'] for p in pts]
        y = [100 * p[f'{OOD_SET}/{metric}'] for p in pts]
        main = curve['head'] == METHOD_HEAD[curve['method']]
        line = '-' if main else {'df': '--', 'cd': ':'}.get(curve['head'],
                                                            '-.')
        color, alpha = styles[curve['method']], 1.0 if main else 0.7
        # one legend entry per model: its curve with its fine-tuned marker
        ax.plot(x, y, line, color=color, alpha=alpha,
                marker='o' if main else 's', markevery=[len(x) - 1],
                label=f'{_label(curve["method"], curve["head"])}: '
                'fine-tuned + WiSE-FT')
        row = rows[(curve['method'], curve['head'])]
        ax.errorbar(x[-1], y[-1], xerr=100 * row[f'{ID_SET}/{metric}'][1],
                    yerr=100 * row[f'{OOD_SET}/{metric}'][1], color=color,
                    alpha=alpha, capsize=3, linewidth=1)
    zs = summary['zero_shot']
    for head, marker in (('df', '*'), ('cd', 'P'), ('mixture', 'X')):
        if f'{head}/{ID_SET}/{metric}' in zs:
            ax.plot(100 * zs[f'{head}/{ID_SET}/{metric}'],
                    100 * zs[f'{head}/{OOD_SET}/{metric}'], marker,
                    color='black', markersize=11,
                    label=f'zero-shot ({head})')
    id_split, ood_split = eval_splits(summary)
    ax.set_xlabel(f'ID {metric} (%, {id_split})')
    ax.set_ylabel(f'OOD {metric} (%, {ood_split})')
    ax.set_title('Toy world: fine-tuned models and their WiSE-FT curves')
    ax.text(0.01, 0.01, f'markers: fine-tuned (alpha = 1), bars: ±1 std '
            f'over {n_seeds} seed(s); lines: WiSE-FT, mean over seeds',
            transform=ax.transAxes, fontsize=7, color='dimgray')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='best')
    fig.tight_layout()
    return fig


def plot_id_vs_ood(summary: Mapping[str, Any], path: PathLike,
                   metric: str = 'acc') -> None:
    """Write :func:`id_vs_ood_figure` to ``path``."""
    import matplotlib.pyplot as plt
    fig = id_vs_ood_figure(summary, metric)
    fig.savefig(path, dpi=120)
    plt.close(fig)
