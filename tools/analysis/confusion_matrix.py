"""Confusion matrix of every test set of a drm_mm config: MMPretrain's
``analysis_tools/confusion_matrix.py`` for multi-set runs (a one-set config
gives MMPretrain's matrix).

    python tools/analysis/confusion_matrix.py CFG CHECKPOINT.pth --out cm.pkl
    python tools/analysis/confusion_matrix.py CFG preds.pkl --show-path cm.png

With a checkpoint the test sets are run (through DRMRunner, so the
config's one ``data_root`` applies); with a ``.pkl`` of ``tools/test.py
--out`` the saved predictions are used. ``--out`` writes
``{set: matrix}``; ``--show-path x.png`` one ``x_<set>.png`` per set.
"""
import argparse
import os.path as osp
import sys
import tempfile

import mmengine
from mmengine.config import DictAction
from mmengine.evaluator import Evaluator

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from multi_set_results import load_sets  # noqa: E402
from tool_utils import build_runner, load_config, run_tool  # noqa: E402

KEY = 'confusion_matrix/result'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the config')
    parser.add_argument('ckpt_or_result',
                        help='a checkpoint (.pth) or tools/test.py --out .pkl')
    parser.add_argument('--set', help='this test set only')
    parser.add_argument('--out', help='write {set: matrix} to this .pkl')
    parser.add_argument('--show-path', help='save plots as <stem>_<set>.png')
    parser.add_argument('--include-values', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def matrices(args) -> dict:
    """``{set: (matrix, class names)}``."""
    from mmpretrain.evaluation import ConfusionMatrix
    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    names = cfg.model.get('classnames')
    classes = list(names) if isinstance(names, (list, tuple)) else None
    if not args.ckpt_or_result.endswith('.pth'):
        return {name: (Evaluator(ConfusionMatrix()).offline_evaluate(
            preds, None)[KEY], classes) for name, preds in load_sets(
                args.ckpt_or_result, args.set).items()}
    cfg.test_evaluator = dict(type='ConfusionMatrix')
    cfg.load_from = args.ckpt_or_result
    if args.set is not None:
        loader = cfg.test_dataloader
        if args.set not in loader:
            raise SystemExit(f'{args.config}: no test set {args.set!r}.')
        keep = {k: v for k, v in loader.items()
                if not (isinstance(v, dict) and 'dataset' in v
                        and k not in ('dataset', args.set))}
        cfg.test_dataloader = keep
    with tempfile.TemporaryDirectory() as tmp:
        cfg.work_dir = tmp
        runner = build_runner(cfg)
        metrics = runner.test()
        loop = runner.test_loop
        sets = getattr(loop, 'sets', None)
        out = {}
        if sets is None:
            out[''] = (metrics[KEY], loop.dataloader.dataset.metainfo.get(
                'classes'))
        else:
            for s in sets:
                key = f'{s.name}/{KEY}' if s.name else KEY
                out[s.name] = (metrics[key],
                               s.dataloader.dataset.metainfo.get('classes'))
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    from mmpretrain.evaluation import ConfusionMatrix
    result = matrices(args)
    for name, (cm, _) in result.items():
        print(f'{name or "test"}: {tuple(cm.shape)} confusion matrix, '
              f'{int(cm.sum())} samples, {int(cm.trace())} right')
    if args.out is not None:
        mmengine.dump({k: v[0] for k, v in result.items()}, args.out)
    if args.show_path is not None:
        stem, ext = osp.splitext(args.show_path)
        for name, (cm, classes) in result.items():
            fig = ConfusionMatrix.plot(cm, show=False, classes=classes,
                                       include_values=args.include_values)
            path = f'{stem}_{name}{ext}' if name else args.show_path
            fig.savefig(path)
            print(f'saved {path}')


if __name__ == '__main__':
    run_tool(main)
