"""SoftLabelCacheHook: computes p_c once with the test pipeline, reuses the
file on the next run, recomputes when what determines p_c changes, and
shards the pass across ranks."""
import logging
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import BaseDataset, Compose, pseudo_collate
from mmengine.logging import MMLogger
from PIL import Image

from drm_mm.engine.hooks.soft_label_cache_hook import SoftLabelCacheHook
from drm_mm.engine.soft_label_pipeline import soft_label_pipeline
from drm_mm.models.classifiers.drm_classifier import DRMClassifier
from drm_mm.registry import TRANSFORMS

REPO = Path(__file__).resolve().parents[3]
CLASSES = ['cat', 'dog', 'bird']
DESCRIPTIONS = {'cat': 'a small feline', 'dog': ['a canine', 'a pet'],
                'bird': 'a feathered animal'}
PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=32, edge='short'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs'),
]


class TinyImages(BaseDataset):
    """``n`` random PNGs in ``data_root`` (3 classes)."""

    METAINFO = dict(classes=CLASSES)

    def __init__(self, data_root: str, n: int = 7, **kwargs) -> None:
        self.n = n
        super().__init__(data_root=data_root, ann_file='', **kwargs)

    def load_data_list(self):
        rng = np.random.default_rng(0)
        infos = []
        for i in range(self.n):
            path = os.path.join(self.data_root, f'img{i}.png')
            if not os.path.exists(path):
                Image.fromarray(rng.integers(0, 255, (40, 36, 3),
                                             dtype=np.uint8)).save(path)
            infos.append(dict(img_path=path, gt_label=i % 3))
        return infos


def make_model(descriptions=DESCRIPTIONS, wrm_weight=1.0, source='cache',
               soft=None, normalization='minmax', **kwargs):
    torch.manual_seed(0)
    return DRMClassifier(
        clip=dict(type='OpenCLIP', model_name='drm-tiny-vit'),
        classnames=CLASSES, templates=['a photo of {c}.'],
        descriptions=descriptions,
        loss=dict(erm='contrastive', wrm_weight=wrm_weight),
        soft_labels=dict(source=source, normalization=normalization,
                         **(soft or {})), **kwargs)


def teacher_p_c(inputs, tau=0.1):
    """p_c of the initial tiny CLIP (the teacher of make_model())."""
    online = make_model(source='online')
    online.soft_labels.tau = tau
    return online.soft_labels(inputs, [])


def pass_inputs(dataset, model, indices):
    transforms = Compose([TRANSFORMS.build(t) for t in PIPELINE])
    batch = pseudo_collate([transforms(dataset.get_data_info(i))
                            for i in indices])
    return model.data_preprocessor(batch, False)['inputs']


def make_runner(tmp_path, model, n=7, pipeline=PIPELINE):
    data_root = tmp_path / 'images'
    data_root.mkdir(exist_ok=True)
    cfg = Config(dict(test_dataloader=dict(dataset=dict(pipeline=pipeline))))
    return SimpleNamespace(
        model=model, cfg=cfg, work_dir=str(tmp_path / 'work_dirs' / 'run'),
        train_dataloader=SimpleNamespace(
            dataset=TinyImages(str(data_root), n=n)),
        logger=MMLogger.get_instance('test_soft_label_cache_hook'))


def test_computes_with_the_test_pipeline_and_hands_the_table_over(tmp_path):
    model = make_model()
    runner = make_runner(tmp_path, model)
    hook = SoftLabelCacheHook(batch_size=3)
    hook.before_train(runner)
    assert hook.num_computed == 1 and hook.last_source == 'computed'
    table = model.soft_label_table
    assert table.shape == (7, 3)
    assert torch.allclose(table.sum(dim=1), torch.ones(7))
    assert (table.min(dim=1).values == 0).all()  # minmax: exact zeros
    # the same as the teacher on the test-pipeline images, in index order
    dataset = runner.train_dataloader.dataset
    expected = teacher_p_c(pass_inputs(dataset, model, range(7)))
    assert torch.allclose(table, expected, atol=1e-5)
    # default folder: <work_dir>/../.soft_label_cache
    assert Path(hook.last_path).parent == tmp_path / 'work_dirs' / \
        '.soft_label_cache'


