# Runtime shared by every drm_mm config.
# Components resolve in the drm_mm scope first, then MMPretrain / MMEngine.
default_scope = 'drm_mm'
custom_imports = dict(imports=['drm_mm'], allow_failed_imports=False)
# DRMRunner = MMEngine Runner + safe checkpoint loading (weights_only=True
# with MMEngine's own types allowed) + gloo/CPU distributed training.
runner_type = 'drm_mm.DRMRunner'
# The train loop is named with the schedule (train_cfg in _base_/schedules/):
# drm_mm.ResumableEpochBasedTrainLoop, MMEngine's epoch loop that also
# resumes a checkpoint written mid-epoch at the next batch with the same
# random draws.

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # writes the new checkpoint before removing the old one
    checkpoint=dict(type='drm_mm.AtomicCheckpointHook', interval=1,
                    max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # nccl on GPUs; DRMRunner uses gloo itself when no GPU is present.
    # timeout (seconds): a collective that waits longer for a stopped or
    # hung rank fails instead of blocking the other ranks forever; 30 min
    # covers the longest rank-0-only step (writing a ViT-bigG checkpoint).
    dist_cfg=dict(backend='nccl', timeout=1800),
)

# Local JSON scalars by default. TensorBoard: add
# dict(type='TensorboardVisBackend'); Weights & Biases:
# dict(type='WandbVisBackend', init_kwargs=dict(project='drm_mm')).
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
