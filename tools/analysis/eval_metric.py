"""Evaluate the predictions of ``tools/test.py --out preds.pkl`` offline,
set by set: MMPretrain's ``analysis_tools/eval_metric.py`` for the
``{set: [predictions]}`` files of drm_mm's multi-set runs (a plain list,
one set, gives MMPretrain's numbers under the same names).

    python tools/analysis/eval_metric.py preds.pkl --metric type=Accuracy topk=1
    python tools/analysis/eval_metric.py preds.pkl --config CFG  # its test_evaluator
"""
import argparse
import json
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.evaluator import Evaluator

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from multi_set_results import load_sets, prefixed  # noqa: E402
from tool_utils import run_tool  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('pkl_results', help='tools/test.py --out x.pkl')
    parser.add_argument(
        '--metric', nargs='+', action='append', dest='metric_options',
        help='a metric config as key=value pairs (repeatable), e.g. '
        '--metric type=Accuracy topk=1')
    parser.add_argument('--config', help='use this config\'s test_evaluator '
                        '(one for all sets, or one per set)')
    parser.add_argument('--set', help='evaluate this set only')
    parser.add_argument('--out', help='write the metrics to this .json')
    return parser.parse_args(argv)


def _metric_cfgs(args, name):
    if args.metric_options:
        cfgs = []
        for option in args.metric_options:
            cfg = {}
            for kv in option:
                key, value = kv.split('=', 1)
                cfg[key] = DictAction._parse_iterable(value)
            cfgs.append(cfg)
        return cfgs
    if args.config is None:
        raise SystemExit('pass --metric type=... or --config CFG (whose '
                         'test_evaluator is used).')
    import drm_mm  # noqa: F401  registers drm_mm's metrics
    evaluator = Config.fromfile(args.config).test_evaluator
    if isinstance(evaluator, dict) and 'type' not in evaluator \
            and 'metrics' not in evaluator:
        if name not in evaluator:
            raise SystemExit(f'{args.config}: test_evaluator has no entry '
                             f'for set {name!r} ({sorted(evaluator)}).')
        evaluator = evaluator[name]
    return evaluator if isinstance(evaluator, list) else [evaluator]


def main(argv=None) -> None:
    args = parse_args(argv)
    from mmpretrain.registry import METRICS
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    import drm_mm  # noqa: F401
    results = {}
    for name, predictions in load_sets(args.pkl_results, args.set).items():
        metrics = [METRICS.build(cfg) for cfg in _metric_cfgs(args, name)]
        evaluated = Evaluator(metrics).offline_evaluate(predictions, None)
        results.update(prefixed(name, evaluated))
    for key, value in results.items():
        print(f'{key}: {value}')
    if args.out is not None:
        with open(args.out, 'w') as f:
            json.dump({k: float(v) for k, v in results.items()}, f, indent=1)


if __name__ == '__main__':
    run_tool(main)
