"""The sharded (FSDP) configs: ViT-H/14 and ViT-bigG/14 DRM with
DRMFlexibleRunner + DRMFSDPStrategy, LAION weights that open_clip knows,
and the same model / data / schedule settings as the ViT-L configs. Too
large to build on CPU; the sharded path itself is trained by
tests/reliability/test_fsdp_equivalence.py."""
import os.path as osp

import open_clip
import pytest
from mmengine.config import Config
from mmengine.registry import RUNNERS, STRATEGIES

import drm_mm  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SHARDED = {
    'vith14_iwildcam.py': ('ViT-H-14', 'vitl14_iwildcam.py'),
    'vith14_fmow.py': ('ViT-H-14', 'vitl14_fmow.py'),
    'vith14_imagenet.py': ('ViT-H-14', 'vitl14_imagenet.py'),
    'vitbigg14_imagenet.py': ('ViT-bigG-14', 'vitl14_imagenet.py'),
}


def _cfg(name):
    return Config.fromfile(osp.join(ROOT, 'configs', 'drm', name))


@pytest.mark.parametrize('name', sorted(SHARDED))
def test_sharded_config(name):
    arch, ddp_twin = SHARDED[name]
    cfg, twin = _cfg(name), _cfg(ddp_twin)
    runner = RUNNERS.get(cfg.runner_type)
    assert runner.__name__ == 'DRMFlexibleRunner'
    assert STRATEGIES.get(cfg.strategy.type).__name__ == 'DRMFSDPStrategy'
    assert cfg.strategy.state_dict_cfg == 'full'
    assert cfg.strategy.model_wrapper.auto_wrap_policy == \
        'drm_mm.clip_block_wrap_policy'
    clip = cfg.model.clip
    assert clip.model_name == arch and clip.grad_checkpointing
    assert clip.pretrained in open_clip.list_pretrained_tags_by_model(arch)
    assert cfg.optim_wrapper.type == 'drm_mm.DivergenceGuardAmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    # all but the CLIP and the runner/strategy equal the ViT-L/14 config
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                'param_scheduler', 'train_cfg', 'custom_hooks',
                'default_hooks', 'auto_scale_lr'):
        assert cfg.get(key) == twin.get(key), key
    for key in set(cfg.model) | set(twin.model):
        if key != 'clip':
            assert cfg.model.get(key) == twin.model.get(key), key
    assert cfg.optim_wrapper.optimizer == twin.optim_wrapper.optimizer
