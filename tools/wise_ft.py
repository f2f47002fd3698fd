"""WiSE-FT sweep: evaluate (1 - a) * zero-shot + a * fine-tuned for each a.

    python tools/wise_ft.py CONFIG --finetuned FT.pth [--zeroshot ZS.pth] \
        --alphas 0 0.1 0.2 ... 1.0 --work-dir DIR \
        [--reference [LABEL=]OLD/wise_ft.csv ...] \
        [--save-alpha 0.5 --save-path out.pth] [--cfg-options ...]

Every test set of the config is evaluated for every alpha with one runner.
Writes ``DIR/wise_ft.csv`` and ``DIR/wise_ft.json`` (alpha + every metric)
and the figure ``DIR/wise_ft.png`` / ``.svg`` / ``.pdf`` (ID vs OOD in %,
one point per alpha, earlier sweeps as dashed baselines); every point's
scalars also go to the config's visualizer backends (TensorBoard, W&B...).
The zero-shot end defaults to the model built from the config (its
pretrained weights, no training). Reporting lives in ``wise_ft_report.py``
beside this file.
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
    parser.add_argument(
        '--reference', nargs='+', default=[], metavar='[LABEL=]FILE',
        help='baseline curves: wise_ft.csv / wise_ft.json of earlier sweeps')
    parser.add_argument('--title', help='figure title (default: WiSE-FT: '
                        'config name and CLIP model)')
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
    if args.save_path is not None and osp.isdir(args.save_path):
        raise SystemExit(f'wise_ft.py: --save-path {args.save_path!r} is a '
                         'directory; pass the .pth file to write.')
    for flag in ('finetuned', 'zeroshot'):
        path = getattr(args, flag)
        if path is not None and not osp.isfile(path):
            raise SystemExit(f'wise_ft.py: --{flag} checkpoint {path!r} '
                             'does not exist.')
    from wise_ft_report import read_sweep
    try:  # read now: a bad baseline fails before the sweep, not after it
        args.references = [read_sweep(spec) for spec in args.reference]
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f'wise_ft.py: {err}') from None


def figure_title(cfg, config: str) -> str:  # cfg: mmengine Config
    """``WiSE-FT: <config name> (<CLIP model>)`` (model when the config
    names one)."""
    model = cfg.get('model') or {}
    names = [part.get('model_name') for part in (
        model.get('clip'), model.get('backbone')) if isinstance(part, dict)]
    arch = next((n for n in names if n), None)
    name = osp.splitext(osp.basename(config))[0]
    return f'WiSE-FT: {name}' + (f' ({arch})' if arch else '')


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

    from wise_ft_report import (pick_axes, plot_id_ood, send_scalars,
                                write_metrics_csv, write_sweep_json)

    from drm_mm.engine.wise_ft import interpolate_state_dicts, wise_ft_sweep
    from drm_mm.utils.checkpoint_utils import (CheckpointMismatchError,
                                               check_compatible,
                                               load_state_dict_file,
                                               make_checkpoint,
                                               model_state_dict,
                                               save_checkpoint, unwrap_model)

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
        if zeroshot is None:  # the config's pretrained weights
            unwrap_model(runner.model).init_weights()
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
        visualizer = runner.visualizer if is_main_process() else None
        rows = wise_ft_sweep(
            runner, finetuned, args.alphas, zeroshot, log=log,
            progress=is_main_process(), finetuned_name=ft_name,
            zeroshot_name=zs_name,
            on_row=None if visualizer is None else
            lambda i, row: send_scalars(visualizer, i, row))
    except CheckpointMismatchError as err:
        raise SystemExit(f'wise_ft.py: {err}') from None
    if not is_main_process():
        return
    rows = sorted(rows, key=lambda row: row['alpha'])  # tables by alpha
    title = args.title or figure_title(cfg, args.config)
    csv_path = osp.join(cfg.work_dir, 'wise_ft.csv')
    header = write_metrics_csv(rows, csv_path)
    write_sweep_json(rows, osp.join(cfg.work_dir, 'wise_ft.json'),
                     label=title.replace('WiSE-FT: ', '', 1),
                     config=args.config, finetuned=args.finetuned,
                     zeroshot=args.zeroshot)
    log(f'WiSE-FT metrics written to {csv_path} (and wise_ft.json)')
    try:
        id_key, ood_key = pick_axes(header[1:], args.id_metric,
                                    args.ood_metric)
        if ood_key is None:
            log(f'WiSE-FT: only one metric ({id_key}); plotting it against '
                'alpha (pass --id-metric / --ood-metric to choose axes).')
        paths = plot_id_ood(rows, id_key, ood_key,
                            osp.join(cfg.work_dir, 'wise_ft.png'),
                            title=title, references=args.references)
    except (KeyError, ValueError) as err:
        raise SystemExit(f'wise_ft.py: {err.args[0]}') from None
    log(f'WiSE-FT plot ({id_key} vs {ood_key or "alpha"}) written to '
        f'{", ".join(paths)}')


if __name__ == '__main__':
    from tool_utils import run_tool
    run_tool(main)
