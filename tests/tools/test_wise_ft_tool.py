"""End-to-end test of tools/wise_ft.py on the CPU smoke config and the tiny
fake iWildCam: two tiny checkpoints, a sweep over three alphas, the tables,
the figures, the visualizer scalars and the saved interpolated checkpoint;
bad arguments and files give one-line errors."""
import csv
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
from collections import OrderedDict
from typing import List

import pytest
import torch

from drm_mm.utils.safe_checkpoint import load_trusted_checkpoint

REPO = pathlib.Path(__file__).resolve().parents[2]
if str(REPO / 'tools') not in sys.path:
    sys.path.append(str(REPO / 'tools'))  # wise_ft_report beside the tool
CONFIG = REPO / 'configs' / 'smoke' / 'tiny_clip_linear_fake_iwildcam.py'


def run_tool(args: List[str], timeout: int = 300
             ) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1',
               PYTHONUNBUFFERED='1')
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def data_options(root: pathlib.Path) -> List[str]:
    return ['--cfg-options'] + [
        f'{loader}.dataset.data_root={root}'
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader')
    ]


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """zero-shot = the smoke model as built; fine-tuned = it perturbed."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    import drm_mm  # noqa: F401  registers the components
    from drm_mm.registry import MODELS
    folder = tmp_path_factory.mktemp('wise_ft_ckpts')
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('drm_mm'):
        zs = MODELS.build(Config.fromfile(str(CONFIG)).model).state_dict()
    gen = torch.Generator().manual_seed(1)
    ft = OrderedDict(
        (k, v + 0.5 * torch.randn(v.shape, generator=gen)
         if v.is_floating_point() else v) for k, v in zs.items())
    torch.save({'state_dict': zs, 'meta': {}}, folder / 'zs.pth')
    torch.save({'state_dict': ft, 'meta': {}}, folder / 'ft.pth')
    return folder, zs, ft


@pytest.mark.slow  # two tool subprocesses: ~30-50 s on 2 CPU cores
def test_sweep_end_to_end(checkpoints, fake_iwildcam_root, tmp_path):
    folder, zs, ft = checkpoints
    work = tmp_path / 'work'
    saved = tmp_path / 'mixed.pth'
    reference = tmp_path / 'old' / 'wise_ft.json'
    reference.parent.mkdir()
    reference.write_text(json.dumps({'rows': [
        {'alpha': a, 'accuracy/top1': 20.0 + 10 * a} for a in (0, 0.5, 1)]}))
    result = run_tool([
        'tools/wise_ft.py', str(CONFIG), '--finetuned',
        str(folder / 'ft.pth'), '--zeroshot', str(folder / 'zs.pth'),
        '--alphas', '1', '0', '0.5', '--work-dir', str(work),
        '--save-alpha', '0.5', '--save-path', str(saved),
        '--reference', f'baseline={reference}'
    ] + data_options(fake_iwildcam_root))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[
        -3000:]

    with open(work / 'wise_ft.csv') as f:
        rows = list(csv.DictReader(f))
    assert [float(r['alpha']) for r in rows] == [0.0, 0.5, 1.0]
    metric_keys = [k for k in rows[0] if k != 'alpha']
    assert metric_keys and all(r[k] != '' for r in rows
                               for k in metric_keys)
    assert (work / 'wise_ft.png').read_bytes()[:4] == b'\x89PNG'
    assert b'<svg' in (work / 'wise_ft.svg').read_bytes()[:2000]
    assert (work / 'wise_ft.pdf').read_bytes()[:5] == b'%PDF-'
    table = json.loads((work / 'wise_ft.json').read_text())
    assert table['label'] == 'tiny_clip_linear_fake_iwildcam (drm-tiny-vit)'
    assert [r['alpha'] for r in table['rows']] == [0.0, 0.5, 1.0]
    # every point also went to the config's LocalVisBackend, in sweep order
    scalars, = work.glob('*/vis_data/scalars.json')
    sent = [json.loads(line) for line in scalars.read_text().splitlines()]
    assert [(s['step'], s['wise_ft/alpha']) for s in sent] == [
        (0, 1.0), (1, 0.0), (2, 0.5)]
    for point in sent:
        row = next(r for r in table['rows'] if r['alpha'] ==
                   point['wise_ft/alpha'])
        assert {k[len('wise_ft/'):]: v for k, v in point.items()
                if k != 'step'} == pytest.approx(row)

    checkpoint = load_trusted_checkpoint(str(saved))
    assert checkpoint['meta']['wise_ft']['alpha'] == 0.5
    mixed = checkpoint['state_dict']
    assert list(mixed) == list(ft)
    for key, value in ft.items():
        if value.is_floating_point():
            expected = 0.5 * zs[key] + 0.5 * value
            assert torch.allclose(mixed[key], expected), key
        else:
            assert torch.equal(mixed[key], value), key

    # alpha = 0 is the zero-shot model: same metrics as tools/test.py on it
    out = tmp_path / 'zs_metrics.json'
    result = run_tool([
        'tools/test.py', str(CONFIG), str(folder / 'zs.pth'), '--work-dir',
        str(tmp_path / 'test_work'), '--out', str(out)
    ] + data_options(fake_iwildcam_root))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[
        -3000:]
    zero_shot = json.loads(out.read_text())
    assert set(zero_shot) == set(metric_keys)
    for key in metric_keys:
        assert float(rows[0][key]) == pytest.approx(zero_shot[key])


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'wise_ft_tool', REPO / 'tools' / 'wise_ft.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(monkeypatch, argv: List[str]) -> str:
    """Run the tool's main() in-process; return its SystemExit message."""
    monkeypatch.setattr(sys, 'argv', ['wise_ft.py'] + argv)
    with pytest.raises(SystemExit) as info:
        load_tool().main()
    return str(info.value)


