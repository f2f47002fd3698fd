"""MultiDatasetValLoop / MultiDatasetTestLoop: stub models, real runner."""
from __future__ import annotations

import datetime as dt
import itertools
from typing import List, Optional, Sequence

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from torch import nn

import drm_mm.datasets.imagenet_r  # noqa: F401  registers ImageNetR
import drm_mm.datasets.wilds_iwildcam  # noqa: F401  registers WILDSIWildCam
import drm_mm.evaluation.loops  # noqa: F401  registers the loops
import drm_mm.evaluation.metrics  # noqa: F401  registers the metrics
from drm_mm.datasets.classnames import (class_subset_indices,
                                        imagenet_r_wnids, iwildcam_categories)
from tools.dataset_tools.imagenet_layout import write_imagenet_r
from tools.dataset_tools.wilds_layout import random_image, write_iwildcam
from drm_mm.engine.runners import DRMRunner
from drm_mm.evaluation.loops import MultiDatasetTestLoop, MultiDatasetValLoop

_RUN_IDS = itertools.count()
N_CLASSES = 4
# Fraction of right predictions after each training epoch (0-based), for
# ID cameras and OOD cameras: ID peaks at epoch index 1, OOD at index 0.
QUALITY_ID = {0: 0.25, 1: 1.0, 2: 0.5}
QUALITY_OOD = {0: 1.0, 1: 0.0, 2: 0.5}
OOD_LOCATIONS = (3, 4)


def _iwildcam_samples():
    rng = np.random.default_rng(0)
    start = dt.datetime(2013, 1, 1)
    plan = {'train': ((0, 1, 2), 2), 'id_val': ((0, 1, 2), 2),
            'id_test': ((0, 1, 2), 1), 'val': ((3,), 1), 'test': ((4,), 2)}
    k = 0
    for split, (locations, per_class) in plan.items():
        for y in range(N_CLASSES):
            for j in range(per_class):
                yield dict(image=random_image(rng, (16, 12)), split=split,
                           y=y, location=locations[(y + j) % len(locations)],
                           datetime=start + dt.timedelta(hours=k))
                k += 1


@pytest.fixture(scope='module')
def iwildcam_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('loops_iwildcam')
    rows = [(r.y, r.category_id, r.name)
            for r in iwildcam_categories()[:N_CLASSES]]
    write_iwildcam(root, _iwildcam_samples(), categories=rows)
    return root


