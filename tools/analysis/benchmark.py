"""Where time and memory go in drm_mm: one command, every figure a ratio.

Each figure compares two variants side by side in this one process, on the
same model, batch and data, after warm-up, over several interleaved rounds
(A B, B A, ...); medians are reported. Sections:

* ``train``: train step time of DRM vs FLYP vs CE (text tower training),
  the cheaper WRM paths vs FLYP (``wrm_text_grad=False`` re-encoding the cd
  prototypes every step / every 10 steps, ``wrm_text_classes``: the text
  gradient for a class subset, ``--wrm-text-classes``) and DRM vs FLYP
  with a frozen text tower (``DRMClassifier.train_step``);
* ``engine``: drm_mm's MMEngine training iteration (DRMRunner, default
  hooks, data preprocessor, OptimWrapper) vs a plain PyTorch loop written
  here with the same math on the same open_clip module;
* ``eval``: evaluation images/s with the df / cd prototypes cached for the
  evaluation vs recomputed for every batch;
* ``text``: the DRM-only work with a training text tower, forward+backward
  of the cd prompts: padded to the context length vs trimmed to the
  longest prompt vs trimmed in length buckets;
* ``pipeline``: train pipeline images/s on 1920x1080 JPEGs with
  reduced-scale decoding (``LoadImageDraft``) vs MMPretrain's default
  ``LoadImageFromFile``, with 1 and 2 data-loading workers;
* ``soft_labels``: the soft-label pass (``SoftLabelCacheHook``) images/s,
  and that a second run is a cache hit;
* ``memory``: peak memory of a DRM train step with gradient checkpointing
  on vs off, and with AMP (bf16; on CUDA also fp16) vs fp32, measured in a
  fresh process (see ``benchmark_utils.MEMORY_METHODS`` next to this tool).

    python tools/analysis/benchmark.py --quick            # tiny CLIP, ~30 s
    python tools/analysis/benchmark.py --arch ViT-B-16 --device cpu \\
        --out work_dirs/benchmark/vitb16_cpu.json          # CPU, < 10 min
    python tools/analysis/benchmark.py --arch ViT-B-16 --device cuda \\
        --batch-size 32 --classes 182 --out work_dirs/benchmark/gpu.json

Models have random weights (no download); the class names, templates and
concept descriptions are iWildCam's (``--classes N``: the first N classes).
A FLOP-model projection of DRM/FLYP to all 182 classes, per-GPU batch and
GPU count is printed alongside (labelled as a projection, not a measure),
and one for ImageNet's 1000 classes and 1,019 concept descriptions at the
paper's setting (global batch 512 on 8 GPUs) and on one GPU.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import importlib.util
import json
import os
import os.path as osp
import platform
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SECTIONS = ('train', 'engine', 'eval', 'text', 'pipeline', 'soft_labels',
            'memory')
METHODS = {
    # name: (DualRiskLoss cfg, head beta, uses concept descriptions)
    'DRM': (dict(erm='contrastive', wrm_weight=1.0), 0.5, True),
    'FLYP': (dict(erm='contrastive', wrm_weight=0.0), 1.0, False),
    'CE': (dict(erm='ce', wrm_weight=0.0), 1.0, False),
    # the cheaper WRM paths (cd prototypes without text gradient; text
    # gradient for a class subset only), each timed re-encoding its no-grad
    # cd prototypes every step (k = 1) or never after warm-up ("stale"): a
    # refresh every k steps costs stale + (k=1 - stale) / k per step
    'DRM-nograd': (dict(erm='contrastive', wrm_weight=1.0), 0.5, True),
    'DRM-nograd-stale': (dict(erm='contrastive', wrm_weight=1.0), 0.5, True),
    'DRM-subset-stale': (dict(erm='contrastive', wrm_weight=1.0), 0.5, True),
}
#: No re-encoding within a benchmark (the "stale" variants).
NEVER = 10**9
#: Extra DRMClassifier options of a method (DRM-subset-stale's
#: ``wrm_text_classes`` is ``--wrm-text-classes``).
METHOD_OPTIONS = {
    'DRM-nograd': dict(wrm_text_grad=False),
    'DRM-nograd-stale': dict(wrm_text_grad=False, wrm_text_refresh=NEVER),
    'DRM-subset-stale': dict(wrm_text_classes=16, wrm_text_refresh=NEVER),
}
#: The cheaper WRM paths of the train section (text tower training).
CHEAP_WRM = ('DRM-nograd', 'DRM-nograd-stale', 'DRM-subset-stale')
#: Train-step methods ``--train-methods`` chooses from (FLYP always runs).
TRAIN_METHODS = ('DRM', 'CE') + CHEAP_WRM
#: Defaults per run kind: quick (tiny CLIP), cpu, cuda.
PRESETS = {
    'quick': dict(arch='drm-tiny-vit', batch_size=8, memory_batch=8,
                  classes=24, repeats=2, warmup=1, eval_batch=16, jpegs=4,
                  soft_label_images=4),
    'cpu': dict(arch='ViT-B-16', batch_size=2, memory_batch=8, classes=16,
                repeats=3, warmup=1, eval_batch=4, jpegs=16,
                soft_label_images=8),
    'cuda': dict(arch='ViT-B-16', batch_size=32, memory_batch=32,
                 classes=182, repeats=10, warmup=3, eval_batch=128, jpegs=64,
                 soft_label_images=256),
}
TOOLS_DIR = osp.dirname(osp.abspath(__file__))
LR, WEIGHT_DECAY = 1e-5, 0.2  # the FLYP/DRM recipe; values do not matter


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true',
                        help='tiny CLIP and small sizes (a smoke run)')
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--arch', help='open_clip architecture (random '
                        'weights); default ViT-B-16, drm-tiny-vit with '
                        '--quick')
    parser.add_argument('--batch-size', type=int,
                        help='train batch (cpu 2, cuda 32, quick 8)')
    parser.add_argument('--memory-batch', type=int,
                        help='train batch of the memory section (cpu 8, '
                        'else --batch-size): activations must outweigh the '
                        'gradients for checkpointing to show')
    parser.add_argument('--classes', type=int,
                        help='first N iWildCam classes (cpu 24, else 182)')
    parser.add_argument('--repeats', type=int, help='timed rounds')
    parser.add_argument('--warmup', type=int, help='untimed rounds first')
    parser.add_argument('--eval-batch', type=int, help='eval batch size')
    parser.add_argument('--jpegs', type=int,
                        help='1920x1080 JPEGs for the pipeline section')
    parser.add_argument('--jpeg-size', type=int, nargs=2,
                        default=(1920, 1080), metavar=('W', 'H'))
    parser.add_argument('--soft-label-images', type=int,
                        help='images of the soft-label pass')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads of this process')
    parser.add_argument('--clock', choices=('wall', 'cpu'),
                        help='time ratios by wall clock or by this '
                        "process's CPU time (default: cpu on --device cpu, "
                        'robust to other load on a shared machine; wall on '
                        'cuda). Data-loading figures always use wall time.')
    parser.add_argument('--sections', nargs='+', default=list(SECTIONS),
                        choices=SECTIONS, metavar='SECTION',
                        help=f'subset of {", ".join(SECTIONS)}')
    parser.add_argument('--wrm-text-classes', type=int, default=16,
                        help='wrm_text_classes of the DRM-subset variant '
                        '(classes whose cd prompts get text gradient each '
                        'step; >= 2)')
    parser.add_argument('--wrm-text-refresh', type=int, default=10,
                        help='k of the cheaper WRM figures: the no-grad cd '
                        'prototypes re-encoded every k steps (derived from '
                        'the measured k = 1 and never-refreshed steps)')
    parser.add_argument('--train-methods', nargs='+',
                        default=list(TRAIN_METHODS), choices=TRAIN_METHODS,
                        metavar='METHOD',
                        help=f'train-section methods besides FLYP (subset '
                        f'of {", ".join(TRAIN_METHODS)}); the cheaper WRM '
                        f'figures need DRM-nograd and DRM-nograd-stale')
    parser.add_argument('--no-frozen', action='store_true',
                        help='skip the frozen-text-tower train steps')
    parser.add_argument('--profile', action='store_true',
                        help='also profile one DRM train step '
                        '(torch.profiler) and print the top operators')
    parser.add_argument('--out', help='write every figure as JSON here')
    args = parser.parse_args(argv)
    preset = PRESETS['quick' if args.quick else args.device]
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ('batch_size', 'memory_batch', 'classes', 'repeats',
                'eval_batch', 'jpegs', 'soft_label_images', 'threads'):
        if getattr(args, key) < 1:
            parser.error(f'--{key.replace("_", "-")} must be >= 1')
    if args.wrm_text_classes < 2:
        parser.error('--wrm-text-classes must be >= 2')
    if args.wrm_text_refresh < 1:
        parser.error('--wrm-text-refresh must be >= 1')
    if args.clock is None:
        args.clock = 'cpu' if args.device == 'cpu' else 'wall'
    if args.warmup < 0:
        parser.error('--warmup must be >= 0')
    if min(args.batch_size, args.memory_batch) < 2:
        parser.error('--batch-size and --memory-batch must be >= 2 '
                     '(contrastive loss)')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is visible.')
    return args


def load_tool(name: str):
    """A sibling script of tools/analysis as a module (reuse, not copy)."""
    spec = importlib.util.spec_from_file_location(
        name, osp.join(TOOLS_DIR, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fmt(ratio: Optional[float]) -> str:
    return 'n/a' if ratio is None else f'{ratio:.3f}'


def _verdict(met: Optional[bool]) -> str:
    return 'n/a' if met is None else ('met' if met else 'NOT met')


class Bench:
    """Shared state of one benchmark run: settings, data, figures."""

    def __init__(self, args: argparse.Namespace) -> None:
        from drm_mm.datasets.classnames import get_classnames
        from drm_mm.prompts import load_descriptions
        self.args = args
        self.device = args.device
        names = list(get_classnames('iwildcam'))
        if args.classes > len(names):
            raise ValueError(f'--classes {args.classes}: iWildCam has '
                             f'{len(names)} classes.')
        self.classnames = names[:args.classes]
        cds = load_descriptions('iwildcam.json', names)
        self.descriptions = dict(zip(self.classnames, cds))
        self.all_descriptions = cds
        self.figures: List[dict] = []
        self.details: Dict[str, dict] = {}
        self._clips: Dict[str, object] = {}
        self.workdir = tempfile.mkdtemp(prefix='drm_bench_')

    # ------------------------------------------------------------ building
    def clip(self, frozen_text: bool):
        """The shared CLIP of one mode (random weights, same seed)."""
        from drm_mm.models.clip import OpenCLIP
        key = 'frozen_text' if frozen_text else 'text_trains'
        if key not in self._clips:
            torch.manual_seed(0)
            self._clips[key] = OpenCLIP(
                model_name=self.args.arch, pretrained=None,
                frozen=('text', ) if frozen_text else ()).to(self.device)
        return self._clips[key]

    def drop_clip(self, frozen_text: bool) -> None:
        self._clips.pop('frozen_text' if frozen_text else 'text_trains',
                        None)
        gc.collect()
        if self.device == 'cuda':
            torch.cuda.empty_cache()

    def classifier(self, clip, method: str):
        """A DRMClassifier of ``method`` around the shared ``clip``."""
        from drm_mm.models.classifiers import DRMClassifier
        loss, beta, uses_cd = METHODS[method]
        options = self.method_options(method)
        if 'wrm_text_classes' in options:  # --quick has fewer classes than
            options['wrm_text_classes'] = min(  # m: then the exact path
                options['wrm_text_classes'], len(self.classnames))
        model = DRMClassifier(
            clip=clip, classnames=self.classnames, templates='iwildcam',
            descriptions=self.descriptions if uses_cd else None,
            head=dict(beta=beta), loss=loss,
            soft_labels=dict(source='cache'), **options)
        if uses_cd:
            model.set_soft_labels(self.soft_table(
                max(self.args.batch_size, self.args.memory_batch)))
        return model.to(self.device)

    def method_options(self, method: str) -> dict:
        """The extra DRMClassifier options of ``method`` in this run."""
        options = dict(METHOD_OPTIONS.get(method, {}))
        if 'wrm_text_classes' in options:
            options['wrm_text_classes'] = self.args.wrm_text_classes
        return options

    def soft_table(self, rows: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(2)
        return torch.softmax(
            3 * torch.randn(rows, len(self.classnames), generator=g), dim=1)

    def image_size(self) -> int:
        size = self.clip(frozen_text=True).model.visual.image_size
        return size[0] if isinstance(size, (tuple, list)) else size

    def batch(self, n: int, seed: int = 1) -> dict:
        """A collated batch as the train dataloader yields it (uint8 BGR
        images, data samples with ``gt_label`` and ``sample_idx``)."""
        from mmpretrain.structures import DataSample
        g = torch.Generator().manual_seed(seed)
        size = self.image_size()
        inputs = [torch.randint(0, 256, (3, size, size), generator=g,
                                dtype=torch.uint8) for _ in range(n)]
        samples = []
        for i in range(n):
            sample = DataSample().set_gt_label(i % len(self.classnames))
            sample.set_metainfo(dict(sample_idx=i))
            samples.append(sample)
        return dict(inputs=inputs, data_samples=samples)

    def optim_wrapper(self, clip, kind: str = 'fp32',
                      optimizer: Optional[torch.optim.Optimizer] = None):
        """MMEngine optim wrapper (fp32, or AMP of dtype ``kind``) over the
        trainable CLIP parameters, or around a given ``optimizer``."""
        from mmengine.optim import AmpOptimWrapper, OptimWrapper
        if optimizer is None:
            optimizer = torch.optim.AdamW(
                [p for p in clip.parameters() if p.requires_grad], lr=LR,
                weight_decay=WEIGHT_DECAY)
        if kind == 'fp32':
            return OptimWrapper(optimizer)
        if self.device == 'cuda':
            return AmpOptimWrapper(optimizer=optimizer, dtype=kind)
        return CPUAutocastOptimWrapper(optimizer=optimizer)

    # ------------------------------------------------------------ recording
    def figure(self, name: str, numerator: str, denominator: str,
               ratio: Optional[float], unit: str = '',
               goal: Optional[str] = None, met: Optional[bool] = None,
               note: str = '') -> None:
        from benchmark_utils import Figure
        fig = Figure(name, numerator, denominator, ratio, unit, goal, met,
                     note)
        self.figures.append(fig.as_dict())
        goal_txt = f' (goal {goal}: {_verdict(met)})' if goal else ''
        print(f'  -> {name}: {_fmt(ratio)}{unit}{goal_txt}', flush=True)

    def times(self, variants: Dict[str, Callable[[], object]],
              repeats: Optional[int] = None,
              warmup: Optional[int] = None,
              clock: Optional[str] = None) -> Dict[str, dict]:
        """Interleaved timing; ``median_s`` by ``clock`` (default
        ``--clock``), both clocks' samples kept."""
        from benchmark_utils import interleaved_times
        raw = interleaved_times(
            variants, self.args.repeats if repeats is None else repeats,
            self.args.warmup if warmup is None else warmup, self.device)
        return {name: self.summary(ts, clock) for name, ts in raw.items()}

    def summary(self, samples: Dict[str, list],
                clock: Optional[str] = None) -> dict:
        from benchmark_utils import median
        clock = clock or self.args.clock
        return dict(median_s=median(samples[clock]), clock=clock,
                    wall_s=samples['wall'], cpu_s=samples['cpu'],
                    median_wall_s=median(samples['wall']),
                    median_cpu_s=median(samples['cpu']))


