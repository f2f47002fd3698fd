# Baseline for configs/drm/vitb16_iwildcam.py: same data, schedule and model;
# only the method differs.
# LP: a linear head initialised from the zero-shot df prototypes, trained
# with cross-entropy; every CLIP tower frozen.
_base_ = ['../drm/vitb16_iwildcam.py']

model = dict(clip=dict(frozen=('image', 'text', 'logit_scale')),
             head=dict(beta=1.0, linear=True),
             loss=dict(erm='ce', wrm_weight=0.0), descriptions=None)
custom_hooks = []
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.0))
