"""WILDSFMoW: splits, metadata and metrics identical to wilds (fake FMoW)."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch
import wilds
from mmengine.evaluator import Evaluator
from mmpretrain.structures import DataSample

from drm_mm.datasets.wilds_fmow import WILDSFMoW
from drm_mm.evaluation.metrics.fmow_metric import FMoWMetric

SPLITS = ('train', 'id_val', 'id_test', 'val', 'test')


def _torch_avg_over_groups(v, g, n_groups):
    """Stand-in for wilds' torch_scatter-based avg_over_groups (plain loop)."""
    from wilds.common.utils import get_counts
    counts = get_counts(g, n_groups)
    means = [v[g == i].float().mean() if counts[i] > 0
             else torch.tensor(0., device=v.device) for i in range(n_groups)]
    return torch.stack(means), counts


@pytest.fixture
def wilds_without_torch_scatter(monkeypatch):
    import wilds.common.metrics.metric as metric_module
    monkeypatch.setattr(metric_module, 'avg_over_groups',
                        _torch_avg_over_groups)


def _wilds(root):
    return wilds.get_dataset('fmow', root_dir=str(root), download=False)


@pytest.mark.parametrize('split', SPLITS)
def test_split_sizes_labels_and_metadata_match_wilds(fake_fmow_root, split):
    ours = WILDSFMoW(data_root=str(fake_fmow_root), split=split)
    full = _wilds(fake_fmow_root)
    subset = full.get_subset(split)
    assert len(ours) == len(subset) > 0
    infos = [ours.get_data_info(i) for i in range(len(ours))]
    fields = list(full.metadata_fields)
    region = subset.metadata_array[:, fields.index('region')].tolist()
    year = subset.metadata_array[:, fields.index('year')].tolist()
    assert [d['gt_label'] for d in infos] == subset.y_array.tolist()
    assert [d['region'] for d in infos] == region
    assert [d['year'] for d in infos] == [2002 + y for y in year]
    # Images of sequestered rows are skipped: names follow wilds' full_idxs.
    rows = [full.full_idxs[i] for i in subset.indices]
    assert [pathlib.Path(d['img_path']).name for d in infos] == [
        f'rgb_img_{r}.png' for r in rows]
    assert all(pathlib.Path(d['img_path']).is_file() for d in infos)
    assert ours.metainfo['regions'] == tuple(full.metadata_map['region'])


def test_official_split_scheme_years(fake_fmow_root):
    years = {}
    for split in SPLITS:
        ds = WILDSFMoW(data_root=str(fake_fmow_root), split=split)
        years[split] = {ds.get_data_info(i)['year'] for i in range(len(ds))}
    for split in ('train', 'id_val', 'id_test'):
        assert max(years[split]) <= 2012
    assert 2013 <= min(years['val']) and max(years['val']) <= 2015
    assert min(years['test']) >= 2016


def test_classes_are_the_62_wilds_categories(fake_fmow_root):
    from wilds.datasets.fmow_dataset import categories
    ds = WILDSFMoW(data_root=str(fake_fmow_root), split='id_val')
    assert ds.metainfo['classes'] == tuple(categories)
    assert len(ds.metainfo['classes']) == 62
    assert 'Other' in ds.metainfo['regions']


def _evaluate(ds, y_pred) -> dict:
    evaluator = Evaluator(FMoWMetric())
    evaluator.dataset_meta = ds.metainfo
    samples = []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        sample = DataSample().set_gt_label(info['gt_label'])
        sample.set_pred_label(int(y_pred[i]))
        sample.set_metainfo(dict(sample_idx=i, region=info['region'],
                                 year=info['year']))
        samples.append(sample)
    evaluator.process(samples[:5])
    evaluator.process(samples[5:])
    return evaluator.evaluate(len(ds))


@pytest.mark.parametrize('split', SPLITS)
def test_metrics_equal_wilds_eval_for_random_predictions(
        fake_fmow_root, split, wilds_without_torch_scatter):
    ds = WILDSFMoW(data_root=str(fake_fmow_root), split=split)
    full = _wilds(fake_fmow_root)
    subset = full.get_subset(split)
    for seed in range(4):
        y_true = subset.y_array
        rng = np.random.default_rng(seed)
        # Mostly random, a third right, so accuracies are not all zero.
        y_pred = torch.where(torch.from_numpy(rng.random(len(ds)) < 0.35),
                             y_true,
                             torch.from_numpy(rng.integers(0, 4, len(ds))))
        ours = _evaluate(ds, y_pred)
        theirs, _ = full.eval(y_pred, y_true, subset.metadata_array)
        assert ours['acc'] == pytest.approx(theirs['acc_avg'], abs=1e-9)
        assert ours['acc_worst_region'] == pytest.approx(
            theirs['acc_worst_region'], abs=1e-9)
        assert ours['acc_worst_year'] == pytest.approx(
            theirs['acc_worst_year'], abs=1e-9)
        region_keys = [k for k in ours if k.startswith('acc_region:')]
        assert region_keys
        for key in region_keys:
            assert ours[key] == pytest.approx(theirs[key], abs=1e-9)
        for key in (k for k in ours if k.startswith('acc_year:')):
            assert ours[key] == pytest.approx(theirs[key], abs=1e-9)


def test_worst_region_ignores_other(fake_fmow_root):
    ds = WILDSFMoW(data_root=str(fake_fmow_root), split='test')
    regions = list(ds.metainfo['regions'])
    other = regions.index('Other')
    y_true = [ds.get_data_info(i)['gt_label'] for i in range(len(ds))]
    # Right everywhere except in the 'Other' region.
    y_pred = [(y + 1) % 62 if ds.get_data_info(i)['region'] == other else y
              for i, y in enumerate(y_true)]
    metrics = _evaluate(ds, y_pred)
    assert metrics['acc_region:Other'] == 0.0
    assert metrics['acc_worst_region'] == 1.0
    assert metrics['acc'] < 1.0


def test_metric_names_missing_metadata_key(fake_fmow_root):
    metric = FMoWMetric()
    sample = DataSample().set_gt_label(1).set_pred_label(1)
    with pytest.raises(KeyError, match='meta_keys'):
        metric.process(None, [sample.to_dict()])


def test_pipeline_packs_region_and_year(fake_fmow_root):
    ds = WILDSFMoW(data_root=str(fake_fmow_root), split='val',
                   pipeline=[dict(type='LoadImageDraft'),
                             dict(type='PackInputs',
                                  meta_keys=('sample_idx', 'region',
                                             'year'))])
    item = ds[3]
    info = ds.get_data_info(3)
    assert item['inputs'].shape == (3, 32, 32)
    assert item['data_samples'].region == info['region']
    assert item['data_samples'].year == info['year']


def test_unknown_split_and_missing_root(fake_fmow_root, tmp_path):
    with pytest.raises(ValueError, match='id_val'):
        WILDSFMoW(data_root=str(fake_fmow_root), split='ood_test')
    with pytest.raises(FileNotFoundError, match='fmow_v1.1'):
        WILDSFMoW(data_root=str(tmp_path), split='train')
