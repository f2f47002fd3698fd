"""Shared pieces of the command-line tools (tools/train.py, tools/test.py,
the project tools): scripts in ``tools/`` import it as ``tool_utils`` (their
folder is first on ``sys.path``), code run from the checkout root as
``tools.tool_utils``."""
import argparse
import dataclasses
import os
import os.path as osp
import sys
from typing import Any, Callable, Dict, Iterable, List

from mmengine.config import Config
from mmengine.runner import Runner

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def add_launcher_arg(parser: argparse.ArgumentParser) -> None:
    """``--launcher`` and the ``--local-rank`` that torch launchers pass."""
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none',
                        help='job launcher (pytorch for torchrun / '
                        'dist_train.sh, slurm for srun)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type,
                          skip: Iterable[str] = ()) -> List[str]:
    """One ``--field-name`` option per field of the settings dataclass
    ``cls`` (default and type from ``cls()``), except ``skip``; returns the
    field names, for :func:`dataclass_kwargs`."""
    defaults, names = cls(), []
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        value = getattr(defaults, field.name)
        parser.add_argument(f'--{field.name.replace("_", "-")}',
                            type=type(value), default=value,
                            help=f'(default: {value})')
        names.append(field.name)
    return names


def dataclass_kwargs(args: argparse.Namespace, cls: type,
                     skip: Iterable[str] = ()) -> Dict[str, Any]:
    """The parsed values of the options :func:`add_dataclass_options` made."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if f.name not in skip}


def load_config(path: str) -> Config:
    """Read a config file, with a one-line error when it is missing."""
    if not osp.isfile(path):
        raise SystemExit(f'config file {path!r} does not exist (configs live '
                         'under configs/, e.g. configs/drm/'
                         'vitb16_iwildcam.py).')
    import drm_mm  # noqa: F401  registers every component
    return Config.fromfile(path)


def set_dataloader_defaults(cfg: Config, pin_memory: bool,
                            persistent_workers: bool) -> None:
    """Dataloader defaults of MMPretrain's tools, overridable per loader."""
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if loader is None:
            continue
        workers = loader.get('num_workers', 0)
        merged = dict(pin_memory=pin_memory,
                      persistent_workers=persistent_workers and workers > 0,
                      collate_fn=dict(type='default_collate'))
        merged.update(loader)
        if not pin_memory:
            merged['pin_memory'] = False
        if not persistent_workers or workers == 0:
            merged['persistent_workers'] = False
        cfg[field] = merged


def build_runner(cfg: Config) -> Runner:
    """The runner named by ``runner_type`` (drm_mm configs: DRMRunner)."""
    from mmengine.registry import RUNNERS
    cfg.setdefault('runner_type', 'drm_mm.DRMRunner')
    return RUNNERS.build(cfg)


def run_tool(main: Callable[[], None]) -> None:
    """Run a tool's ``main`` and turn an exception into one clear line on
    stderr (exit status 1): the messages of drm_mm name the file, key or
    class and the fix. ``DRM_MM_DEBUG=1`` shows the full traceback."""
    if os.environ.get('DRM_MM_DEBUG', '') not in ('', '0'):
        main()
        return
    try:
        main()
    except KeyboardInterrupt:
        raise
    except Exception as err:  # noqa: BLE001 - a CLI boundary
        message = str(err).strip() or repr(err)
        print(f'error: {type(err).__name__}: {message}\n'
              '(set DRM_MM_DEBUG=1 for the full traceback)',
              file=sys.stderr)
        raise SystemExit(1) from None
