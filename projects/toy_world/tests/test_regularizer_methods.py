"""The toy study's regulariser baselines (L2-SP, CAR-FT, Lipsum-FT): each is
a study method with a config that is CE plus its regulariser, and a toy
model built from it adds the regulariser's term to the loss."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.structures import DataSample

from drm_mm.registry import MODELS
from projects.toy_world.toy_world import demo

NEW = {'l2sp': ('drm_mm.L2SPLoss', 'loss_l2sp'),
       'carft': ('drm_mm.CARFTLoss', 'loss_carft'),
       'lipsum': ('drm_mm.LipsumLoss', 'loss_lipsum')}


def test_every_method_has_a_config_title_and_head():
    for method, config in demo.METHOD_CONFIGS.items():
        assert (demo.CONFIG_DIR / config).is_file()
        assert method in demo.METHOD_TITLES and method in demo.METHOD_HEAD
    assert set(NEW) <= set(demo.DemoSettings().methods)


@pytest.mark.parametrize('method', sorted(NEW))
def test_config_is_ce_plus_the_regulariser(method):
    cfg = Config.fromfile(demo.CONFIG_DIR / demo.METHOD_CONFIGS[method])
    ce = Config.fromfile(demo.CONFIG_DIR / demo.METHOD_CONFIGS['ce'])
    assert cfg.model.regularizer['type'] == NEW[method][0]
    assert cfg.model.loss == ce.model.loss
    decay = 0.0 if method == 'l2sp' else ce.optim_wrapper.optimizer[
        'weight_decay']
    assert cfg.optim_wrapper.optimizer['weight_decay'] == decay
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg['clip']['pretrained'] = None
    model_cfg['descriptions'] = None
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('drm_mm'):
        model = MODELS.build(model_cfg).train()
    size = int(cfg.get('image_size', 32))
    samples = [DataSample(metainfo=dict(sample_idx=i)).set_gt_label(i)
               for i in range(2)]
    losses = model.loss(torch.randn(2, 3, size, size), samples)
    value = float(losses[NEW[method][1]].detach())
    assert value >= 0 and torch.isfinite(torch.tensor(value))
    if method == 'l2sp':  # the student starts at the teacher's weights
        assert value == 0.0