def _cpu_autocast_wrapper():
    from mmengine.optim import OptimWrapper

    class _CPUAutocastOptimWrapper(OptimWrapper):
        """OptimWrapper whose forward runs under CPU bf16 autocast (what
        AmpOptimWrapper does on CUDA; bf16 needs no loss scaling)."""

        @contextlib.contextmanager
        def optim_context(self, model):
            with super().optim_context(model), torch.autocast(
                    'cpu', dtype=torch.bfloat16):
                yield

    return _CPUAutocastOptimWrapper


def CPUAutocastOptimWrapper(**kwargs):  # noqa: N802 (a class factory)
    return _cpu_autocast_wrapper()(**kwargs)


# ---------------------------------------------------------------- sections
def bench_train(b: Bench) -> None:
    """DRM vs FLYP vs CE train step, text tower training and frozen, and
    the cheaper WRM paths."""
    data = b.batch(b.args.batch_size)
    chosen = [m for m in TRAIN_METHODS if m in b.args.train_methods]
    for frozen in (False, True):
        if frozen and (b.args.no_frozen or 'DRM' not in chosen):
            continue
        mode = 'frozen text tower' if frozen else 'text tower trains'
        methods = ('DRM', 'FLYP') if frozen else tuple(
            ['FLYP'] + chosen)
        print(f'[train] {mode}: {", ".join(methods)} x {b.args.batch_size} '
              f'images, {len(b.classnames)} classes', flush=True)
        clip = b.clip(frozen_text=frozen)
        models = {m: b.classifier(clip, m).train() for m in methods}
        wrapper = b.optim_wrapper(clip)
        res = b.times({m: (lambda m=m: models[m].train_step(data, wrapper))
                       for m in methods})
        key = 'frozen_text' if frozen else 'text_trains'
        b.details[f'train_{key}'] = res
        for m in methods:
            print(f'    {m:<16} {1e3 * res[m]["median_s"]:9.1f} ms/step')
        flyp = res['FLYP']['median_s']
        if 'DRM' in res:
            ratio = res['DRM']['median_s'] / flyp
            b.figure(f'train step DRM / FLYP ({mode})', 'DRM', 'FLYP',
                     ratio, 'x', goal='<= 1.10', met=ratio <= 1.10)
        if not frozen:
            if 'CE' in res and 'DRM' in res:
                b.figure(f'train step DRM / CE ({mode})', 'DRM', 'CE',
                         res['DRM']['median_s'] / res['CE']['median_s'],
                         'x')
            cheap_wrm_figures(b, res, mode)
        models.clear()  # free this mode's classifiers before the next
        if frozen:
            continue
        if b.args.profile:
            profile_step(b, b.classifier(clip, 'DRM').train(), data)
        b.drop_clip(frozen_text=False)


