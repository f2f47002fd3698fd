"""Successes and failures of every test set of a drm_mm config: MMPretrain's
``analysis_tools/analyze_results.py`` for the ``{set: [predictions]}``
pickles of multi-set runs (a plain list, one set, gives MMPretrain's
selection).

    python tools/analysis/analyze_results.py CFG preds.pkl --out-dir out
    python tools/analysis/analyze_results.py CFG preds.pkl --out-dir out \
        --set test --topk 10 --most-confident

Per set, the predictions are ordered by their top score and the first
``--topk`` right ones and wrong ones are drawn (image, true and predicted
label, score) into ``<out-dir>/<set>/success`` and ``.../fail``, with a
``success.json`` / ``fail.json`` listing them in that order. As in
MMPretrain, the order is ascending (the least confident first);
``--most-confident`` takes the most confident instead. A plain-list pickle
goes to ``<out-dir>/success`` and ``<out-dir>/fail``; with a multi-set
config, ``--set`` names the set it was made on. The datasets are built
from the config after its ``${data_root}`` references are resolved, so the
config's one ``data_root`` (or ``--cfg-options data_root=...``) applies.
"""
import argparse
import copy
import os.path as osp
import sys
from typing import Dict, List

import mmengine
from mmengine.config import DictAction

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from multi_set_results import load_sets  # noqa: E402
from tool_utils import load_config, run_tool  # noqa: E402

#: Keys every prediction of ``tools/test.py --out`` holds.
PRED_KEYS = ('sample_idx', 'gt_label', 'pred_label', 'pred_score')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the config')
    parser.add_argument('result', help='tools/test.py --out x.pkl')
    parser.add_argument('--out-dir', required=True,
                        help='folder of the drawn images and lists')
    parser.add_argument('--topk', type=int, default=20,
                        help='images per set for success and for fail '
                        '(default: 20, as MMPretrain)')
    parser.add_argument('--set', help='this test set only (with a plain-list '
                        'pickle: the config set it was made on)')
    parser.add_argument('--most-confident', action='store_true',
                        help='take the most confident predictions (default: '
                        'the least confident, as MMPretrain)')
    parser.add_argument('--rescale-factor', '-r', type=float,
                        help='rescale the images by this factor')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def dataset_cfgs(cfg, config: str) -> Dict[str, dict]:
    """``{set: dataset config}`` of ``cfg.test_dataloader`` (``''`` for a
    plain loader), references resolved, without pipeline (the images are
    read from the data infos)."""
    from drm_mm.datasets.config_refs import resolve_config_refs
    from drm_mm.evaluation.loops.multi_dataset_base import \
        split_dataloader_cfg
    resolve_config_refs(cfg)
    loader = cfg.get('test_dataloader')
    if not isinstance(loader, dict):
        raise SystemExit(f'{config}: no test_dataloader to read the images '
                         'from; add one (a dataset per test set).')
    sets, _ = split_dataloader_cfg(copy.deepcopy(loader), 'test_dataloader')
    out = {}
    for name, value in sets.items():
        dataset = copy.deepcopy(dict(value['dataset']))
        dataset['pipeline'] = []
        out[name] = dataset
    return out


def pair_sets(args, preds: Dict[str, List], cfgs: Dict[str, dict]) -> list:
    """``[(set name, predictions, dataset config)]``: each predictions set
    with the config set of the same name; a plain list with the config's
    only set or the one ``--set`` names."""
    if list(preds) == ['']:
        if '' in cfgs or len(cfgs) == 1:
            return [('', preds[''], next(iter(cfgs.values())))]
        if args.set is None:
            raise SystemExit(
                f'{args.result}: one set of predictions but {args.config} '
                f'tests {sorted(cfgs)}; pass --set NAME (the set the '
                'predictions were made on).')
        if args.set not in cfgs:
            raise SystemExit(f'{args.config}: no test set {args.set!r}; it '
                             f'has {sorted(cfgs)} (pass one to --set).')
        return [('', preds[''], cfgs[args.set])]
    if args.set is not None:
        preds = load_sets(args.result, args.set)
    missing = [name for name in preds if name not in cfgs]
    if missing:
        raise SystemExit(
            f'{args.config}: no test set {missing[0]!r} for the predictions '
            f'of {args.result} (config sets: {sorted(cfgs)}); use the config '
            'the predictions were made with.')
    return [(name, p, cfgs[name]) for name, p in preds.items()]


