"""One data root: a child of any shipped config (or one ``--cfg-options``
key) moves every split; an unset or missing root names the key to set."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from drm_mm.datasets import resolve_config_refs
from drm_mm.datasets.config_refs import has_config_refs

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                         recursive=True) if '_base_' not in p)


def _datasets(cfg):
    """(where, dataset cfg) of every split of the three dataloaders."""
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if not loader:
            continue
        for key, value in loader.items():
            if key == 'dataset':
                yield f'{field}.dataset', value
            elif isinstance(value, dict) and 'dataset' in value:
                yield f'{field}.{key}.dataset', value['dataset']


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(p, ROOT) for p in CONFIGS])
@pytest.mark.parametrize('how', ['child', 'cfg_options'])
def test_one_data_root_moves_every_split(tmp_path, path, how):
    if how == 'child':
        child = tmp_path / 'child.py'
        child.write_text(f"_base_ = [{path!r}]\ndata_root = '/my/root'\n"
                         f"classes = ['a', 'b']\n")
        cfg = Config.fromfile(str(child))
    else:
        cfg = Config.fromfile(path)
        cfg.merge_from_dict({'data_root': '/my/root', 'classes': ['a', 'b']})
    resolve_config_refs(cfg)
    roots = {where: ds['data_root'] for where, ds in _datasets(cfg)
             if 'data_root' in ds}
    assert roots, 'no split has a data_root'
    for where, root in roots.items():
        assert root == '/my/root' or root.startswith('/my/root/'), (
            where, root)
    assert not has_config_refs(cfg.to_dict())


def test_unset_data_root_names_the_key(tmp_path):
    cfg = Config.fromfile(osp.join(ROOT, 'configs/drm/vitb16_iwildcam.py'))
    cfg.pop('data_root')
    with pytest.raises(ValueError) as err:
        resolve_config_refs(cfg)
    msg = str(err.value)
    assert msg.startswith("train_dataloader.dataset.data_root='${data_root}'"
                          " refers to the config key 'data_root'")
    assert '--cfg-options data_root=' in msg and '\n' not in msg


def test_reference_kept_as_a_whole_value():
    cfg = dict(classes=['cat', 'dog'], train_dataloader=dict(
        dataset=dict(classes='${classes}', data_root='${root}/x')),
        root='/r')
    resolve_config_refs(cfg)
    assert cfg['train_dataloader']['dataset'] == dict(
        classes=['cat', 'dog'], data_root='/r/x')
    cfg['classes'].append('fox')  # a copy, not the same list
    assert cfg['train_dataloader']['dataset']['classes'] == ['cat', 'dog']


def test_unresolved_reference_is_refused_by_the_dataset():
    from drm_mm.datasets import WILDSIWildCam
    with pytest.raises(ValueError, match=r"WILDSIWildCam: data_root="
                       r"'\$\{data_root\}' is an unresolved config reference"):
        WILDSIWildCam(data_root='${data_root}', split='train')


def test_missing_root_names_the_key(tmp_path):
    from drm_mm.datasets import ImageNetFolder, WILDSIWildCam
    for cls, kwargs in ((WILDSIWildCam, dict(split='train')),
                        (ImageNetFolder, dict(split='val'))):
        with pytest.raises(FileNotFoundError) as err:
            cls(data_root=str(tmp_path / 'nope'), **kwargs)
        assert 'Set the top-level `data_root` of the config' in str(
            err.value)
        assert '--cfg-options data_root=/path' in str(err.value)


def test_unset_data_root_of_the_image_folder_base_names_the_key(tmp_path):
    from drm_mm.datasets import ImageFolder
    cfg = Config.fromfile(osp.join(ROOT,
                                   'configs/drm/vitb16_image_folder.py'))
    resolve_config_refs(cfg)
    assert cfg.train_dataloader.dataset.data_root is None
    assert cfg.train_dataloader.dataset.classes is None
    kwargs = dict(cfg.train_dataloader.dataset)
    kwargs.pop('type')
    with pytest.raises(ValueError, match=r'ImageFolder: no data_root\. Set '
                       r'the top-level `data_root` of the config'):
        ImageFolder(**kwargs)


@pytest.mark.parametrize('key, where', [
    ('train_dataloader.batch_size', 'train_dataloader.batch_size=0'),
    ('val_dataloader.id_val.batch_size', 'val_dataloader.id_val.batch_size=0'),
])
def test_zero_batch_size_names_the_key(key, where):
    cfg = Config.fromfile(osp.join(ROOT, 'configs/drm/vitb16_iwildcam.py'))
    if key.startswith('val_dataloader.id_val'):
        cfg.val_dataloader.id_val.batch_size = 0
    else:
        cfg.merge_from_dict({key: 0})
    with pytest.raises(ValueError) as err:
        resolve_config_refs(cfg)
    assert str(err.value).startswith(f'{where}: must be a positive int')
    assert f'--cfg-options {key.rsplit(".", 1)[0]}.batch_size=' in str(
        err.value)


def test_zero_batch_size_refused_before_any_data_is_read(tmp_path):
    """Through the runner (MMPretrain's tools build it with from_cfg)."""
    from drm_mm.engine.runners import DRMRunner
    cfg = Config.fromfile(osp.join(ROOT,
                                   'configs/smoke/drm_tiny_fake_iwildcam.py'))
    cfg.train_dataloader.batch_size = 0
    cfg.work_dir = str(tmp_path)
    with pytest.raises(ValueError, match=r'^train_dataloader\.batch_size=0'):
        DRMRunner.from_cfg(cfg)