def cheap_wrm_figures(b: Bench, res: Dict[str, dict], mode: str) -> None:
    """The cheaper WRM paths / FLYP: k = 1 measured; a refresh every k
    steps from the measured k = 1 and never-refreshed steps of this run."""
    flyp = res['FLYP']['median_s']
    k = b.args.wrm_text_refresh
    if 'DRM-nograd' in res:
        ratio = res['DRM-nograd']['median_s'] / flyp
        b.figure(f'train step DRM wrm_text_grad=False / FLYP ({mode})',
                 'DRM-nograd', 'FLYP', ratio, 'x', goal='<= 1.15',
                 met=ratio <= 1.15,
                 note='cd prototypes encoded without gradient every step '
                 '(L_WRM trains the image tower only); measured')
    if 'DRM-nograd' not in res or 'DRM-nograd-stale' not in res:
        return
    stale = res['DRM-nograd-stale']['median_s']
    refresh = max(res['DRM-nograd']['median_s'] - stale, 0.0) / k
    how = (f'derived: never-refreshed step + (every-step - never-refreshed)'
           f' / {k}, all measured in this run')
    ratio = (stale + refresh) / flyp
    b.figure(f'train step DRM wrm_text_grad=False wrm_text_refresh={k} / '
             f'FLYP ({mode})', 'DRM-nograd-stale', 'FLYP', ratio, 'x',
             goal='<= 1.15', met=ratio <= 1.15, note=how)
    if 'DRM-subset-stale' in res:
        m = b.args.wrm_text_classes
        ratio = (res['DRM-subset-stale']['median_s'] + refresh) / flyp
        exact = m >= len(b.classnames)
        b.figure(f'train step DRM wrm_text_classes={m} wrm_text_refresh={k}'
                 f' / FLYP ({mode})', 'DRM-subset-stale', 'FLYP', ratio,
                 'x', goal='<= 1.15', met=ratio <= 1.15,
                 note=(f'{m} >= {len(b.classnames)} classes: the exact '
                       f'path; ' if exact else
                       f'cd prompts of {m} classes with gradient each step '
                       f'({-(-m // 2)} of most p_c mass + the rest drawn); ')
                 + how)


