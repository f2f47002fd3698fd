"""Images/s of the train pipeline with and without reduced-scale JPEG decode.

Writes synthetic 1920x1080 photo-like JPEGs (smooth gradients plus noise,
quality 90, the size class of iWildCam camera-trap images) to a temporary
folder, then runs the FLYP/DRM train pipeline (load, RandomResizedCrop 224
with scale 0.9-1.0 bicubic, flip, pack) over them with three loaders, in one
process and one run, so the ratios compare like with like:

* ``LoadImageFromFile`` - MMPretrain's default (mmcv, cv2 full decode);
* ``LoadImageDraft`` - PIL full decode (exact);
* ``LoadImageDraft(min_size=N)`` - PIL decodes the JPEG at 1/2, 1/4 or 1/8
  scale keeping the shorter side >= N.

    python tools/analysis/benchmark_decode.py
    python tools/analysis/benchmark_decode.py --num-images 64 --repeats 3 \
        --min-size 256 --out work_dirs/decode.json

Prints images/s per loader and the speed-up of reduced-scale decoding.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import tempfile
import time
from typing import Dict, List

import numpy as np


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--num-images', type=int, default=32,
                        help='synthetic JPEGs written and decoded')
    parser.add_argument('--size', type=int, nargs=2, default=(1920, 1080),
                        metavar=('W', 'H'), help='image size')
    parser.add_argument('--crop', type=int, default=224,
                        help='RandomResizedCrop output size')
    parser.add_argument('--min-size', type=int, default=256,
                        help='LoadImageDraft min_size (shorter side kept)')
    parser.add_argument('--repeats', type=int, default=2,
                        help='timed passes over the images per loader')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch / OpenCV threads (one data worker)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='write the figures as JSON here')
    args = parser.parse_args()
    for key in ('num_images', 'crop', 'min_size', 'repeats', 'threads'):
        if getattr(args, key) < 1:
            parser.error(f'--{key.replace("_", "-")} must be >= 1')
    if min(args.size) < 1:
        parser.error('--size must be positive')
    return args


def write_images(folder: str, count: int, size, seed: int) -> List[str]:
    """Photo-like JPEGs: smooth colour fields (upsampled) plus sensor noise."""
    from mmengine.utils import track_iter_progress
    from PIL import Image
    rng = np.random.default_rng(seed)
    width, height = size
    paths = []
    for k in track_iter_progress(list(range(count))):
        coarse = rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)
        field = Image.fromarray(coarse).resize((width, height),
                                               Image.BICUBIC)
        noise = rng.integers(-12, 13, (height, width, 3), dtype=np.int16)
        pixels = np.clip(np.asarray(field, np.int16) + noise, 0, 255)
        path = osp.join(folder, f'synthetic_{k:04d}.jpg')
        Image.fromarray(pixels.astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def build_pipeline(loader: dict, crop: int) -> list:
    from drm_mm.datasets.transforms.build import build_transforms
    return build_transforms([
        loader,
        dict(type='RandomResizedCrop', scale=crop, crop_ratio_range=(0.9, 1.0),
             interpolation='bicubic', backend='pillow'),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PackInputs'),
    ])


def images_per_second(pipeline: list, paths: List[str], repeats: int) -> float:
    def run(path: str) -> None:
        results = dict(img_path=path)
        for transform in pipeline:
            results = transform(results)
        assert results['inputs'].shape[0] == 3

    for path in paths[:2]:  # warm-up (imports, caches)
        run(path)
    start = time.perf_counter()
    for _ in range(repeats):
        for path in paths:
            run(path)
    return repeats * len(paths) / (time.perf_counter() - start)


def main() -> None:
    args = parse_args()
    import cv2
    import torch
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    import drm_mm.datasets.transforms  # noqa: F401  registers LoadImageDraft

    loaders: Dict[str, dict] = {
        'LoadImageFromFile (mmcv, cv2)': dict(type='LoadImageFromFile'),
        'LoadImageDraft (full decode)': dict(type='LoadImageDraft'),
        f'LoadImageDraft(min_size={args.min_size})': dict(
            type='LoadImageDraft', min_size=args.min_size),
    }
    with tempfile.TemporaryDirectory(prefix='decode_bench_') as folder:
        print(f'writing {args.num_images} synthetic {args.size[0]}x'
              f'{args.size[1]} JPEGs ...')
        paths = write_images(folder, args.num_images, args.size, args.seed)
        mean_kib = np.mean([os.path.getsize(p) for p in paths]) / 1024
        rates = {name: images_per_second(build_pipeline(cfg, args.crop),
                                         paths, args.repeats)
                 for name, cfg in loaders.items()}
    names = list(rates)
    draft = rates[names[2]]
    report = dict(
        images=args.num_images, size=list(args.size), mean_jpeg_kib=mean_kib,
        crop=args.crop, min_size=args.min_size, repeats=args.repeats,
        threads=args.threads, images_per_s=rates,
        speedup_vs_mmcv=draft / rates[names[0]],
        speedup_vs_pil_full=draft / rates[names[1]])
    print(f'\ntrain pipeline (RandomResizedCrop {args.crop}, scale 0.9-1.0, '
          f'bicubic), {args.num_images} x {args.size[0]}x{args.size[1]} JPEG '
          f'(~{mean_kib:.0f} KiB), {args.threads} thread(s):')
    for name, rate in rates.items():
        print(f'  {name:<36s} {rate:8.1f} images/s')
    print(f'  reduced-scale decode speed-up: x{report["speedup_vs_mmcv"]:.2f} '
          f'vs mmcv, x{report["speedup_vs_pil_full"]:.2f} vs PIL full decode')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=2)
        print(f'written to {args.out}')


if __name__ == '__main__':
    main()
