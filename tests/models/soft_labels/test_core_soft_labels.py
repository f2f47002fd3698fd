"""CoreSoftLabels: built from the registry, its config checks, the table it
accepts, and when it needs one."""
import pytest
import torch

from drm_mm.models.soft_labels import CoreSoftLabels, table_problem
from drm_mm.registry import MODELS


def test_built_from_the_registry_with_defaults():
    component = MODELS.build(dict(type='CoreSoftLabels'))
    assert isinstance(component, CoreSoftLabels)
    assert (component.source, component.normalization, component.tau) == (
        'cache', 'minmax', 0.1)
    assert not component.needs_table  # not bound: no WRM term
    assert component.table is None and component.num_classes == 0
    assert dict(component.state_dict()) == {}


@pytest.mark.parametrize('kwargs, message', [
    (dict(source='disk'),
     "soft_labels.source='disk'; choose from ('cache', 'online')."),
    (dict(normalization='zscore'),
     "soft_labels.normalization: unknown soft-label normalization 'zscore'; "
     "choose from ('minmax', 'softmax', 'none', 'minmax_prob', "
     "'minmax_class')."),
    (dict(source='online', normalization='minmax_class'),
     "soft_labels.normalization='minmax_class' needs the whole training "
     "set: use source='cache' (not 'online')."),
    (dict(tau=0), 'soft_labels.tau must be > 0 and finite, got 0.'),
    (dict(tau=float('nan')),
     'soft_labels.tau must be > 0 and finite, got nan.'),
    (dict(tau='sharp'),
     "soft_labels.tau must be > 0 and finite, got 'sharp'."),
])
def test_bad_config_values_are_named(kwargs, message):
    with pytest.raises(ValueError) as err:
        CoreSoftLabels(**kwargs)
    assert str(err.value) == message


@pytest.mark.parametrize('table, problem', [
    (torch.full((2, 3), 1 / 3), None),
    (torch.full((2, 4), 1 / 4), 'shape (2, 4) instead of (N, 3)'),
    (torch.tensor([[0.5, 0.5, float('nan')], [1.0, 0.0, 0.0]]),
     '1 non-finite value(s) (NaN / inf)'),
    (torch.tensor([[1.5, -0.5, 0.0], [1.0, 0.0, 0.0]]),
     'negative values (down to -0.5)'),
    (torch.tensor([[0.5, 0.5, 0.5], [1.0, 0.0, 0.0]]),
     'rows that do not sum to 1 (off by up to 0.5)'),
])
def test_table_problems_are_named(table, problem):
    assert table_problem(table, 3) == problem


def test_set_table_refuses_a_bad_table():
    component = CoreSoftLabels()
    component._cd_prompts = [['a'], ['b'], ['c']]
    with pytest.raises(ValueError) as err:
        component.set_table(torch.full((2, 3), float('inf')))
    assert str(err.value) == ('CoreSoftLabels: the soft-label table has 6 '
                              'non-finite value(s) (NaN / inf).')
    # float16 stays float16 in memory (half the bytes) ...
    component.set_table(torch.full((2, 3), 1 / 3, dtype=torch.float16))
    assert component.table.dtype == torch.float16
    # ... and lookups give float32 rows
    component.source = 'cache'
    rows = component(torch.zeros(1), [_sample(1)])
    assert rows.dtype == torch.float32
    assert rows.tolist() == [[float(torch.tensor(1 / 3).half())] * 3]
    component.set_table(torch.full((2, 3), 1 / 3, dtype=torch.float64))
    assert component.table.dtype == torch.float32


def _sample(idx):
    from mmpretrain.structures import DataSample
    return DataSample(metainfo=dict(sample_idx=idx))


@pytest.mark.parametrize('normalization, tau', [
    ('minmax', 0.1), ('softmax', 1.0), ('none', 1.0), ('minmax_prob', 0.1),
    ('minmax_class', 0.1)])
def test_tau_none_is_the_normalizations_default(normalization, tau):
    component = CoreSoftLabels(normalization=normalization)
    assert component.tau == tau
    assert CoreSoftLabels(normalization=normalization, tau=None).tau == tau
    assert CoreSoftLabels(normalization=normalization, tau=0.3).tau == 0.3