def test_second_run_reuses_the_file_without_recomputing(tmp_path,
                                                        monkeypatch):
    first = make_model()
    SoftLabelCacheHook().before_train(make_runner(tmp_path, first))

    def no_compute(*args, **kwargs):
        raise AssertionError('the soft labels were recomputed')

    second = make_model()
    hook = SoftLabelCacheHook()
    monkeypatch.setattr(hook, 'compute', no_compute)
    hook.before_train(make_runner(tmp_path, second))
    assert hook.num_computed == 0 and hook.last_source == 'cache'
    assert torch.equal(second.soft_label_table, first.soft_label_table)


def test_changed_descriptions_are_recomputed(tmp_path):
    first_hook = SoftLabelCacheHook()
    first_hook.before_train(make_runner(tmp_path, make_model()))
    changed = dict(DESCRIPTIONS, dog='a wolf-like animal with a long snout')
    hook = SoftLabelCacheHook()
    model = make_model(descriptions=changed)
    hook.before_train(make_runner(tmp_path, model))
    assert hook.num_computed == 1 and hook.last_path != first_hook.last_path


@pytest.mark.parametrize('change', ['pipeline', 'dataset', 'tau'])
def test_other_inputs_of_p_c_change_the_key(tmp_path, change):
    base = SoftLabelCacheHook()
    base.before_train(make_runner(tmp_path, make_model()))
    model = make_model()
    kwargs = {}
    if change == 'pipeline':
        kwargs['pipeline'] = PIPELINE[:1] + [
            dict(type='Resize', scale=32)] + PIPELINE[-1:]
    elif change == 'dataset':
        kwargs['n'] = 5
    else:
        model.soft_labels.tau = 0.5
    hook = SoftLabelCacheHook()
    hook.before_train(make_runner(tmp_path, model, **kwargs))
    assert hook.last_source == 'computed'
    assert hook.last_path != base.last_path


def test_nothing_to_do_without_wrm_or_in_online_mode(tmp_path):
    for model in (make_model(wrm_weight=0.0), make_model(source='online')):
        hook = SoftLabelCacheHook()
        hook.before_train(make_runner(tmp_path, model))
        assert hook.last_source is None and model.soft_label_table is None


def test_missing_pipeline_is_a_clear_error(tmp_path):
    runner = make_runner(tmp_path, make_model())
    runner.cfg = Config(dict())
    with pytest.raises(ValueError, match='pipeline='):
        SoftLabelCacheHook().before_train(runner)
    assert soft_label_pipeline(Config(dict(val_dataloader=dict(dataset=dict(
        type='X', pipeline=PIPELINE))))) == (PIPELINE,
                                             'val_dataloader.dataset.pipeline')


# ---- a cache file is trusted only when it is a p_c table of this input


def _log_lines(monkeypatch):
    """The messages logged to the runner's logger from now on."""
    lines = []

    class Keep(logging.Handler):

        def emit(self, record):
            lines.append(record.getMessage())

    logger = MMLogger.get_instance('test_soft_label_cache_hook')
    monkeypatch.setattr(logger, 'handlers', [*logger.handlers, Keep()])
    return lines


@pytest.mark.parametrize('damage, problem', [
    (lambda t: t.__setitem__((2, 1), float('nan')),
     '1 non-finite value(s) (NaN / inf)'),
    (lambda t: t.__setitem__((0, 0), -0.25), 'negative values'),
    (lambda t: t.mul_(3.0), 'rows that do not sum to 1'),
])
def test_a_damaged_cache_file_is_refused_and_recomputed(tmp_path, damage,
                                                        problem,
                                                        monkeypatch):
    first = SoftLabelCacheHook()
    first.before_train(make_runner(tmp_path, make_model()))
    good = torch.load(first.last_path, weights_only=True)
    table = good['soft_labels'].clone()
    damage(table)
    torch.save(dict(good, soft_labels=table), first.last_path)
    lines = _log_lines(monkeypatch)
    model = make_model()
    hook = SoftLabelCacheHook()
    hook.before_train(make_runner(tmp_path, model))
    assert hook.last_source == 'computed' and hook.num_computed == 1
    assert hook.last_path == first.last_path
    refusals = [m for m in lines if 'refusing the cache' in m]
    assert len(refusals) == 1 and problem in refusals[0]
    assert torch.equal(model.soft_label_table, good['soft_labels'])
    assert torch.equal(torch.load(hook.last_path, weights_only=True)[
        'soft_labels'], good['soft_labels'])


