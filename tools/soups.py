"""Model soups: average fine-tuned checkpoints of one config.

    python tools/soups.py CONFIG CKPT1 CKPT2 ... --mode uniform|greedy \
        --work-dir DIR [--save-path soup.pth] [--metric id_val/macro_f1] \
        [--cfg-options ...]

``uniform`` averages all checkpoints; ``greedy`` sorts them by their ID
validation metric (the config's val loop) and adds each one whose addition
does not lower it. The final soup is validated, evaluated on the test set(s)
of the config and saved as an MMEngine checkpoint (loadable by
``tools/test.py``); ``DIR/soup_<mode>.json`` records every score.
"""
import argparse
import json
import os
import os.path as osp
import time
from typing import Any, Dict, Optional, Tuple

from mmengine.config import Config, DictAction

from tool_utils import (add_launcher_arg, build_runner,
                        load_config, set_dataloader_defaults)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Model soups of drm_mm '
                                     'checkpoints')
    parser.add_argument('config', help='config the checkpoints were trained '
                        'with')
    parser.add_argument('checkpoints', nargs='+', help='the ingredients')
    parser.add_argument('--mode', choices=('uniform', 'greedy'),
                        default='greedy')
    parser.add_argument('--work-dir', help='where results and logs go')
    parser.add_argument('--save-path', help='soup checkpoint (default '
                        'WORK_DIR/soup_<mode>.pth)')
    parser.add_argument(
        '--metric', help='ID-val metric of the greedy selection (default: '
        'default_hooks.checkpoint.save_best of the config)')
    parser.add_argument('--rule', choices=('greater', 'less'),
                        help='whether a higher or lower metric is better '
                        '(default: the checkpoint hook rule, else greater)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config fields: key=value ...')
    add_launcher_arg(parser)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def selection_metric(cfg: Config, metric: Optional[str],
                     rule: Optional[str]) -> Tuple[Optional[str], str]:
    """The metric and rule of the greedy selection: the flags, else the
    config's checkpoint hook (``save_best``, ``rule``). The metric is None
    for ``save_best='auto'`` (the first val metric is used)."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    if metric is None:
        best = hook.get('save_best')
        if isinstance(best, (list, tuple)):
            best = best[0] if best else None
        if best is None:
            raise SystemExit(
                'soups.py: --mode greedy needs a selection metric: pass '
                '--metric (e.g. id_val/macro_f1) or set '
                'default_hooks.checkpoint.save_best in the config.')
        metric = None if best == 'auto' else best
    if rule is None:
        rule = hook.get('rule') or 'greater'
        if isinstance(rule, (list, tuple)):
            rule = rule[0]
    return metric, rule


def pick(metrics: Dict[str, Any], metric: Optional[str]) -> Tuple[str, float]:
    """The selection metric's name and value in a val result."""
    if metric is None:  # save_best='auto'
        if not metrics:
            raise SystemExit('soups.py: the val loop returned no metric.')
        metric = next(iter(metrics))
    if metric not in metrics:
        raise SystemExit(f'soups.py: metric {metric!r} is not reported by '
                         f'the val loop of the config; available: '
                         f'{sorted(metrics)}. Pass one with --metric.')
    return metric, float(metrics[metric])


