"""Sharded training through MMEngine on CPU: ``tools/dist_train.sh`` with
two gloo ranks, DRM with ``DRMFlexibleRunner`` + ``DRMFSDPStrategy``
(FSDP, one unit per CLIP block, activation checkpointing), killed after
iteration 6 and resumed from the epoch-1 checkpoint, computes what the
same config computes uninterrupted under DDP (``DRMRunner``): the losses
of every step on every rank, the soft-label table, the multi-set
validation metrics and the final weights; ``tools/dist_test.sh`` tests it
sharded;
its checkpoint holds the consolidated weights, which ``tools/test.py``
and ``tools/wise_ft.py`` read with the sharded config itself."""
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

import _reliability_helpers as H  # loaded by this folder's conftest.py

#: Tolerance of the comparisons (fp32 sums in another order).
TOL = 1e-5
PLAIN = """pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=32, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'location')),
], """
BODY = '''
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=32, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'location')),
]
def _split(split):
    return dict(dataset=dict(type='WILDSIWildCam', data_root={root!r},
                             split=split, pipeline=_test_pipeline),
                sampler=dict(type='DefaultSampler', shuffle=False))
randomness = dict(seed=0, deterministic=True)
train_cfg = dict(max_epochs=2)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=2))
val_dataloader = dict(_delete_=True, batch_size=16, num_workers=0,
                      id_val=_split('id_val'), val=_split('val'))
val_evaluator = dict(_delete_=True, type='IWildCamMetric')
val_cfg = dict(type='MultiDatasetValLoop')
custom_hooks = [dict(type='SoftLabelCacheHook', batch_size=32,
                     pipeline=_test_pipeline),
                dict(type='ReliabilityRecordHook'),
                dict(type='ReliabilityKillHook')]
'''


def _body(kind: str, names, desc, root) -> str:
    """The run settings; FSDP adds the runner and strategy of
    configs/_base_/fsdp_runtime.py and activation checkpointing."""
    ckpt = kind == 'fsdp'
    body = BODY.format(root=str(root)) + (f'model = dict(classnames={names!r}, '
                   f'descriptions={str(desc)!r}, '
                   f'clip=dict(grad_checkpointing={ckpt}))\n')
    if kind == 'fsdp':
        runtime = Config.fromfile(str(H.REPO / 'configs' / '_base_' /
                                      'fsdp_runtime.py'))
        body += (f'runner_type = {runtime.runner_type!r}\n'
                 f'strategy = {runtime.strategy.to_dict()!r}\n')
    return body


