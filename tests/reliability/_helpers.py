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
    'REPO', 'KILL_ENV', 'ReliabilityKillHook', 'ReliabilityRecordHook',
    'tiny_class_setup', 'write_config', 'train_env', 'start_train',
    'finish', 'run_train', 'run_dist_train', 'scalar_rows',
    'load_checkpoint', 'max_abs_diff', 'tensors_equal', 'read_jsonl',
    'files_named', 'tail', 'free_port'
]
