"""Every config under configs/ loads, builds its model (random weights: the
real ones are fetched by users) and runs one forward/backward training step
at its own resolution. The class list and batch are shrunk through the
config (as `--cfg-options` would), never the architecture."""
import copy
import gc
import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.structures import DataSample

import drm_mm  # noqa: F401
from drm_mm.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                         recursive=True) if '_base_' not in p)
PROMPTS = osp.join(ROOT, 'drm_mm', 'prompts')
N_CLASSES = 3


def _rel(path):
    return osp.relpath(path, ROOT)


#: Sharded (FSDP) configs: ViT-H/14 and ViT-bigG/14 need 16-40 GB for one
#: CPU step; tests/configs/test_sharded_configs.py checks them instead.
SHARDED = ('vith14', 'vitbigg14')


def _param(path):
    marks = [pytest.mark.slow] if 'vitl14' in path else []
    if any(osp.basename(path).startswith(arch) for arch in SHARDED):
        marks = [pytest.mark.skip(reason='too large for a CPU step; see '
                                  'test_sharded_configs.py')]
    return pytest.param(path, id=_rel(path), marks=marks)


def _crop_size(cfg) -> int:
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] == 'RandomResizedCrop':
            return int(step['scale'])
    if 'image_size' in cfg:  # e.g. the toy world: images at model size
        return int(cfg.image_size)
    raise AssertionError('no RandomResizedCrop in the train pipeline and no '
                         'image_size in the config')


def _shrink_classes(model_cfg):
    """First N classes of the dataset, with their descriptions."""
    from drm_mm.datasets.classnames import get_classnames
    key = model_cfg['classnames']
    if key is None:  # the user's own data: the user's classes
        names = ['cat', 'dog', 'red fox'][:N_CLASSES]
        model_cfg['classnames'] = names
        model_cfg['descriptions'] = {n: [f'a {n} with its core features']
                                     for n in names}
        return len(names)
    if not isinstance(key, str):
        return len(key)
    names = get_classnames(key)[:N_CLASSES]
    model_cfg['classnames'] = names
    if model_cfg.get('templates') is None:
        model_cfg['templates'] = key
    desc = model_cfg.get('descriptions')
    if isinstance(desc, str):
        path = desc if osp.isabs(desc) else osp.join(PROMPTS, desc)
        with open(path) as f:
            table = json.load(f)
        model_cfg['descriptions'] = {n: table[n] for n in names}
    return len(names)


def test_configs_found():
    names = {_rel(p) for p in CONFIGS}
    for arch in ('vitb16', 'vitl14', 'vitl14-336'):
        for data in ('iwildcam', 'fmow', 'imagenet'):
            assert f'configs/drm/{arch}_{data}.py' in names
    for method in ('zeroshot', 'ft', 'lp', 'lpft', 'flyp'):
        assert f'configs/baselines/{method}_vitb16_iwildcam.py' in names


@pytest.mark.parametrize('path', [_param(p) for p in CONFIGS])
def test_config_builds_and_steps(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'drm_mm'
    model_cfg = copy.deepcopy(cfg.model)
    size = _crop_size(cfg)
    if model_cfg['type'] == 'drm_mm.DRMClassifier':
        model_cfg['clip']['pretrained'] = None
        num_classes = _shrink_classes(model_cfg)
    else:  # smoke configs with MMPretrain's ImageClassifier
        num_classes = model_cfg['head']['num_classes']
    with DefaultScope.overwrite_default_scope('drm_mm'):
        model = MODELS.build(model_cfg)
    model.train()
    batch = 2
    samples = []
    for i in range(batch):
        sample = DataSample().set_gt_label(i % num_classes)
        sample.set_metainfo(dict(sample_idx=i))
        samples.append(sample)
    data = dict(inputs=[torch.randint(0, 255, (3, size, size),
                                      dtype=torch.uint8)
                        for _ in range(batch)],
                data_samples=samples)
    if getattr(model, 'needs_soft_labels', False):
        model.set_soft_labels(torch.full((batch, num_classes),
                                         1.0 / num_classes))
    data = model.data_preprocessor(data, training=True)
    assert data['inputs'].shape[-1] == size
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    has_grad = any(p.grad is not None and bool(p.grad.abs().sum() > 0)
                   for p in model.parameters() if p.requires_grad)
    # Free the model before the next config (dozens of CLIPs per process).
    del model, data, losses, total
    gc.collect()
    assert has_grad


def test_config_of_another_project_inherits_ours(tmp_path):
    """A config written outside this repository inherits a drm_mm config
    through a plain path (MMEngine refuses ``drm_mm::`` for non-OpenMMLab
    packages), switches to its own default scope and builds without
    re-declaring any drm_mm type."""
    from drm_mm.utils import get_config_path
    base = get_config_path('drm/vitb16_iwildcam.py')
    other = tmp_path / 'other_project' / 'my_drm.py'
    other.parent.mkdir()
    other.write_text(
        f"_base_ = [{base!r}]\n"
        "default_scope = 'mmpretrain'\n"
        "custom_imports = dict(imports=['drm_mm'], "
        "allow_failed_imports=False)\n"
        "model = dict(clip=dict(model_name='drm-tiny-vit', pretrained=None),\n"
        "             classnames=['cat', 'dog'], templates=['a photo of a {c}.'],\n"
        "             descriptions=dict(_delete_=True,\n"
        "                               cat=['a small furry feline'],\n"
        "                               dog=['a four-legged canine']),\n"
        "             loss=dict(wrm_weight=0.5))\n")
    cfg = Config.fromfile(str(other))
    assert cfg.train_cfg.max_epochs == 20  # inherited recipe
    assert cfg.model.head.beta == 0.5
    assert cfg.model.type == 'drm_mm.DRMClassifier'
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MMPRETRAIN_MODELS.build(cfg.model)
    assert type(model).__name__ == 'DRMClassifier'
    assert model.head.loss_module.wrm_weight == 0.5


def test_get_config_path_missing():
    from drm_mm.utils import get_config_path
    with pytest.raises(FileNotFoundError,
                       match=r"drm_mm config 'drm/nope.py' does not exist"):
        get_config_path('drm/nope.py')
