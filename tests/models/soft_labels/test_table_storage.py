"""Soft-label table storage: the config checks, float16 memmap rows and
sparse top-k rows against hand computations."""
import numpy as np
import pytest
import torch

from drm_mm.models.soft_labels import CoreSoftLabels, table_problem
from drm_mm.models.soft_labels.table_storage import (
    MemmapTable, TopKTable, chunked_problem, create_table_file, lookup,
    open_table, write_rows)

P = torch.tensor([[0.5, 0.3, 0.2, 0.0],
                  [0.05, 0.1, 0.15, 0.7],
                  [0.25, 0.25, 0.25, 0.25]])


@pytest.mark.parametrize('kwargs, message', [
    (dict(storage='disk'),
     "soft_labels.storage='disk'; choose from ('dense', 'memmap')."),
    (dict(storage='memmap', topk=0),
     'soft_labels.topk must be None or an int >= 1, got 0.'),
    (dict(storage='memmap', topk=2.5),
     'soft_labels.topk must be None or an int >= 1, got 2.5.'),
    (dict(topk=5), "soft_labels.topk needs storage='memmap'; set "
     "soft_labels.storage='memmap' or topk=None."),
])
def test_bad_storage_options_are_named(kwargs, message):
    with pytest.raises(ValueError) as err:
        CoreSoftLabels(**kwargs)
    assert str(err.value) == message


def test_defaults_keep_the_dense_table():
    component = CoreSoftLabels()
    assert (component.storage, component.topk) == ('dense', None)


def _file(tmp_path, topk, rows=P):
    path = str(tmp_path / 't.npy')
    create_table_file(path, rows.size(0), rows.size(1), topk)
    write_rows(path, 0, rows[:2], topk)  # two writers, like two ranks
    write_rows(path, 2, rows[2:], topk)
    return path


def test_memmap_rows_are_the_float16_rounding(tmp_path):
    table = open_table(_file(tmp_path, None), 4)
    assert isinstance(table, MemmapTable) and table.shape == (3, 4)
    assert table.array.dtype == np.float16 and not table.array.flags.writeable
    rows = lookup(table, torch.tensor([2, 0]), torch.device('cpu'))
    assert rows.dtype == torch.float32
    assert torch.equal(rows, P[[2, 0]].half().float())
    assert chunked_problem(table, 4, table_problem) is None


def test_topk_rows_equal_a_hand_computation(tmp_path):
    table = open_table(_file(tmp_path, 2), 4)
    assert isinstance(table, TopKTable) and table.shape == (3, 4)
    rows = lookup(table, torch.tensor([0, 1, 1]), torch.device('cpu'))
    # row 0: 0.5, 0.3 kept -> 0.625, 0.375 (exact in float16);
    # row 1: 0.7, 0.15 kept -> 0.7 / 0.85, 0.15 / 0.85, rounded to float16
    a, b = (torch.tensor([0.7 / 0.85, 0.15 / 0.85]).half().float().tolist())
    hand = torch.tensor([[0.625, 0.375, 0.0, 0.0],
                         [0.0, 0.0, b, a],
                         [0.0, 0.0, b, a]])
    assert torch.equal(rows, hand)
    # mass outside the top 2: 0.2, 0.15, 0.5
    assert table.mean_rest() == pytest.approx(0.85 / 3, abs=1e-6)
    assert chunked_problem(table, 4, table_problem) is None


def test_topk_larger_than_the_classes_keeps_every_value(tmp_path):
    table = open_table(_file(tmp_path, 6), 4)
    rows = lookup(table, torch.arange(3), torch.device('cpu'))
    assert torch.equal(rows, P.half().float())
    assert table.mean_rest() == pytest.approx(0.0, abs=1e-6)


def test_chunked_checks_name_the_problem(tmp_path, monkeypatch):
    import drm_mm.models.soft_labels.table_storage as storage
    monkeypatch.setattr(storage, 'CHECK_ROWS', 2)  # the bad row: chunk 2
    bad = P.clone()
    bad[2, 1] = float('nan')
    assert chunked_problem(open_table(_file(tmp_path, None, bad), 4), 4,
                           table_problem) == \
        '1 non-finite value(s) (NaN / inf)'
    topk = open_table(_file(tmp_path, 2), 4)
    np.lib.format.open_memmap(str(tmp_path / 't.npy'), mode='r+')[
        'i'][2, 0] = 9
    assert chunked_problem(topk, 4, table_problem) == \
        'class indices outside [0, 4) in rows 2..2'


def test_a_validated_table_is_installed_with_a_shape_check_only(
        tmp_path, monkeypatch):
    import drm_mm.models.soft_labels.table_storage as storage
    table = open_table(_file(tmp_path, None), 4)
    table.validated = True
    monkeypatch.setattr(storage, 'CHECK_ROWS', 0)  # a row scan would raise
    component = CoreSoftLabels(storage='memmap')
    component._cd_prompts = [['a']] * 4
    component.set_table(table)
    assert component.table is table
    component._cd_prompts = [['a']] * 5
    with pytest.raises(ValueError) as err:
        component.set_table(table)
    assert str(err.value) == ('CoreSoftLabels: the soft-label table has '
                              'shape (3, 4) instead of (N, 5).')


def test_topk_indices_above_255_survive_storage(tmp_path):
    """Class indices are stored as int32: with 300 classes the top classes
    299, 256 and 3 come back as themselves (a uint8 index would wrap)."""
    classes = 300
    rows = torch.full((2, classes), 0.0)
    rows[0, [299, 256, 3]] = torch.tensor([0.5, 0.3, 0.2])
    rows[1, [257, 0, 298]] = torch.tensor([0.6, 0.25, 0.15])
    table = open_table(_file(tmp_path, 3, rows), classes)
    assert isinstance(table, TopKTable)
    assert table.records['i'].tolist() == [[299, 256, 3], [257, 0, 298]]
    dense = table.rows(torch.arange(2), torch.device('cpu'))
    assert torch.equal(dense, rows.half().float())
    assert chunked_problem(table, classes, table_problem) is None


def test_duplicate_topk_indices_are_a_problem(tmp_path):
    table = open_table(_file(tmp_path, 2), 4)
    assert chunked_problem(table, 4, table_problem) is None
    records = np.lib.format.open_memmap(str(tmp_path / 't.npy'), mode='r+')
    records['i'][1, 1] = records['i'][1, 0]
    records.flush()
    reopened = open_table(str(tmp_path / 't.npy'), 4)
    assert chunked_problem(reopened, 4, table_problem) == (
        'duplicate class indices in a row (rows 0..2)')


def test_a_mapped_table_knows_when_its_file_is_rewritten(tmp_path):
    from drm_mm.models.soft_labels.table_storage import file_change
    table = open_table(_file(tmp_path, None), 4)
    assert file_change(table) is None
    assert file_change(P) is None  # an in-memory table has no file
    np.save(str(tmp_path / 'other.npy'), np.zeros((3, 4), np.float16))
    (tmp_path / 'other.npy').replace(tmp_path / 't.npy')
    assert file_change(table) == (f'{tmp_path / "t.npy"} was rewritten '
                                  f'after it was checked')
    with pytest.raises(RuntimeError, match='was rewritten after it was '
                       'checked; another job writes into the cache folder'):
        open_table(str(tmp_path / 't.npy'), 4, identity=table.identity)