def select(predictions: List[dict], topk: int, most_confident: bool = False,
           where: str = 'predictions') -> tuple:
    """``(successes, failures)``: DataSamples ordered by top score
    (ascending unless ``most_confident``), the first ``topk`` of each."""
    import torch
    from mmpretrain.structures import DataSample
    samples = []
    for i, pred in enumerate(predictions):
        if not isinstance(pred, dict) or any(k not in pred
                                             for k in PRED_KEYS):
            raise SystemExit(
                f'{where}: item {i} is not a prediction with keys '
                f'{list(PRED_KEYS)}; write the file with tools/test.py '
                '--out x.pkl.')
        sample = DataSample(metainfo={'sample_idx': pred['sample_idx']})
        sample.set_gt_label(pred['gt_label'])
        sample.set_pred_label(pred['pred_label'])
        sample.set_pred_score(pred['pred_score'])
        samples.append(sample)
    # a stable sort: ties keep the file's order, as in MMPretrain
    samples.sort(key=lambda s: float(torch.max(s.pred_score)),
                 reverse=most_confident)
    success, fail = [], []
    for sample in samples:
        right = bool((sample.pred_label == sample.gt_label).all())
        (success if right else fail).append(sample)
    return success[:topk], fail[:topk]


def save(folder: str, kind: str, samples: list, dataset,
         rescale_factor=None) -> None:
    """Draw ``samples`` into ``folder/kind/`` (``<rank>_<image>.png``) and
    list them in ``folder/kind/kind.json``."""
    import mmcv
    import torch
    from mmpretrain.visualization import UniversalVisualizer
    out_dir = osp.join(folder, kind)
    mmengine.mkdir_or_exist(out_dir)
    classes = dataset.metainfo.get('classes')
    vis = UniversalVisualizer()
    vis.dataset_meta = {'classes': classes}
    listed = []
    for rank, sample in enumerate(samples):
        info = dataset.get_data_info(sample.sample_idx)
        if 'img' in info:
            img, stem = info['img'], str(sample.sample_idx)
        elif 'img_path' in info:
            img = mmcv.imread(info['img_path'], channel_order='rgb')
            stem = osp.splitext(osp.basename(info['img_path']))[0]
        else:
            raise SystemExit(f'{type(dataset).__name__}: sample '
                             f'{sample.sample_idx} has neither img nor '
                             'img_path; cannot draw it.')
        if rescale_factor is not None:
            img = mmcv.imrescale(img, rescale_factor)
        vis.visualize_cls(img, sample, out_file=osp.join(
            out_dir, f'{rank:04d}_{stem}.png'))
        entry = {k: (v.tolist() if isinstance(v, torch.Tensor) else v)
                 for k, v in sample.all_items()}
        entry['img_path'] = info.get('img_path')
        listed.append(entry)
    mmengine.dump(listed, osp.join(out_dir, f'{kind}.json'))


def main(argv=None) -> None:
    args = parse_args(argv)
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS
    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    preds = load_sets(args.result)
    pairs = pair_sets(args, preds, dataset_cfgs(cfg, args.config))
    for name, predictions, dataset_cfg in pairs:
        success, fail = select(predictions, args.topk, args.most_confident,
                               f'{args.result}' + (f', set {name!r}'
                                                   if name else ''))
        dataset = DATASETS.build(dataset_cfg)
        folder = osp.join(args.out_dir, name) if name else args.out_dir
        save(folder, 'success', success, dataset, args.rescale_factor)
        save(folder, 'fail', fail, dataset, args.rescale_factor)
        print(f'{name or "test"}: {len(success)} successes, {len(fail)} '
              f'failures drawn of {len(predictions)} in {folder}')


if __name__ == '__main__':
    run_tool(main)