def profile_step(b: Bench, model, data) -> None:
    """torch.profiler over one DRM train step: the top operators."""
    from torch.profiler import ProfilerActivity, profile
    wrapper = b.optim_wrapper(model.clip)
    model.train_step(data, wrapper)  # warm-up
    activities = [ProfilerActivity.CPU]
    if b.device == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities, record_shapes=False) as prof:
        model.train_step(data, wrapper)
    key = 'self_cuda_time_total' if b.device == 'cuda' else \
        'self_cpu_time_total'
    events = prof.key_averages()
    print(events.table(sort_by=key, row_limit=12))
    total = sum(getattr(e, key) for e in events) or 1.0
    top = sorted(events, key=lambda e: getattr(e, key), reverse=True)[:12]
    b.details['profile_drm_step'] = dict(
        sort_by=key, top=[dict(op=e.key, share=getattr(e, key) / total,
                               calls=e.count) for e in top])


def bench_engine(b: Bench) -> None:
    """drm_mm's MMEngine iteration vs a plain PyTorch loop (same math)."""
    from mmengine.dataset import pseudo_collate
    from mmengine.hooks import Hook
    from torch.utils.data import DataLoader

    from drm_mm.engine.runners import DRMRunner
    from benchmark_utils import Stopwatch
    print('[engine] DRM (frozen text tower): MMEngine iteration vs plain '
          'PyTorch loop', flush=True)
    clip = b.clip(frozen_text=True)
    model = b.classifier(clip, 'DRM')
    plain = PlainDRMStep(b, model)
    data = b.batch(b.args.batch_size)
    items = [dict(inputs=x, data_samples=s)
             for x, s in zip(data['inputs'], data['data_samples'])]
    loader = DataLoader(items, batch_size=len(items), shuffle=False,
                        collate_fn=pseudo_collate)
    rounds = b.args.warmup + b.args.repeats
    record = {k: dict(wall=[], cpu=[]) for k in ('mmengine', 'plain')}
    watch = Stopwatch(b.device)

    def keep(name: str) -> None:
        record[name]['wall'].append(watch.wall)
        record[name]['cpu'].append(watch.cpu)

    class StartClock(Hook):
        priority = 'HIGHEST'

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            watch.__enter__()

    class StopClockThenPlainStep(Hook):
        priority = 'LOWEST'

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            watch.__exit__()
            keep('mmengine')
            with watch:
                plain(data_batch)
            keep('plain')

    runner = DRMRunner(
        model=model, work_dir=osp.join(b.workdir, 'engine'),
        train_dataloader=loader,
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(
            type='AdamW', lr=LR, weight_decay=WEIGHT_DECAY)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=rounds),
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=50),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=None,
            sampler_seed=dict(type='DistSamplerSeedHook')),
        custom_hooks=[StartClock(), StopClockThenPlainStep()],
        default_scope='drm_mm', log_level='WARNING',
        env_cfg=dict(cudnn_benchmark=False,
                     dist_cfg=dict(backend='nccl')))
    runner.train()
    res = {k: b.summary({c: ts[b.args.warmup:] for c, ts in v.items()})
           for k, v in record.items()}
    b.details['engine'] = res
    for k, r in res.items():
        print(f'    {k:<9} {1e3 * r["median_s"]:9.1f} ms/step')
    ratio = res['mmengine']['median_s'] / res['plain']['median_s']
    b.figure('MMEngine step / plain PyTorch loop (DRM)', 'mmengine',
             'plain', ratio, 'x', goal='<= 1.03', met=ratio <= 1.03)


