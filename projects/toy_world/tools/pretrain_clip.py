"""Pretrain the toy-world CLIP on its caption corpus (CPU), or load it from
the cache, and print its zero-shot accuracy on the toy world.

Example::

    python projects/toy_world/tools/pretrain_clip.py   # ~6.5 min, 2 cores
    python projects/toy_world/tools/pretrain_clip.py --steps 100 \
        --cache-dir /tmp/toy

Weights go to ``<cache-dir>/drm-toy-rn_<hash>.pth`` (a plain state_dict),
the report to the ``.json`` next to it; the same settings again load them.
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

from projects.toy_world.toy_world.caption_corpus import CorpusSettings  # noqa
from projects.toy_world.toy_world.paths import DEFAULT_CACHE_DIR  # noqa: E402
from projects.toy_world.toy_world.pretrain_clip import (  # noqa: E402
    PretrainSettings, format_report, pretrain_toy_clip)
from projects.toy_world.toy_world.toy_world import WorldSettings  # noqa: E402
from tools.tool_utils import (add_dataclass_options,  # noqa: E402
                              dataclass_kwargs, run_tool)


def parse_args() -> argparse.Namespace:
    defaults = PretrainSettings()
    parser = argparse.ArgumentParser(
        description='Pretrain (or load) the toy CLIP and report zero-shot '
        'accuracy. The options are fields of toy_world.pretrain_clip.'
        'PretrainSettings and CorpusSettings, whose docstrings explain each.')
    parser.add_argument('--cache-dir', default=str(DEFAULT_CACHE_DIR),
                        help='where weights are cached (default: %(default)s)')
    add_dataclass_options(parser, PretrainSettings, skip=('corpus', ))
    parser.add_argument('--corpus-scenes', type=int,
                        default=defaults.corpus.n_scenes,
                        help='scenes in the caption corpus (default: '
                        '%(default)s)')
    parser.add_argument('--corpus-images-per-scene', type=int,
                        default=defaults.corpus.images_per_scene,
                        help='frames per scene (default: %(default)s)')
    parser.add_argument('--corpus-seed', type=int,
                        default=defaults.corpus.seed,
                        help='seed of the corpus (default: %(default)s)')
    parser.add_argument('--world-seed', type=int, default=WorldSettings().seed,
                        help='seed of the toy world used for the zero-shot '
                        'report (default: %(default)s)')
    parser.add_argument('--threads', type=int, default=2,
                        help='torch CPU threads (default: %(default)s)')
    parser.add_argument('--force', action='store_true',
                        help='retrain even if the cache has these settings')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    corpus = dataclasses.replace(
        CorpusSettings(), n_scenes=args.corpus_scenes,
        images_per_scene=args.corpus_images_per_scene, seed=args.corpus_seed)
    kwargs = dataclass_kwargs(args, PretrainSettings, skip=('corpus', ))
    settings = PretrainSettings(corpus=corpus, **kwargs)
    result = pretrain_toy_clip(settings, cache_dir=args.cache_dir,
                               world=WorldSettings(seed=args.world_seed),
                               num_threads=args.threads, force=args.force)
    print(f'weights: {result.path} ({"from cache" if result.cached else "trained"})')
    if result.metrics:
        print(format_report(result.metrics))


if __name__ == '__main__':
    run_tool(main)
