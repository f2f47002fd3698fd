# Runtime of the sharded configs: parameters, gradients and AdamW state
# split over the ranks with FSDP (MMEngine FlexibleRunner), for CLIPs too
# large for DDP (ViT-H/14, ViT-bigG/14). Everything else is
# default_runtime.py; the model, hooks and loops are the same components.
# The strategy is fsdp_strategy.py (a config that inherits one with
# default_runtime.py, e.g. configs/drm/vith14_*.py, takes that file and
# sets runner_type itself).
_base_ = ['./default_runtime.py', './fsdp_strategy.py']

# FlexibleRunner + DRMRunner's safe/strict checkpoint loading, atomic
# writes and resumable epoch loop; the soft-label pass runs before
# sharding. One process (tools/test.py without a launcher) runs DRMRunner.
runner_type = 'drm_mm.DRMFlexibleRunner'
