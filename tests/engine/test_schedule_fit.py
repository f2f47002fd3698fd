"""A schedule that outlives the run is refused in one line with the fix."""
import pytest

from drm_mm.engine.schedule_fit import check_schedule_fits

PAPER = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=500),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=500, eta_min=0.0),
]


def test_paper_warmup_on_a_small_dataset_is_one_line():
    # 2 epochs x 4 iterations: the paper's 500-iteration warm-up outlives it
    with pytest.raises(ValueError) as err:
        check_schedule_fits(PAPER, max_epochs=2, max_iters=8)
    msg = str(err.value)
    assert msg.startswith('param_scheduler[0] (LinearLR) ends at iteration '
                          '500 but the run has 8 iterations (2 epochs x 4 '
                          'iterations)')
    assert 'convert_to_iter_based=True' in msg and '\n' not in msg


def test_scheduler_that_never_starts_is_refused():
    with pytest.raises(ValueError, match=r'param_scheduler\[1\] '
                       r'\(CosineAnnealingLR\) begins at iteration 500'):
        check_schedule_fits([dict(PAPER[0], end=8), PAPER[1]], 2, 8)


def test_fitting_schedules_pass():
    check_schedule_fits(PAPER, max_epochs=20, max_iters=20 * 800)
    epochs = [dict(type='LinearLR', by_epoch=True, begin=0, end=1,
                   convert_to_iter_based=True),
              dict(type='CosineAnnealingLR', by_epoch=True, begin=1,
                   convert_to_iter_based=True)]
    check_schedule_fits(epochs, max_epochs=2, max_iters=2)