def _dist_train(config, work_dir, *args, kill_after=None):
    """``tools/dist_train.sh CONFIG 2`` (gloo), optionally SIGKILLed
    after an iteration by ReliabilityKillHook."""
    work_dir.parent.mkdir(parents=True, exist_ok=True)
    extra = dict(PYTHON=sys.executable, PORT=str(H.free_port()))
    if kill_after is not None:
        extra[H.KILL_ENV] = str(kill_after)
    proc = subprocess.run(
        ['bash', str(H.REPO / 'tools' / 'dist_train.sh'), str(config), '2',
         '--work-dir', str(work_dir), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=H.train_env(extra), cwd=work_dir.parent, timeout=600)
    return proc.returncode, proc.stdout.decode(errors='replace')


def _rows(path):
    """Recorded steps by iteration (a step run again after the resume
    must repeat its values)."""
    rows = {}
    for row in H.read_jsonl(path):
        if row['iter'] in rows:
            assert row == pytest.approx(rows[row['iter']], abs=TOL), row
        rows[row['iter']] = row
    return [rows[i] for i in sorted(rows)]


def _tables(root):
    files = list((root / '.soft_label_cache').glob('soft_labels_*.pt'))
    assert len(files) == 1, files
    return torch.load(files[0], weights_only=True)['soft_labels']


@pytest.mark.slow  # three 2-rank training runs (~3 min on 2 cores)
def test_fsdp_two_ranks_equal_ddp_two_ranks(tmp_path, fake_iwildcam_root):
    names, desc = H.tiny_class_setup(tmp_path)
    configs = {
        kind: H.write_config(
            tmp_path / f'{kind}.py', fake_iwildcam_root,
            _body(kind, names, desc, fake_iwildcam_root), train_loader='batch_size=4, ',
            train_dataset=PLAIN)
        for kind in ('ddp', 'fsdp')
    }
    work = {kind: tmp_path / kind / 'work' for kind in configs}
    logs = {}
    code, logs['ddp'] = _dist_train(configs['ddp'], work['ddp'])
    assert code == 0, H.tail(logs['ddp'])
    code, killed = _dist_train(configs['fsdp'], work['fsdp'], kill_after=6)
    assert code != 0 and (work['fsdp'] / 'epoch_1.pth').exists()
    assert not (work['fsdp'] / 'epoch_2.pth').exists()
    code, logs['fsdp'] = _dist_train(configs['fsdp'], work['fsdp'],
                                     '--resume')
    assert code == 0, H.tail(logs['fsdp'])
    assert 'resumed epoch: 1, iter: 5' in logs['fsdp']

    # FSDP really sharded: block units, rank 0 (which logs) holds ~half
    held = re.findall(r'DRMFSDPStrategy: (\d+) FSDP units; this rank holds '
                      r'(\d+) of (\d+) parameter values', logs['fsdp'])
    assert len(held) == 1, H.tail(logs['fsdp'])
    units, local, total = (int(x) for x in held[0])
    assert units == 1 + 2 + 2  # root + the tiny CLIP's 2 + 2 blocks
    assert 0.4 * total < local < 0.6 * total
    assert 'DRMFlexibleRunner' not in logs['ddp']

    # every step of every rank
    worst = 0.0
    for rank in (0, 1):
        ddp = _rows(work['ddp'] / f'outputs_rank{rank}.jsonl')
        fsdp = _rows(work['fsdp'] / f'outputs_rank{rank}.jsonl')
        assert [r['iter'] for r in fsdp] == list(range(1, 11))
        for ref, row in zip(ddp, fsdp):
            assert row.keys() == ref.keys()
            for key in ref:
                worst = max(worst, abs(row[key] - ref[key]))
                assert row[key] == pytest.approx(ref[key], abs=TOL), (
                    rank, row['iter'], key)

    # the soft labels (FSDP: computed before sharding) and the weights
    table_diff = (_tables(tmp_path / 'ddp') -
                  _tables(tmp_path / 'fsdp')).abs().max().item()
    assert table_diff <= 1e-6
    a = H.load_checkpoint(work['ddp'] / 'epoch_2.pth')
    b = H.load_checkpoint(work['fsdp'] / 'epoch_2.pth')
    weight_diff = H.max_abs_diff(a['state_dict'], b['state_dict'])
    assert weight_diff <= TOL
    assert sorted(a) == sorted(b)
    assert not list(work['fsdp'].glob('*.tmp'))

    # tools/test.py, one process, the sharded config: DRMRunner reads it
    proc = subprocess.run(
        [sys.executable, str(H.REPO / 'tools' / 'test.py'),
         str(configs['fsdp']), str(work['fsdp'] / 'epoch_2.pth'),
         '--work-dir', str(tmp_path / 'test')],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=H.train_env(), cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, H.tail(proc.stdout)
    assert 'nothing to shard' in proc.stdout
    assert 'accuracy/top1' in proc.stdout
    # multi-set validation under FSDP: the same metrics as under DDP
    vals = {kind: {k: row for k, row in H.scalar_rows(work[kind]).items()
                   if k[0] == 'val'} for kind in work}
    assert sorted(vals['fsdp']) == [('val', 1), ('val', 2)]
    for key, ref in vals['ddp'].items():
        assert vals['fsdp'][key] == pytest.approx(ref, abs=TOL), key
    assert "val set 'val' done" in logs['fsdp']

    # tools/dist_test.sh, 2 ranks: the sharded test loop loads the
    # consolidated checkpoint into FSDP
    proc = subprocess.run(
        ['bash', str(H.REPO / 'tools' / 'dist_test.sh'),
         str(configs['fsdp']), str(work['fsdp'] / 'epoch_2.pth'), '2',
         '--work-dir', str(tmp_path / 'dist_test')],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=H.train_env(dict(PYTHON=sys.executable,
                             PORT=str(H.free_port()))),
        cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, H.tail(proc.stdout)
    assert 'FSDP units' in proc.stdout and 'accuracy/top1' in proc.stdout

    # WiSE-FT on the consolidated weights, one process, the sharded config
    proc = subprocess.run(
        [sys.executable, str(H.REPO / 'tools' / 'wise_ft.py'),
         str(configs['fsdp']), '--finetuned',
         str(work['fsdp'] / 'epoch_2.pth'), '--alphas', '0', '1',
         '--work-dir', str(tmp_path / 'wise')],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=H.train_env(), cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, H.tail(proc.stdout)
    rows = (tmp_path / 'wise' / 'wise_ft.csv').read_text().splitlines()
    assert [r.split(',')[0] for r in rows[1:]] == ['0.0', '1.0']
    print(f'FSDP vs DDP, 2 ranks: steps {worst:.2e}, weights '
          f'{weight_diff:.2e}, soft labels {table_diff:.2e}')
