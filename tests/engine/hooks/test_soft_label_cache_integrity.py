"""SoftLabelCacheHook trusts a table only while it is the table of this
input: a cache file is bound to its key by a stored key and content hash,
image bytes are part of the key, a mapped file rewritten during training
stops the run, a full disk costs only the cache, and the pass reads the
one pipeline the config states."""
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.structures import DataSample
from PIL import Image

from drm_mm.engine.hooks.soft_label_cache_hook import SoftLabelCacheHook

# the fixtures of the hook's main test file (pytest runs with
# --import-mode=importlib, so test modules are not importable by name)
sys.path.insert(0, str(Path(__file__).parent))
from test_soft_label_cache_hook import (PIPELINE, REPO, _log_lines,
                                        hook_dataset, make_model,
                                        make_runner, pass_inputs,
                                        teacher_p_c)  # noqa: E402

MEMMAP = dict(storage='memmap')


def _refusals(lines):
    return [m for m in lines if 'refusing the cache' in m]


# ---- a mapped table rewritten during training


@pytest.mark.parametrize('rewrite', ['in place', 'replaced'])
def test_a_rewritten_memmap_table_stops_the_run(tmp_path, rewrite):
    model = make_model(soft=MEMMAP)
    hook = SoftLabelCacheHook()
    runner = make_runner(tmp_path, model)
    hook.before_train(runner)
    hook.before_train_epoch(runner)  # unchanged: nothing to say
    hook.before_save_checkpoint(runner, {})
    path = hook.last_path
    if rewrite == 'in place':  # another job writes into the mapped file
        array = np.lib.format.open_memmap(path, mode='r+')
        array[:] = np.nan
        array.flush()
        del array
    else:  # another job writes its own table and renames it over ours
        np.save(path + '.other.npy', np.full((7, 3), 1 / 3, np.float16))
        os.replace(path + '.other.npy', path)
    for check in (lambda: hook.before_train_epoch(runner),
                  lambda: hook.before_save_checkpoint(runner, {})):
        with pytest.raises(RuntimeError) as info:
            check()
        message = str(info.value)
        assert '\n' not in message
        assert f'{path} was rewritten after it was checked' in message
        assert 'cache_dir' in message


# ---- a cache file's contents are bound to its key


def test_a_table_of_another_tau_under_this_name_is_refused(tmp_path,
                                                           monkeypatch):
    other = make_model()
    other.soft_labels.tau = 0.5
    first = SoftLabelCacheHook()
    first.before_train(make_runner(tmp_path, other))
    model = make_model()
    hook = SoftLabelCacheHook()
    hook.before_train(make_runner(tmp_path, model))
    good = model.soft_label_table.clone()
    assert hook.last_path != first.last_path
    assert not torch.allclose(other.soft_label_table, good, atol=1e-3)
    shutil.copyfile(first.last_path, hook.last_path)
    lines = _log_lines(monkeypatch)
    again = make_model()
    second = SoftLabelCacheHook()
    second.before_train(make_runner(tmp_path, again))
    assert second.last_source == 'computed'
    refusals = _refusals(lines)
    assert len(refusals) == 1
    assert ('the table of another configuration (soft_labels.tau: 0.5 '
            '(here 0.1))') in refusals[0]
    assert torch.equal(again.soft_label_table, good)


def test_a_dense_table_with_permuted_rows_is_refused(tmp_path, monkeypatch):
    first = SoftLabelCacheHook()
    model = make_model()
    first.before_train(make_runner(tmp_path, model))
    good = model.soft_label_table.clone()
    stored = torch.load(first.last_path, weights_only=True)
    order = torch.tensor([1, 0, 2, 3, 4, 5, 6])
    assert not torch.equal(good[order], good)
    torch.save(dict(stored, soft_labels=stored['soft_labels'][order]),
               first.last_path)
    lines = _log_lines(monkeypatch)
    again = make_model()
    hook = SoftLabelCacheHook()
    hook.before_train(make_runner(tmp_path, again))
    assert hook.last_source == 'computed'
    refusals = _refusals(lines)
    assert len(refusals) == 1
    assert 'contents that do not match its stored hash' in refusals[0]
    assert torch.equal(again.soft_label_table, good)


