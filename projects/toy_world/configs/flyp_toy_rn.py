# FLYP in the toy world: contrastive fine-tuning on df captions (ERM),
# lambda = 0, single-head inference (beta = 1). Same data, schedule and
# model as drm_toy_rn.py; only the method differs.
_base_ = ['./drm_toy_rn.py']

model = dict(head=dict(beta=1.0), loss=dict(erm='contrastive', wrm_weight=0.0))
custom_hooks = [dict(type='drm_mm.DivergenceGuardHook', action='stop')]