class _ScheduledModel(BaseModel):
    """Right on the first ``q`` fraction of each batch, q set by the epoch."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'loss':
            return dict(loss=(self.w ** 2).sum() + 1.0)
        epoch = MessageHub.get_current_instance().get_info('epoch', 0)
        out = []
        for k, sample in enumerate(data_samples):
            ood = sample.location in OOD_LOCATIONS
            q = (QUALITY_OOD if ood else QUALITY_ID)[epoch]
            gt = int(sample.gt_label)
            right = (sample.sample_idx % 4) < round(4 * q)
            pred = gt if right else (gt + 1) % N_CLASSES
            out.append(sample.set_pred_label(pred))
        return out


def _model_rows(dataset, epoch=0):
    """``(sample_idx, gt, pred)`` that _ScheduledModel gives each sample of
    ``dataset`` at ``epoch``, for comparing with dumped predictions."""
    rows = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        ood = info['location'] in OOD_LOCATIONS
        q = (QUALITY_OOD if ood else QUALITY_ID)[epoch]
        gt = int(info['gt_label'])
        right = (i % 4) < round(4 * q)
        rows.append((i, gt, gt if right else (gt + 1) % N_CLASSES))
    return rows


def _dumped_rows(preds):
    return [(p['sample_idx'], int(p['gt_label']), int(p['pred_label']))
            for p in preds]


def _wilds_loader(root, split, shuffle=False):
    return dict(
        batch_size=4, num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=shuffle),
        dataset=dict(type='WILDSIWildCam', data_root=str(root), split=split,
                     pipeline=[dict(type='LoadImageDraft'),
                               dict(type='PackInputs',
                                    meta_keys=('sample_idx', 'location'))]))


def test_save_best_on_id_val_keeps_the_right_checkpoint(iwildcam_root,
                                                        tmp_path):
    runner = DRMRunner(
        model=_ScheduledModel(),
        work_dir=str(tmp_path),
        train_dataloader=_wilds_loader(iwildcam_root, 'train', shuffle=True),
        train_cfg=dict(by_epoch=True, max_epochs=3, val_interval=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.0)),
        # Shared loader defaults at the top level, sets by name; the
        # evaluator is shared by both sets.
        val_dataloader=dict(
            num_workers=0,
            id_val=_wilds_loader(iwildcam_root, 'id_val'),
            test=_wilds_loader(iwildcam_root, 'test')),
        val_evaluator=dict(type='IWildCamMetric'),
        val_cfg=dict(type='MultiDatasetValLoop'),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1,
                            save_best='id_val/macro_f1', rule='greater'),
            logger=dict(type='LoggerHook', interval=1)),
        default_scope='drm_mm',
        randomness=dict(seed=0),
        experiment_name=f'multi_loop_test_{next(_RUN_IDS)}')
    seen = []
    original = runner.val_loop.run

    def recording_run():
        metrics = original()
        seen.append(metrics)
        return metrics

    runner.val_loop.run = recording_run
    runner.train()
    assert len(seen) == 3
    for metrics in seen:
        for name in ('id_val', 'test'):
            for key in ('acc', 'recall_macro', 'macro_f1'):
                assert f'{name}/{key}' in metrics
    id_f1 = [m['id_val/macro_f1'] for m in seen]
    ood_f1 = [m['test/macro_f1'] for m in seen]
    assert int(np.argmax(id_f1)) == 1 and int(np.argmax(ood_f1)) == 0
    assert seen[1]['id_val/acc'] == 1.0
    best = sorted(p.name for p in tmp_path.glob('best_*.pth'))
    assert best == ['best_id_val_macro_f1_epoch_2.pth']
    hub = runner.message_hub
    assert hub.get_info('best_score') == pytest.approx(max(id_f1))
    # Metrics reached the scalar log under their prefixed names.
    assert hub.get_scalar('val/id_val/macro_f1').current() == id_f1[-1]


class _SubsetAwareModel(BaseModel):
    """1000-way scores whose overall argmax lies outside the subset.

    Each sample gets score 10 on an ImageNet class outside the subset and 5
    on its true class; with ``set_class_subset`` the scores are restricted
    to the subset (subset positions), as DRMClassifier does.
    """

    def __init__(self, subset: Sequence[int], outside: int,
                 with_setter: bool = True):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self._subset_of_data = list(subset)
        self.outside = outside
        self.active: Optional[List[int]] = None
        self.calls: list = []
        if not with_setter:
            self.set_class_subset = None

    def set_class_subset(self, indices):  # noqa: F811 - may be hidden
        self.calls.append(None if indices is None else list(indices))
        self.active = None if indices is None else list(indices)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = []
        for sample in data_samples:
            score = torch.zeros(1000)
            score[self.outside] = 10.0
            score[self._subset_of_data[int(sample.gt_label)]] = 5.0
            if self.active is not None:
                score = score[self.active]
            out.append(sample.set_pred_score(score.softmax(0)))
        return out


@pytest.fixture(scope='module')
def imagenet_r_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('loops_imagenet_r')
    write_imagenet_r(root, imagenet_r_wnids()[:3], per_class=2, size=(8, 8))
    return root


def _test_runner(model, work_dir, iwildcam_root, imagenet_r_root,
                 evaluator=None):
    imagenet_r = dict(
        batch_size=2, num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='ImageNetR', data_root=str(imagenet_r_root),
                     allow_missing_classes=True,
                     pipeline=[dict(type='LoadImageDraft'),
                               dict(type='PackInputs')]))
    return DRMRunner(
        model=model, work_dir=str(work_dir),
        test_dataloader=dict(
            # what tools/test.py's set_dataloader_defaults adds on top
            pin_memory=False, persistent_workers=False,
            collate_fn=dict(type='pseudo_collate'),
            imagenet_r=imagenet_r,
            imagenet_r_again=imagenet_r),
        test_evaluator=evaluator or dict(type='ImageNetAccuracy'),
        test_cfg=dict(type='MultiDatasetTestLoop'),
        default_scope='drm_mm',
        experiment_name=f'multi_loop_test_{next(_RUN_IDS)}')


@pytest.mark.parametrize('with_setter', [True, False])
def test_subset_prediction_outside_subset_cannot_be_chosen(
        tmp_path, iwildcam_root, imagenet_r_root, with_setter):
    subset = class_subset_indices('imagenet_r')
    outside = max(i for i in range(1000) if i not in subset)
    model = _SubsetAwareModel(subset, outside, with_setter=with_setter)
    runner = _test_runner(model, tmp_path, iwildcam_root, imagenet_r_root)
    metrics = runner.test()
    assert metrics == {'imagenet_r/accuracy': 1.0,
                       'imagenet_r_again/accuracy': 1.0}
    if with_setter:
        assert model.calls == [subset, None, subset, None]
        assert model.active is None  # reset after the run


def test_unrestricted_metric_would_pick_outside_class(
        tmp_path, iwildcam_root, imagenet_r_root):
    """Control: MMPretrain's plain Accuracy on 1000-way scores scores 0."""
    subset = class_subset_indices('imagenet_r')
    outside = max(i for i in range(1000) if i not in subset)
    model = _SubsetAwareModel(subset, outside, with_setter=False)
    runner = _test_runner(model, tmp_path, iwildcam_root, imagenet_r_root,
                          evaluator=dict(type='Accuracy', topk=1))
    metrics = runner.test()
    assert metrics['imagenet_r/accuracy/top1'] == 0.0