def test_duplicate_topk_indices_are_refused(tmp_path, monkeypatch):
    model = make_model(soft=dict(storage='memmap', topk=2))
    model.soft_labels.tau = 1.0
    first = SoftLabelCacheHook()
    first.before_train(make_runner(tmp_path, model))
    good = np.load(first.last_path).copy()
    del model
    records = np.lib.format.open_memmap(first.last_path, mode='r+')
    assert records['i'][0, 0] != records['i'][0, 1]
    records['i'][0, 1] = records['i'][0, 0]
    records.flush()
    del records
    lines = _log_lines(monkeypatch)
    again = make_model(soft=dict(storage='memmap', topk=2))
    again.soft_labels.tau = 1.0
    hook = SoftLabelCacheHook()
    hook.before_train(make_runner(tmp_path, again))
    assert hook.last_source == 'computed'
    refusals = _refusals(lines)
    assert len(refusals) == 1
    assert 'duplicate class indices in a row (rows 0..6)' in refusals[0]
    assert np.array_equal(np.load(hook.last_path), good)


def test_a_dense_table_under_the_topk_name_is_refused(tmp_path,
                                                      monkeypatch):
    dense = make_model(soft=MEMMAP)
    dense_hook = SoftLabelCacheHook()
    dense_hook.before_train(make_runner(tmp_path, dense))
    topk = make_model(soft=dict(storage='memmap', topk=2))
    first = SoftLabelCacheHook()
    first.before_train(make_runner(tmp_path, topk))
    good = np.load(first.last_path).copy()
    del dense, topk
    shutil.copyfile(dense_hook.last_path, first.last_path)
    if os.path.exists(dense_hook.last_path + '.json'):  # its stored meta
        shutil.copyfile(dense_hook.last_path + '.json',
                        first.last_path + '.json')
    lines = _log_lines(monkeypatch)
    again = make_model(soft=dict(storage='memmap', topk=2))
    hook = SoftLabelCacheHook()
    hook.before_train(make_runner(tmp_path, again))
    assert hook.last_source == 'computed'
    refusals = _refusals(lines)
    assert len(refusals) == 1
    assert 'a dense table where a top-k table is expected' in refusals[0]
    assert np.array_equal(np.load(hook.last_path), good)


# ---- image bytes are part of the key


def test_an_image_replaced_with_its_size_and_mtime_kept_is_recomputed(
        tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(7):  # uncompressed PNGs: the size is the image size
        Image.fromarray(rng.integers(0, 255, (40, 36, 3), np.uint8)).save(
            images / f'img{i}.png', compress_level=0)
    first_model = make_model()
    first_model.soft_labels.tau = 1.0
    first = SoftLabelCacheHook()
    first.before_train(make_runner(tmp_path, first_model))
    target = images / 'img3.png'
    before = os.stat(target)
    Image.fromarray(np.random.default_rng(9).integers(
        0, 255, (40, 36, 3), np.uint8)).save(target, compress_level=0)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(target)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size,
                                                  before.st_mtime_ns)
    model = make_model()
    model.soft_labels.tau = 1.0
    hook = SoftLabelCacheHook()
    hook.before_train(make_runner(tmp_path, model))
    assert hook.last_source == 'computed'
    assert hook.last_path != first.last_path
    new_row = teacher_p_c(pass_inputs(hook_dataset(tmp_path), model, [3]),
                          tau=1.0)
    assert torch.allclose(model.soft_label_table[3], new_row[0], atol=1e-5)
    assert not torch.allclose(first_model.soft_label_table[3], new_row[0],
                              atol=1e-3)


# ---- a full disk during the dense write costs only the cache


