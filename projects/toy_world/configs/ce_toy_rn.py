# CE fine-tuning in the toy world: cross-entropy over the df head (the
# text-initialised classifier, text tower trains), lambda = 0, single-head
# inference (beta = 1). Same data, schedule and model as
# drm_toy_rn.py; only the method differs.
_base_ = ['./drm_toy_rn.py']

model = dict(head=dict(beta=1.0), loss=dict(erm='ce', wrm_weight=0.0))
custom_hooks = [dict(type='drm_mm.DivergenceGuardHook', action='stop')]