def test_mismatched_checkpoints_are_refused(checkpoints, tmp_path,
                                            monkeypatch):
    folder, zs, _ = checkpoints
    other = OrderedDict(zs)
    first = next(k for k, v in zs.items() if v.dim() == 2)
    other[first] = torch.zeros(other[first].shape[0] + 1,
                               other[first].shape[1])
    torch.save({'state_dict': other, 'meta': {}}, tmp_path / 'other.pth')
    message = run_main(monkeypatch, [
        str(CONFIG), '--finetuned', str(folder / 'ft.pth'), '--zeroshot',
        str(tmp_path / 'other.pth'), '--work-dir', str(tmp_path / 'w')
    ])
    assert repr(first) in message and 'different architectures' in message
    assert str(tuple(other[first].shape)) in message
    del other[first]
    torch.save({'state_dict': other, 'meta': {}}, tmp_path / 'other.pth')
    message = run_main(monkeypatch, [
        str(CONFIG), '--finetuned', str(tmp_path / 'other.pth'),
        '--zeroshot', str(folder / 'zs.pth')
    ])
    assert repr(first) in message
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('flags, message', [
    (['--alphas', '0', '1.2'], 'outside [0, 1]'),
    (['--alphas', '0.5', '--save-alpha', '-1'], '--save-alpha=-1.0'),
    (['--save-path', 'x.pth'], '--save-path needs --save-alpha'),
])
def test_bad_arguments_fail_early(checkpoints, tmp_path, monkeypatch, flags,
                                  message):
    folder, _, _ = checkpoints
    got = run_main(monkeypatch, [str(CONFIG), '--finetuned',
                                 str(folder / 'ft.pth'), '--work-dir',
                                 str(tmp_path / 'w')] + flags)
    assert message in got
    assert not (tmp_path / 'w').exists()


def test_save_path_directory_fails_early(checkpoints, tmp_path,
                                         monkeypatch):
    folder, _, _ = checkpoints
    (tmp_path / 'out').mkdir()
    got = run_main(monkeypatch, [
        str(CONFIG), '--finetuned', str(folder / 'ft.pth'), '--work-dir',
        str(tmp_path / 'w'), '--save-alpha', '0.5', '--save-path',
        str(tmp_path / 'out')])
    assert got == (f"wise_ft.py: --save-path {str(tmp_path / 'out')!r} is a "
                   'directory; pass the .pth file to write.')
    assert not (tmp_path / 'w').exists()
    assert list((tmp_path / 'out').iterdir()) == []


def _small_disk():
    """Files of this process may not grow past 64 KiB: writes beyond fail
    with EFBIG, as on a full disk (Python ignores SIGXFSZ)."""
    import resource
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))


def test_full_disk_on_save_is_one_line_and_leaves_no_tmp(checkpoints,
                                                         tmp_path):
    folder, _, _ = checkpoints
    saved = tmp_path / 'mixed.pth'
    env = dict(os.environ, HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1')
    result = subprocess.run(
        [sys.executable, 'tools/wise_ft.py', str(CONFIG), '--finetuned',
         str(folder / 'ft.pth'), '--work-dir', str(tmp_path / 'w'),
         '--save-alpha', '0.5', '--save-path', str(saved)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        preexec_fn=_small_disk)
    assert result.returncode == 1, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith('error: ')]
    assert len(errors) == 1, result.stderr[-2000:]
    assert errors[0].startswith('error: CheckpointWriteError: cannot write '
                                f'the checkpoint {saved} (')
    assert errors[0].endswith('free disk space or choose another path.')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['w']


def test_missing_checkpoint(tmp_path, monkeypatch):
    got = run_main(monkeypatch, [str(CONFIG), '--finetuned',
                                 str(tmp_path / 'nope.pth')])
    assert 'nope.pth' in got and 'does not exist' in got


def test_bad_reference_fails_before_the_sweep(checkpoints, tmp_path,
                                              monkeypatch):
    folder, _, _ = checkpoints
    got = run_main(monkeypatch, [
        str(CONFIG), '--finetuned', str(folder / 'ft.pth'), '--work-dir',
        str(tmp_path / 'w'), '--reference', str(tmp_path / 'old.csv')])
    assert "--reference '" in got and 'old.csv' in got
    assert 'does not exist' in got
    assert not (tmp_path / 'w').exists()


def test_figure_title_names_config_and_model():
    from mmengine.config import Config
    cfg = Config.fromfile(str(CONFIG))
    assert load_tool().figure_title(cfg, str(CONFIG)) == \
        'WiSE-FT: tiny_clip_linear_fake_iwildcam (drm-tiny-vit)'


def test_corrupt_checkpoint_is_one_line(tmp_path):
    """A failure inside the library prints one error line, no traceback."""
    bad = tmp_path / 'bitrot.pth'
    bad.write_bytes(b'PK\x03\x04 not a checkpoint' * 8)
    result = run_tool(['tools/wise_ft.py', str(CONFIG), '--finetuned',
                       str(bad), '--work-dir', str(tmp_path / 'w')],
                      timeout=120)
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith('error: ')]
    assert len(errors) == 1 and 'bitrot.pth' in errors[0]
    assert result.stderr.rstrip().endswith(
        '(set DRM_MM_DEBUG=1 for the full traceback)')