def test_torch_save_failing_on_a_full_disk_keeps_training(tmp_path,
                                                          monkeypatch):
    reference = make_model()
    SoftLabelCacheHook(cache_dir=str(tmp_path / 'elsewhere')).before_train(
        make_runner(tmp_path, reference))
    written = []

    def full_disk(obj, path):
        written.append(path)
        Path(path).write_bytes(b'PK\x03\x04 half a file')
        raise RuntimeError('[enforce fail at inline_container.cc:672] . '
                           'unexpected pos 64 vs 0\nframe #0: c10::Error')

    monkeypatch.setattr(torch, 'save', full_disk)
    lines = _log_lines(monkeypatch)
    model = make_model()
    hook = SoftLabelCacheHook()
    hook.before_train(make_runner(tmp_path, model))
    assert torch.equal(model.soft_label_table, reference.soft_label_table)
    assert len(written) == 1 and '.pt.tmp' in written[0]
    warnings = [m for m in lines if 'could not write the cache' in m]
    assert warnings == [
        f'SoftLabelCacheHook: could not write the cache {hook.last_path} '
        f'(RuntimeError: [enforce fail at inline_container.cc:672] . '
        f'unexpected pos 64 vs 0); training goes on with the table in '
        f'memory.']
    cache_dir = tmp_path / 'work_dirs' / '.soft_label_cache'
    assert sorted(os.listdir(cache_dir)) == []


# ---- soft_label_max: the logged mean of each row's largest p_c


def test_soft_label_max_is_the_mean_largest_p_c_of_the_batch():
    model = make_model()
    table = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.25, 0.25],
                          [0.05, 0.05, 0.9]])
    model.set_soft_labels(table)
    samples = [DataSample(metainfo=dict(sample_idx=i)).set_gt_label(label)
               for i, label in ((0, 0), (2, 2))]
    losses = model.loss(torch.zeros(2, 3, 32, 32), samples)
    assert float(losses['soft_label_max']) == pytest.approx(
        (0.7 + 0.9) / 2, abs=2 * torch.finfo(torch.float32).eps)


# ---- the pass reads one pipeline, stated once

_CHILD = '''
_base_ = [{base!r}]
small = {pipeline!r}
val_dataloader = dict(id_val=dict(dataset=dict(pipeline=small)))
test_dataloader = dict(
    {sets})
'''


def _child_config(tmp_path, with_val=True):
    base = REPO / 'configs' / '_base_' / 'datasets' / 'iwildcam.py'
    sets = ',\n    '.join(f'{name}=dict(dataset=dict(pipeline=small))'
                           for name in ('id_val', 'id_test', 'val', 'test'))
    text = _CHILD.format(base=str(base), pipeline=PIPELINE, sets=sets)
    if not with_val:
        text = text.replace(
            'val_dataloader = dict(id_val=dict(dataset=dict(pipeline=small)))'
            '\n', '')
    path = tmp_path / 'child.py'
    path.write_text(text)
    return Config.fromfile(str(path))


def test_the_pass_uses_the_id_validation_pipeline_not_the_api_default(
        tmp_path):
    """A child that sets every named set's pipeline (32 px) but not
    test_dataloader.dataset's (224 px, for MMPretrain's APIs)."""
    cfg = _child_config(tmp_path)
    assert cfg.test_dataloader.dataset.pipeline[-2]['crop_size'] == 224
    model = make_model()
    runner = make_runner(tmp_path, model)
    runner.cfg = cfg
    hook = SoftLabelCacheHook()
    hook.before_train(runner)
    inputs = pass_inputs(hook_dataset(tmp_path), model, range(7))
    assert inputs.shape == (7, 3, 32, 32)
    assert torch.allclose(model.soft_label_table, teacher_p_c(inputs),
                          atol=1e-5)


def test_sets_that_disagree_with_the_pass_pipeline_are_named(tmp_path):
    runner = make_runner(tmp_path, make_model())
    runner.cfg = _child_config(tmp_path, with_val=False)
    with pytest.raises(ValueError) as info:
        SoftLabelCacheHook().before_train(runner)
    assert str(info.value) == (
        'SoftLabelCacheHook: the soft-label pass uses '
        'val_dataloader.id_val.dataset.pipeline (the ID validation set), '
        'but test_dataloader.id_val.dataset.pipeline, '
        'test_dataloader.id_test.dataset.pipeline, '
        'test_dataloader.val.dataset.pipeline, '
        'test_dataloader.test.dataset.pipeline differ from it; make the '
        'sets agree, or state the pass\'s transforms with pipeline=[...] '
        'of SoftLabelCacheHook in custom_hooks.')
    # stated explicitly, the hook's pipeline is used as it is
    model = make_model()
    runner.model = model
    SoftLabelCacheHook(pipeline=PIPELINE).before_train(runner)
    assert model.soft_label_table.shape == (7, 3)
