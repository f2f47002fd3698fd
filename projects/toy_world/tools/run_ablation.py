"""The paper's ablations in the toy world, one command each.

Runs the DRM variants of one ablation over 3 seeds in the premise world
with the study's machinery (cached world, tiny CLIP and runs) and writes
one table, ``<work-dir>/<ablation>/ablation.md`` (and ``.json``): ID / OOD
accuracy of each head and of the mixture, and OOD against the FLYP WiSE-FT
curve of the main study (``--reference``, default its results.json).

Example::

    python projects/toy_world/tools/run_demo.py          # the main study
    python projects/toy_world/tools/run_ablation.py prompts
    python projects/toy_world/tools/run_ablation.py normalization \
        --variants minmax minmax_class --seeds 0
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

# The checkout root on sys.path (projects.*, tools.*), as PYTHONPATH=. does.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

os.environ.setdefault('HF_HUB_OFFLINE', '1')

from projects.toy_world.toy_world.ablations import (  # noqa: E402
    ABLATIONS, check_ablation)
from projects.toy_world.toy_world.demo import WORLD_KINDS  # noqa: E402
from projects.toy_world.toy_world.paths import (  # noqa: E402
    CHECKOUT_ROOT, DEFAULT_WORK_DIR)
from projects.toy_world.toy_world.study_options import (  # noqa: E402
    add_study_options, study_settings)
from tools.tool_utils import run_tool  # noqa: E402

DEFAULT_ABLATION_DIR = CHECKOUT_ROOT / 'work_dirs' / 'toy_ablations'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Run one of the paper\'s ablations (DRM variants) in the '
        'toy world and write its table. Ablations and their variants: ' +
        '; '.join(f'{name}: {", ".join(v)}' for name, v in ABLATIONS.items()))
    parser.add_argument('ablation', help=f'one of {sorted(ABLATIONS)}')
    parser.add_argument('--variants', nargs='+', default=None,
                        help='run only these variants (default: all)')
    parser.add_argument('--world', default='premise',
                        help=f'one of {WORLD_KINDS} (default: %(default)s)')
    parser.add_argument('--work-dir', default=str(DEFAULT_ABLATION_DIR),
                        help='(default: %(default)s)')
    parser.add_argument('--reference',
                        default=str(DEFAULT_WORK_DIR / 'results.json'),
                        help='results.json of the main study (its FLYP '
                        'WiSE-FT curve; default: %(default)s)')
    add_study_options(
        parser, alphas='WiSE-FT mixing weights, must include 1',
        epochs='(default: the configs\')', lr='(default: the configs\')',
        cfg_options='config overrides for every variant')
    parser.add_argument('--force', action='store_true',
                        help='redo the fine-tuning runs of these variants')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    variants = check_ablation(args.ablation, args.variants)
    if args.world not in WORLD_KINDS:
        raise ValueError(f'--world {args.world!r}; choose from '
                         f'{WORLD_KINDS}.')
    import torch
    torch.set_num_threads(args.threads)
    base = study_settings(args, methods=('drm', ), reference=args.reference,
                          world_kind=args.world)
    if args.force:
        for variant in variants:
            shutil.rmtree(os.path.join(args.work_dir, args.ablation, variant,
                                       'runs'), ignore_errors=True)
    from projects.toy_world.toy_world.ablations import run_ablation
    run_ablation(args.ablation, base, args.work_dir, variants)


if __name__ == '__main__':
    run_tool(main)
