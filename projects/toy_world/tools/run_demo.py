"""The toy-world study in one command (the README's main command).

Generates the toy world, pretrains the tiny CLIP, fine-tunes FLYP, CE and
DRM with the same budget over 3 seeds, evaluates ID and OOD with all
heads, runs a WiSE-FT sweep for each run, prints the table and writes
``results.md``, ``results.json`` and ``id_vs_ood.png`` to the work dir.
Cached steps (world, pretrained CLIP, finished runs) are skipped on a
rerun; ``--force`` redoes the fine-tuning runs.

Example::

    python projects/toy_world/tools/run_demo.py        # the README's study
    python projects/toy_world/tools/run_demo.py --methods flyp drm --seeds 0
    python projects/toy_world/tools/run_demo.py --methods drm \
        --work-dir work_dirs/toy_l2 --cfg-options model.loss.wrm_weight=2
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

from projects.toy_world.toy_world.demo import (METHOD_CONFIGS,  # noqa: E402
                                               WORLD_KINDS, DemoSettings)
from projects.toy_world.toy_world.study_options import (  # noqa: E402
    add_study_options, study_settings)
from tools.tool_utils import run_tool  # noqa: E402


def parse_args() -> argparse.Namespace:
    d = DemoSettings()
    parser = argparse.ArgumentParser(
        description='Run the toy-world study: zero-shot CLIP, FLYP / CE / '
        'DRM fine-tuning, ID and OOD evaluation, WiSE-FT, table and plot. '
        'The options are fields of toy_world.demo.DemoSettings.')
    parser.add_argument('--world', default='premise', choices=WORLD_KINDS,
                        help='premise: class names rare and tied to their '
                        'class\'s habitat in the pretraining captions (the '
                        'main study); control: names and descriptions '
                        'independent of the background (default: '
                        '%(default)s)')
    parser.add_argument('--work-dir', default=None,
                        help='runs, table and plot (default: '
                        f'{d.work_dir}, with _control for --world control)')
    parser.add_argument('--methods', nargs='+', default=list(d.methods),
                        choices=sorted(METHOD_CONFIGS),
                        help='(default: %(default)s)')
    add_study_options(parser)
    parser.add_argument('--reference', default=None,
                        help='results.json of an earlier study whose FLYP '
                        'WiSE-FT curve is the reference when --methods has '
                        'no flyp')
    parser.add_argument('--validation', action='store_true',
                        help='read id_val / val instead of id_test / test '
                        '(for choosing world knobs without the OOD test '
                        'split; default work dir gets _validation)')
    parser.add_argument('--force', action='store_true',
                        help='redo the fine-tuning runs (the world and the '
                        'pretrained CLIP stay cached)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import torch
    torch.set_num_threads(args.threads)
    work_dir = args.work_dir or DemoSettings().work_dir + (
        '_control' if args.world == 'control' else '') + (
        '_validation' if args.validation else '')
    settings = study_settings(
        args, methods=tuple(args.methods), work_dir=work_dir,
        reference=args.reference, world_kind=args.world,
        validation=args.validation)
    if args.force:
        shutil.rmtree(os.path.join(work_dir, 'runs'), ignore_errors=True)
    from projects.toy_world.toy_world.demo import run_demo
    run_demo(settings)


if __name__ == '__main__':
    run_tool(main)