def main() -> None:
    args = parse_args()
    missing = [p for p in args.checkpoints if not osp.isfile(p)]
    if missing:
        raise SystemExit(f'soups.py: checkpoint(s) {missing} do not exist.')
    if len(args.checkpoints) < 2:
        raise SystemExit('soups.py: a soup needs at least two checkpoints.')
    cfg = load_config(args.config)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join(
            './work_dirs', osp.splitext(osp.basename(args.config))[0],
            'soups')
    metric, rule = (selection_metric(cfg, args.metric, args.rule)
                    if args.mode == 'greedy' else (args.metric, args.rule
                                                   or 'greater'))
    cfg.load_from = None
    cfg.resume = False
    if cfg.get('default_hooks') is not None:
        cfg.default_hooks.checkpoint = None  # validation saves nothing
    set_dataloader_defaults(cfg, pin_memory=True, persistent_workers=False)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    has_val = cfg.get('val_dataloader') is not None and cfg.get(
        'val_evaluator') is not None
    if args.mode == 'greedy' and not has_val:
        raise SystemExit('soups.py: --mode greedy selects on the ID '
                         'validation set, but the config has no '
                         'val_dataloader / val_evaluator.')

    from mmengine.dist import is_main_process

    from drm_mm.engine.model_soups import greedy_soup, uniform_soup
    from drm_mm.engine.wise_ft import scalar_metrics
    from drm_mm.utils.checkpoint_utils import (CheckpointMismatchError,
                                               load_state_dict_file,
                                               load_weights, make_checkpoint,
                                               save_checkpoint)

    runner = build_runner(cfg)
    log = runner.logger.info
    names = [f'checkpoint {p!r}' for p in args.checkpoints]
    loaders = [(lambda p=p: load_state_dict_file(p))
               for p in args.checkpoints]
    chosen_metric = [metric]

    def validate(state: Dict[str, Any], source: str) -> Dict[str, Any]:
        load_weights(runner.model, state, source)
        return runner.val()

    def score(state: Dict[str, Any]) -> float:
        name, value = pick(validate(state, 'the soup'), chosen_metric[0])
        chosen_metric[0] = name
        return value

    results: Dict[str, Any] = dict(mode=args.mode,
                                   checkpoints=list(args.checkpoints))
    try:
        if args.mode == 'uniform':
            soup = uniform_soup(loaders, names)
        else:
            scores = []
            for i, (path, load) in enumerate(zip(args.checkpoints,
                                                 loaders)):
                name, value = pick(validate(load(), names[i]),
                                   chosen_metric[0])
                chosen_metric[0] = name
                scores.append(value)
                log(f'soup ingredient {i} ({path}): {chosen_metric[0]} = '
                    f'{scores[-1]:.6g}')
            soup = greedy_soup(loaders, score, scores=scores, rule=rule,
                               names=names, log=log)
    except CheckpointMismatchError as err:
        raise SystemExit(f'soups.py: {err}') from None
    results.update(
        metric=chosen_metric[0], rule=rule,
        selected=[args.checkpoints[i] for i in soup.selected],
        ingredient_scores=(None if soup.scores is None else dict(
            zip(args.checkpoints, soup.scores))),
        history=[dict(h, checkpoint=args.checkpoints[h['index']])
                 for h in soup.history])
    log(f'soup ({args.mode}) of {len(soup.selected)} checkpoint(s): '
        f'{results["selected"]}')
    try:
        if has_val:
            results['val'] = scalar_metrics(validate(soup.state_dict,
                                                     'the soup'))
        else:
            load_weights(runner.model, soup.state_dict, 'the soup')
    except CheckpointMismatchError as err:
        raise SystemExit(f'soups.py: {err}') from None
    if cfg.get('test_dataloader') is not None and cfg.get(
            'test_evaluator') is not None:
        results['test'] = scalar_metrics(runner.test())
    if not is_main_process():
        return
    save_path = args.save_path or osp.join(cfg.work_dir,
                                           f'soup_{args.mode}.pth')
    meta = dict(soup=dict(mode=args.mode, config=args.config,
                          ingredients=results['selected'],
                          metric=chosen_metric[0]),
                time=time.strftime('%Y%m%d_%H%M%S'))
    save_checkpoint(make_checkpoint(soup.state_dict, meta), save_path)
    results['save_path'] = save_path
    out = osp.join(cfg.work_dir, f'soup_{args.mode}.json')
    os.makedirs(cfg.work_dir, exist_ok=True)
    with open(out, 'w', encoding='utf-8') as f:
        json.dump(results, f, indent=2)
    log(f'soup checkpoint saved to {save_path}; results in {out}')


if __name__ == '__main__':
    from tool_utils import run_tool
    run_tool(main)
