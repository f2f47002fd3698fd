"""Registries: drm_mm scope reaches MMPretrain; other projects reach drm_mm."""
import subprocess
import sys
import textwrap

from mmengine.registry import DefaultScope

from drm_mm.registry import METRICS, MODELS, TRANSFORMS


def test_drm_mm_scope_finds_mmpretrain_components():
    with DefaultScope.overwrite_default_scope('drm_mm'):
        pack = TRANSFORMS.build(dict(type='PackInputs'))
        acc = METRICS.build(dict(type='Accuracy'))
        pre = MODELS.build(dict(type='ClsDataPreprocessor'))
    assert type(pack).__module__.startswith('mmpretrain')
    assert type(acc).__name__ == 'Accuracy'
    assert type(pre).__name__ == 'ClsDataPreprocessor'


def _run(code: str, tmp_path) -> str:
    out = subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                         capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_other_project_builds_drm_mm_component_via_custom_imports(tmp_path):
    cfg = tmp_path / 'other_project_cfg.py'
    cfg.write_text(textwrap.dedent("""
        default_scope = 'mmpretrain'
        custom_imports = dict(imports=['drm_mm'], allow_failed_imports=False)
        model = dict(type='ImageClassifier',
                     backbone=dict(type='drm_mm.OpenCLIPVision',
                                   model_name='drm-tiny-vit'),
                     head=dict(type='LinearClsHead', num_classes=3,
                               in_channels=32))
    """))
    stdout = _run(f"""
        import sys
        assert 'drm_mm' not in sys.modules
        from mmengine.config import Config
        from mmengine.registry import DefaultScope
        from mmpretrain.registry import MODELS
        cfg = Config.fromfile({str(cfg)!r})   # runs custom_imports
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            model = MODELS.build(cfg.model)
        print(type(model.backbone).__module__)
    """, tmp_path)
    assert 'drm_mm.models.backbones.open_clip_vision' in stdout


def test_registry_locations_import_lazily(tmp_path):
    stdout = _run("""
        import sys
        from drm_mm.registry import MODELS, RUNNERS
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope('drm_mm'):
            print(MODELS.get('OpenCLIP').__name__, RUNNERS.get('DRMRunner').__name__)
    """, tmp_path)
    assert 'OpenCLIP DRMRunner' in stdout


def test_runner_type_resolves_from_mmengine_root_registry():
    """MMPretrain's tools/train.py builds ``runner_type`` from MMEngine's
    root registry, which does not search grandchildren."""
    from mmengine.registry import RUNNERS

    from drm_mm.engine.runners import DRMRunner
    assert RUNNERS.get('drm_mm.DRMRunner') is DRMRunner
