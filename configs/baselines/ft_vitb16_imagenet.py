# Baseline for configs/drm/vitb16_imagenet.py: same data, schedule and model;
# only the method differs.
# FT: cross-entropy on the df head (text-initialised), both towers train,
# lambda = 0, single-head inference (beta = 1).
_base_ = ['../drm/vitb16_imagenet.py']

model = dict(head=dict(beta=1.0), loss=dict(erm='ce', wrm_weight=0.0),
             descriptions=None)
custom_hooks = [dict(type='drm_mm.DivergenceGuardHook', action='stop')]