@pytest.mark.parametrize('preprocessor', [
    dict(mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0], to_rgb=True),
    dict(mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0], to_rgb=False),
    dict(mean=[10.0, 0.0, 0.0], std=[255.0, 255.0, 255.0], to_rgb=True),
])
def test_the_data_preprocessor_is_part_of_the_key(tmp_path, preprocessor):
    """An RGB table is never reused for a BGR (or other mean / std)
    config."""
    base = SoftLabelCacheHook()
    base.before_train(make_runner(tmp_path, make_model()))
    hook = SoftLabelCacheHook()
    model = make_model(data_preprocessor=preprocessor)
    hook.before_train(make_runner(tmp_path, model))
    assert hook.last_source == 'computed' and hook.last_path != base.last_path
    inputs = pass_inputs(hook_dataset(tmp_path), model, range(7))
    assert torch.allclose(model.soft_label_table, teacher_p_c(inputs),
                          atol=1e-5)


def hook_dataset(tmp_path):
    return TinyImages(str(tmp_path / 'images'), n=7)


def test_a_replaced_image_gets_its_own_row(tmp_path):
    first_model = make_model()
    first_model.soft_labels.tau = 1.0  # linear min-max: no one-hot rows
    first = SoftLabelCacheHook()
    first.before_train(make_runner(tmp_path, first_model))
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 255, (50, 44, 3), dtype=np.uint8)).save(
        tmp_path / 'images' / 'img3.png')
    model = make_model()
    model.soft_labels.tau = 1.0
    hook = SoftLabelCacheHook()
    hook.before_train(make_runner(tmp_path, model))
    assert hook.last_source == 'computed' and hook.last_path != first.last_path
    new_row = teacher_p_c(pass_inputs(hook_dataset(tmp_path), model, [3]),
                          tau=1.0)
    assert torch.allclose(model.soft_label_table[3], new_row[0], atol=1e-5)
    assert not torch.allclose(first_model.soft_label_table[3], new_row[0],
                              atol=1e-3)
    keep = [0, 1, 2, 4, 5, 6]
    assert torch.allclose(model.soft_label_table[keep],
                          first_model.soft_label_table[keep], atol=1e-6)


# ---- no temporary file outlives its writer


@pytest.mark.parametrize('error', [OSError(28, 'No space left on device'),
                                   KeyboardInterrupt()])
def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch,
                                                 error):
    import drm_mm.engine.hooks.soft_label_cache_hook as module

    def partial_save(obj, path):
        Path(path).write_bytes(b'PK\x03\x04 half a file')
        raise error

    monkeypatch.setattr(module.torch, 'save', partial_save)
    lines = _log_lines(monkeypatch)
    model = make_model()
    hook = SoftLabelCacheHook()
    if isinstance(error, OSError):  # a full disk costs only the cache
        hook.before_train(make_runner(tmp_path, model))
        assert model.soft_label_table.shape == (7, 3)
        assert any('could not write the cache' in m and
                   'No space left on device' in m for m in lines)
    else:
        with pytest.raises(KeyboardInterrupt):
            hook.before_train(make_runner(tmp_path, model))
    cache_dir = tmp_path / 'work_dirs' / '.soft_label_cache'
    assert sorted(os.listdir(cache_dir)) == []


def test_stale_temporary_files_of_dead_processes_are_removed(tmp_path):
    cache_dir = tmp_path / 'work_dirs' / '.soft_label_cache'
    cache_dir.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    host = socket.gethostname()
    stale = [f'soft_labels_0a.pt.tmp{dead.pid}',
             f'soft_labels_0b.pt.tmp{dead.pid}.{host}',
             f'soft_labels_0e.npy.tmp{dead.pid}.{host}',
             f'soft_labels_0f.npy.json.tmp{dead.pid}.{host}']
    kept = [f'soft_labels_0c.pt.tmp{os.getppid()}.{host}',  # alive
            f'soft_labels_0d.pt.tmp{dead.pid}.other-host',  # not ours
            'notes.txt']
    for name in stale + kept:
        (cache_dir / name).write_bytes(b'x')
    hook = SoftLabelCacheHook()
    hook.before_train(make_runner(tmp_path, make_model()))
    names = set(os.listdir(cache_dir))
    assert names == set(kept) | {Path(hook.last_path).name}


