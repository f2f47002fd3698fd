"""Train a model from a drm_mm (or any MMPretrain-style) config.

Mirrors MMPretrain's ``tools/train.py``: same flags, same precedence
(CLI > config > defaults). Every setting lives in the config; flags only
switch documented config fields.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction

from tool_utils import (add_launcher_arg, build_runner,
                        load_config, run_tool,
                        set_dataloader_defaults)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a drm_mm model')
    parser.add_argument('config', help='path of the training config')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or (no value / "auto") from the '
        'latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (AmpOptimWrapper)')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the lr by (GPUs x batch per GPU) / auto_scale_lr.'
        'base_batch_size of the config')
    parser.add_argument('--no-pin-memory', action='store_true')
    parser.add_argument('--no-persistent-workers', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config fields: key=value ...')
    parser.add_argument(
        '--device', choices=('cpu', 'cuda'),
        help='"cpu": hide the GPUs from this run (`mim train` passes it '
        'by default); default: GPUs when present')
    add_launcher_arg(parser)
    args = parser.parse_args()
    if args.device == 'cpu':
        # before anything initialises CUDA
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command-line switches to the config."""
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        guarded = 'DivergenceGuard' in str(cfg.optim_wrapper.get('type'))
        cfg.optim_wrapper.type = ('drm_mm.DivergenceGuardAmpOptimWrapper'
                                  if guarded else 'AmpOptimWrapper')
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise SystemExit(f'--resume: checkpoint {args.resume!r} does not '
                             'exist; pass an existing .pth or "auto".')
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg:
            raise SystemExit(
                '--auto-scale-lr needs `auto_scale_lr = dict('
                'base_batch_size=...)` in the config (the global batch the '
                'lr was tuned for).')
        cfg.auto_scale_lr.enable = True
    set_dataloader_defaults(cfg, pin_memory=not args.no_pin_memory,
                            persistent_workers=not args.no_persistent_workers)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main() -> None:
    args = parse_args()
    cfg = merge_args(load_config(args.config), args)
    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    run_tool(main)
