"""Write a small fake WILDS iWildCam v2.0 and/or FMoW v1.1 in the real layouts.

For smoke runs of the configs without the real data (tens of GB). The
folders open with ``wilds.get_dataset(..., download=False)`` and with
drm_mm's ``WILDSIWildCam`` / ``WILDSFMoW`` exactly as the published ones:
every split is populated, iWildCam uses real category rows (so class names
map to common names) and FMoW every region plus 'Other'. Images are random
noise, so metrics mean nothing.

    python tools/dataset_tools/make_fake_wilds.py data/wilds_fake
    python tools/dataset_tools/make_fake_wilds.py data/wilds_fake \
        --datasets iwildcam --iwildcam-classes 10 --image-size 320 240

Then point a config at it: ``--cfg-options data_root=data/wilds_fake`` (or
the dataset's ``data_root``).
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
from typing import List, Optional

DATASETS = ('iwildcam', 'fmow')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='folder to write <name>_v<version>/ into '
                        '(the data_root of the datasets)')
    parser.add_argument('--datasets', nargs='+', choices=DATASETS,
                        default=list(DATASETS))
    parser.add_argument('--iwildcam-classes', type=int, default=6,
                        help='iWildCam classes (first rows of the real '
                        'category list, 1..182)')
    parser.add_argument('--iwildcam-train-per-class', type=int, default=3,
                        help='iWildCam train images per class (2 frames each)')
    parser.add_argument('--fmow-classes', type=int, default=4,
                        help='FMoW classes used (1..62)')
    parser.add_argument('--fmow-per-split', type=int, default=12,
                        help='FMoW images per split')
    parser.add_argument('--image-size', type=int, nargs=2, default=None,
                        metavar=('W', 'H'), help='image size (default: '
                        'iWildCam 64x48, FMoW 32x32)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--overwrite', action='store_true',
                        help='replace existing fake folders')
    args = parser.parse_args(argv)
    if not 1 <= args.iwildcam_classes <= 182:
        parser.error('--iwildcam-classes must be in 1..182')
    if not 1 <= args.fmow_classes <= 62:
        parser.error('--fmow-classes must be in 1..62')
    if args.iwildcam_train_per_class < 1 or args.fmow_per_split < 1:
        parser.error('image counts must be >= 1')
    if args.image_size is not None and min(args.image_size) < 8:
        parser.error('--image-size must be at least 8x8')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from drm_mm.datasets.classnames import iwildcam_categories
    from wilds_layout import (tiny_fmow_samples, tiny_iwildcam_samples,
                              write_fmow, write_iwildcam)
    root = osp.abspath(args.root)
    try:
        if 'iwildcam' in args.datasets:
            rows = [(r.y, r.category_id, r.name)
                    for r in iwildcam_categories()[:args.iwildcam_classes]]
            size = tuple(args.image_size or (64, 48))
            folder = write_iwildcam(
                root,
                tiny_iwildcam_samples(
                    seed=args.seed, n_classes=args.iwildcam_classes,
                    size=size,
                    per_class=dict(train=args.iwildcam_train_per_class)),
                categories=rows, overwrite=args.overwrite)
            print(f'wrote {folder}')
        if 'fmow' in args.datasets:
            size = tuple(args.image_size or (32, 32))
            folder = write_fmow(
                root,
                tiny_fmow_samples(seed=args.seed, size=size,
                                  per_split=args.fmow_per_split,
                                  n_classes=args.fmow_classes),
                overwrite=args.overwrite)
            print(f'wrote {folder}')
    except FileExistsError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'use data_root={root!r} (e.g. --cfg-options with the dataset\'s '
          f'data_root).')
    return 0


if __name__ == '__main__':
    sys.exit(main())