class PlainDRMStep:
    """The DRM step (frozen text tower, cached soft labels) by hand: the
    same open_clip module and math, no MMEngine, no drm_mm classes."""

    def __init__(self, b: Bench, model) -> None:
        from drm_mm.models.classifiers.drm_classifier import (CLIP_MEAN,
                                                              CLIP_STD)
        self.clip = copy.deepcopy(model.clip.model)
        self.optimizer = torch.optim.AdamW(
            [p for p in self.clip.parameters() if p.requires_grad], lr=LR,
            weight_decay=WEIGHT_DECAY)
        device = b.device
        self.mean = torch.tensor(CLIP_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(CLIP_STD, device=device).view(1, 3, 1, 1)
        tokenizer = model.clip.tokenizer
        with torch.no_grad():
            captions = tokenizer([f'a photo of {c}.'
                                  for c in b.classnames]).to(device)
            self.captions = F.normalize(self.clip.encode_text(captions),
                                        dim=-1)
            cd = [d for c in b.classnames for d in b.descriptions[c]]
            counts = [len(b.descriptions[c]) for c in b.classnames]
            feats = F.normalize(self.clip.encode_text(
                tokenizer(cd).to(device)), dim=-1)
            owner = torch.repeat_interleave(
                torch.arange(len(counts), device=device),
                torch.tensor(counts, device=device))
            sums = feats.new_zeros(len(counts), feats.size(1)).index_add(
                0, owner, feats)
            self.cd = F.normalize(sums, dim=-1)
        self.soft = model.soft_label_table
        self.device = device

    def __call__(self, data: dict) -> float:
        x = torch.stack(data['inputs']).to(self.device).float()
        x = (x[:, [2, 1, 0]] - self.mean) / self.std  # BGR -> RGB, CLIP std
        labels = torch.tensor([int(s.gt_label) for s in data['data_samples']
                               ], device=self.device)
        index = torch.tensor([s.metainfo['sample_idx']
                              for s in data['data_samples']])
        image = F.normalize(self.clip.encode_image(x), dim=-1)
        scale = self.clip.logit_scale.exp().clamp(max=100)
        logits = scale * image @ self.captions[labels].t()
        target = torch.arange(len(labels), device=self.device)
        erm = 0.5 * (F.cross_entropy(logits, target) +
                     F.cross_entropy(logits.t(), target))
        z_cd = scale * image @ self.cd.t()
        p_c = self.soft[index].to(self.device)
        wrm = -(p_c * F.log_softmax(z_cd, dim=1)).sum(dim=1).mean()
        loss = erm + wrm
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item()


def bench_eval(b: Bench) -> None:
    """Eval images/s: prototypes cached per evaluation vs per batch."""
    print(f'[eval] DRM dual inference, {b.args.eval_batch} images/batch, '
          f'{len(b.classnames)} classes', flush=True)
    model = b.classifier(b.clip(frozen_text=True), 'DRM').eval()
    data = b.batch(b.args.eval_batch, seed=3)

    def per_batch():
        model.invalidate_prototypes()
        return model.test_step(data)

    res = b.times(dict(cached=lambda: model.test_step(data),
                       per_batch=per_batch))
    b.details['eval'] = res
    rates = {k: b.args.eval_batch / r['median_s'] for k, r in res.items()}
    for k, rate in rates.items():
        print(f'    {k:<9} {rate:9.1f} images/s')
    b.figure('eval images/s: prototypes once / per batch', 'cached',
             'per_batch', rates['cached'] / rates['per_batch'], 'x')


def bench_text(b: Bench) -> None:
    """DRM's extra work with a training text tower, forward+backward of the
    cd prompts: padded to the context length vs drm_mm's trimmed forward
    (and, where the prompts fall into several length buckets, one batch at
    the longest length vs the buckets)."""
    import open_clip

    from drm_mm.models.clip.text_trimming import plan_length_buckets
    clip = b.clip(frozen_text=False)
    model = clip.model
    cd = [d for c in b.classnames for d in b.descriptions[c]]
    tokens = clip.tokenize(cd)
    lengths = clip.text_lengths(tokens)
    print(f'[text] cd prompts forward+backward: {len(cd)} prompts, '
          f'context {tokens.size(1)}, longest {int(lengths.max())}, mean '
          f'{lengths.float().mean():.1f} tokens', flush=True)
    if not clip.trim_text:
        b.figure('cd text fwd+bwd: padded / trimmed', 'padded', 'trimmed',
                 None, 'x', note=f'{b.args.arch}: text tower not trimmable')
        return
    buckets = clip.text_length_buckets
    plan = plan_length_buckets(lengths, buckets,
                               clip.text_encoder.text_bucket_overhead)

    def run(kind: str) -> None:
        if kind == 'padded':
            feats = open_clip.CLIP.encode_text(model, tokens, normalize=True)
        else:
            clip.text_length_buckets = 1 if kind == 'one_batch' else buckets
            feats = clip.encode_text(tokens, lengths=lengths)
            clip.text_length_buckets = buckets
        feats.pow(2).sum().backward()
        clip.zero_grad(set_to_none=True)

    kinds = ['padded', 'trimmed'] + (['one_batch'] if len(plan) > 1 else [])
    res = b.times({k: (lambda k=k: run(k)) for k in kinds})
    res['tokens'] = dict(padded=tokens.numel(),
                         trimmed=sum(len(r) * n for r, n in plan),
                         one_batch=len(cd) * int(lengths.max()),
                         bucket_lengths=[n for _, n in plan])
    b.details['text'] = res
    for k in kinds:
        print(f'    {k:<9} {1e3 * res[k]["median_s"]:9.1f} ms  '
              f'({res["tokens"][k]} tokens)')
    b.figure('cd text fwd+bwd: padded / trimmed', 'padded', 'trimmed',
             res['padded']['median_s'] / res['trimmed']['median_s'], 'x',
             note=f'trimmed: {len(plan)} length bucket(s) '
             f'{res["tokens"]["bucket_lengths"]}')
    if len(plan) > 1:
        b.figure('cd text fwd+bwd: one batch / length buckets', 'one_batch',
                 'trimmed',
                 res['one_batch']['median_s'] / res['trimmed']['median_s'],
                 'x')


class _ImageList:
    """The smallest dataset the soft-label hook accepts: image paths."""

    def __init__(self, paths: List[str]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def get_data_info(self, idx: int) -> dict:
        return dict(img_path=self.paths[idx], sample_idx=idx)


class _PipelineDataset(torch.utils.data.Dataset):
    def __init__(self, paths: List[str], pipeline: list) -> None:
        self.paths, self.pipeline = paths, pipeline

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, idx: int) -> dict:
        results = dict(img_path=self.paths[idx], sample_idx=idx)
        for transform in self.pipeline:
            results = transform(results)
        return results


def jpeg_paths(b: Bench) -> List[str]:
    if 'jpegs' not in b.details:
        decode = load_tool('benchmark_decode')
        folder = osp.join(b.workdir, 'jpegs')
        os.makedirs(folder, exist_ok=True)
        print(f'  writing {b.args.jpegs} synthetic {b.args.jpeg_size[0]}x'
              f'{b.args.jpeg_size[1]} JPEGs', flush=True)
        b.details['jpegs'] = dict(paths=decode.write_images(
            folder, b.args.jpegs, b.args.jpeg_size, seed=0))
    return b.details['jpegs']['paths']


def bench_pipeline(b: Bench) -> None:
    """Train pipeline images/s, reduced-scale decode vs full decode."""
    import cv2
    from mmengine.dataset import pseudo_collate
    from torch.utils.data import DataLoader
    import drm_mm.datasets.transforms  # noqa: F401 (registers)
    decode = load_tool('benchmark_decode')
    print('[pipeline] train pipeline on JPEGs', flush=True)
    paths = jpeg_paths(b)
    size = b.image_size() if not b.args.quick else 224
    cv2.setNumThreads(0)
    loaders = dict(
        mmcv=dict(type='LoadImageFromFile'),
        pil=dict(type='LoadImageDraft'),
        draft=dict(type='LoadImageDraft', min_size=size))
    res = {}
    for workers in (1, 2):
        iters = {}
        for name, cfg in loaders.items():
            dataset = _PipelineDataset(paths,
                                       decode.build_pipeline(cfg, size))
            iters[name] = DataLoader(dataset, batch_size=4,
                                     num_workers=workers,
                                     persistent_workers=True,
                                     collate_fn=pseudo_collate)

        def epoch(loader) -> None:
            for _ in loader:
                pass

        timed = b.times({k: (lambda k=k: epoch(iters[k])) for k in iters},
                        warmup=max(1, b.args.warmup), clock='wall')
        rates = {k: len(paths) / r['median_s'] for k, r in timed.items()}
        res[f'{workers}_workers'] = dict(timed, images_per_s=rates)
        iters.clear()  # shuts the persistent workers down
        print(f'    {workers} worker(s): images/s full decode: mmcv (cv2) '
              f'{rates["mmcv"]:.1f}, PIL {rates["pil"]:.1f}; reduced-scale '
              f'(PIL draft) {rates["draft"]:.1f}')
        ratio = rates['draft'] / rates['pil']
        b.figure(f'pipeline images/s, {workers} worker(s): reduced-scale / '
                 'full decode (PIL)', 'LoadImageDraft(min_size)',
                 'LoadImageDraft()', ratio, 'x', goal='>= 3',
                 met=ratio >= 3)
        b.figure(f'pipeline images/s, {workers} worker(s): reduced-scale / '
                 'mmcv LoadImageFromFile', 'LoadImageDraft(min_size)',
                 'LoadImageFromFile', rates['draft'] / rates['mmcv'], 'x',
                 note='cv2 full decode, MMPretrain default loader')
    res['crop'] = size
    b.details['pipeline'] = res


def bench_soft_labels(b: Bench) -> None:
    """The soft-label pass: images/s, and a second run hits the cache."""
    from drm_mm.engine.hooks.soft_label_cache_hook import SoftLabelCacheHook
    from benchmark_utils import Stopwatch
    paths = jpeg_paths(b)
    count = b.args.soft_label_images
    paths = (paths * (-(-count // len(paths))))[:count]
    print(f'[soft_labels] teacher pass over {count} JPEGs', flush=True)
    size = b.image_size()
    model = b.classifier(b.clip(frozen_text=True), 'DRM')
    pipeline = [
        dict(type='LoadImageDraft', min_size=size),
        dict(type='ResizeEdge', scale=size, edge='short', backend='pillow',
             interpolation='bicubic'),
        dict(type='CenterCrop', crop_size=size),
        dict(type='PackInputs', meta_keys=('sample_idx', )),
    ]
    hook = SoftLabelCacheHook(batch_size=min(64, b.args.eval_batch))
    inner, in_pass = hook.compute, Stopwatch(b.device)

    def timed_compute(*a, **k):
        with in_pass:
            return inner(*a, **k)

    hook.compute = timed_compute  # times the pass inside the first run
    cache_dir = osp.join(b.workdir, 'soft_label_cache')
    runs, clock = [], b.args.clock
    for _ in range(2):
        with Stopwatch(b.device) as watch:
            table = hook.load_or_compute(model, _ImageList(paths), pipeline,
                                         cache_dir)
        runs.append(dict(seconds=getattr(watch, clock), wall_s=watch.wall,
                         cpu_s=watch.cpu, source=hook.last_source))
    hit = runs[0]['source'] == 'computed' and runs[1]['source'] == 'cache'
    res = dict(images=count, runs=runs, cache_hit=hit, clock=clock,
               pass_images_per_s=count / getattr(in_pass, clock),
               first_run_images_per_s=count / runs[0]['seconds'],
               table_shape=list(table.shape))
    b.details['soft_labels'] = res
    print(f'    first run {runs[0]["seconds"]:.2f} s '
          f'({res["pass_images_per_s"]:.1f} images/s in the pass), second '
          f'run {runs[1]["seconds"]:.2f} s from {runs[1]["source"]}')
    b.figure('soft-label pass: second run / first run time', 'second',
             'first', runs[1]['seconds'] / runs[0]['seconds'], 'x',
             goal='second run is a cache hit', met=hit,
             note=f'{res["pass_images_per_s"]:.1f} images/s in the pass')


def bench_memory(b: Bench) -> None:
    """Peak memory of a DRM train step: grad checkpointing, AMP."""
    from benchmark_utils import (MEMORY_METHODS, Stopwatch,
                                              peak_memory,
                                              prepare_rss_measurement)
    batch = b.args.memory_batch
    print(f'[memory] DRM train step (text tower trains), {batch} images',
          flush=True)
    method = MEMORY_METHODS['cuda' if b.device == 'cuda' else 'cpu']
    if b.device == 'cpu':
        b.drop_clip(frozen_text=True)
        b.drop_clip(frozen_text=False)
        prepare_rss_measurement()
    clip = b.clip(frozen_text=False)
    model = b.classifier(clip, 'DRM').train()
    data = b.batch(batch)
    amp = ['bfloat16']
    if b.device == 'cuda':
        if not torch.cuda.is_bf16_supported():
            amp = []
        amp.append('float16')
    fp32 = b.optim_wrapper(clip)
    wrappers = {'fp32': fp32}
    for dtype in amp:  # one AdamW (one set of moments) for all wrappers
        wrappers[dtype] = b.optim_wrapper(clip, dtype, fp32.optimizer)
    # One unmeasured step first: AdamW state (two moments per weight) and
    # the kernels' one-off buffers exist before any variant is measured.
    model.train_step(data, fp32)
    variants = [('fp32', False), ('fp32', True)] + [(d, False) for d in amp]
    res = {}
    for dtype, ckpt in variants:
        clip.model.set_grad_checkpointing(ckpt)
        name = f'{dtype}{"+ckpt" if ckpt else ""}'
        with Stopwatch(b.device) as watch:
            peak = peak_memory(
                lambda: model.train_step(data, wrappers[dtype]), b.device)
        res[name] = dict(peak_bytes=peak, wall_s=watch.wall,
                         cpu_s=watch.cpu)
        shown = 'n/a' if peak is None else f'{peak / 2**20:.0f} MiB'
        print(f'    {name:<10} peak {shown}')
    clip.model.set_grad_checkpointing(False)
    res['method'] = method
    b.details['memory'] = res
    base = res['fp32']['peak_bytes']

    def ratio_of(name: str) -> Optional[float]:
        peak = res[name]['peak_bytes']
        return None if not base or peak is None else peak / base

    if not base:
        method = 'not measurable here: ' + method
    ratio = ratio_of('fp32+ckpt')
    b.figure('peak memory: grad checkpointing on / off', 'fp32+ckpt',
             'fp32', ratio, 'x', goal='<= 0.6',
             met=None if ratio is None else ratio <= 0.6, note=method)
    for dtype in amp:
        b.figure(f'peak memory: AMP {dtype} / fp32', dtype, 'fp32',
                 ratio_of(dtype), 'x', note=method)


def _prompt_tokens(clip, prompts: List[str]) -> dict:
    """Token counts of ``prompts`` padded, trimmed, in length buckets."""
    from drm_mm.models.clip.text_trimming import (BUCKET_OVERHEAD_TOKENS,
                                                  plan_length_buckets)
    tokens = clip.tokenize(prompts)
    lengths = tokens.argmax(dim=-1) + 1  # up to EOT (the largest id)
    buckets = clip.text_length_buckets
    overhead = getattr(clip.text_encoder, 'text_bucket_overhead',
                       BUCKET_OVERHEAD_TOKENS)
    plan = plan_length_buckets(lengths, buckets, overhead)
    return dict(prompts=len(prompts), context=tokens.size(1),
                exact=int(lengths.sum()), padded=tokens.numel(),
                trimmed=len(prompts) * int(lengths.max()),
                buckets=sum(len(rows) * n for rows, n in plan),
                bucket_lengths=[n for _, n in plan],
                per_prompt=[n for rows, n in plan for _ in range(len(rows))])


def memory_in_child(b: Bench) -> None:
    """Run the memory section as ``--sections memory`` in a new process
    with the same settings and take over its figures."""
    import subprocess
    a = b.args
    out = osp.join(b.workdir, 'memory.json')
    argv = [sys.executable, osp.abspath(__file__), '--sections', 'memory',
            '--out', out, '--device', a.device, '--arch', a.arch,
            '--batch-size', str(a.batch_size), '--memory-batch',
            str(a.memory_batch), '--classes', str(a.classes), '--threads',
            str(a.threads), '--clock', a.clock] + (['--quick']
                                                   if a.quick else [])
    print('[memory] in a fresh process:', flush=True)
    proc = subprocess.run(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    lines = proc.stdout.splitlines()
    start = next((i for i, line in enumerate(lines)
                  if line.startswith('[memory]')), len(lines))
    end = next((i for i, line in enumerate(lines) if line.startswith('===')),
               len(lines))
    print('\n'.join(line for line in lines[start + 1:end]
                    if not line.startswith('WARNING')), flush=True)
    if proc.returncode != 0:
        raise RuntimeError(f'the memory section failed in its own process:'
                           f'\n{proc.stdout[-3000:]}')
    with open(out) as f:
        child = json.load(f)
    b.figures.extend(child['figures'])
    b.details['memory'] = child['details']['memory']


def projection(b: Bench) -> dict:
    """FLOP model of DRM / FLYP with a training text tower: checked against
    the measured setting, then at all 182 classes for GPU batch sizes,
    padded vs trimmed cd prompts, 1 vs 8 GPUs (prompts sharded)."""
    from benchmark_utils import projected_step_ratio
    clip = b.clip(frozen_text=True)

    def caption_tokens(names: List[str]) -> int:
        return int(clip.tokenize([f'a photo of {c}.' for c in names]).argmax(
            dim=-1).max()) + 1

    full = _prompt_tokens(clip, [d for per_class in b.all_descriptions
                                 for d in per_class])
    sub = _prompt_tokens(clip, [d for c in b.classnames
                                for d in b.descriptions[c]])
    from drm_mm.datasets.classnames import get_classnames
    caption = caption_tokens(list(get_classnames('iwildcam')))
    measured = b.details.get('train_text_trains')
    check = dict(
        arch=b.args.arch, batch=b.args.batch_size,
        classes=len(b.classnames),
        predicted=projected_step_ratio(b.args.arch, b.args.batch_size,
                                       sub['per_prompt'],
                                       caption_tokens(b.classnames)),
        measured=None if measured is None else
        measured['DRM']['median_s'] / measured['FLYP']['median_s'])
    rows = []
    archs = [b.args.arch] if b.args.quick else sorted(
        {b.args.arch, 'ViT-B-16', 'ViT-L-14-336'})
    context = full['context']
    for arch in archs:
        for batch in (32, 128):
            for world in (1, 8):
                rows.append(dict(
                    arch=arch, batch_per_gpu=batch, gpus=world,
                    padded=projected_step_ratio(
                        arch, batch, [context] * full['prompts'], context),
                    trimmed=projected_step_ratio(arch, batch,
                                                 full['per_prompt'],
                                                 caption),
                    trimmed_sharded=projected_step_ratio(
                        arch, batch, full['per_prompt'], caption,
                        world=world)))
    for counts in (full, sub):
        counts.pop('per_prompt')
    return dict(check=check, tokens_all_classes=full,
                tokens_measured_classes=sub, caption_tokens=caption,
                rows=rows, imagenet=imagenet_projection(
                    clip, b.args.quick, b.args.wrm_text_refresh,
                    b.args.wrm_text_classes))


#: ImageNet settings projected: (arch, images per GPU, GPUs); the paper's
#: is a global batch of 512 on 8 GPUs.
IMAGENET_SETTINGS = [(arch, batch, gpus)
                     for arch in ('ViT-B-16', 'ViT-L-14-336')
                     for batch, gpus in ((64, 8), (32, 1), (128, 1))]


def imagenet_projection(clip, quick: bool = False, refresh: int = 10,
                        subset: int = 16) -> dict:
    """FLOP model of DRM / FLYP for ImageNet's 1000 classes and their
    concept descriptions (text tower training, trimmed prompts, split over
    the GPUs) and the model FLOPs per GPU and step by part: captions of
    ``"a good photo of the {c}."`` (the longest bounds the caption batch),
    3 x forward FLOPs (backward = 2 x forward). Also the cheaper WRM paths
    / FLYP: ``wrm_text_grad=False`` re-encoding all cd prompts (forward
    only, every rank) every ``refresh`` steps, and ``wrm_text_classes=
    subset`` (forward + backward of ``subset`` classes' share of the
    prompts each step, plus that re-encoding)."""
    from drm_mm.datasets.classnames import get_classnames, imagenet_wnids
    from drm_mm.prompts import load_descriptions, make_class_keys
    from drm_mm.prompts.templates import resolve_templates
    from benchmark_utils import projected_step_ratio
    step_flops = load_tool('gpu_benchmark').train_step_flops
    names = list(get_classnames('imagenet'))
    cds = load_descriptions('imagenet.json', names,
                            class_keys=make_class_keys(
                                names, list(imagenet_wnids())))
    tokens = _prompt_tokens(clip, [d for per_class in cds
                                   for d in per_class])
    templates = resolve_templates('imagenet')
    caption = int(clip.tokenize([t.format(c=c) for t in templates
                                 for c in names]).argmax(dim=-1).max()) + 1
    per_prompt = tokens.pop('per_prompt')
    rows = []
    settings = IMAGENET_SETTINGS[:1] if quick else IMAGENET_SETTINGS
    for arch, batch, gpus in settings:
        if quick:
            arch = clip.model_name
        drm = step_flops(arch, batch, caption, per_prompt)
        flyp = drm['image'] + drm['captions']
        reencode = drm['prompts'] / 3 / refresh
        subset_grad = drm['prompts'] * min(subset, len(names)) / len(names)
        rows.append(dict(
            nograd_over_flyp=(flyp + reencode) / flyp,
            subset_over_flyp=(flyp + subset_grad + reencode) / flyp,
            arch=arch, batch_per_gpu=batch, gpus=gpus,
            global_batch=batch * gpus,
            drm_over_flyp=projected_step_ratio(arch, batch, per_prompt,
                                               caption, world=gpus),
            drm_over_flyp_unsharded=projected_step_ratio(
                arch, batch, per_prompt, caption),
            tflop_per_gpu_step=dict(
                image=drm['image'] / 1e12, captions=drm['captions'] / 1e12,
                cd_prompts=drm['prompts'] / gpus / 1e12,
                flyp=(drm['image'] + drm['captions']) / 1e12,
                drm=(drm['image'] + drm['captions'] + drm['prompts'] / gpus)
                / 1e12)))
    return dict(classes=len(names), template=templates,
                caption_tokens=caption, tokens=tokens, rows=rows,
                wrm_text_refresh=refresh, wrm_text_classes=subset)


def _load_average() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine() -> dict:
    info = dict(python=platform.python_version(), torch=torch.__version__,
                platform=platform.platform(), cpus=os.cpu_count(),
                torch_threads=torch.get_num_threads())
    try:
        with open('/proc/cpuinfo') as f:
            names = [line.split(':', 1)[1].strip() for line in f
                     if line.startswith('model name')]
        info['cpu'] = names[0] if names else platform.processor()
        info['load_average'] = _load_average()
    except OSError:
        info['cpu'] = platform.processor()
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name(0)
    return info


def print_table(b: Bench, proj: dict) -> None:
    width = max([58] + [len(fig['name']) for fig in b.figures])
    rule = max(78, width + 26)
    print('\n' + '=' * rule)
    print(f'{"figure":<{width}} {"ratio":>7}  goal')
    print('-' * rule)
    for fig in b.figures:
        goal = '' if not fig['goal'] else \
            f'{fig["goal"]} {_verdict(fig["met"])}'
        print(f'{fig["name"]:<{width}} {_fmt(fig["ratio"]):>7}  {goal}')
    print('-' * rule)
    check, full = proj['check'], proj['tokens_all_classes']
    measured = 'not run' if check['measured'] is None else \
        f'{check["measured"]:.3f}'
    print(f'FLOP model of DRM / FLYP (text tower trains) for the measured '
          f'setting: {check["predicted"]:.3f}, measured {measured}')
    print(f'cd prompts of all {len(b.all_descriptions)} classes: '
          f'{full["prompts"]} prompts, tokens padded {full["padded"]}, '
          f'trimmed {full["trimmed"]}, length buckets {full["buckets"]} '
          f'{full["bucket_lengths"]}, exact {full["exact"]}')
    print(f'projection (FLOP model, not measured): DRM / FLYP, all classes, '
          f'captions {proj["caption_tokens"]} tokens')
    print(f'{"arch":<14}{"batch/GPU":>10}{"GPUs":>6}{"padded":>11}'
          f'{"trimmed":>9}{"+sharded":>10}')
    for row in proj['rows']:
        print(f'{row["arch"]:<14}{row["batch_per_gpu"]:>10}{row["gpus"]:>6}'
              f'{row["padded"]:>11.3f}{row["trimmed"]:>9.3f}'
              f'{row["trimmed_sharded"]:>10.3f}')
    inet = proj['imagenet']
    print(f'ImageNet (FLOP model, not measured): {inet["classes"]} classes, '
          f'{inet["tokens"]["prompts"]} cd prompts, '
          f'{inet["tokens"]["buckets"]} tokens trimmed in buckets '
          f'({inet["tokens"]["padded"]} padded), captions '
          f'{inet["caption_tokens"]} tokens; TFLOP per GPU and step')
    k, m = inet['wrm_text_refresh'], inet['wrm_text_classes']
    print(f'(nograd: wrm_text_grad=False wrm_text_refresh={k}; subset: '
          f'wrm_text_classes={m} wrm_text_refresh={k}; both / FLYP)')
    print(f'{"arch":<14}{"batch/GPU":>10}{"GPUs":>6}{"DRM/FLYP":>10}'
          f'{"1 GPU":>7}{"FLYP":>9}{"+cd":>9}{"nograd":>8}{"subset":>8}')
    for row in inet['rows']:
        t = row['tflop_per_gpu_step']
        print(f'{row["arch"]:<14}{row["batch_per_gpu"]:>10}{row["gpus"]:>6}'
              f'{row["drm_over_flyp"]:>10.3f}'
              f'{row["drm_over_flyp_unsharded"]:>7.3f}{t["flyp"]:>9.2f}'
              f'{t["cd_prompts"]:>9.2f}{row["nograd_over_flyp"]:>8.3f}'
              f'{row["subset_over_flyp"]:>8.3f}')
    print('=' * rule)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    import drm_mm  # noqa: F401  registers components
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmengine', log_level='WARNING')
    start, load_before = time.perf_counter(), _load_average()
    b = Bench(args)
    print(f'drm_mm benchmark: arch={args.arch} device={args.device} '
          f'batch={args.batch_size} classes={args.classes} '
          f'repeats={args.repeats} warmup={args.warmup} '
          f'threads={args.threads}', flush=True)
    sections = dict(train=bench_train, engine=bench_engine, eval=bench_eval,
                    text=bench_text, pipeline=bench_pipeline,
                    soft_labels=bench_soft_labels, memory=bench_memory)
    if args.sections != ['memory']:
        # Peak memory in a fresh process: this one's history (freed
        # buffers, allocator state after the other sections) would add to
        # the measured growth, and the memory set-up slows allocations.
        sections['memory'] = memory_in_child
    timings = {}
    for name in SECTIONS:
        if name in args.sections:
            t0 = time.perf_counter()
            sections[name](b)
            timings[name] = time.perf_counter() - t0
    proj = projection(b)
    b.details.pop('jpegs', None)
    report = dict(
        command=' '.join([osp.relpath(__file__)] + (
            argv if argv is not None else sys.argv[1:])),
        settings={k: (list(v) if isinstance(v, tuple) else v)
                  for k, v in vars(args).items()},
        machine=machine(), figures=b.figures, details=b.details,
        projection=proj, section_seconds=timings,
        total_seconds=time.perf_counter() - start,
        total_cpu_seconds=time.process_time(),
        load_average_before=load_before)
    print_table(b, proj)
    print(f'total {report["total_seconds"]:.0f} s wall, '
          f'{report["total_cpu_seconds"]:.0f} s CPU of this process; load '
          f'average before {load_before}, after '
          f'{report["machine"].get("load_average")}')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=2, default=str)
        print(f'written to {args.out}')
    import shutil
    shutil.rmtree(b.workdir, ignore_errors=True)
    return report


if __name__ == '__main__':
    main()
