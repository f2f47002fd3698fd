"""Generate the toy world (a synthetic WILDS iWildCam-layout dataset).

Example::

    python projects/toy_world/tools/generate_world.py   # -> data/toy/world
    python projects/toy_world/tools/generate_world.py --root /tmp/w \
        --n-train 8000 --own-location-frac 0.95 --seed 1

Every option defaults to the documented world (``WorldSettings`` of
``projects/toy_world/toy_world/toy_world.py``). The result opens with
``wilds.get_dataset('iwildcam', root_dir=ROOT, download=False)``. An existing
world with the same settings is reused unless ``--overwrite``.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

# The checkout root on sys.path (projects.*, tools.*), as PYTHONPATH=. does.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from projects.toy_world.toy_world.paths import DEFAULT_WORLD_ROOT  # noqa
from projects.toy_world.toy_world.toy_world import (  # noqa: E402
    SPLITS, WorldSettings, ensure_world, generate_world)
from tools.tool_utils import (add_dataclass_options,  # noqa: E402
                              dataclass_kwargs, run_tool)

# WorldSettings fields with options of their own (a list; a nested dataclass)
_SET_APART = ('classes', 'foreground')


def parse_args() -> argparse.Namespace:
    defaults = WorldSettings()
    parser = argparse.ArgumentParser(
        description='Write the toy world in the WILDS iWildCam v2.0 layout. '
        'The options are the fields of toy_world.WorldSettings, '
        'whose docstring explains each.')
    parser.add_argument('--root', default=str(DEFAULT_WORLD_ROOT),
                        help='folder that gets iwildcam_v2.0/ '
                        '(default: %(default)s)')
    parser.add_argument('--classes', nargs='+', default=list(defaults.classes),
                        help='shape classes (default: %(default)s)')
    add_dataclass_options(parser, WorldSettings, skip=_SET_APART)
    parser.add_argument('--hard-frac', type=float,
                        default=defaults.foreground.hard_frac,
                        help='fraction of images with a small or faint '
                        'shape (default: %(default)s)')
    parser.add_argument('--overwrite', action='store_true',
                        help='regenerate even if the same world is there')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    kwargs = dataclass_kwargs(args, WorldSettings, skip=_SET_APART)
    settings = WorldSettings(
        classes=tuple(args.classes),
        foreground=dataclasses.replace(WorldSettings().foreground,
                                       hard_frac=args.hard_frac),
        **kwargs)
    start = time.time()
    if args.overwrite:
        folder, made = generate_world(args.root, settings,
                                      overwrite=True), True
    else:
        folder, made = ensure_world(args.root, settings)
    sizes = ', '.join(f'{s} {settings.split_sizes()[s]}' for s in SPLITS)
    print(f'toy world {settings.hash()} {"written" if made else "reused"} '
          f'at {folder} ({sizes}) in {time.time() - start:.1f}s')


if __name__ == '__main__':
    run_tool(main)
