"""Tests that catch mutants the earlier suite let through: ``acc_df``
computed with argmin, group exclusion by id ignored when groups have names,
the same random draws in every epoch, and ``batch_idx`` restarting at 0
after a mid-epoch resume."""
import pytest
import torch
from mmengine.hooks import Hook

import _reliability_helpers as H  # loaded by this folder's conftest.py
from drm_mm.engine.loops.resumable_epoch_based_train_loop import \
    iteration_seed
from drm_mm.evaluation.metrics import GroupAccuracy
from drm_mm.models.losses import DualRiskLoss


def test_acc_df_is_the_argmax_accuracy():
    z_df = torch.tensor([[2., 1., 0.], [0., 1., 3.], [5., 0., 1.],
                         [0., 4., 1.]])
    labels = torch.tensor([0, 2, 1, 1])  # argmax right 3 of 4, argmin 1
    out = DualRiskLoss(erm='ce', wrm_weight=0)(labels=labels, z_erm=z_df)
    assert out['acc_df'].item() == 0.75


@pytest.mark.parametrize('exclude', [(2, ), ('2', ), ('Other', )])
def test_group_exclusion_by_id_or_name_with_named_groups(exclude):
    metric = GroupAccuracy(key='region', names_key='regions',
                           exclude=exclude)
    metric.dataset_meta = dict(regions=['Asia', 'Europe', 'Other'])
    # (pred, gt, group): Asia 2/2, Europe 1/2, Other 0/2
    metric.results = [(0, 0, 0), (1, 1, 0), (0, 0, 1), (0, 1, 1),
                      (0, 1, 2), (1, 0, 2)]
    assert metric.compute_metrics(metric.results) == {
        'acc_region:Asia': 1.0, 'acc_region:Europe': 0.5,
        'acc_region:Other': 0.0, 'acc_worst_region': 0.5}


class _Record(Hook):
    """Per iteration: (iteration, batch_idx, first torch.rand draw)."""

    priority = 'LOWEST'

    def __init__(self, stop_after=None):
        self.rows, self.stop_after = [], stop_after

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.rows.append((runner.iter, batch_idx, torch.rand(1).item()))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.stop_after:
            raise KeyboardInterrupt('stopped for the test')


def _expected_draw(iteration):
    g = torch.Generator().manual_seed(iteration_seed(0, iteration))
    return torch.rand(1, generator=g).item()


def test_random_draws_differ_across_epochs_and_depend_on_iteration(
        tmp_path):
    record = _Record()
    H.toy_runner(tmp_path, max_epochs=2, custom_hooks=[record]).train()
    assert [r[:2] for r in record.rows] == [(i, i % 4) for i in range(8)]
    draws = [r[2] for r in record.rows]
    assert draws == [_expected_draw(i) for i in range(8)]
    assert draws[:4] != draws[4:]  # same batch_idx, other epoch


def test_batch_idx_continues_after_mid_epoch_resume(tmp_path):
    iters = dict(by_epoch=False, interval=2)
    cut = _Record(stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        H.toy_runner(tmp_path, max_epochs=2, checkpoint=iters,
                     custom_hooks=[cut]).train()
    resumed = _Record()
    H.toy_runner(tmp_path, max_epochs=2, resume=True, checkpoint=iters,
                 custom_hooks=[resumed]).train()
    assert [r[:2] for r in cut.rows + resumed.rows] == [
        (0, 0), (1, 1), (2, 2), (3, 3), (4, 0), (5, 1), (6, 2), (7, 3)]
    assert [r[2] for r in resumed.rows] == [_expected_draw(i)
                                            for i in range(2, 8)]


def test_iteration_seed_exact_values():
    # numpy SeedSequence([seed % 2**32, iteration]), first 32-bit word
    assert iteration_seed(0, 5) == 161328693
    assert iteration_seed(2**32, 5) == 161328693
    assert iteration_seed(0, 6) == 2617721224
    assert iteration_seed(7, 0) == 2083679832
