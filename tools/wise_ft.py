"""WiSE-FT sweep: evaluate (1 - a) * zero-shot + a * fine-tuned for each a.

    python tools/wise_ft.py CONFIG --finetuned FT.pth [--zeroshot ZS.pth] \
        --alphas 0 0.1 0.2 ... 1.0 --work-dir DIR \
        [--save-alpha 0.5 --save-path out.pth] [--cfg-options ...]

Every test set of the config is evaluated for every alpha with one runner.
Writes ``DIR/wise_ft.csv`` (alpha + every metric) and ``DIR/wise_ft.png``
(ID vs OOD, one point per alpha). The zero-shot end defaults to the model
built from the config (its pretrained weights, no training).
"""
import argparse
import os
import os.path as osp
import time

from mmengine.config import DictAction

from tool_utils import (add_launcher_arg, build_runner,
                        load_config, set_dataloader_defaults)

DEFAULT_ALPHAS = [round(0.1 * i, 1) for i in range(11)]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='WiSE-FT: weight-space interpolation sweep')
    parser.add_argument('config', help='config of the fine-tuned model')
    parser.add_argument('--finetuned', required=True,
                        help='fine-tuned checkpoint (alpha = 1)')
    parser.add_argument(
        '--zeroshot', help='zero-shot checkpoint (alpha = 0); default: the '
        'model built from the config with its pretrained weights')
    parser.add_argument('--alphas', nargs='+', type=float,
                        default=DEFAULT_ALPHAS,
                        help='mixing coefficients in [0, 1] (default 0, '
                        '0.1, ..., 1)')
    parser.add_argument('--work-dir', help='where the CSV, plot and logs go')
    parser.add_argument('--save-alpha', type=float,
                        help='also save the interpolated checkpoint of this '
                        'alpha')
    parser.add_argument('--save-path',
                        help='where --save-alpha goes (default '
                        'WORK_DIR/wise_ft_alpha<a>.pth)')
    parser.add_argument('--id-metric', help='x axis of the plot (default: '
                        'the first metric of an id_* test set)')
    parser.add_argument('--ood-metric', help='y axis of the plot (default: '
                        'the same metric on the first other test set)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config fields: key=value ...')
    add_launcher_arg(parser)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def check_args(args: argparse.Namespace) -> None:
    """Fail early, before anything is built."""
    from drm_mm.engine.wise_ft import check_alpha, check_alphas
    try:
        args.alphas = check_alphas(args.alphas)
        if args.save_alpha is not None:
            args.save_alpha = check_alpha(args.save_alpha, '--save-alpha')
    except ValueError as err:
        raise SystemExit(f'wise_ft.py: {err}') from None
    if args.save_path is not None and args.save_alpha is None:
        raise SystemExit('wise_ft.py: --save-path needs --save-alpha (the '
                         'alpha whose weights to save).')
    for flag in ('finetuned', 'zeroshot'):
        path = getattr(args, flag)
        if path is not None and not osp.isfile(path):
            raise SystemExit(f'wise_ft.py: --{flag} checkpoint {path!r} '
                             'does not exist.')


def main() -> None:
    args = parse_args()
    check_args(args)
    cfg = load_config(args.config)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join(
            './work_dirs', osp.splitext(osp.basename(args.config))[0],
            'wise_ft')
    # The weights come from the sweep: never from load_from / resume, and
    # evaluation writes no checkpoints.
    cfg.load_from = None
    cfg.resume = False
    if cfg.get('default_hooks') is not None:
        cfg.default_hooks.checkpoint = None
    set_dataloader_defaults(cfg, pin_memory=True, persistent_workers=False)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    from mmengine.dist import is_main_process

    from drm_mm.engine.wise_ft import (CheckpointMismatchError,
                                       check_compatible,
                                       interpolate_state_dicts,
                                       load_state_dict_file, make_checkpoint,
                                       model_state_dict, pick_axes,
                                       plot_id_ood, save_checkpoint,
                                       unwrap_model, wise_ft_sweep,
                                       write_metrics_csv)

    zs_name = (f'zero-shot checkpoint {args.zeroshot!r}' if args.zeroshot
               else f'zero-shot model of {args.config!r}')
    ft_name = f'fine-tuned checkpoint {args.finetuned!r}'
    try:
        # Checkpoints first: a mismatch fails before the runner is built.
        finetuned = load_state_dict_file(args.finetuned)
        zeroshot = None
        if args.zeroshot:
            zeroshot = load_state_dict_file(args.zeroshot)
            check_compatible(finetuned, zeroshot, ft_name, zs_name)
    except CheckpointMismatchError as err:
        raise SystemExit(f'wise_ft.py: {err}') from None
    runner = build_runner(cfg)
    log = runner.logger.info
    try:
        check_compatible(unwrap_model(runner.model).state_dict(), finetuned,
                         f'the model of {args.config!r}', ft_name)
        if zeroshot is None:
            zeroshot = model_state_dict(runner.model)
        if args.save_alpha is not None:
            save_path = args.save_path or osp.join(
                cfg.work_dir, f'wise_ft_alpha{args.save_alpha:g}.pth')
            if is_main_process():
                mixed = interpolate_state_dicts(zeroshot, finetuned,
                                                args.save_alpha, zs_name,
                                                ft_name)
                meta = dict(wise_ft=dict(
                    alpha=args.save_alpha, finetuned=args.finetuned,
                    zeroshot=args.zeroshot or 'pretrained weights of the '
                    'config', config=args.config),
                            time=time.strftime('%Y%m%d_%H%M%S'))
                save_checkpoint(make_checkpoint(mixed, meta), save_path)
                del mixed
                log(f'WiSE-FT weights of alpha={args.save_alpha:g} saved to '
                    f'{save_path}')
        rows = wise_ft_sweep(runner, finetuned, args.alphas, zeroshot,
                             log=log, progress=is_main_process(),
                             finetuned_name=ft_name,
                             zeroshot_name=zs_name)
    except CheckpointMismatchError as err:
        raise SystemExit(f'wise_ft.py: {err}') from None
    if not is_main_process():
        return
    csv_path = osp.join(cfg.work_dir, 'wise_ft.csv')
    header = write_metrics_csv(rows, csv_path)
    log(f'WiSE-FT metrics written to {csv_path}')
    try:
        id_key, ood_key = pick_axes(header[1:], args.id_metric,
                                    args.ood_metric)
    except (KeyError, ValueError) as err:
        raise SystemExit(f'wise_ft.py: {err.args[0]}') from None
    if ood_key is None:
        log(f'WiSE-FT: only one metric ({id_key}); plotting it against '
            'alpha (pass --id-metric / --ood-metric to choose axes).')
    png_path = osp.join(cfg.work_dir, 'wise_ft.png')
    plot_id_ood(rows, id_key, ood_key, png_path,
                title=f'WiSE-FT: {osp.basename(args.finetuned)}')
    log(f'WiSE-FT plot ({id_key} vs {ood_key or "alpha"}) written to '
        f'{png_path}')


if __name__ == '__main__':
    main()
