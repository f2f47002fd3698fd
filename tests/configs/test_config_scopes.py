"""Every component named in every config resolves under another project's
default scope (``mmpretrain``) once drm_mm is imported: drm_mm components
are named ``drm_mm.<Name>``."""
import glob
import os.path as osp

import mmengine.registry as mmengine_registry
import mmpretrain.registry as mmpretrain_registry
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope, Registry

import drm_mm  # noqa: F401  (what custom_imports=dict(imports=['drm_mm']) does)
from drm_mm import registry as drm_registry

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True))
# MMPretrain's registries, plus MMEngine's roots that it has no child of
# (STRATEGIES, FUNCTIONS: FlexibleRunner builds from those).
REGISTRIES = [
    r for r in vars(mmpretrain_registry).values() if isinstance(r, Registry)
] + [mmengine_registry.STRATEGIES, mmengine_registry.FUNCTIONS]
DRM_NAMES = set()
for _name in drm_registry.__all__:
    _reg = getattr(drm_registry, _name)
    _reg.import_from_location()
    DRM_NAMES |= set(_reg.module_dict)


def _types(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ('type', 'runner_type') and isinstance(value, str):
                found.add(value)
            else:
                _types(value, found)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _types(item, found)
    return found


def _resolves(name):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return any(r.get(name) is not None for r in REGISTRIES)


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(p, ROOT) for p in CONFIGS])
def test_every_type_resolves_under_mmpretrain_scope(path):
    cfg = Config.fromfile(path)
    types = _types(cfg.to_dict(), set())
    unqualified = sorted(t for t in types if t in DRM_NAMES)
    assert unqualified == [], (
        f'{osp.relpath(path, ROOT)}: write type="drm_mm.<Name>" for '
        f'{unqualified}')
    unresolved = sorted(t for t in types if not _resolves(t))
    assert unresolved == []


def test_unqualified_drm_type_does_not_resolve():
    """What the check above guards against."""
    assert not _resolves('DRMClassifier')
    assert _resolves('drm_mm.DRMClassifier')


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(p, ROOT) for p in CONFIGS])
def test_shared_test_dataset_matches_every_set(path):
    """MMPretrain's get_model / inferencers read test_dataloader.dataset;
    in a multi-set config it must name the sets' type and pipeline."""
    loader = Config.fromfile(path).to_dict().get('test_dataloader') or {}
    sets = {k: v for k, v in loader.items()
            if isinstance(v, dict) and 'dataset' in v}
    if not sets:
        return
    shared = loader.get('dataset')
    assert shared is not None, f'{osp.relpath(path, ROOT)}: add ' \
        'test_dataloader.dataset=dict(type=..., pipeline=test_pipeline)'
    for name, value in sets.items():
        assert value['dataset'].get('pipeline', shared['pipeline']) == \
            shared['pipeline'], f'set {name} of {osp.relpath(path, ROOT)}'
    first = next(iter(sets.values()))['dataset']
    assert first.get('type', shared['type']) == shared['type']
