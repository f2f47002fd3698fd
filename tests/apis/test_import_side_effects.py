"""``import drm_mm`` stays light (the registries import their modules on
the first lookup) and runs print no warning that does not apply to them."""
import os
import os.path as osp
import subprocess
import sys
import textwrap

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SMOKE = osp.join(ROOT, 'configs', 'smoke', 'drm_tiny_fake_iwildcam.py')
#: What ``import mmpretrain`` does not import and ``import drm_mm`` need
#: not: MMPretrain's model zoo and datasets (torchvision, torch._dynamo),
#: open_clip (timm) and drm_mm's own components.
HEAVY = ('mmpretrain.models', 'mmpretrain.datasets', 'mmpretrain.engine',
         'open_clip', 'torchvision', 'drm_mm.models', 'drm_mm.datasets',
         'drm_mm.engine', 'drm_mm.evaluation')


def _python(code: str, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE='1')
    proc = subprocess.run(
        [sys.executable, '-W', 'default', '-c', textwrap.dedent(code)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_import_drm_mm_imports_no_heavy_module(tmp_path):
    proc = _python(f"""
        import sys
        import mmpretrain
        before = set(sys.modules)
        import drm_mm
        heavy = {HEAVY!r}
        print(sorted(m for m in set(sys.modules) - before
                     if m.startswith(heavy)))
        # the components are still one lookup away
        from mmengine.registry import RUNNERS
        print(RUNNERS.get('drm_mm.DRMRunner').__name__,
              drm_mm.DRMRunner.__name__, drm_mm.models.OpenCLIP.__name__)
    """, tmp_path)
    lines = proc.stdout.strip().splitlines()
    assert lines[-2] == '[]'
    assert lines[-1] == 'DRMRunner DRMRunner OpenCLIP'


def test_a_run_prints_no_warning_that_does_not_apply(tmp_path):
    """Building a model and loading its checkpoint shows neither mmcv-lite's
    MultiScaleDeformableAttention warning nor open_clip's "No pretrained
    weights loaded" (the checkpoint gives the weights)."""
    proc = _python(f"""
        import torch
        import drm_mm
        from mmpretrain import get_model
        def kwargs():  # fresh: merging pops _delete_
            return dict(classnames=['a', 'b'], templates=['a photo of {{c}}.'],
                        descriptions=dict(_delete_=True, a=['x'], b=['y']))
        model = get_model({SMOKE!r}, **kwargs())
        torch.save(dict(state_dict=model.state_dict()), 'ckpt.pth')
        model = get_model({SMOKE!r}, pretrained='ckpt.pth', **kwargs())
        print('built', model.clip.model_name)
    """, tmp_path)
    assert 'built drm-tiny-vit' in proc.stdout
    output = proc.stdout + proc.stderr
    assert 'MultiScaleDeformableAttention' not in output
    assert 'No pretrained weights loaded' not in output
    assert 'Warning' not in proc.stderr, proc.stderr[-2000:]