def test_per_set_evaluators_and_wilds_test_table(tmp_path, iwildcam_root):
    model = _ScheduledModel()
    sets = ('id_val', 'id_test', 'val', 'test')
    runner = DRMRunner(
        model=model, work_dir=str(tmp_path),
        test_dataloader={s: _wilds_loader(iwildcam_root, s) for s in sets},
        test_evaluator=dict(
            id_val=dict(type='IWildCamMetric'),
            id_test=[dict(type='IWildCamMetric')],
            val=dict(type='IWildCamMetric'),
            test=dict(type='GroupAccuracy', key='location')),
        test_cfg=dict(type='MultiDatasetTestLoop'),
        default_scope='drm_mm',
        experiment_name=f'multi_loop_test_{next(_RUN_IDS)}')
    metrics = runner.test()
    for s in ('id_val', 'id_test', 'val'):
        assert {f'{s}/acc', f'{s}/recall_macro', f'{s}/macro_f1'} <= set(
            metrics)
    assert 'test/acc_worst_location' in metrics
    assert 'test/acc_location:4' in metrics
    assert isinstance(runner.test_loop, MultiDatasetTestLoop)
    assert [s.name for s in runner.test_loop.sets] == list(sets)


@pytest.mark.parametrize('dataloader, evaluator, match', [
    (dict(dataset='X', a=dict(dataset=dict())), dict(type='IWildCamMetric'),
     'the top-level "dataset" of a multi-set dataloader holds defaults'),
    (dict(dataset=dict(type='X'), a=dict(dataset=dict(type='Y'))),
     dict(type='IWildCamMetric'), r"_delete_=True"),
    (dict(batch_size=2), dict(type='IWildCamMetric'), 'no set found'),
    (dict(a=dict(dataset=dict())), dict(b=dict(type='IWildCamMetric')),
     r"missing \['a'\], unknown \['b'\]"),
    (dict(**{'a/b': dict(dataset=dict())}), dict(type='IWildCamMetric'),
     'invalid set name'),
])
def test_bad_configs_are_explained(dataloader, evaluator, match):
    from drm_mm.evaluation.loops.multi_dataset_base import (
        evaluator_cfg_per_set, split_dataloader_cfg)
    with pytest.raises((TypeError, ValueError), match=match):
        sets, _ = split_dataloader_cfg(dataloader, 'MultiDatasetValLoop')
        evaluator_cfg_per_set(evaluator, list(sets), 'MultiDatasetValLoop')


def test_loops_are_registered():
    from drm_mm.registry import LOOPS
    assert LOOPS.get('MultiDatasetValLoop') is MultiDatasetValLoop
    assert LOOPS.get('MultiDatasetTestLoop') is MultiDatasetTestLoop


def test_shared_dataset_holds_defaults_of_every_set():
    from drm_mm.evaluation.loops.multi_dataset_base import \
        split_dataloader_cfg
    sets, shared = split_dataloader_cfg(
        dict(batch_size=2, dataset=dict(type='T', pipeline=['p']),
             a=dict(dataset=dict(split='a')),
             b=dict(dataset=dict(split='b', pipeline=['q']))),
        'MultiDatasetTestLoop')
    assert shared == dict(batch_size=2)
    assert sets == dict(
        a=dict(dataset=dict(type='T', pipeline=['p'], split='a')),
        b=dict(dataset=dict(type='T', pipeline=['q'], split='b')))


def _dump_runner(tmp_path, iwildcam_root, sets):
    return DRMRunner(
        model=_ScheduledModel(), work_dir=str(tmp_path),
        test_dataloader={s: _wilds_loader(iwildcam_root, s) for s in sets},
        test_evaluator=dict(type='IWildCamMetric'),
        test_cfg=dict(type='MultiDatasetTestLoop'),
        default_scope='drm_mm',
        experiment_name=f'multi_loop_test_{next(_RUN_IDS)}')


