"""DRMFSDPStrategy: defaults, and the gradient averaging of the scalar
parameters FSDP leaves whole (2 gloo ranks here; the full FSDP training
run is tests/reliability/test_fsdp_equivalence.py)."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.registry import STRATEGIES
from torch import nn
from torch.distributed.fsdp import StateDictType

from drm_mm.engine.strategies import DRMFSDPStrategy
from drm_mm.engine.strategies.drm_fsdp_strategy import \
    replicate_scalar_parameters


def test_defaults_consolidated_checkpoints_and_block_units():
    strategy = STRATEGIES.build(dict(type='drm_mm.DRMFSDPStrategy'))
    assert type(strategy) is DRMFSDPStrategy
    assert strategy.state_dict_type == StateDictType.FULL_STATE_DICT
    assert strategy.state_dict_config.rank0_only
    assert strategy.state_dict_config.offload_to_cpu
    assert strategy.model_wrapper == dict(
        type='MMFullyShardedDataParallel',
        auto_wrap_policy='drm_mm.clip_block_wrap_policy',
        use_orig_params=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU setting')
def test_cpu_gathers_optimizer_state_without_offload():
    # torch 2.14's FSDP with offload_to_cpu on CPU tensors returns exp_avg
    # holding exp_avg_sq: a resumed run then diverges
    strategy = DRMFSDPStrategy()
    assert strategy.optim_state_dict_config.offload_to_cpu is False
    assert strategy.optim_state_dict_config.rank0_only is True


def test_config_keys_win_over_defaults():
    strategy = DRMFSDPStrategy(model_wrapper=dict(
        sharding_strategy='SHARD_GRAD_OP', auto_wrap_policy=None))
    assert strategy.state_dict_type == StateDictType.FULL_STATE_DICT
    assert strategy.model_wrapper['auto_wrap_policy'] is None
    assert strategy.model_wrapper['sharding_strategy'] == 'SHARD_GRAD_OP'


@pytest.mark.parametrize(
    'cfg', ['local', dict(state_dict_type='LOCAL_STATE_DICT'), 'sharded'])
def test_non_consolidated_state_dicts_are_refused_at_config_time(cfg):
    # a 'local' checkpoint is a folder of rank shards: resume failed with
    # "epoch_1.pth is unusable: file does not exist"
    with pytest.raises(ValueError) as err:
        DRMFSDPStrategy(state_dict_cfg=cfg)
    message = str(err.value)
    assert '\n' not in message
    assert message.startswith(f'strategy.state_dict_cfg={cfg!r}')
    assert "set strategy.state_dict_cfg='full'" in message


def test_collective_timeout_is_a_timedelta():
    from datetime import timedelta

    from drm_mm.engine.runners.drm_runner_mixin import collective_timeout
    assert collective_timeout(dict(backend='gloo', timeout=1800)) == dict(
        timeout=timedelta(seconds=1800))
    assert collective_timeout(None) == {}


@pytest.mark.parametrize('name', ['default_runtime.py', 'fsdp_runtime.py'])
def test_distributed_configs_set_a_collective_timeout(name):
    import os.path as osp

    from mmengine.config import Config
    root = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    cfg = Config.fromfile(osp.join(root, 'configs', '_base_', name))
    assert cfg.env_cfg.dist_cfg.timeout == 1800


class _Scaled(nn.Module):

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.frozen = nn.Parameter(torch.tensor(2.0), requires_grad=False)
        self.fc = nn.Linear(2, 1)


def _rank_main(rank: int, world: int, init_file: str, out: dict) -> None:
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=world)
    model = _Scaled()
    scalars = replicate_scalar_parameters(model)
    assert [id(p) for p in scalars] == [id(model.scale), id(model.frozen)]
    replicate_scalar_parameters(model)  # a second call adds no hook
    (model.scale * (rank + 1.0)).backward()  # grads 1 and 2 on the ranks
    out[rank] = model.scale.grad.item()
    dist.destroy_process_group()


def test_scalar_gradients_are_averaged_over_ranks(tmp_path):
    out = mp.Manager().dict()
    mp.start_processes(_rank_main, args=(2, str(tmp_path / 'init'), out),
                       nprocs=2, start_method='fork')
    assert dict(out) == {0: 1.5, 1: 1.5}


def test_scalar_hook_is_inert_without_process_group():
    model = _Scaled()
    replicate_scalar_parameters(model)
    (3 * model.scale).backward()
    assert model.scale.grad.item() == 3.0
