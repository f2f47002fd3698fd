"""Shared pieces of the reliability tests: test-only hooks that training
subprocesses import (this folder goes on their PYTHONPATH), config writing
and subprocess runs of ``tools/train.py`` / ``tools/dist_train.sh``.

Test modules ``import _reliability_helpers as H``: this folder's
``conftest.py`` loads it under that name (pytest runs with
``--import-mode=importlib``, so this folder is not on ``sys.path``).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SMOKE = REPO / 'configs' / 'smoke'
#: Environment variable read by :class:`ReliabilityKillHook`.
KILL_ENV = 'DRM_RELIABILITY_KILL_AFTER_ITER'
#: Logged values that measure wall time, not the computation.
TIMING_KEYS = ('time', 'data_time', 'eta', 'memory')


# --------------------------------------------------------------------------
# test-only hooks (registered in MMEngine's root registry, found from the
# drm_mm scope through the parent chain)

@HOOKS.register_module(force=True)
class ReliabilityKillHook(Hook):
    """SIGKILL this process right after iteration ``$KILL_ENV`` (1-based)
    has finished, all other hooks included; inert without the variable."""

    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        target = os.environ.get(KILL_ENV)
        if target and runner.iter + 1 == int(target):
            os.kill(os.getpid(), signal.SIGKILL)


#: Environment variable read by :class:`ReliabilityEpochEndKillHook`:
#: ``train:N`` (after epoch N's ``after_train_epoch``, its checkpoint
#: written, before its validation) or ``val:N`` (after epoch N's
#: validation, its best checkpoint written).
EPOCH_KILL_ENV = 'DRM_RELIABILITY_KILL_AT_EPOCH_END'


@HOOKS.register_module(force=True)
class ReliabilityEpochEndKillHook(Hook):
    """SIGKILL this process at an epoch's end (``$EPOCH_KILL_ENV``), after
    every other hook of that stage; inert without the variable."""

    priority = 'LOWEST'

    def _kill_if(self, stage: str, epoch: int) -> None:
        if os.environ.get(EPOCH_KILL_ENV) == f'{stage}:{epoch}':
            os.kill(os.getpid(), signal.SIGKILL)

    def after_train_epoch(self, runner) -> None:
        self._kill_if('train', runner.epoch + 1)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._kill_if('val', runner.epoch)


@HOOKS.register_module(force=True)
class ReliabilityRecordHook(Hook):
    """Append each iteration's loss outputs of this rank (full precision)
    to ``<work_dir>/outputs_rank<r>.jsonl``."""

    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        row = dict(iter=runner.iter + 1, batch=len(data_batch['inputs']))
        row.update({k: float(v) for k, v in (outputs or {}).items()})
        path = Path(runner.work_dir) / f'outputs_rank{runner.rank}.jsonl'
        with open(path, 'a') as f:
            f.write(json.dumps(row) + '\n')


# --------------------------------------------------------------------------
# configs

def tiny_class_setup(tmp_path: Path, n: int = 6) -> Tuple[List[str], Path]:
    """The first ``n`` iWildCam class names (the fake data's classes) and a
    description file for exactly them (keeps every step fast)."""
    from drm_mm.datasets.classnames import get_classnames
    names = list(get_classnames('iwildcam'))[:n]
    shipped = json.loads((REPO / 'drm_mm' / 'prompts' /
                          'iwildcam.json').read_text())
    path = tmp_path / f'descriptions_{n}.json'
    path.write_text(json.dumps({k: shipped[k] for k in names}))
    return names, path


def write_config(path: Path, data_root: Path, body: str = '',
                 base: str = 'drm_tiny_fake_iwildcam.py',
                 classes: Optional[Tuple[List[str], Optional[Path]]] = None,
                 train_loader: str = '', train_dataset: str = '',
                 test_hooks: bool = True) -> Path:
    """A config inheriting a smoke config, on ``data_root``, with the test
    hooks importable and ``body`` appended. ``train_loader`` /
    ``train_dataset``: extra ``key=value, `` text for the train loader and
    its dataset (``body`` must not assign the loaders again: a second
    assignment in one file replaces the first). ``test_hooks=False``: no
    import of this module (for configs read in the pytest process)."""
    lines = [f'_base_ = [{str(SMOKE / base)!r}]']
    if test_hooks:
        lines.append("custom_imports = dict(imports=['drm_mm', '_helpers'], "
                     'allow_failed_imports=False)')
    for loader in ('train', 'val', 'test'):
        extra = (train_loader, train_dataset) if loader == 'train' else ('',
                                                                         '')
        lines.append(f'{loader}_dataloader = dict({extra[0]}dataset=dict('
                     f'{extra[1]}data_root={str(data_root)!r}))')
    if classes is not None:
        names, desc = classes
        lines.append(f'model = dict(classnames={names!r}, '
                     f'descriptions={(str(desc) if desc else None)!r})')
    path.write_text('\n'.join(lines) + '\n' + body)
    return path


# --------------------------------------------------------------------------
# subprocesses

def train_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment of a training subprocess: repo + this folder importable,
    offline hubs, one thread per process."""
    env = dict(os.environ)
    env.pop(KILL_ENV, None)
    env.pop(EPOCH_KILL_ENV, None)
    env.update(PYTHONPATH=os.pathsep.join(
        [str(REPO), str(HERE), env.get('PYTHONPATH', '')]),
               HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    env.update(extra or {})
    return env


def train_cmd(config: Path, work_dir: Path, *args: str) -> List[str]:
    return [sys.executable, str(REPO / 'tools' / 'train.py'), str(config),
            '--work-dir', str(work_dir), *args]


def start_train(config: Path, work_dir: Path, *args: str,
                env: Optional[Dict[str, str]] = None,
                cwd: Optional[Path] = None) -> subprocess.Popen:
    """``tools/train.py`` in the background (output in
    ``<work_dir>.out``)."""
    work_dir.parent.mkdir(parents=True, exist_ok=True)
    out = open(f'{work_dir}.out', 'ab')
    return subprocess.Popen(train_cmd(config, work_dir, *args),
                            stdout=out, stderr=subprocess.STDOUT,
                            env=train_env(env), cwd=cwd or work_dir.parent)


def finish(proc: subprocess.Popen, work_dir: Path,
           timeout: float = 600) -> Tuple[int, str]:
    """Wait for a :func:`start_train` process: (return code, its output)."""
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    return code, Path(f'{work_dir}.out').read_text(errors='replace')


def run_train(config: Path, work_dir: Path, *args: str,
              env: Optional[Dict[str, str]] = None,
              timeout: float = 600) -> Tuple[int, str]:
    """``tools/train.py`` to completion: (return code, its output)."""
    return finish(start_train(config, work_dir, *args, env=env), work_dir,
                  timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_dist_train(config: Path, work_dir: Path, gpus: int, *args: str,
                   timeout: float = 600) -> Tuple[int, str]:
    """``tools/dist_train.sh CONFIG gpus`` (gloo on CPU) to completion."""
    work_dir.parent.mkdir(parents=True, exist_ok=True)
    env = train_env(dict(PYTHON=sys.executable, PORT=str(free_port())))
    proc = subprocess.run(
        ['bash', str(REPO / 'tools' / 'dist_train.sh'), str(config),
         str(gpus), '--work-dir', str(work_dir), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
        cwd=work_dir.parent, timeout=timeout)
    return proc.returncode, proc.stdout.decode(errors='replace')


# --------------------------------------------------------------------------
# an in-process toy run (fast checks of checkpoint and validation logic)

class ToyPoints(torch.utils.data.Dataset):
    """16 fixed 4-d points, labels alternate 0 / 1."""

    metainfo: dict = {}

    def __len__(self) -> int:
        return 16

    def __getitem__(self, idx: int) -> dict:
        g = torch.Generator().manual_seed(idx)
        return dict(inputs=torch.randn(4, generator=g),
                    labels=torch.tensor(idx % 2))


def _toy_model():
    from mmengine.model import BaseModel

    class ToyLinear(BaseModel):

        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, inputs, labels, mode='tensor'):
            logits = self.fc(inputs)
            if mode == 'loss':
                return dict(
                    loss=torch.nn.functional.cross_entropy(logits, labels))
            if mode == 'predict':
                return list(zip(logits.argmax(1).tolist(), labels.tolist()))
            return logits

    return ToyLinear()


def _toy_metric():
    from mmengine.evaluator import BaseMetric

    class ToyAccuracy(BaseMetric):

        def process(self, data_batch, data_samples) -> None:
            self.results.extend(data_samples)

        def compute_metrics(self, results) -> dict:
            return dict(acc=sum(p == y for p, y in results) / len(results))

    return ToyAccuracy()


class IncreasingScore(Hook):
    """Adds ``score`` = epoch to the metrics: every validation is a new
    best for ``save_best='score'``."""

    priority = 'HIGHEST'

    def after_val_epoch(self, runner, metrics=None) -> None:
        metrics['score'] = float(runner.epoch)


_TOY_IDS = iter(range(10**6))


def toy_runner(work_dir: Path, max_epochs: int = 3, resume: bool = False,
               checkpoint: Optional[dict] = None,
               custom_hooks: Sequence = (), lr: float = 0.5):
    """A DRMRunner on :class:`ToyPoints` (4 iterations per epoch) with a
    validation each epoch and a local scalars.json."""
    from drm_mm.engine.runners import DRMRunner
    torch.manual_seed(0)
    loader = dict(dataset=ToyPoints(), batch_size=4,
                  sampler=dict(type='DefaultSampler', shuffle=True),
                  collate_fn=dict(type='default_collate'))
    name = f'toy_reliability_{os.getpid()}_{next(_TOY_IDS)}'
    return DRMRunner(
        model=_toy_model(), work_dir=str(work_dir),
        train_dataloader=loader,
        val_dataloader=dict(loader, sampler=dict(type='DefaultSampler',
                                                 shuffle=False)),
        val_evaluator=[_toy_metric()], val_cfg=dict(),
        optim_wrapper=dict(type='DivergenceGuardOptimWrapper',
                           optimizer=dict(type='SGD', lr=lr)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=dict(dict(type='CheckpointHook', interval=1),
                            **(checkpoint or {})),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=list(custom_hooks),
        visualizer=dict(type='Visualizer', name=name,
                        vis_backends=[dict(type='LocalVisBackend')]),
        randomness=dict(seed=0, deterministic=True), resume=resume,
        default_scope='drm_mm', experiment_name=name)


def toy_child(work_dir: Path, kind: str, arg: str = '',
              checkpoint: Optional[dict] = None) -> int:
    """``_toy_child.py``: a toy run killed at one point; its return code."""
    proc = subprocess.run(
        [sys.executable, str(HERE / '_toy_child.py'), str(work_dir), kind,
         arg, json.dumps(checkpoint or {})],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=train_env(),
        timeout=300)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(proc.stdout.decode(errors='replace')[-3000:])
    return proc.returncode


def zip_member_offset(path: Path, suffix: str) -> Tuple[int, int]:
    """(offset of the data, size) of the zip member ending in ``suffix``."""
    import struct
    import zipfile
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist()
                    if i.filename.endswith(suffix))
    with open(path, 'rb') as f:
        f.seek(info.header_offset)
        header = f.read(30)
    name_len, extra_len = struct.unpack('<HH', header[26:30])
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def flip_byte(path: Path, suffix: str, at: int = 0) -> None:
    """Invert one byte of the zip member ending in ``suffix``."""
    start, size = zip_member_offset(path, suffix)
    data = bytearray(path.read_bytes())
    data[start + min(at, size - 1)] ^= 0xFF
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------
# results

def scalar_rows(work_dir: Path) -> Dict[Tuple[str, int], dict]:
    """Logged scalars of every run in ``work_dir`` keyed by ('train' |
    'val', step), timing entries dropped. A step logged by two runs (the
    killed one and its resumption) must carry the same values."""
    rows: Dict[Tuple[str, int], dict] = {}
    files = sorted(work_dir.glob('*/vis_data/scalars.json'))
    assert files, f'no scalars.json under {work_dir}'
    for path in files:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            kind = 'train' if 'iter' in row else 'val'
            key = (kind, int(row['step']))
            row = {k: v for k, v in row.items() if k not in TIMING_KEYS}
            if key in rows:
                assert rows[key] == row, (path, key, rows[key], row)
            rows[key] = row
    return rows


def load_checkpoint(path: Path) -> dict:
    from drm_mm.utils.safe_checkpoint import load_trusted_checkpoint
    return load_trusted_checkpoint(str(path))


def max_abs_diff(a: Dict[str, torch.Tensor],
                 b: Dict[str, torch.Tensor]) -> float:
    """Largest absolute difference of two state dicts with equal keys."""
    assert set(a) == set(b), sorted(set(a) ^ set(b))
    worst = 0.0
    for key in a:
        x, y = a[key], b[key]
        assert x.shape == y.shape and x.dtype == y.dtype, key
        if x.is_floating_point():
            worst = max(worst, (x.double() - y.double()).abs().max().item()
                        if x.numel() else 0.0)
        else:
            assert torch.equal(x, y), key
    return worst


def tensors_equal(a: Dict[str, torch.Tensor],
                  b: Dict[str, torch.Tensor]) -> List[str]:
    """Keys whose tensors are not bitwise equal."""
    assert set(a) == set(b), sorted(set(a) ^ set(b))
    return [k for k in a if not torch.equal(a[k], b[k])]


def read_jsonl(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def files_named(folder: Path, patterns: Iterable[str]) -> List[str]:
    return sorted(str(p.relative_to(folder)) for pat in patterns
                  for p in folder.rglob(pat))


def tail(text: str, n: int = 4000) -> str:
    return text[-n:]


__all__: Sequence[str] = [
    'REPO', 'KILL_ENV', 'EPOCH_KILL_ENV', 'ReliabilityKillHook',
    'ReliabilityEpochEndKillHook', 'ReliabilityRecordHook',
    'tiny_class_setup', 'write_config', 'train_env', 'start_train',
    'finish', 'run_train', 'run_dist_train', 'scalar_rows',
    'load_checkpoint', 'max_abs_diff', 'tensors_equal', 'read_jsonl',
    'files_named', 'tail', 'free_port', 'ToyPoints', 'toy_runner',
    'IncreasingScore', 'toy_child', 'zip_member_offset', 'flip_byte'
]
