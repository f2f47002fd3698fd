"""The toy study over several worlds, one command (issue: evidence that
survives a new world).

For each world seed (world, caption corpus and CLIP pretraining seeds
varied together; the premise knobs unchanged): the premise measured on the
validation splits with the zero-shot model and FLYP, then FLYP, CE and DRM
over the fine-tuning seeds with every β mixture evaluated, then DRM against
the best baseline at equal inference and equal ID accuracy. Writes
``worlds.md``, ``worlds.json`` and ``gain_vs_premise.png`` to the work dir;
each world's folder holds its study, ``premise.json`` and ``world.json``.
A rerun (or a killed run started again) reuses every finished world and
every finished fine-tuning run.

Example::

    python projects/toy_world/tools/run_worlds.py                # 5 worlds x 3 seeds
    python projects/toy_world/tools/run_worlds.py --worlds 1 2 --seeds 0
    python projects/toy_world/tools/run_worlds.py --epochs 2 --pretrain-steps 1000
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

# The checkout root on sys.path (projects.*, tools.*), as PYTHONPATH=. does.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

os.environ.setdefault('HF_HUB_OFFLINE', '1')

from projects.toy_world.toy_world.demo import (METHOD_CONFIGS,  # noqa: E402
                                               DemoSettings)
from projects.toy_world.toy_world.study_options import (  # noqa: E402
    add_study_options, study_settings)
from projects.toy_world.toy_world.worlds import (  # noqa: E402
    DEFAULT_WORLD_SEEDS, DEFAULT_WORLDS_DATA, DEFAULT_WORLDS_DIR,
    WorldsSettings)
from tools.tool_utils import run_tool  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Run the toy study over several worlds (world, corpus '
        'and pretraining seeds varied together): premise on the validation '
        'splits, FLYP / CE / DRM over the fine-tuning seeds, DRM against '
        'the best baseline at equal inference and ID; per-world and pooled '
        'tables and a plot of the gain against premise strength.')
    parser.add_argument('--worlds', nargs='+', type=int,
                        default=list(DEFAULT_WORLD_SEEDS),
                        help='world seeds (default: %(default)s; 0 is the '
                        'main study\'s world, where the knobs were chosen)')
    parser.add_argument('--methods', nargs='+',
                        default=list(DemoSettings().methods),
                        choices=sorted(METHOD_CONFIGS),
                        help='must include flyp and drm (default: '
                        '%(default)s)')
    parser.add_argument('--work-dir', default=str(DEFAULT_WORLDS_DIR),
                        help='(default: %(default)s)')
    parser.add_argument('--data-dir', default=str(DEFAULT_WORLDS_DATA),
                        help='one world per seed (default: %(default)s)')
    parser.add_argument('--pretrain-steps', type=int, default=None,
                        help='a shorter CLIP pretraining for a quick look '
                        '(default: the study\'s, 2100 steps)')
    add_study_options(
        parser, seeds='fine-tuning seeds (default: %(default)s)',
        world_root='not used (an error): worlds go to --data-dir',
        pretrain_cache_dir='the pretrained CLIPs, one per world (default: '
        '%(default)s)')
    return parser.parse_args(argv)


def worlds_settings(args: argparse.Namespace) -> WorldsSettings:
    """The :class:`WorldsSettings` of the options."""
    if args.world_root != DemoSettings().world_root:
        raise ValueError('--world-root is not used by run_worlds.py (one '
                         'world per seed); use --data-dir.')
    base = study_settings(args, methods=tuple(args.methods))
    if args.pretrain_steps is not None:
        base = dataclasses.replace(base, pretrain=dataclasses.replace(
            base.pretrain, steps=args.pretrain_steps))
    return WorldsSettings(world_seeds=tuple(args.worlds), base=base,
                          work_dir=args.work_dir, data_dir=args.data_dir)


def main() -> None:
    args = parse_args()
    settings = worlds_settings(args)
    import torch
    torch.set_num_threads(args.threads)
    from projects.toy_world.toy_world.worlds import run_worlds
    run_worlds(settings)


if __name__ == '__main__':
    run_tool(main)