_WORKER = textwrap.dedent('''
    import sys
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp

    sys.path.insert(0, sys.argv[3])
    import test_soft_label_cache_hook as t
    from drm_mm.engine.hooks.soft_label_cache_hook import SoftLabelCacheHook


    def worker(rank, port, out):
        torch.set_num_threads(1)
        dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                                rank=rank, world_size=2)
        model = t.make_model(source='online')
        dataset = t.TinyImages(out + '/images', n=7)
        hook = SoftLabelCacheHook(batch_size=2)
        model.soft_labels.start_pass()
        table = hook.compute(model.soft_labels, model.data_preprocessor,
                             dataset, t.PIPELINE)
        torch.save(table, f'{out}/rank{rank}.pt')
        dist.destroy_process_group()


    if __name__ == '__main__':
        torch.set_num_threads(1)
        port, out = int(sys.argv[1]), sys.argv[2]
        model = t.make_model(source='online')
        dataset = t.TinyImages(out + '/images', n=7)
        model.soft_labels.start_pass()
        table = SoftLabelCacheHook().compute(
            model.soft_labels, model.data_preprocessor, dataset, t.PIPELINE)
        torch.save(table, f'{out}/single.pt')
        mp.start_processes(worker, args=(port, out), nprocs=2, join=True,
                           start_method='fork')
''')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # two processes: seconds of imports
def test_two_ranks_shard_the_pass_and_gather_the_same_table(tmp_path):
    (tmp_path / 'images').mkdir()
    script = tmp_path / 'worker.py'
    script.write_text(_WORKER)
    env = dict(os.environ, PYTHONPATH=f'{REPO}{os.pathsep}'
               f'{os.environ.get("PYTHONPATH", "")}', OMP_NUM_THREADS='1',
               HF_HUB_OFFLINE='1')
    proc = subprocess.run(
        [sys.executable, str(script), str(_free_port()), str(tmp_path),
         str(Path(__file__).parent)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = torch.load(tmp_path / 'single.pt', weights_only=True)
    assert single.shape == (7, 3)
    for rank in range(2):
        ranked = torch.load(tmp_path / f'rank{rank}.pt', weights_only=True)
        assert torch.allclose(ranked, single, atol=1e-5)


# ---- storage='memmap': one float16 .npy file, mapped read-only

MEMMAP = dict(storage='memmap')


def test_memmap_table_is_written_once_and_reused(tmp_path, monkeypatch):
    from drm_mm.models.soft_labels.table_storage import MemmapTable
    dense = make_model()
    SoftLabelCacheHook().before_train(make_runner(tmp_path, dense))
    model = make_model(soft=MEMMAP)
    hook = SoftLabelCacheHook(batch_size=3)
    hook.before_train(make_runner(tmp_path, model))
    assert hook.num_computed == 1 and hook.last_path.endswith('.npy')
    table = model.soft_label_table
    assert isinstance(table, MemmapTable) and table.shape == (7, 3)
    assert table.array.dtype == np.float16 and table.array.mode == 'r'
    assert not table.array.flags.writeable
    # the float16 rounding of the dense float32 table, exactly
    assert torch.equal(torch.from_numpy(np.array(table.array)),
                       dense.soft_label_table.half())
    written = os.stat(hook.last_path).st_mtime_ns
    cache_dir = Path(hook.last_path).parent
    assert sorted(p.suffix for p in cache_dir.iterdir()) == ['.json', '.npy',
                                                             '.pt']

    def no_compute(*args, **kwargs):
        raise AssertionError('the soft labels were recomputed')

    again = make_model(soft=MEMMAP)
    second = SoftLabelCacheHook()
    monkeypatch.setattr(second, 'compute', no_compute)
    second.before_train(make_runner(tmp_path, again))
    assert second.last_source == 'cache' and second.num_computed == 0
    assert second.last_path == hook.last_path
    assert os.stat(hook.last_path).st_mtime_ns == written
    # lookups: float32 rows of the batch on the inputs' device
    from mmpretrain.structures import DataSample
    samples = [DataSample(metainfo=dict(sample_idx=i)) for i in (5, 0, 5)]
    rows = again.soft_labels(torch.zeros(3, 3, 32, 32), samples)
    assert rows.dtype == torch.float32
    assert torch.equal(rows, dense.soft_label_table.half().float()[[5, 0,
                                                                    5]])


@pytest.mark.parametrize('damage, problem', [
    (lambda a: a.__setitem__((2, 1), np.nan),
     '1 non-finite value(s) (NaN / inf)'),
    (lambda a: a.__setitem__((0, 0), -0.25), 'negative values'),
    (lambda a: a.__imul__(3.0), 'rows that do not sum to 1'),
    (None, 'unreadable'),
])
def test_a_damaged_memmap_file_is_refused_and_recomputed(tmp_path, damage,
                                                         problem,
                                                         monkeypatch):
    first = SoftLabelCacheHook()
    first.before_train(make_runner(tmp_path, make_model(soft=MEMMAP)))
    good = np.load(first.last_path).copy()
    if damage is None:
        Path(first.last_path).write_bytes(b'\x93NUMPY half a header')
    else:
        array = np.lib.format.open_memmap(first.last_path, mode='r+')
        damage(array)
        array.flush()
        del array
    lines = _log_lines(monkeypatch)
    model = make_model(soft=MEMMAP)
    hook = SoftLabelCacheHook()
    hook.before_train(make_runner(tmp_path, model))
    assert hook.last_source == 'computed' and hook.num_computed == 1
    refusals = [m for m in lines if 'refusing the cache' in m]
    assert len(refusals) == 1 and problem in refusals[0]
    assert np.array_equal(np.load(hook.last_path), good)
    assert np.array_equal(np.asarray(model.soft_label_table.array), good)


@pytest.mark.parametrize('error', [OSError(28, 'No space left on device'),
                                   KeyboardInterrupt()])
def test_a_failed_memmap_pass_leaves_no_temporary_file(tmp_path, monkeypatch,
                                                       error):
    import drm_mm.engine.hooks.soft_label_cache_hook as module
    calls = []

    def failing_write(path, start, probs, topk):
        calls.append(path)
        assert os.path.exists(path) and '.npy.tmp' in path
        raise error

    monkeypatch.setattr(module, 'write_rows', failing_write)
    with pytest.raises(type(error)):
        SoftLabelCacheHook().before_train(
            make_runner(tmp_path, make_model(soft=MEMMAP)))
    assert len(calls) == 1
    cache_dir = tmp_path / 'work_dirs' / '.soft_label_cache'
    assert sorted(os.listdir(cache_dir)) == []


def test_topk_memmap_table_and_the_logged_mass(tmp_path, monkeypatch):
    from drm_mm.models.soft_labels.table_storage import TopKTable
    dense = make_model()
    dense.soft_labels.tau = 1.0  # linear min-max: more than one class > 0
    SoftLabelCacheHook().before_train(make_runner(tmp_path, dense))
    full = dense.soft_label_table
    lines = _log_lines(monkeypatch)
    model = make_model(soft=dict(storage='memmap', topk=1))
    model.soft_labels.tau = 1.0
    hook = SoftLabelCacheHook()
    hook.before_train(make_runner(tmp_path, model))
    table = model.soft_label_table
    assert isinstance(table, TopKTable) and table.shape == (7, 3)
    top, arg = full.max(dim=1)
    assert torch.equal(torch.from_numpy(table.records['i'][:, 0].astype(
        np.int64)), arg)
    rest = float((1 - top).mean())
    assert table.mean_rest() == pytest.approx(rest, abs=1e-6)
    logged = [m for m in lines if 'outside the top 1' in m]
    assert logged == [f'SoftLabelCacheHook: top-1 soft labels; mean p_c '
                      f'mass outside the top 1: {rest:.4f} (renormalised '
                      f'away)']
    # the top-1 lookup is the one-hot of the arg max (renormalised)
    from mmpretrain.structures import DataSample
    rows = model.soft_labels(torch.zeros(7, 3, 32, 32), [
        DataSample(metainfo=dict(sample_idx=i)) for i in range(7)])
    assert torch.equal(rows, torch.nn.functional.one_hot(arg, 3).float())


def test_a_float16_dense_table_stays_float16_in_memory(tmp_path):
    """dtype='float16' halves the table in memory too; lookups are the
    float32 values of the float16 rows."""
    reference = make_model()
    SoftLabelCacheHook().before_train(make_runner(tmp_path, reference))
    model = make_model()
    SoftLabelCacheHook(dtype='float16').before_train(
        make_runner(tmp_path, model))
    table = model.soft_label_table
    assert table.dtype == torch.float16
    assert torch.equal(table, reference.soft_label_table.half())
    from mmpretrain.structures import DataSample
    rows = model.soft_labels(torch.zeros(2, 3, 32, 32), [
        DataSample(metainfo=dict(sample_idx=i)) for i in (6, 1)])
    assert rows.dtype == torch.float32
    assert torch.equal(rows, table[[6, 1]].float())


def test_minmax_class_table_is_scaled_over_the_whole_set(tmp_path):
    """normalization='minmax_class': the pass stores p_c made from the raw
    affinities of all samples, each class scaled by its min / max over the
    set (a hand computation on the teacher's affinities)."""
    from drm_mm.models.soft_labels import class_minmax_soft_labels
    model = make_model(normalization='minmax_class')
    runner = make_runner(tmp_path, model)
    hook = SoftLabelCacheHook(batch_size=3)  # batches do not see the set
    hook.before_train(runner)
    table = model.soft_label_table
    online = make_model(source='online')
    raw = online.soft_labels.teacher_affinities(
        online.soft_labels.build_teacher(),
        pass_inputs(runner.train_dataloader.dataset, model, range(7)))
    low, high = raw.min(dim=0).values, raw.max(dim=0).values
    scaled = (raw - low) / (high - low)
    hand = scaled ** 10 / (scaled ** 10).sum(dim=1, keepdim=True)
    assert torch.allclose(table, hand, atol=1e-5)
    assert torch.allclose(table, class_minmax_soft_labels(raw, 0.1),
                          atol=1e-5)
    # every class is at its minimum somewhere: a 0 in every column
    assert (table.min(dim=0).values == 0).all()
    assert not torch.allclose(table, teacher_p_c(pass_inputs(
        runner.train_dataloader.dataset, model, range(7))), atol=1e-3)


_CLASS_WORKER = textwrap.dedent('''
    import sys
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp

    sys.path.insert(0, sys.argv[3])
    import test_soft_label_cache_hook as t
    from drm_mm.engine.hooks.soft_label_cache_hook import SoftLabelCacheHook


    def table(out, cache):
        model = t.make_model(normalization='minmax_class')
        dataset = t.TinyImages(out + '/images', n=7)
        hook = SoftLabelCacheHook(batch_size=2)
        hook.load_or_compute(model, dataset, t.PIPELINE, f'{out}/{cache}')
        assert hook.last_source == 'computed'
        return model.soft_label_table


    def worker(rank, port, out):
        torch.set_num_threads(1)
        dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                                rank=rank, world_size=2)
        torch.save(table(out, 'cache2'), f'{out}/rank{rank}.pt')
        dist.destroy_process_group()


    if __name__ == '__main__':
        torch.set_num_threads(1)
        port, out = int(sys.argv[1]), sys.argv[2]
        torch.save(table(out, 'cache1'), f'{out}/single.pt')
        mp.start_processes(worker, args=(port, out), nprocs=2, join=True,
                           start_method='fork')
''')


@pytest.mark.slow  # two processes: seconds of imports
def test_minmax_class_two_ranks_equal_one_rank(tmp_path):
    """Each rank scales its shard (4 and 3 samples) by the per-class min /
    max gathered over both ranks: the table equals the one-rank table."""
    (tmp_path / 'images').mkdir()
    script = tmp_path / 'class_worker.py'
    script.write_text(_CLASS_WORKER)
    env = dict(os.environ, PYTHONPATH=f'{REPO}{os.pathsep}'
               f'{os.environ.get("PYTHONPATH", "")}', OMP_NUM_THREADS='1',
               HF_HUB_OFFLINE='1')
    proc = subprocess.run(
        [sys.executable, str(script), str(_free_port()), str(tmp_path),
         str(Path(__file__).parent)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = torch.load(tmp_path / 'single.pt', weights_only=True)
    assert single.shape == (7, 3) and (single.min(dim=0).values == 0).all()
    for rank in range(2):
        ranked = torch.load(tmp_path / f'rank{rank}.pt', weights_only=True)
        assert torch.allclose(ranked, single, atol=1e-6)