def test_mmpretrain_style_out_holds_every_set(tmp_path, iwildcam_root):
    """MMPretrain's tools/test.py --out appends one DumpResults to
    runner.test_evaluator (the first set's): every set ends up in it."""
    from mmengine import load
    from mmengine.evaluator import DumpResults
    sets = ('id_test', 'test')
    runner = _dump_runner(tmp_path, iwildcam_root, sets)
    out = str(tmp_path / 'preds.pkl')
    runner.test_evaluator.metrics.append(DumpResults(out_file_path=out))
    metrics = runner.test()
    assert 'test/macro_f1' in metrics
    preds = load(out)
    assert list(preds) == list(sets)
    for eval_set in runner.test_loop.sets:
        assert _dumped_rows(preds[eval_set.name]) == _model_rows(
            eval_set.dataloader.dataset)
        assert not any(isinstance(m, DumpResults)
                       for m in eval_set.evaluator.metrics[1:])


def test_per_set_dumps_are_left_alone(tmp_path, iwildcam_root):
    """tools/test.py of drm_mm adds one DumpResults per set itself."""
    from mmengine import load
    from mmengine.evaluator import DumpResults
    sets = ('id_test', 'test')
    runner = _dump_runner(tmp_path, iwildcam_root, sets)
    for eval_set in runner.test_loop.sets:
        eval_set.evaluator.metrics.append(DumpResults(
            out_file_path=str(tmp_path / f'{eval_set.name}.pkl')))
    runner.test()
    for eval_set in runner.test_loop.sets:
        preds = load(str(tmp_path / f'{eval_set.name}.pkl'))
        assert _dumped_rows(preds) == _model_rows(
            eval_set.dataloader.dataset)


def test_plain_loader_is_one_unprefixed_set(tmp_path, iwildcam_root):
    """A child that writes a plain MMEngine loader under a base with
    MultiDatasetTestLoop gets MMEngine's metric names and --out list."""
    from mmengine import load
    from mmengine.evaluator import DumpResults
    runner = DRMRunner(
        model=_ScheduledModel(), work_dir=str(tmp_path),
        test_dataloader=_wilds_loader(iwildcam_root, 'test'),
        test_evaluator=dict(type='Accuracy', topk=1),
        test_cfg=dict(type='MultiDatasetTestLoop'),
        default_scope='drm_mm',
        experiment_name=f'multi_loop_test_{next(_RUN_IDS)}')
    out = str(tmp_path / 'preds.pkl')
    runner.test_evaluator.metrics.append(DumpResults(out_file_path=out))
    metrics = runner.test()
    # test split: 4 classes x 2 images, OOD quality 1.0 at epoch 0
    assert metrics == {'accuracy/top1': 100.0}
    preds = load(out)
    rows = _model_rows(runner.test_loop.sets[0].dataloader.dataset)
    assert len(rows) == 8 and all(gt == pred for _, gt, pred in rows)
    assert _dumped_rows(preds) == rows


def _save_best_runner(tmp_path, iwildcam_root, save_best):
    return DRMRunner(
        model=_ScheduledModel(), work_dir=str(tmp_path),
        train_dataloader=_wilds_loader(iwildcam_root, 'train', shuffle=True),
        train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.0)),
        val_dataloader=dict(val=_wilds_loader(iwildcam_root, 'val')),
        val_evaluator=dict(type='IWildCamMetric'),
        val_cfg=dict(type='MultiDatasetValLoop'),
        default_hooks=dict(checkpoint=dict(
            type='CheckpointHook', interval=1, save_best=save_best,
            rule='greater')),
        default_scope='drm_mm',
        experiment_name=f'multi_loop_test_{next(_RUN_IDS)}')


@pytest.mark.parametrize('save_best, match', [
    ('id_val/macro_f1', r"save_best='id_val/macro_f1' is not among the "
     r"sets of val_dataloader / val_evaluator \(\['val'\]\)"),
    ('val/no_such_metric', r"save_best='val/no_such_metric' is not among "
     r"the metrics .*'val/macro_f1'"),
])
def test_save_best_of_another_set_is_one_line(tmp_path, iwildcam_root,
                                              save_best, match):
    runner = _save_best_runner(tmp_path, iwildcam_root, save_best)
    with pytest.raises(ValueError, match=match) as err:
        runner.train()
    assert '\n' not in str(err.value)
    assert "or to 'auto'" in str(err.value)


def test_save_best_auto_follows_the_first_set(tmp_path, iwildcam_root):
    import glob
    runner = _save_best_runner(tmp_path, iwildcam_root, 'auto')
    runner.train()
    best = glob.glob(str(tmp_path / 'best_val_acc_epoch_1.pth'))
    assert len(best) == 1, sorted(p.name for p in tmp_path.iterdir())
