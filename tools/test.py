"""Evaluate a checkpoint on the test set(s) of a config.

Mirrors MMPretrain's ``tools/test.py``. With a multi-set test loop one call
prints the whole ID + OOD table.
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction

from tool_utils import (add_launcher_arg, build_runner,
                        load_config, run_tool,
                        set_dataloader_defaults)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a drm_mm model')
    parser.add_argument('config', help='path of the config')
    parser.add_argument(
        'checkpoint', help='checkpoint to evaluate, or "none" to evaluate the '
        'model as the config builds it (zero-shot CLIP)')
    parser.add_argument('--work-dir', help='where evaluation logs go')
    parser.add_argument(
        '--out', help='dump the metrics (.json/.yaml) or, with a .pkl '
        'suffix, every prediction (multi-set loops: one <stem>_<set>.pkl '
        'per test set)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config fields: key=value ...')
    parser.add_argument('--amp', action='store_true',
                        help='autocast the forward pass')
    add_launcher_arg(parser)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    zero_shot = args.checkpoint.lower() == 'none'
    if not zero_shot and not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint {args.checkpoint!r} does not exist; '
                         'pass an existing .pth, or "none" for zero-shot.')
    cfg = load_config(args.config)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = None if zero_shot else args.checkpoint
    cfg.resume = False
    if args.amp:
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, fp16=True)
    set_dataloader_defaults(cfg, pin_memory=True, persistent_workers=False)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    runner = build_runner(cfg)
    if zero_shot:  # the config's pretrained CLIP (a checkpoint replaces it)
        from mmengine.model import is_model_wrapper
        model = runner.model
        (model.module if is_model_wrapper(model) else model).init_weights()
    if args.out is not None and args.out.endswith('.pkl'):
        from mmengine.evaluator import DumpResults
        sets = getattr(runner.test_loop, 'sets', None)
        if sets:  # multi-set loop: one file per set, named after it
            stem = args.out[:-len('.pkl')]
            for eval_set in sets:
                eval_set.evaluator.metrics.append(
                    DumpResults(out_file_path=f'{stem}_{eval_set.name}.pkl'))
        else:
            runner.test_evaluator.metrics.append(
                DumpResults(out_file_path=args.out))
    metrics = runner.test()
    if args.out is not None and not args.out.endswith('.pkl'):
        from mmengine.fileio import dump
        dump(metrics, args.out)
        runner.logger.info(f'metrics written to {args.out}')


if __name__ == '__main__':
    run_tool(main)
