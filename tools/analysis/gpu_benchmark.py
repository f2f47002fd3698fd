"""The figures that matter on a GPU, in one run of a few minutes.

For each architecture (default ViT-B/16 and ViT-L/14@336, random weights)
and per-GPU batch (default 32 and 128), with bf16 autocast and a training
text tower, all concept descriptions of the chosen classes (default: the
182 iWildCam classes, 360 prompts):

* DRM / FLYP train-step time ratio (interleaved, median; with gradient
  checkpointing only where the step does not fit without, marked "ckpt");
* throughput in images/s and model FLOPs utilisation (MFU) of each step:
  model FLOPs / step time / the GPU's peak dense bf16 FLOP/s;
* peak memory of a DRM step with and without gradient checkpointing;
* per architecture, the soft-label pass (frozen teacher, no grad) in
  images/s.

Writes ``<out-dir>/gpu_benchmark.json`` (every sample, setting, FLOP count
and the machine) and ``<out-dir>/gpu_benchmark.md`` (the table).

    bash tools/analysis/gpu_benchmark.sh                 # one GPU, < 8 min
    bash tools/analysis/gpu_benchmark.sh --device cpu --quick   # smoke

Model FLOPs of a train step: 3 x the forward FLOPs (backward = 2 x
forward; recomputation under checkpointing not counted), forward FLOPs =
``transformer_flops`` of the image tokens, the batch's captions and (DRM)
every cd prompt at its trimmed length: dense layers 2 x (4 + 2 x mlp_ratio)
x width^2 per token and layer, attention 4 x seq_len x width. Patch
embedding, projections and the logit matrices are left out (< 1 %).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import os.path as osp
import sys
import time
from types import SimpleNamespace
from typing import Dict, List, Optional

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import torch  # noqa: E402

TOOLS_DIR = osp.dirname(osp.abspath(__file__))
#: Peak dense (no sparsity) bf16 tensor FLOP/s by GPU name, in TFLOP/s
#: (vendor data sheets); --peak-tflops overrides.
PEAK_BF16_TFLOPS = {
    'H200': 989.0, 'H100 SXM': 989.0, 'H100 80GB HBM3': 989.0,
    'H100 PCIe': 756.0, 'H100 NVL': 835.0, 'B200': 2250.0,
    'A100': 312.0, 'L40S': 362.0, 'L4': 121.0, 'A10G': 70.0,
}
PRESETS = {
    'gpu': dict(archs=['ViT-B-16', 'ViT-L-14-336'], batches=[32, 128],
                repeats=10, warmup=3, soft_label_batch=256,
                soft_label_batches=4, classes=182),
    'quick': dict(archs=['drm-tiny-vit'], batches=[4, 8], repeats=1,
                  warmup=1, soft_label_batch=8, soft_label_batches=1,
                  classes=8),
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cuda', choices=('cuda', 'cpu'))
    parser.add_argument('--quick', action='store_true',
                        help='tiny CLIP, small batches (a smoke run)')
    parser.add_argument('--archs', nargs='+',
                        help='open_clip architectures (random weights)')
    parser.add_argument('--batches', nargs='+', type=int,
                        help='per-GPU train batches')
    parser.add_argument('--classes', type=int,
                        help='first N iWildCam classes (default all 182)')
    parser.add_argument('--repeats', type=int, help='timed rounds')
    parser.add_argument('--warmup', type=int, help='untimed rounds first')
    parser.add_argument('--soft-label-batch', type=int)
    parser.add_argument('--soft-label-batches', type=int,
                        help='timed batches of the soft-label pass')
    parser.add_argument('--peak-tflops', type=float,
                        help='peak dense bf16 TFLOP/s of the device (default:'
                        ' looked up by GPU name; none on CPU: no MFU)')
    parser.add_argument('--out-dir', default='work_dirs/gpu_benchmark')
    args = parser.parse_args(argv)
    for key, value in PRESETS['quick' if args.quick else 'gpu'].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.batches) < 2:
        parser.error('--batches must be >= 2 (contrastive loss)')
    if min(args.repeats, args.soft_label_batch, args.soft_label_batches,
           args.classes) < 1 or args.warmup < 0:
        parser.error('--repeats, --classes and the soft-label sizes must be '
                     '>= 1, --warmup >= 0')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is visible (use '
                     '--device cpu --quick for a smoke run).')
    return args


def load_tool(name: str):
    """A sibling script of tools/analysis as a module (reuse, not copy)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        f'_drm_{name}', osp.join(TOOLS_DIR, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def peak_tflops(args: argparse.Namespace) -> Optional[float]:
    if args.peak_tflops is not None:
        return args.peak_tflops
    if args.device != 'cuda':
        return None
    name = torch.cuda.get_device_name(0)
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    return None


def train_step_flops(arch: str, batch: int, caption_tokens: int,
                     prompt_tokens: Optional[List[int]]) -> Dict[str, float]:
    """Model FLOPs of one train step (3 x forward), by part."""
    from benchmark_utils import train_step_flops as flops
    return flops(arch, batch, caption_tokens, prompt_tokens)


def _free(device: str) -> None:
    gc.collect()
    if device == 'cuda':
        torch.cuda.empty_cache()


def _peak(fn, device: str) -> dict:
    """Peak memory of ``fn()`` above what was allocated before (and, on
    CUDA, the absolute peak); an out-of-memory error is recorded."""
    from benchmark_utils import peak_memory
    try:
        above = peak_memory(fn, device)
    except torch.OutOfMemoryError as err:
        _free(device)
        return dict(above_bytes=None, total_bytes=None,
                    error=f'out of memory: {str(err).splitlines()[0]}')
    total = (torch.cuda.max_memory_allocated() if device == 'cuda' else None)
    return dict(above_bytes=above, total_bytes=total)


def bench_arch(args, bench_mod, arch: str, peak: Optional[float]) -> dict:
    """Every figure of one architecture."""
    from benchmark_utils import interleaved_times, median
    settings = SimpleNamespace(
        arch=arch, classes=args.classes, device=args.device,
        batch_size=max(args.batches), memory_batch=max(args.batches),
        repeats=args.repeats, warmup=args.warmup, quick=args.quick,
        clock='wall')
    b = bench_mod.Bench(settings)
    clip = b.clip(frozen_text=False)
    models = {m: b.classifier(clip, m).train() for m in ('DRM', 'FLYP')}
    wrapper = b.optim_wrapper(clip, 'bfloat16')
    tokens = bench_mod._prompt_tokens(clip, [
        d for c in b.classnames for d in b.descriptions[c]])
    caption = int(clip.tokenize([f'a photo of {c}.' for c in b.classnames
                                 ]).argmax(dim=-1).max()) + 1
    out = dict(arch=arch, classes=len(b.classnames),
               cd_prompts=tokens['prompts'], caption_tokens=caption,
               rows=[])
    for batch in args.batches:
        print(f'[{arch}] batch {batch}: DRM vs FLYP, bf16', flush=True)
        data = b.batch(batch)
        row = dict(batch=batch)
        times = None
        for ckpt in (False, True):  # checkpointing only if it must
            clip.model.set_grad_checkpointing(ckpt)
            try:
                times = interleaved_times(
                    {m: (lambda m=m: models[m].train_step(data, wrapper))
                     for m in models}, args.repeats, args.warmup,
                    args.device)
                row['grad_checkpointing'] = ckpt
                break
            except torch.OutOfMemoryError as err:
                _free(args.device)
                row['error'] = f'out of memory: {str(err).splitlines()[0]}'
        clip.model.set_grad_checkpointing(False)
        if times is None:
            out['rows'].append(row)
            continue
        row.pop('error', None)
        for m in models:
            seconds = median(times[m]['wall'])
            flops = train_step_flops(
                arch, batch, caption,
                tokens['per_prompt'] if m == 'DRM' else None)
            row[m] = dict(step_s=seconds, wall_s=times[m]['wall'],
                          images_per_s=batch / seconds,
                          model_flops=flops,
                          mfu=(None if peak is None else
                               flops['total'] / seconds / (peak * 1e12)))
        row['drm_over_flyp'] = row['DRM']['step_s'] / row['FLYP']['step_s']
        memory = {}
        for ckpt in (False, True):
            clip.model.set_grad_checkpointing(ckpt)
            memory['ckpt' if ckpt else 'no_ckpt'] = _peak(
                lambda: models['DRM'].train_step(data, wrapper), args.device)
        clip.model.set_grad_checkpointing(False)
        row['drm_peak_memory'] = memory
        out['rows'].append(row)
        print(f'    DRM/FLYP {row["drm_over_flyp"]:.3f}, DRM '
              f'{row["DRM"]["images_per_s"]:.1f} images/s', flush=True)
    out['soft_label_pass'] = soft_label_pass(args, models['DRM'], b)
    models.clear()
    b.drop_clip(frozen_text=False)
    b.drop_clip(frozen_text=True)
    _free(args.device)
    return out


def soft_label_pass(args, model, b) -> dict:
    """The teacher's p_c of preprocessed batches (bf16 autocast): what the
    soft-label pass does per image once the images are decoded."""
    from benchmark_utils import interleaved_times, median
    teacher = model.soft_labels.build_teacher().to(args.device)
    n = args.soft_label_batch
    data = model.data_preprocessor(b.batch(n, seed=5), False)
    autocast = torch.autocast(args.device, dtype=torch.bfloat16)

    def run():
        with autocast:
            for _ in range(args.soft_label_batches):
                model.soft_labels.teacher_probs(teacher, data['inputs'])

    print(f'[{b.args.arch}] soft-label pass, batch {n}', flush=True)
    times = interleaved_times(dict(teacher=run), args.repeats,
                              max(1, args.warmup), args.device)
    seconds = median(times['teacher']['wall'])
    return dict(batch=n, batches=args.soft_label_batches,
                wall_s=times['teacher']['wall'],
                images_per_s=n * args.soft_label_batches / seconds)


def _gib(value: Optional[int]) -> str:
    return 'n/a' if value is None else f'{value / 2**30:.2f}'


def _pct(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{100 * value:.1f} %'


def markdown(report: dict) -> str:
    """The table of the run (one row per architecture and batch)."""
    m = report['machine']
    lines = [
        f"# drm_mm GPU benchmark ({m.get('gpu') or m['cpu']})", '',
        f"bf16 autocast, random weights, text tower training, "
        f"{report['results'][0]['classes']} iWildCam classes; peak "
        f"{report['peak_tflops'] or 'n/a'} TFLOP/s (dense bf16) for MFU. "
        'Peak memory of a DRM step: ' + (
            'the peak allocated during the step (weights, AdamW state, '
            'gradients, activations)' if report['device'] == 'cuda' else
            'growth above the resting process (RssAnon)') + '.', '',
        '| arch | batch/GPU | DRM / FLYP step | DRM images/s | FLYP images/s'
        ' | DRM MFU | FLYP MFU | DRM step TFLOP | DRM peak GiB | with ckpt |',
        '|---|---|---|---|---|---|---|---|---|---|']
    for res in report['results']:
        for row in res['rows']:
            if 'error' in row:
                lines.append(f"| {res['arch']} | {row['batch']} | "
                             f"{row['error']} |||||||| ")
                continue
            drm, flyp, mem = row['DRM'], row['FLYP'], row['drm_peak_memory']
            total = 'total_bytes' if report['device'] == 'cuda' else \
                'above_bytes'
            ckpt = ' (ckpt)' if row['grad_checkpointing'] else ''
            lines.append(
                f"| {res['arch']} | {row['batch']}{ckpt} | "
                f"{row['drm_over_flyp']:.3f} | {drm['images_per_s']:.1f} | "
                f"{flyp['images_per_s']:.1f} | {_pct(drm['mfu'])} | "
                f"{_pct(flyp['mfu'])} | "
                f"{drm['model_flops']['total'] / 1e12:.4g} | "
                f"{_gib(mem['no_ckpt'].get(total))} | "
                f"{_gib(mem['ckpt'].get(total))} |")
    lines.append('')
    for res in report['results']:
        sl = res['soft_label_pass']
        lines.append(f"Soft-label pass, {res['arch']}: "
                     f"{sl['images_per_s']:.1f} images/s (batch "
                     f"{sl['batch']}, preprocessed inputs).")
    lines.append(f"\nTotal {report['total_seconds']:.0f} s.")
    return '\n'.join(lines) + '\n'


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    import drm_mm  # noqa: F401  registers components
    from mmengine.logging import MMLogger

    from benchmark_utils import (MEMORY_METHODS,
                                              prepare_rss_measurement)
    MMLogger.get_instance('mmengine', log_level='WARNING')
    if args.device == 'cpu':
        torch.set_num_threads(1)
        prepare_rss_measurement()
    bench_mod = load_tool('benchmark')
    peak = peak_tflops(args)
    results = [bench_arch(args, bench_mod, arch, peak)
               for arch in args.archs]
    report = dict(
        command=' '.join([osp.relpath(__file__)] + (
            argv if argv is not None else sys.argv[1:])),
        settings=vars(args), device=args.device, machine=bench_mod.machine(),
        peak_tflops=peak, memory_method=MEMORY_METHODS[args.device],
        flop_model=__doc__.split('Model FLOPs of a train step: ')[1].strip(),
        results=results, total_seconds=time.perf_counter() - start)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(osp.join(args.out_dir, 'gpu_benchmark.json'), 'w') as f:
        json.dump(report, f, indent=2, default=str)
    table = markdown(report)
    with open(osp.join(args.out_dir, 'gpu_benchmark.md'), 'w') as f:
        f.write(table)
    print('\n' + table)
    print(f'written to {args.out_dir}/gpu_benchmark.{{json,md}}')
    return report


if __name__ == '__main__':
    main()
